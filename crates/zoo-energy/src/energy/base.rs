//! An energy tilted by a Gaussian base measure: U(x) = E(x) + |x|^2 / (2 s^2), i.e.
//! p(x) ∝ exp(-E(x)) N(x; 0, s^2 I). The form of the latent EBM prior of Pang et al. (2020) and of
//! any neural energy that needs a guaranteed normalisable tail.

use super::Energy;
use crate::error::{Result, check_positive};
use crate::tensor::row_sq_norm;
use burn::prelude::*;

/// `inner` plus the Gaussian base energy |x|^2 / (2 std^2).
#[derive(Debug, Clone)]
pub struct WithGaussianBase<E> {
    /// The energy being tilted.
    pub inner: E,
    precision: f64,
}

impl<E: Energy> WithGaussianBase<E> {
    /// Tilts `inner` by N(0, std^2 I) (`std` > 0).
    pub fn new(inner: E, std: f64) -> Result<Self> {
        let std = check_positive("base_std", std)?;
        Ok(Self {
            inner,
            precision: 1.0 / (std * std),
        })
    }
}

impl<E: Energy> Energy for WithGaussianBase<E> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        self.inner.energy(x.clone()) + row_sq_norm(x).mul_scalar(0.5 * self.precision)
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (e, s) = self.inner.energy_and_score(x.clone());
        (
            e + row_sq_norm(x.clone()).mul_scalar(0.5 * self.precision),
            s - x.mul_scalar(self.precision),
        )
    }
    fn describe(&self) -> String {
        format!(
            "{} with a Gaussian base (std {})",
            self.inner.describe(),
            1.0 / self.precision.sqrt()
        )
    }
}
