//! Samplers of the reverse process, from the prior at t = 1 down to t_min (Song et al. 2021):
//! reverse-SDE Euler-Maruyama, predictor-corrector with a Langevin corrector and the
//! signal-to-noise step rule (their Algorithms 4 and 5), the probability-flow ODE
//! dx/dt = f(x, t) - g(t)^2 s(x, t) / 2 by Heun or RK4 on a fixed grid, DDIM (Song, Meng & Ermon
//! 2021; deterministic, eta = 0), and annealed Langevin dynamics over a noise ladder (Song &
//! Ermon 2019). Every sampler reports its score evaluations per sample (NFE).

use crate::score::ScoreModel;
use crate::sde::{NoiseLadder, Sde};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{first_non_finite, row_sq_norm, to_host2};
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};

/// How to integrate the reverse process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Solver {
    /// Reverse-SDE Euler-Maruyama; the last step adds no noise (the usual denoising step).
    EulerMaruyama,
    /// Ancestral sampling of the discretised chain (Ho et al. 2020's DDPM sampler on the VP SDE:
    /// x' = (x + beta s) / sqrt(1 - beta) + sqrt(beta) z with 1 - beta = alpha(t)^2 /
    /// alpha(t')^2; on the VE SDE x' = x + (sigma^2 - sigma'^2) s + sqrt(sigma^2 - sigma'^2) z,
    /// NCSN's reverse diffusion). The last step adds no noise.
    Ancestral,
    /// Euler-Maruyama predictor + `corrector_steps` Langevin corrector steps per level with step
    /// 2 a_i (snr |z| / |s|)^2 (a_i = 1 for VE, 1 - beta_i for VP).
    PredictorCorrector {
        /// Signal-to-noise ratio r (0.16 in Song et al.).
        snr: f64,
        /// Corrector steps per level.
        corrector_steps: usize,
    },
    /// Probability-flow ODE, Heun's second-order method.
    Heun,
    /// Probability-flow ODE, classical fourth-order Runge-Kutta.
    Rk4,
    /// DDIM: x' = alpha' x0_hat + sigma' eps_hat, eps_hat = -sigma s, x0_hat = (x - sigma
    /// eps_hat) / alpha; the exact solution of the probability-flow ODE for a score that is
    /// locally that of a point mass, first order in general.
    Ddim,
}

impl Solver {
    /// The name used in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Solver::EulerMaruyama => "euler_maruyama",
            Solver::Ancestral => "ancestral",
            Solver::PredictorCorrector { .. } => "predictor_corrector",
            Solver::Heun => "pf_ode_heun",
            Solver::Rk4 => "pf_ode_rk4",
            Solver::Ddim => "ddim",
        }
    }

    /// Score evaluations per sample for `steps` steps.
    pub fn nfe(&self, steps: usize) -> usize {
        match self {
            Solver::EulerMaruyama | Solver::Ancestral | Solver::Ddim => steps,
            Solver::PredictorCorrector {
                corrector_steps, ..
            } => steps * (1 + corrector_steps),
            Solver::Heun => 2 * steps,
            Solver::Rk4 => 4 * steps,
        }
    }
}

/// What a sampling run did.
#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    /// Score evaluations per sample.
    pub nfe: usize,
    /// Wall-clock seconds for all samples.
    pub seconds: f64,
}

/// The fixed time grid 1 = t_0 > t_1 > ... > t_steps = t_min.
pub fn time_grid(t_min: f64, steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|k| 1.0 - (1.0 - t_min) * k as f64 / steps as f64)
        .collect()
}

fn check_model(model: &dyn ScoreModel, sde: &Sde, steps: usize, t_min: f64) -> Result<()> {
    sde.check()?;
    check_count("steps", steps)?;
    check_positive("t_min", t_min)?;
    if t_min >= 1.0 {
        return Err(Error::invalid(
            "t_min",
            format!("must be below 1, got {t_min}"),
        ));
    }
    check_count("dimension", model.dim())?;
    Ok(())
}

/// The probability-flow velocity f(x, t) - g(t)^2 s(x, t) / 2.
pub fn pf_ode_velocity(model: &dyn ScoreModel, sde: &Sde, x: Tensor<2>, t: f64) -> Tensor<2> {
    let (a, g) = sde.drift_and_diffusion(t);
    x.clone().mul_scalar(a) - model.score(x, t).mul_scalar(0.5 * g * g)
}

/// A reverse-process run: `steps` steps of `solver` on the fixed grid from t = 1 to `t_min`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleConfig {
    /// The solver.
    pub solver: Solver,
    /// Steps from t = 1 to `t_min`.
    pub steps: usize,
    /// The last time (the SDE's `t_min`, usually).
    pub t_min: f64,
}

