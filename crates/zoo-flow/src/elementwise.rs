//! The element-wise monotone maps that couplings and autoregressive layers apply to one
//! coordinate given parameters from a conditioner: additive (NICE), affine (RealNVP, MAF) and the
//! rational-quadratic spline with linear tails (Durkan et al. 2019, "Neural Spline Flows", eq. 4
//! and appendix A).
//!
//! Parameters come dimension-major: `[n, m * per_dim]` reshaped to `[n, m, per_dim]`, so that the
//! `per_dim` outputs of a conditioner that belong to coordinate `i` are contiguous (what MADE's
//! output masks need).

use burn::prelude::*;
use burn::tensor::activation::{softmax, softplus};
use serde::{Deserialize, Serialize};
use zoo_energy::{Error, Result};

/// Smallest bin width and height, as a fraction of the interval (nflows' default).
const MIN_BIN: f64 = 1e-3;
/// Smallest knot derivative.
const MIN_DERIVATIVE: f64 = 1e-3;

/// Which element-wise map a layer applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Elementwise {
    /// y = x + t (NICE; Dinh et al. 2014): volume preserving, log|det| = 0.
    Additive,
    /// y = x exp(s) + t with s = c tanh(s_raw / c) (RealNVP; Dinh et al. 2017): the soft bound
    /// c = `max_log_scale` keeps every layer's scale in [e^-c, e^c].
    Affine {
        /// c in s = c tanh(s_raw / c).
        max_log_scale: f64,
    },
    /// A monotone rational-quadratic spline with `bins` bins on [-bound, bound] and the identity
    /// outside (linear tails, derivative 1 at both ends).
    Spline {
        /// Number of bins K (>= 2).
        bins: usize,
        /// Half-width B of the interval the spline acts on.
        bound: f64,
    },
}

impl Elementwise {
    /// Conditioner outputs per transformed coordinate: 1, 2 or 3K - 1.
    pub fn per_dim(&self) -> usize {
        match *self {
            Elementwise::Additive => 1,
            Elementwise::Affine { .. } => 2,
            Elementwise::Spline { bins, .. } => 3 * bins - 1,
        }
    }

    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        match *self {
            Elementwise::Additive => Ok(()),
            Elementwise::Affine { max_log_scale } => {
                zoo_energy::check_positive("max_log_scale", max_log_scale).map(|_| ())
            }
            Elementwise::Spline { bins, bound } => {
                if bins < 2 {
                    return Err(Error::invalid(
                        "bins",
                        format!("a spline needs at least 2 bins, got {bins}"),
                    ));
                }
                zoo_energy::check_positive("bound", bound).map(|_| ())
            }
        }
    }

    /// Applies the map (or its inverse) to `x: [n, m]` with parameters `params: [n, m, per_dim]`.
    /// Returns the image and log|det| of the map that was applied, per row.
    pub fn apply(&self, x: Tensor<2>, params: Tensor<3>, inverse: bool) -> (Tensor<2>, Tensor<1>) {
        let [n, m] = x.dims();
        match *self {
            Elementwise::Additive => {
                let t: Tensor<2> = params.reshape([n, m]);
                let device = t.device();
                let y = if inverse { x - t } else { x + t };
                (y, Tensor::zeros([n], &device))
            }
            Elementwise::Affine { max_log_scale: c } => {
                let s_raw: Tensor<2> = params.clone().slice([0..n, 0..m, 0..1]).reshape([n, m]);
                let t: Tensor<2> = params.slice([0..n, 0..m, 1..2]).reshape([n, m]);
                let s = s_raw.div_scalar(c).tanh().mul_scalar(c);
                let log_det: Tensor<1> = s.clone().sum_dim(1).reshape([n]);
                if inverse {
                    ((x - t) * s.neg().exp(), log_det.neg())
                } else {
                    (x * s.exp() + t, log_det)
                }
            }
            Elementwise::Spline { bins, bound } => rq_spline(x, params, bins, bound, inverse),
        }
    }
}

/// Knot positions `[n, m, K + 1]` on [-bound, bound] from unnormalised bin sizes `[n, m, K]`:
/// softmax with a minimum bin size, cumulative sum, exact end points.
fn knots(raw: Tensor<3>, bound: f64) -> Tensor<3> {
    let [n, m, k] = raw.dims();
    let device = raw.device();
    let sizes = softmax(raw, 2)
        .mul_scalar(1.0 - MIN_BIN * k as f64)
        .add_scalar(MIN_BIN);
    let interior = sizes.cumsum(2).slice([0..n, 0..m, 0..k - 1]);
    Tensor::cat(
        vec![
            Tensor::zeros([n, m, 1], &device),
            interior,
            Tensor::ones([n, m, 1], &device),
        ],
        2,
    )
    .mul_scalar(2.0 * bound)
    .sub_scalar(bound)
}

