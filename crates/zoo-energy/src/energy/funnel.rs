//! Neal's funnel (Neal 2003, "Slice sampling"): v ~ N(0, scale^2), x_i | v ~ N(0, e^v),
//! i = 1..d-1. E(v, x) = v^2 / (2 scale^2) + e^{-v} |x|^2 / 2 + (d - 1) v / 2,
//! log Z = (1/2) log(2 pi scale^2) + ((d - 1)/2) log 2 pi.

use super::{Energy, log_2pi_half};
use crate::error::{Error, Result, check_positive};
use crate::tensor::row_sq_norm;
use burn::prelude::*;

/// Neal's funnel in `dim >= 2` dimensions; coordinate 0 is the log-variance v.
#[derive(Debug, Clone)]
pub struct Funnel {
    dim: usize,
    scale: f64,
}

impl Funnel {
    /// A funnel of dimension `dim` with `v ~ N(0, scale^2)` (Neal used `dim = 10`, `scale = 3`).
    pub fn new(dim: usize, scale: f64) -> Result<Self> {
        if dim < 2 {
            return Err(Error::invalid(
                "dim",
                format!("the funnel needs dim >= 2, got {dim}"),
            ));
        }
        check_positive("scale", scale)?;
        Ok(Self { dim, scale })
    }
}

impl Energy for Funnel {
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, d] = x.dims();
        let v = x.clone().slice([0..n, 0..1]);
        let rest = x.slice([0..n, 1..d]);
        let inv_var = v.clone().neg().exp(); // e^{-v}, [n, 1]
        let half_sq = row_sq_norm(rest.clone()).mul_scalar(0.5); // |x|^2 / 2, [n]
        let v1: Tensor<1> = v.clone().squeeze_dim(1);
        let inv1: Tensor<1> = inv_var.clone().squeeze_dim(1);
        let s2 = self.scale * self.scale;
        let half_dm1 = 0.5 * (d - 1) as f64;
        let energy = v1.clone().square().div_scalar(2.0 * s2)
            + inv1.clone() * half_sq.clone()
            + v1.clone().mul_scalar(half_dm1);
        let dv = v1.div_scalar(s2) - inv1 * half_sq;
        let score_v = dv.add_scalar(half_dm1).neg().unsqueeze_dim::<2>(1);
        let score_x = (rest * inv_var).neg();
        (energy, Tensor::cat(vec![score_v, score_x], 1))
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(
            0.5 * (2.0 * std::f64::consts::PI * self.scale * self.scale).ln()
                + log_2pi_half(self.dim - 1),
        )
    }
    fn describe(&self) -> String {
        format!("neal funnel (dim {}, scale {})", self.dim, self.scale)
    }
}
