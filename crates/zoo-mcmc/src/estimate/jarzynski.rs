//! Jarzynski-weighted ULA (Carbone, Hua, Coste & Vanden-Eijnden 2023, NeurIPS): walkers move by
//! unadjusted Langevin while the energy changes from U_0 = E_base to U_K = E_target along the
//! geometric path, each carrying a log weight
//!   A_{k+1} = A_k - a_{k+1}(X_{k+1}, X_k) + a_k(X_k, X_{k+1}),
//!   a_k(x, y) = U_k(x) + (y - x)·∇U_k(x)/2 + h |∇U_k(x)|^2 / 4,
//! so that E[exp(A_K) f(X_K)] / E[exp(A_K)] is exact for any step h and
//! log Z_K - log Z_0 = log E[exp(A_K)].

use super::{
    AnnealPath, AnnealedPopulation, LogZEstimate, check_groups, resample_rows,
    run_annealing_weighted,
};
use crate::sampler::{ChainState, langevin_move};
use burn::prelude::*;
use std::ops::Range;
use zoo_energy::energy::{Energy, ExactSample, Interpolated};
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{from_host1, from_host2, row_dot, row_sq_norm, to_host1, to_host2};

/// Settings of [`jarzynski`].
#[derive(Debug, Clone)]
pub struct JarzynskiConfig {
    /// beta_1 < ... < beta_K = 1 (beta_0 = 0 is the base): one ULA step per level.
    pub betas: Vec<f64>,
    /// ULA step size h.
    pub step_size: f64,
    /// Independent groups for the standard error (>= 2).
    pub groups: usize,
    /// Resample a group's walkers when its ESS falls below this fraction of its size (Jarzynski
    /// with SMC resampling, as in Carbone et al. 2023); `None`: never (plain Jarzynski/AIS).
    pub resample_threshold: Option<f64>,
}

/// The half-increment a_k(x, y) = U_k(x) + (y - x)·∇U_k(x)/2 + h |∇U_k(x)|^2 / 4, from U_k(x)
/// and the score s = -∇U_k(x). One ULA step x -> y while U_k becomes U_{k+1} adds
/// `a(U_k(x), s_k(x), x, y, h) - a(U_{k+1}(y), s_{k+1}(y), y, x, h)` to the log weight: the update
/// the Jarzynski-weighted trainer calls as well.
pub fn half_increment(
    u_x: Tensor<1>,
    s_x: Tensor<2>,
    x: Tensor<2>,
    y: Tensor<2>,
    h: f64,
) -> Tensor<1> {
    u_x - row_dot(y - x, s_x.clone()).mul_scalar(0.5) + row_sq_norm(s_x).mul_scalar(0.25 * h)
}

/// The log-weight increment of one ULA move `from -> to` while U_k becomes U_{k+1}, each state
/// caching U and its score under its own energy: a_k(x, y) - a_{k+1}(y, x).
pub fn increment(from: &ChainState, to: &ChainState, h: f64) -> Tensor<1> {
    let forward = half_increment(
        from.energy.clone(),
        from.score.clone(),
        from.position.clone(),
        to.position.clone(),
        h,
    );
    let backward = half_increment(
        to.energy.clone(),
        to.score.clone(),
        to.position.clone(),
        from.position.clone(),
        h,
    );
    forward - backward
}

/// log Z of `target` by Jarzynski-weighted ULA from `base`.
pub fn jarzynski<B: Energy + ExactSample>(
    rng: &mut ZooRng,
    base: &B,
    target: &dyn Energy,
    particles: usize,
    config: &JarzynskiConfig,
    device: &Device,
) -> Result<LogZEstimate> {
    jarzynski_walkers(rng, base, target, particles, config, device).map(|(estimate, _, _)| estimate)
}

/// [`jarzynski`], also returning the final walkers `[n, d]` and their log weights A_K (since
/// the last resampling of each group, with `resample_threshold`): weighted
/// averages sum_i e^{A_i} f(X_i) / sum_i e^{A_i} estimate expectations under the target exactly
/// (up to Monte Carlo error) whatever the step size.
pub fn jarzynski_walkers<B: Energy + ExactSample>(
    rng: &mut ZooRng,
    base: &B,
    target: &dyn Energy,
    particles: usize,
    config: &JarzynskiConfig,
    device: &Device,
) -> Result<(LogZEstimate, Tensor<2>, Vec<f64>)> {
    super::check_path(&config.betas)?;
    let h = check_positive("step_size", config.step_size)?;
    let log_z0 = base
        .log_normalizer()
        .ok_or_else(|| Error::invalid("base", "the base needs a known log Z"))?;
    let per_group = check_groups(particles, config.groups)?;
    super::check_particle_memory(particles, target.dim())?;
    let n = per_group * config.groups;
    // U_0 = E_base.
    let mut walkers = Walkers {
        state: ChainState::at(base, base.sample_exact(rng, n, device)),
        base,
        target,
        h,
    };
    let path = AnnealPath {
        betas: &config.betas,
        groups: config.groups,
        resample_threshold: config.resample_threshold,
        log_z0,
    };
    let (estimate, log_w) = run_annealing_weighted(rng, &mut walkers, &path)?;
    Ok((estimate, walkers.state.position, log_w))
}

/// Walkers under Jarzynski-weighted ULA: the move is part of the reweighting (one ULA step while
/// U_k becomes U_{k+1}, with that step's increment), so there is no separate transition.
struct Walkers<'a, B> {
    state: ChainState,
    base: &'a B,
    target: &'a dyn Energy,
    h: f64,
}

impl<B: Energy> AnnealedPopulation for Walkers<'_, B> {
    fn len(&self) -> usize {
        self.state.chains()
    }

    fn reweight(&mut self, rng: &mut ZooRng, _from: f64, to: f64, log_w: &mut [f64]) -> Result<()> {
        let (y, _) = langevin_move(rng, &self.state, self.h);
        let next = Interpolated {
            base: Some(self.base),
            target: self.target,
            beta: to,
        };
        let moved = ChainState::at(&next, y);
        let delta = to_host1(&increment(&self.state, &moved, self.h));
        for (w, d) in log_w.iter_mut().zip(delta) {
            *w += f64::from(d);
        }
        if log_w.iter().any(|w| !w.is_finite()) {
            return Err(Error::Config(format!(
                "Jarzynski weights are not finite: ULA diverged; reduce the step size (it was {})",
                self.h
            )));
        }
        self.state = moved;
        Ok(())
    }

    fn resample(&mut self, moves: &[(Range<usize>, Vec<usize>)]) {
        let [n, d] = self.state.position.dims();
        let device = self.state.position.device();
        let mut position = to_host2(&self.state.position);
        let mut energy = to_host1(&self.state.energy);
        let mut score = to_host2(&self.state.score);
        resample_rows(&mut position, d, moves);
        resample_rows(&mut energy, 1, moves);
        resample_rows(&mut score, d, moves);
        self.state = ChainState {
            position: from_host2(position, [n, d], &device),
            energy: from_host1(energy, &device),
            score: from_host2(score, [n, d], &device),
        };
    }

    fn transition(&mut self, _rng: &mut ZooRng, _beta: f64) -> Result<()> {
        Ok(())
    }
}
