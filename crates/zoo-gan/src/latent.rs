//! Discriminator-driven latent sampling (Che, Zhang, Sohl-Dickstein, Larochelle, Paull, Cao &
//! Bengio 2020): any trained GAN becomes an EBM sampler by running a shared MCMC sampler on the
//! latent energy |z|^2 / 2 + E_D(G(z)) ([`LatentEnergy`]) and pushing the chain through G.

use crate::model::{Gan, LatentEnergy};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal;
use zoo_energy::tensor::check_finite;
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};
use zoo_mcmc::sampler::{Mala, Sampler, Ula};

/// The latent chain (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentLangevinConfig {
    /// Steps from z ~ N(0, I).
    pub steps: usize,
    /// Step size h.
    pub step_size: f64,
    /// Metropolis-adjusted (MALA, exact for the latent target) instead of ULA (Che et al.).
    pub metropolis: bool,
    /// The temperature T in |z|^2/2 + E_D(G(z)) / T (1: Che et al.'s target).
    pub temperature: f64,
}

impl Default for LatentLangevinConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            step_size: 0.05,
            metropolis: true,
            temperature: 1.0,
        }
    }
}

impl LatentLangevinConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("steps", self.steps)?;
        check_positive("step_size", self.step_size)?;
        check_positive("temperature", self.temperature)?;
        Ok(())
    }
}

/// What the latent chain did.
#[derive(Debug, Clone, Serialize)]
pub struct LatentLangevinReport {
    /// Mean MALA acceptance rate over steps (1 for ULA).
    pub acceptance: f64,
    /// Energy evaluations (score and energy together) per sample.
    pub evaluations_per_sample: usize,
}

/// `n` samples G(z_T) of a trained GAN with z_T from the latent chain, and its report.
pub fn latent_langevin(
    rng: &mut ZooRng,
    gan: &Gan,
    n: usize,
    cfg: &LatentLangevinConfig,
    device: &Device,
) -> Result<(Tensor<2>, LatentLangevinReport)> {
    let mut energy = LatentEnergy::new(gan);
    energy.inverse_temperature = 1.0 / cfg.temperature;
    run_latent_chain(rng, &energy, n, cfg, device)
}

/// `n` samples G(z_T), z_T from `cfg.steps` steps of MALA (or ULA) on `energy` started at
/// N(0, I) (`cfg.temperature` is ignored here: it is part of `energy`).
pub fn run_latent_chain(
    rng: &mut ZooRng,
    energy: &LatentEnergy,
    n: usize,
    cfg: &LatentLangevinConfig,
    device: &Device,
) -> Result<(Tensor<2>, LatentLangevinReport)> {
    cfg.check()?;
    check_count("samples", n)?;
    let data_dim = energy.generator.net.output_width();
    let z0 = normal(rng, [n, energy.generator.latent_dim], device);
    let (z, acceptance) = if cfg.metropolis {
        let mala = Mala::new(cfg.step_size)?;
        let mut state = mala.init(energy, z0)?;
        let mut acc = Tensor::<1>::zeros([n], device);
        for _ in 0..cfg.steps {
            let (s, info) = mala.step(rng, energy, state)?;
            if let Some(p) = info.acceptance_probability {
                acc = acc + p;
            }
            state = s;
        }
        let acc = f64::from(acc.mean().into_scalar::<f32>());
        (state.position, acc / cfg.steps as f64)
    } else {
        let ula = Ula::new(cfg.step_size)?;
        let mut state = ula.init(energy, z0)?;
        for _ in 0..cfg.steps {
            state = ula.step(rng, energy, state)?.0;
        }
        (state.position, 1.0)
    };
    check_finite("latent chain", &z).map_err(|_| {
        Error::invalid(
            "step_size",
            format!(
                "the latent chain diverged; lower the step size ({})",
                cfg.step_size
            ),
        )
    })?;
    let eps = normal(rng, [n, data_dim], device);
    let x = energy.generator.sample(z, eps);
    Ok((
        x,
        LatentLangevinReport {
            acceptance,
            evaluations_per_sample: cfg.steps + 1,
        },
    ))
}
