//! # zoo-diffusion: diffusion and score-based models (work in progress)
//!
//! The review (Carbone 2024, §7) ties EBMs to diffusion through the score: a diffusion model is a
//! family of EBMs p_t(x) ∝ exp(-E_t(x)) over noise levels, trained by denoising score matching.
//! Built on `zoo-energy` only. In place: the forward processes (VE and VP SDEs, NCSN noise
//! ladders), the score seam ([`ScoreModel`]) with the exact score of Gaussian data, every
//! sampler (reverse-SDE Euler-Maruyama, predictor-corrector, probability-flow ODE by Heun and
//! RK4, DDIM, annealed Langevin) and the probability-flow log-likelihood with an exact
//! divergence. Not yet: trained score networks and energy-parameterised models, Hutchinson's
//! divergence, the experiments (issue 6 stays open).
//!
//! | review / paper | here |
//! |---|---|
//! | VE / VP SDEs (Song et al. 2021), DDPM as discrete VP (Ho et al. 2020) | [`Sde`] |
//! | NCSN noise ladder, annealed Langevin (Song & Ermon 2019) | [`NoiseLadder`], [`annealed_langevin`] |
//! | reverse SDE, predictor-corrector, probability-flow ODE (Song et al. 2021) | [`sample`], [`Solver`] |
//! | DDIM (Song, Meng & Ermon 2021) | [`Solver::Ddim`] |
//! | likelihood by the instantaneous change of variables (Chen et al. 2018) | [`pf_ode_log_likelihood`] |

mod correct;
mod fused;
mod likelihood;
mod net;
mod sample;
mod score;
mod sde;

pub use correct::{CorrectedReport, MalaCorrection, sample_corrected};
pub use fused::{fit_dsm_fused, train_fused_with};
pub use likelihood::{Divergence, PfOdeLikelihood, pf_ode_log_likelihood};
pub use net::{
    ConvScore, DsmConfig, DsmReport, EnergyScore, LevelEnergy, MlpScore, NetScore, ScoreNet,
    ScoreNetConfig, fit_dsm,
};
pub use sample::{
    SampleReport, Solver, annealed_langevin, pf_ode_velocity, sample, step, time_grid,
};
pub use score::{GaussianDataScore, ScoreModel};
pub use sde::{NoiseLadder, Sde};
