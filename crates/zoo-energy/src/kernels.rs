//! Host (CPU) building blocks of the fused kernels: one dense layer as plain `f32` buffers, its
//! forward pass, its backward passes (to the input and to the weights) through the `gemm` crate,
//! and vectorisable activations. Used by the fused MLP energy (`energy::FusedMlpEnergy`) and the
//! fused flow trainer of `zoo-flow`.

use crate::energy::Activation;

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
    // SAFETY: z is m x n, input m x k, weight k x n, all row-major with the strides given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            z.as_mut_ptr(),
            1,
            n as isize,
            true,
            input.as_ptr(),
            1,
            k as isize,
            layer.weight.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
    // SAFETY: out is m x k; delta m x n; W^T is W (k x n, row-major) read with swapped strides.
    unsafe {
        gemm::gemm(
            m,
            k,
            n,
            out.as_mut_ptr(),
            1,
            k as isize,
            false,
            delta.as_ptr(),
            1,
            n as isize,
            layer.weight.as_ptr(),
            n as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
pub fn weight_grad(input: &[f32], delta: &[f32], gw: &mut [f32], gb: &mut [f32], m: usize, k: usize, n: usize) {
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
    // SAFETY: gw is k x n; input^T is input (m x k, row-major) read with swapped strides; delta m x n.
    unsafe {
        gemm::gemm(
            k,
            n,
            m,
            gw.as_mut_ptr(),
            1,
            n as isize,
            true,
            input.as_ptr(),
            k as isize,
            1,
            delta.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
