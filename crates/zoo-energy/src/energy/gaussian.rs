//! Multivariate Gaussian N(mean, Sigma): E(x) = (x - mean)^T Sigma^{-1} (x - mean) / 2,
//! log Z = (d/2) log 2 pi + (1/2) log det Sigma.

use super::{Energy, log_2pi_half};
use crate::error::{Error, Result};
use crate::linalg::{self, Matrix};
use crate::rng::{ZooRng, normal_vec};
use crate::tensor::{from_host2, matrix, row, row_dot};
use burn::prelude::*;

/// How the covariance is given.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariance {
    /// sigma^2 I.
    Isotropic(f64),
    /// diag(variances).
    Diagonal(Vec<f64>),
    /// A full symmetric positive-definite matrix.
    Full(Matrix),
}

#[derive(Debug, Clone)]
enum Precision {
    Diagonal(Tensor<2>),
    Full(Tensor<2>),
}

/// A Gaussian energy with a hand-written score s(x) = -Sigma^{-1} (x - mean).
///
/// Isotropic and diagonal covariances are stored as their variances (O(d) memory, never a dense
/// matrix); only a full covariance keeps its matrix, Cholesky factor and inverse (checked against
/// the memory budget first, [`crate::memory`]).
#[derive(Debug, Clone)]
pub struct Gaussian {
    mean: Vec<f64>,
    covariance: Covariance,
    /// Lower Cholesky factor of a full covariance; `None` for isotropic and diagonal ones.
    cholesky: Option<Matrix>,
    log_z: f64,
    mean_row: Tensor<2>,
    precision: Precision,
}

/// log det of diag(variances), summed as the Cholesky route does (2 sum ln sqrt v_i), so that
/// the numbers equal those of the dense computation to the last bit.
fn diagonal_log_det(variances: impl Iterator<Item = f64>) -> f64 {
    2.0 * variances.map(|v| v.sqrt().ln()).sum::<f64>()
}

impl Gaussian {
    /// N(mean, covariance) on `device`; validates shapes and positive definiteness.
    pub fn new(mean: Vec<f64>, covariance: Covariance, device: &Device) -> Result<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(Error::invalid("mean", "must have at least one dimension"));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(Error::invalid("mean", format!("contains {m}")));
        }
        let (cholesky, log_det, precision) = match &covariance {
            Covariance::Isotropic(v) => {
                crate::error::check_positive("variance", *v)?;
                let inv = vec![1.0 / v; d];
                let log_det = diagonal_log_det((0..d).map(|_| *v));
                (None, log_det, Precision::Diagonal(row(&inv, device)))
            }
            Covariance::Diagonal(vs) => {
                if vs.len() != d {
                    return Err(Error::invalid(
                        "variance",
                        format!("has {} entries for a {d}-dimensional mean", vs.len()),
                    ));
                }
                for v in vs {
                    crate::error::check_positive("variance", *v)?;
                }
                let inv: Vec<f64> = vs.iter().map(|v| 1.0 / v).collect();
                let log_det = diagonal_log_det(vs.iter().copied());
                (None, log_det, Precision::Diagonal(row(&inv, device)))
            }
            Covariance::Full(m) => {
                linalg::check_square_symmetric("covariance", m, d)?;
                crate::memory::check_elements(
                    "a full covariance (its Cholesky factor and inverse, dim x dim each)",
                    3 * (d as u128) * (d as u128),
                    8,
                )?;
                let chol = linalg::cholesky("covariance", m)?;
                let log_det = linalg::logdet_from_cholesky(&chol);
                let inv = matrix(&linalg::inverse_from_cholesky(&chol), device);
                (Some(chol), log_det, Precision::Full(inv))
            }
        };
        Ok(Self {
            mean_row: row(&mean, device),
            mean,
            covariance,
            cholesky,
            log_z: log_2pi_half(d) + 0.5 * log_det,
            precision,
        })
    }

    /// The standard normal N(0, I_d).
    pub fn standard(d: usize, device: &Device) -> Result<Self> {
        Self::new(vec![0.0; d], Covariance::Isotropic(1.0), device)
    }

    /// The mean vector.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The covariance as it was given (isotropic, diagonal or full).
    pub fn covariance_form(&self) -> &Covariance {
        &self.covariance
    }

    /// The variance of coordinate `i`.
    pub fn variance(&self, i: usize) -> f64 {
        match &self.covariance {
            Covariance::Isotropic(v) => *v,
            Covariance::Diagonal(vs) => vs[i],
            Covariance::Full(m) => m[i][i],
        }
    }

    /// The covariance as a dense `d x d` matrix (built on demand for isotropic and diagonal ones).
    pub fn covariance(&self) -> Matrix {
        match &self.covariance {
            Covariance::Full(m) => m.clone(),
            _ => {
                let d = self.mean.len();
                (0..d)
                    .map(|i| {
                        (0..d)
                            .map(|j| if i == j { self.variance(i) } else { 0.0 })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// `n` exact samples, mean + L z with L L^T = Sigma (for tests and as an AIS base).
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let d = self.mean.len();
        let z = normal_vec(rng, n * d);
        let mut out = vec![0f32; n * d];
        for r in 0..n {
            for i in 0..d {
                let v: f64 = match &self.cholesky {
                    Some(l) => (0..=i).map(|k| l[i][k] * z[r * d + k] as f64).sum(),
                    None => self.variance(i).sqrt() * z[r * d + i] as f64,
                };
                out[r * d + i] = (self.mean[i] + v) as f32;
            }
        }
        from_host2(out, [n, d], device)
    }

    /// Sigma^{-1} (x - mean), `[n, d]`.
    fn precision_times(&self, centred: Tensor<2>) -> Tensor<2> {
        match &self.precision {
            Precision::Diagonal(p) => centred * p.clone(),
            Precision::Full(p) => centred.matmul(p.clone()),
        }
    }
}

impl Energy for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn score(&self, x: Tensor<2>) -> Tensor<2> {
        self.precision_times(x - self.mean_row.clone()).neg()
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let centred = x - self.mean_row.clone();
        let pc = self.precision_times(centred.clone());
        (row_dot(centred, pc.clone()).mul_scalar(0.5), pc.neg())
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(self.log_z)
    }
    fn describe(&self) -> String {
        format!("gaussian (dim {})", self.mean.len())
    }
}
