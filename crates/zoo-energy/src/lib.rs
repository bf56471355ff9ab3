//! # zoo-energy: the energy and sampler seam of ebm-zoo
//!
//! Every model family in ebm-zoo defines its densities through [`Energy`] and draws samples
//! through the kernels in [`sampler`]. The crate maps to the *Hitchhiker's guide on Energy-Based
//! Models* (Carbone 2024) as follows:
//!
//! | review | here |
//! |---|---|
//! | §2 EBMs, p(x) = exp(-E(x))/Z | [`Energy`], analytic energies with known log Z, [`energy::MlpEnergy`] |
//! | §3 sampling: Langevin, MALA, HMC, annealing | [`sampler::Ula`], [`sampler::Mala`], [`sampler::Hmc`], [`sampler::AnnealedLangevin`], [`energy::Interpolated`] |
//! | §4 training with persistent chains | [`sampler::ReplayBuffer`] |
//! | MCMC quality | [`diagnostics`] (ESS, split R-hat) |
//! | §5 partition functions: AIS, SMC, Jarzynski | [`estimate`] |
//! | §5 spin systems: Ising, Curie-Weiss, exact references | [`spin`] |
//!
//! Shapes follow burn: a batch of `n` points of dimension `d` is `Tensor<2>` `[n, d]`.
//! Randomness always comes from an explicit [`rng::ZooRng`].

pub mod backend;
pub mod diagnostics;
pub mod energy;
mod error;
pub mod estimate;
pub mod io;
pub mod kernels;
pub mod linalg;
pub mod memory;
pub mod nn;
pub mod progress;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod spin;
pub mod tensor;

pub use backend::BackendKind;
pub use energy::{Energy, EnergySpec};
pub use error::{Error, Result, check_count, check_positive, check_unit_open};
pub use rng::{ZooRng, seeded};
pub use sampler::{ChainState, Sampler, StepInfo};

/// burn, re-exported so that users and the family crates use the same version.
pub use burn;