/// The rational-quadratic spline of Durkan et al. (2019), forward (their eq. 4 and the derivative
/// below it) or inverse (the root of the quadratic in their appendix A, in the numerically stable
/// form 2c / (-b - sqrt(b^2 - 4ac))). Inputs outside [-bound, bound] pass through unchanged with
/// log|det| = 0; inside, the computation runs on clamped values, so no input (however large)
/// creates an infinity or a NaN, in the values or in their gradients.
fn rq_spline(
    x: Tensor<2>,
    params: Tensor<3>,
    bins: usize,
    bound: f64,
    inverse: bool,
) -> (Tensor<2>, Tensor<1>) {
    let [n, m] = x.dims();
    let k = bins;
    let device = x.device();
    let w_raw = params.clone().slice([0..n, 0..m, 0..k]);
    let h_raw = params.clone().slice([0..n, 0..m, k..2 * k]);
    let d_raw = params.slice([0..n, 0..m, 2 * k..3 * k - 1]);
    let knots_x = knots(w_raw, bound);
    let knots_y = knots(h_raw, bound);
    let ones = Tensor::<3>::ones([n, m, 1], &device);
    let derivs = Tensor::cat(
        vec![
            ones.clone(),
            softplus(d_raw, 1.0).add_scalar(MIN_DERIVATIVE),
            ones,
        ],
        2,
    );
    let inside = x.clone().abs().lower_elem(bound);
    let xc = x.clone().clamp(-bound, bound);
    // Bin index: the number of interior knots at or below the input.
    let search = if inverse { &knots_y } else { &knots_x };
    let interior = search.clone().slice([0..n, 0..m, 1..k]);
    let idx: Tensor<3, Int> = interior
        .lower_equal(xc.clone().unsqueeze_dim::<3>(2).expand([n, m, k - 1]))
        .int()
        .sum_dim(2);
    let next = idx.clone().add_scalar(1);
    let pick = |t: &Tensor<3>, i: &Tensor<3, Int>| -> Tensor<2> {
        t.clone().gather(2, i.clone()).reshape([n, m])
    };
    let (x0, x1) = (pick(&knots_x, &idx), pick(&knots_x, &next));
    let (y0, y1) = (pick(&knots_y, &idx), pick(&knots_y, &next));
    let (d0, d1) = (pick(&derivs, &idx), pick(&derivs, &next));
    let w = x1 - x0.clone();
    let h = y1 - y0.clone();
    let s = h.clone() / w.clone();
    let curvature = d1.clone() + d0.clone() - s.clone().mul_scalar(2.0);
    let (out, xi) = if inverse {
        let dy = xc - y0;
        let a = h.clone() * (s.clone() - d0.clone()) + dy.clone() * curvature.clone();
        let b = h.clone() * d0.clone() - dy.clone() * curvature.clone();
        let c = (s.clone() * dy).neg();
        let disc = (b.clone().square() - a * c.clone().mul_scalar(4.0)).clamp_min(0.0);
        let xi = (c.mul_scalar(2.0) / (b.neg() - disc.sqrt())).clamp(0.0, 1.0);
        (xi.clone() * w + x0, xi)
    } else {
        let xi = ((xc - x0) / w).clamp(0.0, 1.0);
        let om = xi.clone() * xi.clone().neg().add_scalar(1.0);
        let num = h * (s.clone() * xi.clone().square() + d0.clone() * om.clone());
        let den = s.clone() + curvature.clone() * om;
        (y0 + num / den, xi)
    };
    // dy/dx at xi (the same expression in both directions).
    let om = xi.clone() * xi.clone().neg().add_scalar(1.0);
    let one_minus = xi.clone().neg().add_scalar(1.0);
    let den = s.clone() + curvature * om.clone();
    let dydx = s.clone().square()
        * (d1 * xi.square() + s.mul_scalar(2.0) * om + d0 * one_minus.square())
        / den.square();
    let log_abs = dydx.log();
    let log_abs = if inverse { log_abs.neg() } else { log_abs };
    let outside = inside.clone().bool_not();
    let y = x.mask_where(inside, out);
    let log_det: Tensor<1> = log_abs.mask_fill(outside, 0.0).sum_dim(1).reshape([n]);
    (y, log_det)
}