/// One step of the reverse process: from `t` down to `t_next`; `last` is the final, noise-free
/// step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeStep {
    /// The current time.
    pub t: f64,
    /// The next (smaller) time.
    pub t_next: f64,
    /// Whether this is the last step (no noise is added).
    pub last: bool,
}

impl TimeStep {
    /// Step `k` of `grid` ([`time_grid`]).
    pub fn on_grid(grid: &[f64], k: usize) -> Self {
        TimeStep {
            t: grid[k],
            t_next: grid[k + 1],
            last: k + 2 == grid.len(),
        }
    }
}

/// Draws `n` samples: x_1 from the prior, then `config.steps` steps of `config.solver` down to
/// `config.t_min`.
pub fn sample(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    config: &SampleConfig,
    n: usize,
    device: &Device,
) -> Result<(Tensor<2>, SampleReport)> {
    let SampleConfig {
        solver,
        steps,
        t_min,
    } = *config;
    check_model(model, sde, steps, t_min)?;
    check_count("samples", n)?;
    if let Solver::PredictorCorrector { snr, .. } = solver {
        check_positive("snr", snr)?;
    }
    let started = Instant::now();
    let d = model.dim();
    let grid = time_grid(t_min, steps);
    let mut x = normal(rng, [n, d], device).mul_scalar(sde.prior_std());
    for k in 0..steps {
        let at = TimeStep::on_grid(&grid, k);
        x = step(rng, model, sde, solver, x, at);
        if (k + 1) % 50 == 0 || at.last {
            check_state(&x, k + 1, at.t - at.t_next)?;
        }
    }
    Ok((
        x,
        SampleReport {
            nfe: solver.nfe(steps),
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// One step of `solver` from t down to t_next (`last`: the final, noise-free step).
pub fn step(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    solver: Solver,
    x: Tensor<2>,
    at: TimeStep,
) -> Tensor<2> {
    let TimeStep { t, t_next, last } = at;
    let h = t - t_next;
    match solver {
        Solver::EulerMaruyama => em_step(rng, model, sde, x, t, h, !last),
        Solver::Ancestral => {
            let s = model.score(x.clone(), t);
            let dims = x.dims();
            let device = x.device();
            let (x, var) = match sde {
                Sde::Vp { .. } => {
                    let ratio = sde.marginal(t).0 / sde.marginal(t_next).0;
                    let beta = 1.0 - ratio * ratio;
                    ((x + s.mul_scalar(beta)).div_scalar(ratio), beta)
                }
                Sde::Ve { .. } => {
                    let var = sde.marginal(t).1.powi(2) - sde.marginal(t_next).1.powi(2);
                    (x + s.mul_scalar(var), var)
                }
            };
            if last {
                x
            } else {
                x + normal(rng, dims, &device).mul_scalar(var.sqrt())
            }
        }
        Solver::PredictorCorrector {
            snr,
            corrector_steps,
        } => {
            let mut x = em_step(rng, model, sde, x, t, h, !last);
            for _ in 0..corrector_steps {
                x = langevin_corrector(rng, model, sde, x, t_next, h, snr);
            }
            x
        }
        Solver::Heun => {
            let k1 = pf_ode_velocity(model, sde, x.clone(), t);
            let x_euler = x.clone() - k1.clone().mul_scalar(h);
            let k2 = pf_ode_velocity(model, sde, x_euler, t_next);
            x - (k1 + k2).mul_scalar(0.5 * h)
        }
        Solver::Rk4 => {
            let k1 = pf_ode_velocity(model, sde, x.clone(), t);
            let k2 = pf_ode_velocity(
                model,
                sde,
                x.clone() - k1.clone().mul_scalar(0.5 * h),
                t - 0.5 * h,
            );
            let k3 = pf_ode_velocity(
                model,
                sde,
                x.clone() - k2.clone().mul_scalar(0.5 * h),
                t - 0.5 * h,
            );
            let k4 = pf_ode_velocity(model, sde, x.clone() - k3.clone().mul_scalar(h), t_next);
            x - (k1 + k2.mul_scalar(2.0) + k3.mul_scalar(2.0) + k4).mul_scalar(h / 6.0)
        }
        Solver::Ddim => {
            let (alpha, sigma) = sde.marginal(t);
            let (alpha_next, sigma_next) = sde.marginal(t_next);
            let eps = model.score(x.clone(), t).mul_scalar(-sigma);
            let x0 = (x - eps.clone().mul_scalar(sigma)).div_scalar(alpha);
            x0.mul_scalar(alpha_next) + eps.mul_scalar(sigma_next)
        }
    }
}

/// A non-finite sampler state is a [`Error::Divergence`] naming the step, the first row and the
/// step size (the time step, or the Langevin step).
fn check_state(x: &Tensor<2>, step: usize, step_size: f64) -> Result<()> {
    let d = x.dims()[1];
    match first_non_finite(&to_host2(x), d) {
        Some((row, _, value)) => Err(Error::Divergence {
            step,
            chain: row,
            what: "position",
            value,
            step_size,
        }),
        None => Ok(()),
    }
}

/// One reverse-SDE Euler-Maruyama step from t to t - h.
fn em_step(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    x: Tensor<2>,
    t: f64,
    h: f64,
    noise: bool,
) -> Tensor<2> {
    let (a, g) = sde.drift_and_diffusion(t);
    let dims = x.dims();
    let device = x.device();
    let drift = x.clone().mul_scalar(a) - model.score(x.clone(), t).mul_scalar(g * g);
    let x = x - drift.mul_scalar(h);
    if noise {
        x + normal(rng, dims, &device).mul_scalar(g * h.sqrt())
    } else {
        x
    }
}

/// One Langevin corrector step at time t with Song et al.'s signal-to-noise rule.
fn langevin_corrector(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    x: Tensor<2>,
    t: f64,
    h: f64,
    snr: f64,
) -> Tensor<2> {
    let dims = x.dims();
    let device = x.device();
    let a = match sde {
        Sde::Ve { .. } => 1.0,
        Sde::Vp { .. } => 1.0 - sde.drift_and_diffusion(t).1.powi(2) * h,
    };
    let s = model.score(x.clone(), t);
    let z = normal(rng, dims, &device);
    let s_norm = f64::from(row_sq_norm(s.clone()).sqrt().mean().into_scalar::<f32>());
    let z_norm = f64::from(row_sq_norm(z.clone()).sqrt().mean().into_scalar::<f32>());
    let eps = 2.0 * a * (snr * z_norm / s_norm.max(1e-12)).powi(2);
    x + s.mul_scalar(eps) + z.mul_scalar((2.0 * eps).sqrt())
}

/// The settings of [`annealed_langevin`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnnealedLangevinConfig {
    /// The noise levels sigma_1 > ... > sigma_L.
    pub ladder: NoiseLadder,
    /// Langevin steps per level (T in Song & Ermon).
    pub steps_per_level: usize,
    /// The step-size scale epsilon (alpha_i = epsilon sigma_i^2 / sigma_L^2).
    pub epsilon: f64,
}

/// Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) for a score model of the VE SDE
/// `sde`: for each level sigma_i of `ladder`, `steps_per_level` steps
/// x <- x + alpha_i s / 2 + sqrt(alpha_i) z with alpha_i = epsilon sigma_i^2 / sigma_L^2 (their
/// convention), the score taken at the time where sigma(t) = sigma_i.
/// Starts from N(0, sigma_1^2 I).
pub fn annealed_langevin(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    config: &AnnealedLangevinConfig,
    n: usize,
    device: &Device,
) -> Result<(Tensor<2>, SampleReport)> {
    let AnnealedLangevinConfig {
        ladder,
        steps_per_level,
        epsilon,
    } = config;
    let (steps_per_level, epsilon) = (*steps_per_level, *epsilon);
    let Sde::Ve {
        sigma_min,
        sigma_max,
    } = *sde
    else {
        return Err(Error::invalid(
            "sde",
            "annealed Langevin runs on the noise levels of a VE SDE",
        ));
    };
    sde.check()?;
    check_count("steps_per_level", steps_per_level)?;
    check_count("samples", n)?;
    check_positive("epsilon", epsilon)?;
    let sigmas = ladder.sigmas();
    let tol = 1e-9 * sigma_max;
    if sigmas[0] > sigma_max + tol || sigmas[sigmas.len() - 1] < sigma_min - tol {
        return Err(Error::invalid(
            "ladder",
            format!("levels must lie in the SDE's [{sigma_min}, {sigma_max}]"),
        ));
    }
    let started = Instant::now();
    let d = model.dim();
    let last = sigmas[sigmas.len() - 1];
    let mut x = normal(rng, [n, d], device).mul_scalar(sigmas[0]);
    for (i, &sigma) in sigmas.iter().enumerate() {
        let t = ((sigma / sigma_min).ln() / (sigma_max / sigma_min).ln()).clamp(0.0, 1.0);
        let alpha = epsilon * (sigma / last).powi(2);
        for _ in 0..steps_per_level {
            let s = model.score(x.clone(), t);
            let z = normal(rng, [n, d], device);
            x = x + s.mul_scalar(0.5 * alpha) + z.mul_scalar(alpha.sqrt());
        }
        check_state(
            &x,
            (i + 1) * steps_per_level,
            epsilon * (sigma / last).powi(2),
        )?;
    }
    Ok((
        x,
        SampleReport {
            nfe: sigmas.len() * steps_per_level,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}
