//! Small host-side helpers around burn tensors: shape and finiteness checks, host copies.

use crate::error::{Error, Result};
use burn::prelude::*;

/// Copies a `[n, d]` tensor to the host as a row-major `Vec<f32>`.
pub fn to_host2(x: &Tensor<2>) -> Vec<f32> {
    x.to_data()
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// Copies a `[n]` tensor to the host.
pub fn to_host1(x: &Tensor<1>) -> Vec<f32> {
    x.to_data()
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// A `[n, d]` tensor from row-major host values.
pub fn from_host2(values: Vec<f32>, [n, d]: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [n, d]), device)
}

/// A `[n]` tensor from host values.
pub fn from_host1(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Checks that `x` is `[n, dim]` with `n >= 1`; returns `n`.
pub fn check_batch(what: &str, x: &Tensor<2>, dim: usize) -> Result<usize> {
    let [n, d] = x.dims();
    if n == 0 || d != dim {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: format!("[n >= 1, {dim}]"),
            got: vec![n, d],
        });
    }
    Ok(n)
}

/// The first non-finite entry of a row-major `[n, d]` buffer, as `(row, column, value)`.
pub fn first_non_finite(values: &[f32], d: usize) -> Option<(usize, usize, f32)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i / d.max(1), i % d.max(1), values[i]))
}

/// Checks that every entry of `x` is finite (one host copy).
pub fn check_finite(what: &str, x: &Tensor<2>) -> Result<()> {
    host_checked(what, x).map(|_| ())
}

/// The host copy of `x` (row-major), after checking that every entry is finite: for callers that
/// need both the check and the values.
pub fn host_checked(what: &str, x: &Tensor<2>) -> Result<Vec<f32>> {
    let [_, d] = x.dims();
    let host = to_host2(x);
    match first_non_finite(&host, d) {
        None => Ok(host),
        Some((row, column, value)) => Err(Error::NonFinite {
            what: what.to_string(),
            row,
            column,
            value,
        }),
    }
}

/// Row-wise squared norm: `[n, d] -> [n]`.
pub fn row_sq_norm(x: Tensor<2>) -> Tensor<1> {
    x.square().sum_dim(1).squeeze_dim(1)
}

/// Row-wise dot product: `[n, d] x [n, d] -> [n]`.
pub fn row_dot(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a * b).sum_dim(1).squeeze_dim(1)
}

/// Row-wise log-sum-exp of `[n, k] -> [n]` (burn has no `logsumexp`).
pub fn logsumexp_rows(x: Tensor<2>) -> Tensor<1> {
    let max = x.clone().max_dim(1).detach();
    let shifted = (x - max.clone()).exp().sum_dim(1).log() + max;
    shifted.squeeze_dim(1)
}

/// A `[1, d]` row tensor from host values.
pub fn row(values: &[f64], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    from_host2(v, [1, values.len()], device)
}

/// A `[r, c]` tensor from host values given row by row.
pub fn matrix(rows: &[Vec<f64>], device: &Device) -> Tensor<2> {
    let r = rows.len();
    let c = rows.first().map_or(0, |x| x.len());
    let v: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
    from_host2(v, [r, c], device)
}
