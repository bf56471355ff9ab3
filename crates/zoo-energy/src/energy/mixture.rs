//! Gaussian mixture p(x) = sum_k w_k N(x; mean_k, Sigma_k), any weights, any dimension.
//! E(x) = -log p(x) (normalised, so log Z = 0); score = sum_k r_k(x) s_k(x) with the
//! responsibilities r_k(x) = w_k N_k(x) / p(x).

use super::{Covariance, Energy, Gaussian};
use crate::error::{Error, Result};
use crate::linalg::Matrix;
use crate::rng::ZooRng;
use crate::tensor::{logsumexp_rows, to_host2};
use burn::prelude::*;
use rand::RngExt;

/// A Gaussian mixture energy.
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    components: Vec<Gaussian>,
}

impl GaussianMixture {
    /// A mixture from weights (normalised here; must be positive) and components.
    pub fn new(weights: Vec<f64>, components: Vec<Gaussian>) -> Result<Self> {
        if weights.is_empty() || weights.len() != components.len() {
            return Err(Error::invalid(
                "weights",
                format!(
                    "need one weight per component ({} weights, {} components)",
                    weights.len(),
                    components.len()
                ),
            ));
        }
        for w in &weights {
            crate::error::check_positive("weights", *w)?;
        }
        let d = components[0].dim();
        if components.iter().any(|c| c.dim() != d) {
            return Err(Error::invalid(
                "means",
                "all components must have the same dimension",
            ));
        }
        let total: f64 = weights.iter().sum();
        Ok(Self {
            weights: weights.iter().map(|w| w / total).collect(),
            components,
        })
    }

    /// A mixture from means and covariances.
    pub fn from_parts(
        weights: Vec<f64>,
        means: Vec<Vec<f64>>,
        covariances: Vec<Covariance>,
        device: &Device,
    ) -> Result<Self> {
        if means.len() != covariances.len() {
            return Err(Error::invalid(
                "covariances",
                format!(
                    "{} covariances for {} means",
                    covariances.len(),
                    means.len()
                ),
            ));
        }
        let components = means
            .into_iter()
            .zip(covariances)
            .map(|(m, c)| Gaussian::new(m, c, device))
            .collect::<Result<Vec<_>>>()?;
        Self::new(weights, components)
    }

    /// The normalised weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The components.
    pub fn components(&self) -> &[Gaussian] {
        &self.components
    }

    /// The mixture's mean, sum_k w_k mean_k.
    pub fn mean(&self) -> Vec<f64> {
        let d = self.dim();
        (0..d)
            .map(|i| {
                self.weights
                    .iter()
                    .zip(&self.components)
                    .map(|(w, c)| w * c.mean()[i])
                    .sum()
            })
            .collect()
    }

    /// The mixture's covariance, sum_k w_k (Sigma_k + m_k m_k^T) - m m^T.
    pub fn covariance(&self) -> Matrix {
        let d = self.dim();
        let m = self.mean();
        let mut out = vec![vec![0.0; d]; d];
        for (w, c) in self.weights.iter().zip(&self.components) {
            let cov = c.covariance();
            for i in 0..d {
                for j in 0..d {
                    out[i][j] += w * (cov[i][j] + c.mean()[i] * c.mean()[j]);
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                out[i][j] -= m[i] * m[j];
            }
        }
        out
    }

    /// `n` exact samples (component by inverse CDF of the weights, then the component's sample).
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut k = self.weights.len() - 1;
            for (i, w) in self.weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    k = i;
                    break;
                }
            }
            out.extend(to_host2(&self.components[k].sample(rng, 1, device)));
        }
        crate::tensor::from_host2(out, [n, d], device)
    }

    /// log(w_k N_k(x)) for every component: `[n, K]`, and each component's score.
    fn parts(&self, x: Tensor<2>) -> (Tensor<2>, Vec<Tensor<2>>) {
        let (logs, scores): (Vec<_>, Vec<_>) = self
            .weights
            .iter()
            .zip(&self.components)
            .map(|(w, c)| {
                let (e, s) = c.energy_and_score(x.clone());
                let log_z = c.log_normalizer().expect("a Gaussian knows its normaliser");
                (e.neg().add_scalar(w.ln() - log_z), s)
            })
            .unzip();
        (Tensor::stack(logs, 1), scores)
    }
}

impl Energy for GaussianMixture {
    fn dim(&self) -> usize {
        self.components[0].dim()
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        logsumexp_rows(self.parts(x).0).neg()
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, _] = x.dims();
        let (logs, scores) = self.parts(x);
        let log_p = logsumexp_rows(logs.clone());
        let resp = (logs - log_p.clone().unsqueeze_dim::<2>(1)).exp();
        let score = scores
            .into_iter()
            .enumerate()
            .map(|(k, s)| s * resp.clone().slice([0..n, k..k + 1]))
            .reduce(|a, b| a + b)
            .expect("at least one component");
        (log_p.neg(), score)
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(0.0)
    }
    fn describe(&self) -> String {
        format!(
            "gaussian mixture ({} components, dim {}, weights {:?})",
            self.components.len(),
            self.dim(),
            self.weights
        )
    }
}
