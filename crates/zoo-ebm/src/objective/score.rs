//! Score matching of an energy without second-order autodiff (review §4.5).
//!
//! - Denoising score matching (Vincent 2011): with x~ = x + sigma eps,
//!   J = E |sigma s_theta(x~) + eps|^2 / 2, s_theta = -grad_x E_theta written out by hand (the
//!   energy's `energy_and_score`), so theta needs a single backward pass. It fits the density
//!   smoothed by N(0, sigma^2 I).
//! - Finite-difference sliced score matching (Pang, Xu, Li, Song, Ermon & Zhu 2020, NeurIPS): the
//!   sliced objective E_v[ (v·grad E)^2 / 2 - v^T (grad^2 E) v ] with v ~ N(0, I) (whose expectation
//!   over v is Hyvärinen's |grad E|^2 / 2 - tr grad^2 E) and both directional derivatives replaced by
//!   central differences of the energy:
//!   v·grad E ≈ (E(x + eps v) - E(x - eps v)) / (2 eps),
//!   v^T grad^2 E v ≈ (E(x + eps v) - 2 E(x) + E(x - eps v)) / eps^2,
//!   so only energies (one batched forward pass over 3n points) and first-order autodiff are used.

use super::{Loss, Objective, Report, mean};
use crate::model::EnergyModel;
use burn::prelude::*;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{row_sq_norm, to_host1};
use zoo_energy::{Result, ZooRng, check_positive};

/// (loss, E) -> (loss, a report with the mean energy).
fn with_energy_report((loss, energy): (Tensor<1>, Tensor<1>)) -> (Loss, Report) {
    let report = Report {
        energy_data: mean(&to_host1(&energy)),
        ..Report::default()
    };
    (Loss::Tensor(loss), report)
}

/// Denoising score matching at one noise level.
#[derive(Debug, Clone)]
pub struct DenoisingScoreMatching {
    sigma: f64,
}

impl DenoisingScoreMatching {
    /// DSM with noise `sigma > 0`.
    pub fn new(sigma: f64) -> Result<Self> {
        Ok(Self {
            sigma: check_positive("sigma", sigma)?,
        })
    }
}

/// The DSM loss on `batch` with noise `eps` `[n, d]`: mean |sigma s(x + sigma eps) + eps|^2 / 2.
pub fn dsm_loss<M: EnergyModel>(
    model: &M,
    batch: Tensor<2>,
    eps: Tensor<2>,
    sigma: f64,
) -> (Tensor<1>, Tensor<1>) {
    let noisy = batch + eps.clone().mul_scalar(sigma);
    let (energy, score) = model.energy_and_score(noisy);
    let residual = score.mul_scalar(sigma) + eps;
    (row_sq_norm(residual).mean().mul_scalar(0.5), energy)
}

impl<M: EnergyModel> Objective<M> for DenoisingScoreMatching {
    fn name(&self) -> String {
        "dsm".into()
    }
    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)> {
        let eps = normal(rng, batch.dims(), device);
        Ok(with_energy_report(dsm_loss(model, batch, eps, self.sigma)))
    }
}

/// Finite-difference sliced score matching.
#[derive(Debug, Clone)]
pub struct SlicedScoreMatching {
    epsilon: f64,
}

impl SlicedScoreMatching {
    /// FD-SSM with difference step `epsilon > 0` (0.05 suits float32 energies of order 1-10).
    pub fn new(epsilon: f64) -> Result<Self> {
        Ok(Self {
            epsilon: check_positive("epsilon", epsilon)?,
        })
    }
}

/// The FD-SSM loss on `batch` with directions `v` `[n, d]`; returns (loss, E(batch)).
pub fn fd_ssm_loss<M: EnergyModel>(
    model: &M,
    batch: Tensor<2>,
    v: Tensor<2>,
    epsilon: f64,
) -> (Tensor<1>, Tensor<1>) {
    let [n, _] = batch.dims();
    let step = v.mul_scalar(epsilon);
    let all = Tensor::cat(
        vec![batch.clone() + step.clone(), batch.clone() - step, batch],
        0,
    );
    let e = model.energy(all);
    let plus = e.clone().narrow(0, 0, n);
    let minus = e.clone().narrow(0, n, n);
    let centre = e.narrow(0, 2 * n, n);
    let first = (plus.clone() - minus.clone()).div_scalar(2.0 * epsilon);
    let second = (plus + minus - centre.clone().mul_scalar(2.0)).div_scalar(epsilon * epsilon);
    ((first.square().mul_scalar(0.5) - second).mean(), centre)
}

impl<M: EnergyModel> Objective<M> for SlicedScoreMatching {
    fn name(&self) -> String {
        "ssm-fd".into()
    }
    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)> {
        let v = normal(rng, batch.dims(), device);
        Ok(with_energy_report(fd_ssm_loss(
            model,
            batch,
            v,
            self.epsilon,
        )))
    }
}
