//! The energy-parameterised model corrected by MCMC: every noise level t has the energy E_t, so a
//! Metropolis-adjusted sampler (the shared MALA) can correct the discretisation and model errors of
//! the reverse process at the last levels, which a score model cannot (it has no energy to accept
//! or reject with; Du et al. 2023, "Reduce, reuse, recycle").

use crate::net::{EnergyScore, LevelEnergy, NetScore};
use crate::sample::{SampleConfig, SampleReport, TimeStep, step, time_grid};
use crate::score::{GaussianDataScore, ScoreModel};
use crate::sde::Sde;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use zoo_energy::energy::{Energy, Gaussian};
use zoo_energy::rng::normal;
use zoo_energy::{Result, ZooRng, check_count, check_positive};
use zoo_mcmc::sampler::{Mala, Sampler};

/// A score model whose every noise level is an energy: E_t with -grad E_t = s(., t), which a
/// Metropolis-adjusted sampler can accept or reject with.
pub trait LevelEnergies: ScoreModel {
    /// The energy of one level.
    type Level: Energy;
    /// E_t, the level at time `t` of the model's own SDE.
    fn level_energy(&self, t: f64) -> Result<Self::Level>;
}

impl LevelEnergies for NetScore<EnergyScore> {
    type Level = LevelEnergy;
    fn level_energy(&self, t: f64) -> Result<LevelEnergy> {
        Ok(self.net().energy_at(self.sde(), t))
    }
}

impl LevelEnergies for GaussianDataScore {
    type Level = Gaussian;
    fn level_energy(&self, t: f64) -> Result<Gaussian> {
        self.marginal(t)
    }
}

/// MALA at the last levels (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MalaCorrection {
    /// How many of the last grid levels get corrected.
    pub levels: usize,
    /// MALA steps per corrected level.
    pub steps_per_level: usize,
    /// MALA's step size at level t is `relative_step * sigma(t)^2` (the scale of p_t's finest
    /// structure, as in annealed Langevin).
    pub relative_step: f64,
}

impl Default for MalaCorrection {
    fn default() -> Self {
        Self {
            levels: 5,
            steps_per_level: 10,
            relative_step: 1.0,
        }
    }
}

/// A corrected run: NFE includes the MALA steps.
#[derive(Debug, Clone, Serialize)]
pub struct CorrectedReport {
    /// Score evaluations per sample and wall time.
    pub sampling: SampleReport,
    /// Mean MALA acceptance over the corrected levels.
    pub acceptance: f64,
}

/// [`crate::sample()`] with `correction.steps_per_level` MALA steps on E_t after each of the last
/// `correction.levels` solver steps.
pub fn sample_corrected<M: LevelEnergies>(
    rng: &mut ZooRng,
    model: &M,
    sde: &Sde,
    config: &SampleConfig,
    correction: &MalaCorrection,
    n: usize,
    device: &Device,
) -> Result<(Tensor<2>, CorrectedReport)> {
    let SampleConfig {
        solver,
        steps,
        t_min,
    } = *config;
    sde.check()?;
    check_count("steps", steps)?;
    check_count("samples", n)?;
    check_count("steps_per_level", correction.steps_per_level)?;
    check_positive("relative_step", correction.relative_step)?;
    let started = Instant::now();
    let grid = time_grid(t_min, steps);
    let mut x = normal(rng, [n, model.dim()], device).mul_scalar(sde.prior_std());
    let (mut acc_sum, mut acc_count) = (0.0, 0usize);
    let first_corrected = steps.saturating_sub(correction.levels);
    for k in 0..steps {
        let at = TimeStep::on_grid(&grid, k);
        let t_next = at.t_next;
        x = step(rng, model, sde, solver, x, at);
        if k >= first_corrected {
            let energy = model.level_energy(t_next)?;
            let sigma = sde.marginal(t_next).1;
            let mala = Mala::new(correction.relative_step * sigma * sigma)?;
            let mut state = mala.init(&energy, x)?;
            let mut acc = Tensor::<1>::zeros([n], device);
            for _ in 0..correction.steps_per_level {
                let (s, info) = mala.step(rng, &energy, state)?;
                if let Some(p) = info.acceptance_probability {
                    acc = acc + p;
                }
                state = s;
            }
            acc_sum +=
                f64::from(acc.mean().into_scalar::<f32>()) / correction.steps_per_level as f64;
            acc_count += 1;
            x = state.position;
        }
    }
    let corrected = steps - first_corrected;
    Ok((
        x,
        CorrectedReport {
            sampling: SampleReport {
                nfe: solver.nfe(steps) + corrected * correction.steps_per_level,
                seconds: started.elapsed().as_secs_f64(),
            },
            acceptance: if acc_count == 0 {
                f64::NAN
            } else {
                acc_sum / acc_count as f64
            },
        },
    ))
}
