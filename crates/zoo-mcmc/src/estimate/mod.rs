//! Partition-function estimators (review §5, statistical physics): annealed importance sampling
//! (Neal 2001), sequential Monte Carlo with resampling (Del Moral, Doucet & Jasra 2006), and
//! Jarzynski-weighted ULA (Jarzynski 1997; Carbone et al. 2023), along the geometric path
//! pi_beta ∝ exp(-(1 - beta) E_0 - beta E_1) from a base with exact samples and known log Z.
//!
//! Standard errors are honest by construction: the particles are split into `groups`
//! independent runs (resampling never crosses a group), each gives an unbiased estimate Z_b of Z,
//! and the reported log Z = log mean_b Z_b with std_err = sd_b(Z_b) / (sqrt(B) mean_b Z_b)
//! (delta method), or sd_b(log Z_b) / sqrt(B) when that is larger (degenerate weights).

mod anneal;
mod engine;
mod jarzynski;
mod sde;

pub use anneal::{AnnealConfig, anneal};
pub use engine::{
    AnnealPath, AnnealedPopulation, resample_rows, run_annealing, run_annealing_weighted,
};
pub use jarzynski::{
    JarzynskiConfig, half_increment as jarzynski_half_increment, increment as jarzynski_increment,
    jarzynski, jarzynski_walkers,
};
pub use sde::{SdePath, SdeSmcConfig, plain_sde, reweighted_sde};

use serde::Serialize;
use zoo_energy::error::{Error, Result};

/// An estimate of log Z of the target.
#[derive(Debug, Clone, Serialize)]
pub struct LogZEstimate {
    /// log Z.
    pub log_z: f64,
    /// Its standard error (from the spread of the independent groups).
    pub std_err: f64,
    /// Effective sample size of the final weights, 1 / sum of squared normalised weights.
    pub ess: f64,
    /// Resampling events, summed over groups (SMC only).
    pub resamplings: usize,
    /// Number of particles.
    pub particles: usize,
    /// Independent groups behind `std_err`.
    pub groups: usize,
}

/// log sum exp of `v` (stable; -inf entries contribute nothing).
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// log mean exp of `v` (stable).
pub fn log_mean_exp(v: &[f64]) -> f64 {
    log_sum_exp(v) - (v.len() as f64).ln()
}

/// Effective sample size 1 / sum of squared normalised weights, for log weights `v`.
pub fn ess(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = w.iter().sum();
    s * s / w.iter().map(|x| x * x).sum::<f64>()
}

/// Multinomial resampling: `log_w.len()` indices drawn with probabilities ∝ exp(log_w).
pub fn multinomial(rng: &mut zoo_energy::rng::ZooRng, log_w: &[f64]) -> Vec<usize> {
    use rand::RngExt;
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - m).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut cdf = Vec::with_capacity(w.len());
    let mut acc = 0.0;
    for v in &w {
        acc += v / total;
        cdf.push(acc);
    }
    (0..w.len())
        .map(|_| {
            let u: f64 = rng.random();
            cdf.partition_point(|c| *c < u).min(w.len() - 1)
        })
        .collect()
}

/// Combines per-group log Z estimates (each unbiased in Z) into one estimate with its error.
pub(crate) fn combine(
    log_z_groups: &[f64],
    log_z0: f64,
    final_log_w: &[f64],
    resamplings: usize,
) -> LogZEstimate {
    let b = log_z_groups.len() as f64;
    let m = log_z_groups
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let z: Vec<f64> = log_z_groups.iter().map(|l| (l - m).exp()).collect();
    let mean = z.iter().sum::<f64>() / b;
    let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (b - 1.0).max(1.0);
    // When one group dominates (weights far from equilibrium, e.g. a large lattice), the delta
    // method saturates near sqrt((B - 1) / B) / ... and says nothing; the spread of the groups'
    // log Z is then the honest scale. Report the larger of the two.
    let logs_mean = log_z_groups.iter().sum::<f64>() / b;
    let logs_var = log_z_groups
        .iter()
        .map(|l| (l - logs_mean).powi(2))
        .sum::<f64>()
        / (b - 1.0).max(1.0);
    LogZEstimate {
        log_z: log_z0 + m + mean.ln(),
        std_err: ((var / b).sqrt() / mean).max((logs_var / b).sqrt()),
        ess: ess(final_log_w),
        resamplings,
        particles: final_log_w.len(),
        groups: log_z_groups.len(),
    }
}

/// Checks an annealing path: strictly increasing in (0, 1] and ending at the target, beta = 1.
pub(crate) fn check_path(betas: &[f64]) -> Result<()> {
    crate::sampler::check_schedule(betas)?;
    if betas.last() != Some(&1.0) {
        return Err(Error::invalid(
            "schedule",
            "must end at beta = 1 (the target)",
        ));
    }
    Ok(())
}

/// Checks that `particles` points of dimension `dim` fit the memory budget.
pub(crate) fn check_particle_memory(particles: usize, dim: usize) -> Result<()> {
    zoo_energy::memory::check_points("the annealed particles (particles x dim)", particles, dim)
}

/// Checks the particle and group counts; returns the particles per group.
pub fn check_groups(particles: usize, groups: usize) -> Result<usize> {
    if groups < 2 || particles < 2 * groups {
        return Err(Error::invalid(
            "particles",
            format!(
                "need >= 2 groups and >= 2 particles per group (particles {particles}, groups {groups})"
            ),
        ));
    }
    Ok(particles / groups)
}
