//! # zoo-vae: variational auto-encoders with Gaussian or latent energy-based priors
//!
//! The review (Carbone 2024, §6) ties VAEs to EBMs twice: the ELBO is a variational free energy
//! (−ELBO = E_q[energy] − entropy, with the energy −log p(x, z)), and an EBM can replace the
//! Gaussian prior in latent space (Pang et al. 2020), which fills the "prior holes" between the
//! clusters of the aggregate posterior. Built on `zoo-energy` only: the prior's energy is the
//! shared `MlpEnergy`, its samples come from the shared ULA, its log Z from the shared AIS.
//!
//! | review / paper | here |
//! |---|---|
//! | VAE, reparameterised ELBO (Kingma & Welling 2014) | [`Vae`], [`fit`] |
//! | importance-weighted bound (Burda et al. 2016) | [`evaluate`] (`iwae_nll`) |
//! | latent EBM prior, ML training with short-run Langevin (Pang et al. 2020) | [`PriorKind::Ebm`], [`fit`], [`sample_prior`] |
//! | log Z of the prior by AIS (Neal 2001) | [`prior_log_normalizer`] |
//! | latent-space hierarchical EBM diffusion prior: recovery EBMs along a short diffusion of the whitened latent of a multi-layer generator (Cui & Han 2024) | [`HierVae`], [`LatentEbmPrior`], [`fit_latent_prior`] |
//! | Energy-Calibrated VAE: an EBM on the data calibrates the decoder in training (Luo et al. 2024) | [`fit_calibrated`], [`CalibrationChain`] |

mod calibrated;
mod hierarchical;
mod latent_diffusion;
mod model;
mod train;

pub use calibrated::{CalibrationChain, EcVaeLog, EcVaeReport, EcVaeTrainConfig, fit_calibrated};
pub use hierarchical::{
    HierPosterior, HierTrainConfig, HierVae, HierVaeConfig, IdentityMap, LatentMap, fit_hier_vae,
    split_layers,
};
pub use latent_diffusion::{
    LatentDiffusionConfig, LatentEbmPrior, LatentPriorKind, LatentPriorTrainConfig, LatentSource,
    LevelEnergy, PriorChain, fit_latent_prior,
};
pub use model::{DecoderKind, PriorKind, Vae, VaeConfig};
pub use train::{
    Evaluation, VaeReport, VaeTrainConfig, aggregate_posterior_log_z, continue_prior_chains,
    evaluate, fit, prior_log_normalizer, sample_prior,
};
