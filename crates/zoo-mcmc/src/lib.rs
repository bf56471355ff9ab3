//! # zoo-mcmc: sampling and partition functions for ebm-zoo
//!
//! Everything that draws from or integrates an [`zoo_energy::Energy`] (review §3 and §5):
//!
//! | review | here |
//! |---|---|
//! | §3 sampling: Langevin, MALA, HMC, annealed Langevin | [`sampler::Ula`], [`sampler::Mala`], [`sampler::Hmc`], [`sampler::AnnealedLangevin`] in BlackJAX's `init`/`step` shape |
//! | §3 step-size tuning | [`sampler::DualAveraging`], driven by [`run::run`] (tuning is separate from the kernel) |
//! | §4 training with persistent chains | [`sampler::ReplayBuffer`] |
//! | MCMC quality | [`diagnostics`] (ESS, split R-hat, MMD) |
//! | §5 partition functions: AIS, SMC, Jarzynski | [`estimate`], all on one annealing engine ([`estimate::run_annealing`]) |
//!
//! Long loops show one style of progress bar ([`progress::bar`]).

pub mod diagnostics;
pub mod estimate;
pub mod progress;
pub mod run;
pub mod sampler;

pub use sampler::{ChainState, Sampler, StepInfo};
