//! The 2-D banana (twisted Gaussian; Haario, Saksman & Tamminen 1999):
//! x1 ~ N(0, scale^2), x2 | x1 ~ N(curvature (x1^2 - scale^2), 1).
//! E(x) = x1^2 / (2 scale^2) + r^2 / 2 with r = x2 - curvature (x1^2 - scale^2);
//! the map x -> (x1, r) has unit Jacobian, so log Z = log(2 pi scale).

use super::Energy;
use crate::error::{Result, check_positive};
use burn::prelude::*;

/// The banana-shaped 2-D density.
#[derive(Debug, Clone)]
pub struct Banana {
    scale: f64,
    curvature: f64,
}

impl Banana {
    /// A banana with `x1 ~ N(0, scale^2)` bent by `curvature` (finite, any sign).
    pub fn new(scale: f64, curvature: f64) -> Result<Self> {
        check_positive("scale", scale)?;
        if !curvature.is_finite() {
            return Err(crate::Error::invalid("curvature", "must be finite"));
        }
        Ok(Self { scale, curvature })
    }

    /// Mean (0, 0) and covariance [[a^2, 0], [0, 1 + 2 b^2 a^4]] (exact, for tests).
    pub fn moments(&self) -> ([f64; 2], [[f64; 2]; 2]) {
        let (a, b) = (self.scale, self.curvature);
        (
            [0.0, 0.0],
            [[a * a, 0.0], [0.0, 1.0 + 2.0 * b * b * a.powi(4)]],
        )
    }
}

impl Energy for Banana {
    fn dim(&self) -> usize {
        2
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, _] = x.dims();
        let (a2, b) = (self.scale * self.scale, self.curvature);
        let x1: Tensor<1> = x.clone().slice([0..n, 0..1]).squeeze_dim(1);
        let x2: Tensor<1> = x.slice([0..n, 1..2]).squeeze_dim(1);
        let r = x2 - (x1.clone().square().sub_scalar(a2)).mul_scalar(b);
        let energy = x1.clone().square().div_scalar(2.0 * a2) + r.clone().square().mul_scalar(0.5);
        let d1 = x1.clone().div_scalar(a2) - x1 * r.clone().mul_scalar(2.0 * b);
        let score = Tensor::stack::<2>(vec![d1.neg(), r.neg()], 1);
        (energy, score)
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some((2.0 * std::f64::consts::PI * self.scale).ln())
    }
    fn describe(&self) -> String {
        format!(
            "banana (scale {}, curvature {})",
            self.scale, self.curvature
        )
    }
}
