//! A double well: E(x) = barrier (x1^2 - 1)^2 + |x_{2..d}|^2 / 2, two modes at x1 = ±1
//! separated by a barrier of height `barrier` at x1 = 0. log Z = log I + ((d-1)/2) log 2 pi
//! with I = ∫ exp(-barrier (t^2 - 1)^2) dt, computed once by the trapezoid rule, which converges
//! exponentially fast for this smooth, rapidly decaying integrand (error far below f64 epsilon
//! at the grid used).

use super::{Energy, log_2pi_half};
use crate::error::{Error, Result, check_positive};
use crate::tensor::row_sq_norm;
use burn::prelude::*;

/// The double-well energy in `dim >= 1` dimensions.
#[derive(Debug, Clone)]
pub struct DoubleWell {
    dim: usize,
    barrier: f64,
    log_z: f64,
}

impl DoubleWell {
    /// A double well in `dim` dimensions with the given barrier height.
    pub fn new(dim: usize, barrier: f64) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("dim", "must be >= 1"));
        }
        check_positive("barrier", barrier)?;
        let log_z = one_d_log_normalizer(barrier) + log_2pi_half(dim - 1);
        Ok(Self {
            dim,
            barrier,
            log_z,
        })
    }
}

/// log ∫ exp(-a (t^2 - 1)^2) dt by the trapezoid rule on [-L, L], where the integrand < e^-60.
pub(crate) fn one_d_log_normalizer(a: f64) -> f64 {
    let half_width = (1.0 + (60.0 / a).sqrt()).sqrt();
    let m = 200_000;
    let h = 2.0 * half_width / m as f64;
    let sum: f64 = (0..=m)
        .map(|i| {
            let t = -half_width + i as f64 * h;
            let w = if i == 0 || i == m { 0.5 } else { 1.0 };
            w * (-a * (t * t - 1.0).powi(2)).exp()
        })
        .sum();
    (sum * h).ln()
}

impl Energy for DoubleWell {
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, d] = x.dims();
        let x1 = x.clone().slice([0..n, 0..1]);
        let well = x1.clone().square().sub_scalar(1.0); // x1^2 - 1, [n, 1]
        let e1: Tensor<1> = well
            .clone()
            .square()
            .mul_scalar(self.barrier)
            .squeeze_dim(1);
        let s1 = (x1 * well).mul_scalar(-4.0 * self.barrier);
        if d == 1 {
            return (e1, s1);
        }
        let rest = x.slice([0..n, 1..d]);
        let energy = e1 + row_sq_norm(rest.clone()).mul_scalar(0.5);
        (energy, Tensor::cat(vec![s1, rest.neg()], 1))
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(self.log_z)
    }
    fn describe(&self) -> String {
        format!("double well (dim {}, barrier {})", self.dim, self.barrier)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_d_normaliser_agrees_with_an_independent_simpson_rule() {
        // A different rule on a different grid and range: both must agree to 1e-12.
        let a = 2.0f64;
        let simpson = {
            let (lo, hi, m) = (-4.0f64, 4.0f64, 400_000usize);
            let h = (hi - lo) / m as f64;
            let f = |t: f64| (-a * (t * t - 1.0).powi(2)).exp();
            let mut s = f(lo) + f(hi);
            for i in 1..m {
                let w = if i % 2 == 1 { 4.0 } else { 2.0 };
                s += w * f(lo + i as f64 * h);
            }
            (s * h / 3.0).ln()
        };
        assert!((super::one_d_log_normalizer(a) - simpson).abs() < 1e-12);
    }
}
