//! The geometric path between two energies (review §3, annealing; the path of annealed importance
//! sampling): pi_beta ∝ exp(-(1 - beta) E_0 - beta E_1), or plain tempering exp(-beta E_1).

use super::Energy;
use burn::prelude::*;

/// E_beta = (1 - beta) E_base + beta E_target (or beta E_target with no base).
#[derive(Debug)]
pub struct Interpolated<'a> {
    /// The tractable end (beta = 0); `None` means a flat base (plain tempering).
    pub base: Option<&'a dyn Energy>,
    /// The target (beta = 1).
    pub target: &'a dyn Energy,
    /// The inverse temperature along the path.
    pub beta: f64,
}

impl Energy for Interpolated<'_> {
    fn dim(&self) -> usize {
        self.target.dim()
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        let e1 = self.target.energy(x.clone()).mul_scalar(self.beta);
        match self.base {
            Some(b) => e1 + b.energy(x).mul_scalar(1.0 - self.beta),
            None => e1,
        }
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (e1, s1) = self.target.energy_and_score(x.clone());
        let (e1, s1) = (e1.mul_scalar(self.beta), s1.mul_scalar(self.beta));
        match self.base {
            Some(b) => {
                let (e0, s0) = b.energy_and_score(x);
                let w = 1.0 - self.beta;
                (e1 + e0.mul_scalar(w), s1 + s0.mul_scalar(w))
            }
            None => (e1, s1),
        }
    }
    fn describe(&self) -> String {
        format!(
            "interpolated (beta {}) towards {}",
            self.beta,
            self.target.describe()
        )
    }
}
