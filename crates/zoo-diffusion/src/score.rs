//! The score seam of diffusion models: s(x, t) ≈ grad_x log p_t(x), the marginal of the forward
//! process at time t. Every noise level is an EBM with energy -log p_t (up to a constant); a model
//! that knows its energy can also say so, and the exact reference for Gaussian data lives here.

use crate::sde::Sde;
use burn::prelude::*;
use zoo_energy::energy::{Covariance, Energy, Gaussian};
use zoo_energy::linalg::{Matrix, cholesky, inverse_from_cholesky};
use zoo_energy::{Error, Result};

/// A (learned or exact) score of the forward process's marginals.
pub trait ScoreModel {
    /// Dimension of one point.
    fn dim(&self) -> usize;

    /// s(x, t) `[n, d]` for `x: [n, d]`, every row at time `t`. One call is one score
    /// evaluation (NFE) per row.
    fn score(&self, x: Tensor<2>, t: f64) -> Tensor<2>;

    /// div_x s(x, t) per row `[n]` computed exactly, when the model can (used by the
    /// probability-flow likelihood); `None` otherwise.
    fn divergence(&self, _x: Tensor<2>, _t: f64) -> Option<Tensor<1>> {
        None
    }

    /// Hutchinson's unbiased estimate of div_x s(x, t) with `probes` Rademacher vectors, when
    /// the model can give vector-Jacobian products; `None` otherwise.
    fn divergence_hutchinson(
        &self,
        _rng: &mut zoo_energy::ZooRng,
        _x: Tensor<2>,
        _t: f64,
        _probes: usize,
    ) -> Option<Tensor<1>> {
        None
    }

    /// A one-line description.
    fn describe(&self) -> String;
}

/// The exact score of Gaussian data N(mu, Sigma) under `sde`: the marginal at t is
/// N(alpha mu, alpha^2 Sigma + sigma^2 I), a Gaussian energy from `zoo-energy` at every t.
#[derive(Debug, Clone)]
pub struct GaussianDataScore {
    sde: Sde,
    mean: Vec<f64>,
    cov: Matrix,
    device: Device,
}

impl GaussianDataScore {
    /// Checks the covariance (square, symmetric, positive definite) and the SDE.
    pub fn new(sde: Sde, mean: Vec<f64>, cov: Matrix, device: &Device) -> Result<Self> {
        sde.check()?;
        zoo_energy::linalg::check_square_symmetric("covariance", &cov, mean.len())?;
        cholesky("covariance", &cov)?;
        Ok(Self {
            sde,
            mean,
            cov,
            device: device.clone(),
        })
    }

    /// alpha^2 Sigma + sigma^2 I, the marginal's covariance at t.
    fn marginal_covariance(&self, t: f64) -> Matrix {
        let (alpha, sigma) = self.sde.marginal(t);
        let d = self.mean.len();
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        alpha * alpha * self.cov[i][j] + if i == j { sigma * sigma } else { 0.0 }
                    })
                    .collect()
            })
            .collect()
    }

    /// The marginal p_t as a normalised Gaussian energy.
    pub fn marginal(&self, t: f64) -> Result<Gaussian> {
        let alpha = self.sde.marginal(t).0;
        let cov = self.marginal_covariance(t);
        Gaussian::new(
            self.mean.iter().map(|m| alpha * m).collect(),
            Covariance::Full(cov),
            &self.device,
        )
    }

    /// log p_t(x) per row, exactly.
    pub fn log_density(&self, x: Tensor<2>, t: f64) -> Result<Tensor<1>> {
        let g = self.marginal(t)?;
        let log_z = g
            .log_normalizer()
            .ok_or_else(|| Error::Config("a Gaussian energy always knows its log Z".into()))?;
        Ok(g.energy(x).neg().sub_scalar(log_z))
    }
}

impl ScoreModel for GaussianDataScore {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn score(&self, x: Tensor<2>, t: f64) -> Tensor<2> {
        self.marginal(t)
            .expect("a positive-definite covariance stays positive definite")
            .score(x)
    }
    fn divergence(&self, x: Tensor<2>, t: f64) -> Option<Tensor<1>> {
        // div of -C^{-1} (x - m) is -tr(C^{-1}), the same for every row.
        let d = self.mean.len();
        let cov = self.marginal_covariance(t);
        let inv = inverse_from_cholesky(&cholesky("covariance", &cov).ok()?);
        let trace: f64 = (0..d).map(|i| inv[i][i]).sum();
        Some(Tensor::full([x.dims()[0]], -trace, &x.device()))
    }
    fn describe(&self) -> String {
        format!(
            "exact score of Gaussian data in {} dimensions under {:?}",
            self.mean.len(),
            self.sde
        )
    }
}
