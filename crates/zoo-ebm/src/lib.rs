//! # zoo-ebm: learning an energy from data
//!
//! The core-EBM family of ebm-zoo, built on the shared energies and samplers of `zoo-energy`
//! (it imports no other family crate). Review (Carbone 2024) map:
//!
//! | review | here |
//! |---|---|
//! | §4.1 maximum likelihood, CD-k, PCD, short-run MCMC | [`objective::MaximumLikelihood`] with [`objective::ChainStart`] |
//! | §4.3 Jarzynski-weighted training (Carbone et al. 2023) | [`objective::JarzynskiPcd`] |
//! | §4.4 noise-contrastive estimation | [`objective::Nce`] |
//! | §4.5 score matching without second derivatives | [`objective::DenoisingScoreMatching`], [`objective::SlicedScoreMatching`] |
//! | §2.3 restricted Boltzmann machines | [`rbm::Rbm`] |
//! | trainable energies | [`model::EnergyModel`]: MLP energies (`zoo_neural::MlpEnergy`), [`model::MixtureModel`], [`model::GaussianModel`] |
//!
//! One loop ([`train::Trainer`]) runs every objective: minibatch, loss, one backward pass, Adam,
//! stabilisers (energy penalty, gradient clipping, spectral bound), divergence detection with a
//! restore point, and per-iteration diagnostics.

pub mod data;
pub mod fused;
pub mod model;
pub mod objective;
pub mod rbm;
pub mod train;

pub use data::Dataset;
pub use model::EnergyModel;
pub use objective::{Objective, Report};
pub use train::{EbmTrainConfig, Trainer};
