//! Validated training data: finite, non-empty, one dimension; minibatches drawn with the caller's
//! generator.

use burn::prelude::*;
use zoo_energy::tensor::{first_non_finite, from_host2};
use zoo_energy::{Error, Result, ZooRng};

/// A data set of `len` points of dimension `dim`, row-major on the host.
#[derive(Debug, Clone)]
pub struct Dataset {
    values: Vec<f32>,
    dim: usize,
}

impl Dataset {
    /// Validates `values` as `[len, dim]`: `dim >= 1`, at least one point, a whole number of rows,
    /// every value finite.
    pub fn new(values: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("dim", "the data dimension must be >= 1"));
        }
        if values.is_empty() {
            return Err(Error::invalid("data", "the data set is empty"));
        }
        if !values.len().is_multiple_of(dim) {
            return Err(Error::Shape {
                what: "data".into(),
                expected: format!(
                    "[n, {dim}] ({} values is not a multiple of {dim})",
                    values.len()
                ),
                got: vec![values.len()],
            });
        }
        if let Some((row, column, value)) = first_non_finite(&values, dim) {
            return Err(Error::NonFinite {
                what: "data".into(),
                row,
                column,
                value,
            });
        }
        Ok(Self { values, dim })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Always false for a validated set (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Dimension of one point.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Checks that a model of dimension `dim` fits this data.
    pub fn check_dim(&self, what: &str, dim: usize) -> Result<()> {
        if dim != self.dim {
            return Err(Error::Shape {
                what: format!("data for {what}"),
                expected: format!("[n, {dim}]"),
                got: vec![self.len(), self.dim],
            });
        }
        Ok(())
    }

    /// `n` points drawn uniformly with replacement, `[n, dim]`.
    pub fn batch(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        from_host2(self.batch_host(rng, n), [n, self.dim], device)
    }

    /// [`Dataset::batch`] on the host (row-major), the same draws.
    pub fn batch_host(&self, rng: &mut ZooRng, n: usize) -> Vec<f32> {
        let d = self.dim;
        let mut out = Vec::with_capacity(n * d);
        for i in zoo_train::minibatch_indices(rng, self.len(), n) {
            out.extend_from_slice(&self.values[i * d..(i + 1) * d]);
        }
        out
    }

    /// Per-coordinate mean and the full covariance (float64).
    pub fn mean_and_covariance(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (n, d) = (self.len() as f64, self.dim);
        let mut mean = vec![0.0; d];
        for row in self.values.chunks(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64 / n;
            }
        }
        let mut cov = vec![vec![0.0; d]; d];
        for row in self.values.chunks(d) {
            for i in 0..d {
                for j in 0..d {
                    cov[i][j] += (row[i] as f64 - mean[i]) * (row[j] as f64 - mean[j]) / n;
                }
            }
        }
        (mean, cov)
    }
}
