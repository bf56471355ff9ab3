//! Annealed Langevin over a schedule of distributions (review §3 and §6):
//! a temperature path pi_beta ∝ exp(-(1 - beta) E_0 - beta E_1) (tempering when there is no base),
//! or any list of energies with their own step sizes, e.g. the noise levels of Song & Ermon (2019),
//! whose step at level i is h sigma_i^2 / sigma_L^2.

use super::{ChainState, Mala, Sampler, StepInfo, Ula};
use burn::prelude::*;
use zoo_energy::energy::{Energy, Interpolated};
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::to_host1;

/// Checks that a schedule is strictly increasing, within (0, 1], and non-empty.
pub fn check_schedule(betas: &[f64]) -> Result<()> {
    if betas.is_empty() {
        return Err(Error::invalid("schedule", "must have at least one level"));
    }
    for (i, b) in betas.iter().enumerate() {
        if !(b.is_finite() && *b > 0.0 && *b <= 1.0) {
            return Err(Error::invalid(
                "schedule",
                format!("level {i} is {b}; levels must lie in (0, 1]"),
            ));
        }
        if i > 0 && *b <= betas[i - 1] {
            return Err(Error::invalid(
                "schedule",
                format!(
                    "must be strictly increasing, but level {i} ({b}) <= level {} ({})",
                    i - 1,
                    betas[i - 1]
                ),
            ));
        }
    }
    Ok(())
}

/// `levels` inverse temperatures spaced geometrically from `start` to 1.
pub fn geometric_schedule(start: f64, levels: usize) -> Result<Vec<f64>> {
    check_positive("start", start)?;
    if levels == 0 || start > 1.0 {
        return Err(Error::invalid(
            "schedule",
            "need levels >= 1 and 0 < start <= 1",
        ));
    }
    zoo_energy::memory::check_elements("the annealing schedule (levels)", levels as u128, 8)?;
    if levels == 1 {
        return Ok(vec![1.0]);
    }
    let r = (1.0 / start).ln() / (levels - 1) as f64;
    Ok((0..levels)
        .map(|i| {
            if i + 1 == levels {
                1.0
            } else {
                start * (r * i as f64).exp()
            }
        })
        .collect())
}

/// What happened at one level.
#[derive(Debug, Clone)]
pub struct LevelInfo {
    /// The level's index.
    pub level: usize,
    /// The step size used there.
    pub step_size: f64,
    /// Mean acceptance over the level's steps (1 without Metropolis correction).
    pub acceptance_rate: f64,
}

/// Runs `steps_per_level` Langevin steps at each level in turn (ULA, or MALA when `metropolis`).
#[derive(Debug, Clone)]
pub struct AnnealedLangevin {
    /// Steps at every level (>= 1).
    pub steps_per_level: usize,
    /// Add a Metropolis correction at every step (MALA instead of ULA).
    pub metropolis: bool,
}

impl AnnealedLangevin {
    /// `steps_per_level` (>= 1) steps at each level.
    pub fn new(steps_per_level: usize, metropolis: bool) -> Result<Self> {
        if steps_per_level == 0 {
            return Err(Error::invalid("steps_per_level", "must be >= 1"));
        }
        Ok(Self {
            steps_per_level,
            metropolis,
        })
    }

    /// Runs through `levels` with the step size given for each; returns the final state.
    pub fn run(
        &self,
        rng: &mut ZooRng,
        levels: &[&dyn Energy],
        step_sizes: &[f64],
        position: Tensor<2>,
    ) -> Result<(ChainState, Vec<LevelInfo>)> {
        if levels.is_empty() || levels.len() != step_sizes.len() {
            return Err(Error::invalid(
                "schedule",
                "need one step size per level, and at least one level",
            ));
        }
        let mut state = ChainState::new(levels[0], position)?;
        let mut infos = Vec::with_capacity(levels.len());
        for (i, (energy, &h)) in levels.iter().zip(step_sizes).enumerate() {
            if i > 0 {
                state = ChainState::at(*energy, state.position);
            }
            let mut accepted = 0.0;
            for _ in 0..self.steps_per_level {
                let (next, info): (ChainState, StepInfo) = if self.metropolis {
                    Mala::new(h)?.step(rng, *energy, state)?
                } else {
                    Ula::new(h)?.step(rng, *energy, state)?
                };
                state = next;
                accepted += match info.acceptance_probability {
                    Some(a) => {
                        to_host1(&a).iter().map(|&v| v as f64).sum::<f64>() / state.chains() as f64
                    }
                    None => 1.0,
                };
            }
            infos.push(LevelInfo {
                level: i,
                step_size: h,
                acceptance_rate: accepted / self.steps_per_level as f64,
            });
        }
        Ok((state, infos))
    }

    /// Tempering from `base` (or flat) to `target` along `betas` with the same step size `h`.
    pub fn run_tempered(
        &self,
        rng: &mut ZooRng,
        base: Option<&dyn Energy>,
        target: &dyn Energy,
        betas: &[f64],
        step_size: f64,
        position: Tensor<2>,
    ) -> Result<(ChainState, Vec<LevelInfo>)> {
        check_schedule(betas)?;
        check_positive("step_size", step_size)?;
        let path: Vec<Interpolated<'_>> = betas
            .iter()
            .map(|&beta| Interpolated { base, target, beta })
            .collect();
        let levels: Vec<&dyn Energy> = path.iter().map(|e| e as &dyn Energy).collect();
        self.run(rng, &levels, &vec![step_size; betas.len()], position)
    }
}
