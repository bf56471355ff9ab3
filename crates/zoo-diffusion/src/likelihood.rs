//! Exact log-likelihood through the probability-flow ODE (Song et al. 2021, §4.3 and appendix
//! D.2; Chen et al. 2018's instantaneous change of variables): with v(x, t) = f(x, t) -
//! g(t)^2 s(x, t) / 2,
//! log p_{t_min}(x) = log p_1(x_1) + ∫_{t_min}^1 div v(x_t, t) dt, x_t solving dx/dt = v from
//! x_{t_min} = x. Integrated by RK4 on a fixed grid, state (x, ∫ div v), divergence exact
//! ([`ScoreModel::divergence`]).

use crate::sample::{pf_ode_velocity, time_grid};
use crate::score::ScoreModel;
use crate::sde::Sde;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use zoo_energy::tensor::{check_batch, check_finite, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng, check_count};

/// The pieces of a probability-flow likelihood, per row.
#[derive(Debug, Clone)]
pub struct PfOdeLikelihood {
    /// log p_{t_min}(x) = `log_prior` + `divergence_integral`, nats.
    pub log_likelihood: Tensor<1>,
    /// x_1, where the ODE carries x at t = 1.
    pub latent: Tensor<2>,
    /// log p_1(x_1) under the SDE's prior (N(0, I) for VP, N(0, sigma_max^2 I) for VE).
    pub log_prior: Tensor<1>,
    /// ∫ div v dt along the path.
    pub divergence_integral: Tensor<1>,
}

/// How the likelihood gets div s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Divergence {
    /// Exactly ([`ScoreModel::divergence`]; one backward pass per dimension for networks).
    Exact,
    /// Hutchinson's estimator with `probes` Rademacher vectors per evaluation (fresh at every
    /// evaluation; the log-likelihood estimate is unbiased, its spread is reported by repeats).
    Hutchinson {
        /// Probes per evaluation.
        probes: usize,
    },
}

/// log p_{t_min}(x) per row in nats, by `steps` RK4 steps of the probability-flow ODE. The prior
/// at t = 1 is the SDE's, not the true marginal p_1: the difference (for VP with beta_max = 20,
/// alpha(1) = 0.0066 times the data's mean, times |x_1|) is part of the model's error.
pub fn pf_ode_log_likelihood(
    rng: &mut ZooRng,
    model: &dyn ScoreModel,
    sde: &Sde,
    x: Tensor<2>,
    steps: usize,
    t_min: f64,
    divergence: Divergence,
) -> Result<PfOdeLikelihood> {
    sde.check()?;
    check_count("steps", steps)?;
    check_batch("data", &x, model.dim())?;
    let d = model.dim();
    check_finite("data", &x)?;
    let mut div = |x: Tensor<2>, t: f64| -> Result<Tensor<1>> {
        let (a, g) = sde.drift_and_diffusion(t);
        let ds = match divergence {
            Divergence::Exact => model.divergence(x, t),
            Divergence::Hutchinson { probes } => {
                model.divergence_hutchinson(rng, x, t, probes.max(1))
            }
        }
        .ok_or_else(|| {
            Error::invalid(
                "divergence",
                format!("{} has no {divergence:?} divergence", model.describe()),
            )
        })?;
        Ok(ds.mul_scalar(-0.5 * g * g).add_scalar(a * d as f64))
    };
    // Integrate upwards: the grid reversed, from t_min to 1.
    let mut grid = time_grid(t_min, steps);
    grid.reverse();
    let (x, delta) = rk4_log_likelihood(
        x,
        &grid,
        |x, t| Ok(pf_ode_velocity(model, sde, x, t)),
        &mut div,
    )?;
    let log_prior = standard_normal_log_density(x.clone(), sde.prior_std());
    Ok(PfOdeLikelihood {
        log_likelihood: log_prior.clone() + delta.clone(),
        latent: x,
        log_prior,
        divergence_integral: delta,
    })
}

/// RK4 on the state (x, ℓ) with dx/dt = `velocity`, dℓ/dt = `divergence` over `grid` (in
/// either direction): returns x and ℓ at the grid's end, ℓ starting at 0.
pub(crate) fn rk4_log_likelihood(
    x: Tensor<2>,
    grid: &[f64],
    mut velocity: impl FnMut(Tensor<2>, f64) -> Result<Tensor<2>>,
    mut divergence: impl FnMut(Tensor<2>, f64) -> Result<Tensor<1>>,
) -> Result<(Tensor<2>, Tensor<1>)> {
    let mut x = x;
    let mut delta = Tensor::<1>::zeros([x.dims()[0]], &x.device());
    for w in grid.windows(2) {
        let (t, h) = (w[0], w[1] - w[0]);
        let mut stage = |x: Tensor<2>, t: f64| -> Result<(Tensor<2>, Tensor<1>)> {
            Ok((velocity(x.clone(), t)?, divergence(x, t)?))
        };
        let (k1, l1) = stage(x.clone(), t)?;
        let (k2, l2) = stage(x.clone() + k1.clone().mul_scalar(0.5 * h), t + 0.5 * h)?;
        let (k3, l3) = stage(x.clone() + k2.clone().mul_scalar(0.5 * h), t + 0.5 * h)?;
        let (k4, l4) = stage(x.clone() + k3.clone().mul_scalar(h), t + h)?;
        x = x + (k1 + k2.mul_scalar(2.0) + k3.mul_scalar(2.0) + k4).mul_scalar(h / 6.0);
        delta = delta + (l1 + l2.mul_scalar(2.0) + l3.mul_scalar(2.0) + l4).mul_scalar(h / 6.0);
    }
    Ok((x, delta))
}

/// log N(x; 0, s² I) per row.
pub(crate) fn standard_normal_log_density(x: Tensor<2>, s: f64) -> Tensor<1> {
    let d = x.dims()[1] as f64;
    row_sq_norm(x)
        .mul_scalar(-0.5 / (s * s))
        .sub_scalar(0.5 * d * (2.0 * PI * s * s).ln())
}
