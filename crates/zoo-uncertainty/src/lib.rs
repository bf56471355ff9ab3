//! # zoo-uncertainty: the energy of a model as a measure of its uncertainty
//!
//! The review's last application (Carbone 2024, §6): a classifier f(x) ∈ R^C defines the energy
//! E(x) = −T logsumexp(f(x)/T), and a high energy flags an input the model has not seen
//! (Liu et al. 2020). This crate holds the scores and how to rate them ([`scores`]: energy,
//! maximum softmax, class-conditional Mahalanobis, AUROC, FPR at 95% TPR), and the graph side:
//! attributed graphs and their propagation operators ([`graph`]), the contextual stochastic block
//! model and five distribution shifts ([`shift`]), a graph convolutional network in burn
//! ([`gcn`]), GEBM and its baselines ([`gebm`]), and the inductive node-level experiment that
//! produces the AUROC tables ([`experiment`]).
//!
//! Classifiers as energies and JEM live in [`classifier`].
//!
//! It depends on the shared crates only (`zoo-energy`, `zoo-mcmc`, `zoo-neural`, `zoo-train`); the data
//! (Cora, CiteSeer) come from `zoo-data` through the command line.

pub mod classifier;
pub mod experiment;
pub mod gcn;
pub mod gebm;
pub mod graph;
pub mod scores;
pub mod shift;

pub use classifier::{Classifier, ClassifierEnergy, JemConfig};
pub use experiment::{GraphExperimentConfig, ShiftResult};
pub use gcn::{Gcn, GcnConfig, GraphTensors};
pub use gebm::{GebmConfig, SCORES};
pub use graph::{Graph, SparseOp, propagate};
pub use shift::{CsbmConfig, Shift, ShiftConfig, Shifted};
