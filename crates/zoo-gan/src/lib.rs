//! # zoo-gan: GANs read as energy-based models
//!
//! The review (Carbone 2024, §5) reads a GAN's discriminator as an energy, d(x) = -E(x), and its
//! generator as an amortised sampler that replaces MCMC; the generator's missing entropy term is
//! why GANs drop modes. This crate makes that reading runnable, built on `zoo-energy` only: every
//! discriminator is a shared [`zoo_energy::Energy`], and the shared samplers run on it and on the
//! latent energy of discriminator-driven latent sampling.
//!
//! | review / paper | here |
//! |---|---|
//! | GAN, non-saturating loss (Goodfellow et al. 2014) | [`GanLoss::NonSaturating`] |
//! | hinge loss + spectral normalisation (Miyato et al. 2018) | [`GanLoss::Hinge`], [`Discriminator::power_iteration`] |
//! | WGAN-GP (Gulrajani et al. 2017) | [`GanLoss::WganGp`] (first-order autodiff through the written-out input gradient) |
//! | energy-based GAN, margin loss, pulling-away term (Zhao et al. 2017) | [`GanLoss::Ebgan`], [`ReconstructionEnergy`], [`pulling_away`] |
//! | maximum-likelihood game E(G(z)) - H(q_G), entropy by VERA (Grathwohl et al. 2021) | [`GanLoss::Vera`], [`vera_score`] |
//! | discriminator-driven latent sampling (Che et al. 2020) | [`LatentEnergy`], [`latent_langevin`] |
//! | adversarial EBM along a short diffusion, DDAEBM (Geng et al. 2024) | [`Ddaebm`], [`fit_ddaebm`] |
//! | discriminator as an energy over data space | [`Gan::energy`] |

mod ddaebm;
mod latent;
mod model;
mod train;

pub use ddaebm::{
    Amortised, Ddaebm, DdaebmConfig, DdaebmReport, DdaebmTrainConfig, VpChain, fit_ddaebm,
};
pub use latent::{LatentLangevinConfig, LatentLangevinReport, latent_langevin, run_latent_chain};
pub use model::{
    Discriminator, Gan, GanConfig, GanLoss, Generator, GeneratorTape, LatentEnergy, Output,
    ReconstructionEnergy, SIGMA_RANGE, check_data,
};
pub use train::{GanReport, GanTrainConfig, fit, pulling_away, sample, vera_score};
