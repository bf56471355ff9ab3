//! The linear stochastic interpolant x_t = (1 − t) x₀ + t x₁ (Albergo & Vanden-Eijnden 2023)
//! from x₀ ~ N(0, I) to an isotropic Gaussian mixture x₁ ~ Σ_k w_k N(μ_k, σ² I), in closed form:
//! ρ_t = Σ_k w_k N(t μ_k, v_t I) with v_t = (1 − t)² + t² σ², the velocity
//! b(t, x) = E[x₁ − x₀ | x_t = x] = Σ_k r_k(x) (μ_k + (t σ² − (1 − t)) (x − t μ_k) / v_t)
//! (r_k the posterior responsibilities) and the score s = Σ_k r_k (t μ_k − x) / v_t.
//! The SDE dX = (b + ε s) dt + √(2ε) dW has the marginals ρ_t.
//!
//! As an [`SdePath`] for the reweighted sampler of Carbone et al. (2023): the drift is built from
//! `model_weights` (possibly wrong), the densities ρ_t from `weights` (the target). With equal
//! model weights and unequal target weights, the plain SDE lands on the wrong mode weights and
//! the Jarzynski/SMC weights correct them (`zoo_mcmc::estimate::reweighted_sde`).

use burn::prelude::*;
use zoo_energy::tensor::{from_host1, from_host2, to_host2};
use zoo_energy::{Error, Result};
use zoo_mcmc::estimate::{SdePath, log_sum_exp};

/// The interpolant path from N(0, I) to a Gaussian mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureInterpolant {
    /// Component means, each of the dimension.
    pub means: Vec<Vec<f64>>,
    /// Component standard deviation σ.
    pub sigma: f64,
    /// The target's weights (ρ_t).
    pub weights: Vec<f64>,
    /// The weights the drift is built from.
    pub model_weights: Vec<f64>,
    /// ε of the SDE (the drift is b + ε s, the backward drift −b + ε s).
    pub epsilon: f64,
}

impl MixtureInterpolant {
    /// Checks the parts (weights positive, one per mean, equal dimensions; σ and ε > 0).
    pub fn check(&self) -> Result<()> {
        let k = self.means.len();
        let d = self.means.first().map_or(0, Vec::len);
        let positive = |w: &[f64]| w.len() == k && w.iter().all(|&v| v.is_finite() && v > 0.0);
        if k == 0 || d == 0 || self.means.iter().any(|m| m.len() != d) {
            return Err(Error::invalid(
                "means",
                "need at least one mean, all of one dimension",
            ));
        }
        if !positive(&self.weights) || !positive(&self.model_weights) {
            return Err(Error::invalid(
                "weights",
                format!("need {k} positive weights"),
            ));
        }
        zoo_energy::check_positive("sigma", self.sigma)?;
        zoo_energy::check_positive("epsilon", self.epsilon)?;
        Ok(())
    }

    /// Per row: log Σ_k w_k N(x; t μ_k, v_t I) (normalised) and, under `w`, Σ_k r_k (b_k, s_k).
    fn evaluate(&self, t: f64, x: &Tensor<2>, w: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = self.means[0].len();
        let v = (1.0 - t).powi(2) + t * t * self.sigma * self.sigma;
        let total: f64 = w.iter().sum();
        let rows = to_host2(x);
        let (mut log_rho, mut b, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows.chunks(d) {
            let logs: Vec<f64> = self
                .means
                .iter()
                .zip(w)
                .map(|(m, wk)| {
                    let sq: f64 = row
                        .iter()
                        .zip(m)
                        .map(|(&x, &m)| (f64::from(x) - t * m).powi(2))
                        .sum();
                    (wk / total).ln()
                        - sq / (2.0 * v)
                        - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * v).ln()
                })
                .collect();
            let norm = log_sum_exp(&logs);
            log_rho.push(norm);
            let (mut bi, mut si) = (vec![0.0; d], vec![0.0; d]);
            for (m, l) in self.means.iter().zip(&logs) {
                let r = (l - norm).exp();
                for j in 0..d {
                    let dev = f64::from(row[j]) - t * m[j];
                    bi[j] += r * (m[j] + (t * self.sigma * self.sigma - (1.0 - t)) * dev / v);
                    si[j] -= r * dev / v;
                }
            }
            b.extend(bi);
            s.extend(si);
        }
        (log_rho, b, s)
    }

    fn drift(&self, t: f64, x: Tensor<2>, sign: f64) -> Tensor<2> {
        let (_, b, s) = self.evaluate(t, &x, &self.model_weights);
        let f: Vec<f32> = b
            .iter()
            .zip(&s)
            .map(|(b, s)| (sign * b + self.epsilon * s) as f32)
            .collect();
        from_host2(f, x.dims(), &x.device())
    }
}

impl SdePath for MixtureInterpolant {
    fn dim(&self) -> usize {
        self.means[0].len()
    }

    fn log_density(&self, t: f64, x: Tensor<2>) -> Tensor<1> {
        let (log_rho, _, _) = self.evaluate(t, &x, &self.weights);
        from_host1(log_rho.into_iter().map(|v| v as f32).collect(), &x.device())
    }

    fn forward_drift(&self, t: f64, x: Tensor<2>) -> Tensor<2> {
        self.drift(t, x, 1.0)
    }

    fn backward_drift(&self, t: f64, y: Tensor<2>) -> Tensor<2> {
        self.drift(t, y, -1.0)
    }
}
