//! AIS and SMC along the geometric path with any of the samplers as the transition kernel.

use super::{
    AnnealPath, AnnealedPopulation, LogZEstimate, check_groups, resample_rows, run_annealing,
};
use crate::sampler::{AnySampler, Sampler};
use burn::prelude::*;
use std::ops::Range;
use zoo_energy::energy::{Energy, ExactSample, Interpolated};
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{from_host2, to_host1, to_host2};

/// Settings of [`anneal`].
#[derive(Debug, Clone)]
pub struct AnnealConfig {
    /// Inverse temperatures, strictly increasing in (0, 1], ending at 1.
    pub betas: Vec<f64>,
    /// Kernel steps at each level (>= 1).
    pub steps_per_level: usize,
    /// SMC: resample a group when its ESS falls below this fraction of its size; `None` is AIS.
    pub resample_threshold: Option<f64>,
    /// Independent groups for the standard error (>= 2).
    pub groups: usize,
}

/// AIS (no resampling) or SMC (`resample_threshold`) from `base` to `target` with `particles`.
pub fn anneal<B: Energy + ExactSample>(
    rng: &mut ZooRng,
    base: &B,
    target: &dyn Energy,
    kernel: &mut AnySampler,
    particles: usize,
    config: &AnnealConfig,
    device: &Device,
) -> Result<LogZEstimate> {
    super::check_path(&config.betas)?;
    if config.steps_per_level == 0 {
        return Err(Error::invalid("steps", "need >= 1 kernel step per level"));
    }
    if let Some(t) = config.resample_threshold {
        zoo_energy::error::check_unit_open("resample_threshold", t)?;
    }
    let log_z0 = base
        .log_normalizer()
        .ok_or_else(|| Error::invalid("base", "the base needs a known log Z"))?;
    if base.dim() != target.dim() {
        return Err(Error::invalid("base", "base and target dimensions differ"));
    }
    check_groups(particles, config.groups)?;
    super::check_particle_memory(particles, target.dim())?;
    let n = particles / config.groups * config.groups;
    let mut population = Particles {
        x: base.sample_exact(rng, n, device),
        base,
        target,
        kernel,
        steps: config.steps_per_level,
        device,
    };
    let path = AnnealPath {
        betas: &config.betas,
        groups: config.groups,
        resample_threshold: config.resample_threshold,
        log_z0,
    };
    run_annealing(rng, &mut population, &path)
}

/// Particles of a continuous energy on the geometric path base^(1-beta) target^beta.
struct Particles<'a, B> {
    x: Tensor<2>,
    base: &'a B,
    target: &'a dyn Energy,
    kernel: &'a mut AnySampler,
    steps: usize,
    device: &'a Device,
}

impl<B: Energy> AnnealedPopulation for Particles<'_, B> {
    fn len(&self) -> usize {
        self.x.dims()[0]
    }

    /// log gamma_beta = -(1 - beta) E_0 - beta E_1: the increment is -(to - from)(E_1 - E_0).
    fn reweight(&mut self, _rng: &mut ZooRng, from: f64, to: f64, log_w: &mut [f64]) -> Result<()> {
        let e0 = to_host1(&self.base.energy(self.x.clone()));
        let e1 = to_host1(&self.target.energy(self.x.clone()));
        for (i, w) in log_w.iter_mut().enumerate() {
            *w -= (to - from) * (e1[i] as f64 - e0[i] as f64);
        }
        Ok(())
    }

    fn resample(&mut self, moves: &[(Range<usize>, Vec<usize>)]) {
        let [n, d] = self.x.dims();
        let mut host = to_host2(&self.x);
        resample_rows(&mut host, d, moves);
        self.x = from_host2(host, [n, d], self.device);
    }

    fn transition(&mut self, rng: &mut ZooRng, beta: f64) -> Result<()> {
        let level = Interpolated {
            base: Some(self.base),
            target: self.target,
            beta,
        };
        let mut state = self.kernel.init(&level, self.x.clone())?;
        for _ in 0..self.steps {
            state = self.kernel.step(rng, &level, state)?.0;
        }
        self.x = state.position;
        Ok(())
    }
}
