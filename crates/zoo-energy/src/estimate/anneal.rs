//! AIS and SMC along the geometric path with any of the samplers as the transition kernel.

use super::{LogZEstimate, check_groups, combine, log_mean_exp};
use crate::energy::{Energy, ExactSample, Interpolated};
use crate::error::{Error, Result};
use crate::rng::ZooRng;
use crate::sampler::{AnySampler, Sampler};
use crate::tensor::{from_host2, to_host1, to_host2};
use burn::prelude::*;

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
        crate::error::check_unit_open("resample_threshold", t)?;
    }
    let log_z0 = base
        .log_normalizer()
        .ok_or_else(|| Error::invalid("base", "the base needs a known log Z"))?;
    if base.dim() != target.dim() {
        return Err(Error::invalid("base", "base and target dimensions differ"));
    }
    let per_group = check_groups(particles, config.groups)?;
    super::check_particle_memory(particles, target.dim())?;
    let n = per_group * config.groups;
    let d = target.dim();
    let mut x = base.sample_exact(rng, n, device);
    let mut log_w = vec![0f64; n];
    let mut log_z_acc = vec![0f64; config.groups];
    let mut resamplings = 0;
    let mut prev = 0.0;
    for &beta in &config.betas {
        let e0 = to_host1(&base.energy(x.clone()));
        let e1 = to_host1(&target.energy(x.clone()));
        for i in 0..n {
            log_w[i] -= (beta - prev) * (e1[i] as f64 - e0[i] as f64);
        }
        if let Some(threshold) = config.resample_threshold {
            let mut host = to_host2(&x);
            let mut moved = false;
            for g in 0..config.groups {
                let range = g * per_group..(g + 1) * per_group;
                if super::ess(&log_w[range.clone()]) < threshold * per_group as f64 {
                    log_z_acc[g] += log_mean_exp(&log_w[range.clone()]);
                    resample(rng, &mut host, &log_w[range.clone()], range.start, d);
                    log_w[range].iter_mut().for_each(|w| *w = 0.0);
                    resamplings += 1;
                    moved = true;
                }
            }
            if moved {
                x = from_host2(host, [n, d], device);
            }
        }
        let level = Interpolated {
            base: Some(base),
            target,
            beta,
        };
        let mut state = kernel.init(&level, x)?;
        for _ in 0..config.steps_per_level {
            state = kernel.step(rng, &level, state)?.0;
        }
        x = state.position;
        prev = beta;
    }
    if log_w.iter().any(|w| w.is_nan()) {
        return Err(Error::Config(
            "annealing produced NaN weights: the kernel diverged; reduce its step size".into(),
        ));
    }
    let groups: Vec<f64> = (0..config.groups)
        .map(|g| log_z_acc[g] + log_mean_exp(&log_w[g * per_group..(g + 1) * per_group]))
        .collect();
    Ok(combine(&groups, log_z0, &log_w, resamplings))
}

/// Multinomial resampling of the rows `start..start + w.len()` of `x` by weights exp(log_w).
fn resample(rng: &mut ZooRng, x: &mut [f32], log_w: &[f64], start: usize, d: usize) {
    let old: Vec<f32> = x[start * d..(start + log_w.len()) * d].to_vec();
    for (i, j) in super::multinomial(rng, log_w).into_iter().enumerate() {
        x[(start + i) * d..(start + i + 1) * d].copy_from_slice(&old[j * d..(j + 1) * d]);
    }
}
