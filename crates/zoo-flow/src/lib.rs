//! # zoo-flow: normalizing flows, and flows as energies, proposals and samplers
//!
//! Flows are the family with an exact likelihood; the review (Carbone 2024, §6 "EBMs and other
//! generative models") also uses them as the bridge between sampling and learning. Built on
//! `zoo-energy` only.
//!
//! | review / paper | here |
//! |---|---|
//! | change of variables, log q(x) = log N(f(x)) + log|det J_f| | [`Flow`], [`Flow::log_prob`] |
//! | NICE, RealNVP, MAF, IAF, neural spline flows, actnorm, LU, permutations | [`layers`], [`FlowKind`] |
//! | maximum likelihood (forward KL) | [`fit_max_likelihood`] |
//! | a flow is a normalised EBM (log Z = 0) | [`FlowEnergy`] |
//! | Boltzmann generators: reverse KL, importance weights, free energy | [`fit_reverse_kl`], [`importance_weights`] |
//! | flow-based MCMC: independent MH with a flow proposal | [`IndependentMh`] |
//! | neural-transport HMC (HMC in the latent space) | [`NeuTraEnergy`] + `zoo_mcmc::sampler::Hmc` |
//!
//! Direction convention (nflows, zuko): `forward` maps data to latent (density evaluation),
//! `inverse` maps latent to data (sampling). Every layer returns log|det J| of the map it applied.

pub mod elementwise;
mod energy;
mod flow;
mod fused;
pub mod layers;
mod mcmc;
mod train;

pub use elementwise::Elementwise;
pub use energy::{FlowEnergy, NeuTraEnergy};
pub use flow::{Flow, FlowConfig, FlowKind, standard_normal_log_density};
pub use layers::Layer;
pub use mcmc::{ImhState, IndependentMh};
pub use train::{
    FitReport, FlowTrainConfig, ImportanceReport, ReverseKlTrainConfig, fit_max_likelihood,
    fit_reverse_kl, importance_summary, importance_weights,
};
