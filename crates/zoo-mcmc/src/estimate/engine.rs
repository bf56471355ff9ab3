//! The one annealing engine: annealed importance sampling (Neal 2001) and, with resampling,
//! sequential Monte Carlo (Del Moral, Doucet & Jasra 2006) over a path of levels
//! 0 = beta_0 < beta_1 < ... < beta_K = 1, for any population that can weigh and move itself.
//!
//! At each level k the population reweights (AIS: every particle's log-weight increment
//! log gamma_k(x) - log gamma_{k-1}(x) at its position; Jarzynski: a move under the changing
//! energy with the increment of that move), the engine resamples each group whose ESS fell below
//! the threshold (multinomially; the group's running log Z absorbs the mean weight), then the
//! population makes its transition, which leaves gamma_k invariant (none for Jarzynski, whose
//! move is in the reweighting). Independent groups give the standard error ([`LogZEstimate`]).
//! Continuous energies ([`super::anneal`], [`super::jarzynski`]), Ising models
//! (`zoo_spin::anneal_log_z`) and RBMs (`zoo_ebm::rbm::Rbm::ais_log_z`) all run here.

use super::{LogZEstimate, check_groups, combine, ess, log_mean_exp, multinomial};
use std::ops::Range;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;

/// A population of particles annealed along a path: weights, resampling and groups are the
/// engine's, the model-specific parts are these three.
pub trait AnnealedPopulation {
    /// Particles.
    fn len(&self) -> usize;

    /// Whether there are no particles.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the particles from level `from` to level `to` and adds each one's log-weight
    /// increment to `log_w`: for AIS the increment log gamma_to(x) - log gamma_from(x) at the
    /// current position (`rng` unused); for Jarzynski-weighted dynamics a move with the increment
    /// of that move.
    fn reweight(&mut self, rng: &mut ZooRng, from: f64, to: f64, log_w: &mut [f64]) -> Result<()>;

    /// Resampling: for each `(group, picks)`, particle `group.start + i` becomes a copy of the
    /// particle `group.start + picks[i]` (as the population was before this call).
    fn resample(&mut self, moves: &[(Range<usize>, Vec<usize>)]);

    /// The transition at level `beta` (invariant for that level's distribution; none when the
    /// move is part of [`AnnealedPopulation::reweight`]).
    fn transition(&mut self, rng: &mut ZooRng, beta: f64) -> Result<()>;
}

/// The path and the estimator's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnealPath<'a> {
    /// The levels after beta_0 = 0, strictly increasing, the last being the target.
    pub betas: &'a [f64],
    /// Independent groups for the standard error (>= 2, each of >= 2 particles).
    pub groups: usize,
    /// SMC: resample a group when its ESS falls below this fraction of its size; `None`: AIS.
    pub resample_threshold: Option<f64>,
    /// log Z of the level-0 distribution (known exactly).
    pub log_z0: f64,
}

/// Runs `population` along `path` and returns log Z of the last level with its standard error.
pub fn run_annealing<P: AnnealedPopulation + ?Sized>(
    rng: &mut ZooRng,
    population: &mut P,
    path: &AnnealPath,
) -> Result<LogZEstimate> {
    run_annealing_weighted(rng, population, path).map(|(estimate, _)| estimate)
}

/// [`run_annealing`], also returning the final log-weights (since the last resampling of each
/// group): sum_i e^{w_i} f(x_i) / sum_i e^{w_i} estimates expectations under the last level.
pub fn run_annealing_weighted<P: AnnealedPopulation + ?Sized>(
    rng: &mut ZooRng,
    population: &mut P,
    path: &AnnealPath,
) -> Result<(LogZEstimate, Vec<f64>)> {
    let per_group = check_groups(population.len(), path.groups)?;
    if population.len() != per_group * path.groups {
        return Err(Error::invalid(
            "particles",
            "must be a multiple of the number of groups",
        ));
    }
    let mut log_w = vec![0f64; population.len()];
    let mut log_z_acc = vec![0f64; path.groups];
    let (mut resamplings, mut prev) = (0, 0.0);
    for &beta in path.betas {
        population.reweight(rng, prev, beta, &mut log_w)?;
        if let Some(threshold) = path.resample_threshold {
            let mut moves = Vec::new();
            for g in 0..path.groups {
                let range = g * per_group..(g + 1) * per_group;
                if ess(&log_w[range.clone()]) < threshold * per_group as f64 {
                    log_z_acc[g] += log_mean_exp(&log_w[range.clone()]);
                    moves.push((range.clone(), multinomial(rng, &log_w[range.clone()])));
                    log_w[range].iter_mut().for_each(|w| *w = 0.0);
                    resamplings += 1;
                }
            }
            if !moves.is_empty() {
                population.resample(&moves);
            }
        }
        population.transition(rng, beta)?;
        prev = beta;
    }
    if log_w.iter().any(|w| w.is_nan()) {
        return Err(Error::Config(
            "annealing produced NaN weights: the transition diverged; reduce its step size".into(),
        ));
    }
    let groups: Vec<f64> = (0..path.groups)
        .map(|g| log_z_acc[g] + log_mean_exp(&log_w[g * per_group..(g + 1) * per_group]))
        .collect();
    Ok((combine(&groups, path.log_z0, &log_w, resamplings), log_w))
}

/// Applies resampling `moves` to row-major particles of `width` values each.
pub fn resample_rows<T: Copy>(rows: &mut [T], width: usize, moves: &[(Range<usize>, Vec<usize>)]) {
    for (range, picks) in moves {
        let old = rows[range.start * width..range.end * width].to_vec();
        for (i, &j) in picks.iter().enumerate() {
            let dst = (range.start + i) * width;
            rows[dst..dst + width].copy_from_slice(&old[j * width..(j + 1) * width]);
        }
    }
}
