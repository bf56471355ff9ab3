//! Host (CPU) building blocks of the fused kernels: one dense layer as plain `f32` buffers, its
//! forward pass, its backward passes (to the input and to the weights) through the `gemm` crate,
//! and vectorisable activations. Used by the fused MLP energy (`energy::FusedMlpEnergy`) and the
//! fused flow trainer of `zoo-flow`.

use crate::energy::Activation;

/// dst (+)= lhs x rhs for `[m, n, k]` = (rows of dst, columns of dst, inner size), each operand
/// given as (buffer, column stride, row stride); with `accumulate` the product is added to dst.
/// Single-threaded: the callers parallelise over blocks of rows.
#[inline(always)]
fn sgemm(
    [m, n, k]: [usize; 3],
    dst: (&mut [f32], isize, isize),
    accumulate: bool,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
) {
    let reach = |cs: isize, rs: isize, rows: usize, cols: usize| {
        (rows.saturating_sub(1) as isize * rs + cols.saturating_sub(1) as isize * cs) as usize
    };
    assert!(
        reach(dst.1, dst.2, m, n) < dst.0.len()
            && reach(lhs.1, lhs.2, m, k) < lhs.0.len()
            && reach(rhs.1, rhs.2, k, n) < rhs.0.len(),
        "sgemm operands too small for [{m}, {n}, {k}]"
    );
    // SAFETY: every element the product reads or writes lies inside its buffer (checked above,
    // strides are non-negative), and dst does not alias lhs or rhs (a `&mut` borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0.as_mut_ptr(),
            dst.1,
            dst.2,
            accumulate,
            lhs.0.as_ptr(),
            lhs.1,
            lhs.2,
            rhs.0.as_ptr(),
            rhs.1,
            rhs.2,
            if accumulate { 1.0f32 } else { 0.0f32 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A dense layer on the host: `z = x W + b`.
#[derive(Debug, Clone)]
pub struct HostLayer {
    /// Input width.
    pub fan_in: usize,
    /// Output width.
    pub fan_out: usize,
    /// `[fan_in, fan_out]`, row-major.
    pub weight: Vec<f32>,
    /// `[fan_out]`.
    pub bias: Vec<f32>,
}

/// z = input W + b for `m` rows.
#[inline(always)]
pub fn affine(layer: &HostLayer, input: &[f32], z: &mut [f32], m: usize) {
    let (k, n) = (layer.fan_in, layer.fan_out);
    for r in 0..m {
        z[r * n..(r + 1) * n].copy_from_slice(&layer.bias);
    }
    if k <= 4 {
        // Tiny fan-in (the input layer of a 2-D energy): a GEMM call costs more than the loop.
        for r in 0..m {
            let zr = &mut z[r * n..(r + 1) * n];
            for i in 0..k {
                let xi = input[r * k + i];
                for (zj, wj) in zr.iter_mut().zip(&layer.weight[i * n..(i + 1) * n]) {
                    *zj += xi * wj;
                }
            }
        }
        return;
    }
    sgemm(
        [m, n, k],
        (z, 1, n as isize),
        true,
        (input, 1, k as isize),
        (&layer.weight, 1, n as isize),
    );
}

/// out = delta W^T for `m` rows: `[m, fan_out] x [fan_out, fan_in]`.
#[inline(always)]
pub fn backprop(layer: &HostLayer, delta: &[f32], out: &mut [f32], m: usize) {
    let (k, n) = (layer.fan_in, layer.fan_out);
    if k <= 4 {
        for r in 0..m {
            let dr = &delta[r * n..(r + 1) * n];
            for i in 0..k {
                out[r * k + i] = dot(dr, &layer.weight[i * n..(i + 1) * n]);
            }
        }
        return;
    }
    sgemm(
        [m, k, n],
        (out, 1, k as isize),
        false,
        (delta, 1, n as isize),
        (&layer.weight, n as isize, 1),
    );
}

/// In place: z <- act(z), and deriv <- act'(z).
#[inline(always)]
pub fn activate(activation: Activation, z: &mut [f32], deriv: &mut [f32]) {
    match activation {
        Activation::Silu => silu(z, deriv),
        Activation::Softplus => {
            for (zi, di) in z.iter_mut().zip(deriv.iter_mut()) {
                let s = 1.0 / (1.0 + (-*zi).exp());
                *di = s;
                *zi = if *zi > 20.0 { *zi } else { zi.exp().ln_1p() };
            }
        }
        Activation::Tanh => {
            for (zi, di) in z.iter_mut().zip(deriv.iter_mut()) {
                let t = zi.tanh();
                *di = 1.0 - t * t;
                *zi = t;
            }
        }
        Activation::LeakyRelu => {
            const SLOPE: f32 = crate::energy::LEAKY_SLOPE as f32;
            for (zi, di) in z.iter_mut().zip(deriv.iter_mut()) {
                *di = if *zi > 0.0 { 1.0 } else { SLOPE };
                *zi *= *di;
            }
        }
    }
}

/// SiLU and its derivative, branch-free so that it vectorises: s = sigmoid(z), h = z s,
/// h' = s + h (1 - s).
#[inline(always)]
pub fn silu(z: &mut [f32], deriv: &mut [f32]) {
    for (zi, di) in z.iter_mut().zip(deriv.iter_mut()) {
        let s = 1.0 / (1.0 + exp_approx(-*zi));
        let h = *zi * s;
        *di = s + h * (1.0 - s);
        *zi = h;
    }
}

/// e^x for f32 with relative error below 2e-7 on the clamped range [-87, 88]: Cody-Waite range
/// reduction x = k ln 2 + r, a degree-6 Taylor/minimax polynomial for e^r on |r| <= ln2/2, and
/// 2^k assembled in the exponent bits. Written without branches or calls so that it vectorises.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND; // = ROUND + k exactly, k = round(x log2 e) in [-126, 127]
    let k = t - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^k from the integer in t's mantissa: bits(t) - bits(ROUND) = k. Integer arithmetic only (a
    // float-to-int cast is saturating in Rust and would not vectorise).
    let biased = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// Sum of a[i] b[i] with 16 independent accumulators, so that it vectorises (a sequential float
/// sum cannot be reordered by the compiler).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Accumulates the weight and bias gradients of a layer over `m` rows:
/// `gw += input^T delta` (`[k, m] x [m, n]`) and `gb += column sums of delta`.
#[inline(always)]
pub fn weight_grad(
    input: &[f32],
    delta: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    for r in 0..m {
        for (g, d) in gb.iter_mut().zip(&delta[r * n..(r + 1) * n]) {
            *g += d;
        }
    }
    if k <= 4 {
        for r in 0..m {
            let dr = &delta[r * n..(r + 1) * n];
            for i in 0..k {
                let xi = input[r * k + i];
                for (g, d) in gw[i * n..(i + 1) * n].iter_mut().zip(dr) {
                    *g += xi * d;
                }
            }
        }
        return;
    }
    sgemm(
        [k, n, m],
        (gw, 1, n as isize),
        true,
        (input, k as isize, 1),
        (delta, 1, n as isize),
    );
}

#[cfg(test)]
mod tests {
    use super::exp_approx;

    #[test]
    fn exp_approx_is_accurate_over_the_range() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let exact = (x as f64).exp();
            worst = worst.max(((exp_approx(x) as f64) - exact).abs() / exact);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }
}
