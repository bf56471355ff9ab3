//! # zoo-diffusion: diffusion and score-based models, and diffusion models that are energies
//!
//! The review (Carbone 2024, §7) ties EBMs to diffusion through the score: a diffusion model is a
//! family of EBMs p_t(x) ∝ exp(-E_t(x)) over noise levels, trained by denoising score matching.
//! Built on `zoo-energy` only: the energy-parameterised model's levels are shared [`Energy`]s
//! ([`LevelEnergy`]) that the shared MALA corrects ([`sample_corrected`]), its input gradient is
//! the MLP energy's written-out score (one backward pass for DSM), the fused trainer uses the
//! shared host kernels.
//!
//! [`Energy`]: zoo_energy::Energy
//!
//! | review / paper | here |
//! |---|---|
//! | VE / VP SDEs (Song et al. 2021), DDPM as discrete VP (Ho et al. 2020) | [`Sde`] |
//! | NCSN noise ladder, annealed Langevin (Song & Ermon 2019) | [`NoiseLadder`], [`annealed_langevin`] |
//! | reverse SDE, predictor-corrector, probability-flow ODE (Song et al. 2021) | [`sample`], [`Solver`] |
//! | DDIM (Song, Meng & Ermon 2021) | [`Solver::Ddim`] |
//! | likelihood by the instantaneous change of variables (Chen et al. 2018), exact divergence or Hutchinson (Grathwohl et al. 2019) | [`pf_ode_log_likelihood`], [`Divergence`] |
//! | denoising score matching (Vincent 2011), weighting sigma^2 or the likelihood weighting g^2 (Song et al. 2021b) | [`fit_dsm`], [`fit_dsm_fused`] |
//! | noise-predicting networks (Ho et al. 2020), MLP and convolutional | [`MlpScore`], [`ConvScore`] |
//! | energy-parameterised diffusion, MCMC correction (Salimans & Ho 2021; Du et al. 2023) | [`EnergyScore`], [`LevelEnergy`], [`sample_corrected`] |
//! | DDPM ancestral sampling (Ho et al. 2020) | [`Solver::Ancestral`] |
//! | flow matching on the linear interpolant (Lipman et al. 2023; Liu et al. 2023), its ODE and the interpolant SDE dX = (b + ε s) dt + √(2ε) dW (Albergo & Vanden-Eijnden 2023), likelihood by the change of variables | [`fit_flow_matching`], [`sample_flow`], [`flow_log_likelihood`] |
//! | Jarzynski/SMC reweighting of the reverse SDE of an energy-parameterised model (Carbone et al. 2023; Carbone 2025) | [`ReversePath`], [`ReweightedSampling`] |
//! | the linear stochastic interpolant to a Gaussian mixture in closed form (Albergo & Vanden-Eijnden 2023), a path for Jarzynski/SMC-reweighted SDEs (Carbone et al. 2023) | [`MixtureInterpolant`] |

mod correct;
mod flow_matching;
mod fused;
mod interpolant;
mod likelihood;
mod net;
mod reweight;
mod sample;
mod score;
mod sde;

pub use correct::{CorrectedReport, LevelEnergies, MalaCorrection, sample_corrected};
pub use flow_matching::{
    FlowMatchingModel, FlowSolver, GaussianVelocity, VelocityField, VelocityNet, fit_flow_matching,
    flow_log_likelihood, sample_flow,
};
pub use fused::fit_dsm_fused;
pub use interpolant::MixtureInterpolant;
pub use likelihood::{Divergence, PfOdeLikelihood, pf_ode_log_likelihood};
pub use net::{
    ConvScore, DsmReport, DsmTrainConfig, DsmWeighting, EnergyScore, LevelEnergy, MlpScore,
    NetScore, ScoreNet, ScoreNetConfig, fit_dsm,
};
pub use reweight::{ReversePath, ReweightedReport, ReweightedSampling};
pub use sample::{
    AnnealedLangevinConfig, SampleConfig, SampleReport, Solver, TimeStep, annealed_langevin,
    pf_ode_velocity, sample, step, time_grid,
};
pub use score::{GaussianDataScore, ScoreModel};
pub use sde::{NoiseLadder, Sde};
