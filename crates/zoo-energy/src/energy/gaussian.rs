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
#[derive(Debug, Clone)]
pub struct Gaussian {
    mean: Vec<f64>,
    covariance: Matrix,
    cholesky: Matrix,
    log_z: f64,
    mean_row: Tensor<2>,
    precision: Precision,
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
        let full: Matrix = match &covariance {
            Covariance::Isotropic(v) => {
                crate::error::check_positive("variance", *v)?;
                (0..d)
                    .map(|i| (0..d).map(|j| if i == j { *v } else { 0.0 }).collect())
                    .collect()
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
                (0..d)
                    .map(|i| (0..d).map(|j| if i == j { vs[i] } else { 0.0 }).collect())
                    .collect()
            }
            Covariance::Full(m) => {
                linalg::check_square_symmetric("covariance", m, d)?;
                m.clone()
            }
        };
        let cholesky = linalg::cholesky("covariance", &full)?;
        let log_z = log_2pi_half(d) + 0.5 * linalg::logdet_from_cholesky(&cholesky);
        let precision = match &covariance {
            Covariance::Full(_) => {
                Precision::Full(matrix(&linalg::inverse_from_cholesky(&cholesky), device))
            }
            _ => {
                let inv: Vec<f64> = (0..d).map(|i| 1.0 / full[i][i]).collect();
                Precision::Diagonal(row(&inv, device))
            }
        };
        Ok(Self {
            mean_row: row(&mean, device),
            mean,
            covariance: full,
            cholesky,
            log_z,
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

    /// The covariance matrix.
    pub fn covariance(&self) -> &Matrix {
        &self.covariance
    }

    /// `n` exact samples, mean + L z with L L^T = Sigma (for tests and as an AIS base).
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let d = self.mean.len();
        let z = normal_vec(rng, n * d);
        let mut out = vec![0f32; n * d];
        for r in 0..n {
            for i in 0..d {
                let v: f64 = (0..=i)
                    .map(|k| self.cholesky[i][k] * z[r * d + k] as f64)
                    .sum();
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
