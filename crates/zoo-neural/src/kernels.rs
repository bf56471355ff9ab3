//! Host (CPU) building blocks of the fused kernels: one dense layer as plain `f32` buffers, its
//! forward pass, its backward passes (to the input and to the weights) through the `gemm` crate,
//! vectorisable activations, a host MLP and Adam. Used by the fused MLP energy
//! (`energy::FusedMlpEnergy`), the fused flow trainer of `zoo-flow` and the fused denoising
//! score-matching trainer of `zoo-diffusion`.

use crate::Activation;

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
            const SLOPE: f32 = crate::LEAKY_SLOPE as f32;
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

/// Adam on host buffers with burn's formula (bias-corrected moments, epsilon 1e-5 scaled as
/// burn does, betas 0.9 / 0.999), after clipping each parameter tensor's gradient to norm `clip`
/// as burn's norm clipping does. Shared by the fused trainers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostAdam {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: i32,
}

impl HostAdam {
    /// State for parameter tensors of the given sizes, in the order `step` will visit them.
    pub fn new(sizes: impl IntoIterator<Item = usize>) -> Self {
        let (m, v) = sizes
            .into_iter()
            .map(|n| (vec![0.0; n], vec![0.0; n]))
            .unzip();
        Self { m, v, step: 0 }
    }

    /// Zeroed gradient buffers, one per parameter tensor.
    pub fn zero_grads(&self) -> Vec<Vec<f32>> {
        self.m.iter().map(|m| vec![0.0; m.len()]).collect()
    }

    /// One step on `params` (the tensors in the order given to [`HostAdam::new`]).
    pub fn step<'a>(
        &mut self,
        params: impl IntoIterator<Item = &'a mut Vec<f32>>,
        grads: &mut [Vec<f32>],
        lr: f64,
        clip: Option<f64>,
    ) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-5;
        self.step += 1;
        let t = self.step;
        let c1 = 1.0 - B1.powi(t);
        let c2 = (1.0 - B2.powi(t)).sqrt();
        let factor = lr as f32 * c2 / c1;
        for (k, param) in params.into_iter().enumerate() {
            let g = &mut grads[k];
            if let Some(c) = clip {
                let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
                let coef = (c as f32 / (norm + f32::MIN_POSITIVE)).min(1.0);
                g.iter_mut().for_each(|v| *v *= coef);
            }
            let (mm, vv) = (&mut self.m[k], &mut self.v[k]);
            for (((p, gi), mi), vi) in param
                .iter_mut()
                .zip(g.iter())
                .zip(mm.iter_mut())
                .zip(vv.iter_mut())
            {
                *mi = B1 * *mi + (1.0 - B1) * gi;
                *vi = B2 * *vi + (1.0 - B2) * gi * gi;
                *p -= factor * *mi / (vi.sqrt() + EPS * c2);
            }
        }
    }
}

/// An MLP on the host (activation between layers, linear output) with a forward pass that keeps
/// its tape and a backward pass to the weights.
#[derive(Debug, Clone)]
pub struct HostMlp {
    /// The layers, input to output.
    pub layers: Vec<HostLayer>,
    /// Activation after every layer but the last.
    pub activation: Activation,
}

/// What [`HostMlp::backward`] needs from [`HostMlp::forward`]: every layer's input and the
/// activation derivatives.
#[derive(Debug)]
pub struct HostTape {
    inputs: Vec<Vec<f32>>,
    derivs: Vec<Vec<f32>>,
}

/// Writes host layers into burn `Linear`s (each on its own device).
pub fn write_layers(host: &[HostLayer], layers: &mut [burn::nn::Linear]) {
    for (lin, h) in layers.iter_mut().zip(host) {
        let device = lin.weight.device();
        *lin = crate::nn::linear_from_host(h.weight.clone(), h.bias.clone(), &device);
    }
}

impl HostLayer {
    /// The host copy of a burn `Linear` (weight `[in, out]`; a missing bias is zero).
    pub fn from_linear(linear: &burn::nn::Linear) -> Self {
        let [fan_in, fan_out] = linear.weight.dims();
        Self {
            fan_in,
            fan_out,
            weight: zoo_energy::tensor::to_host2(&linear.weight.val()),
            bias: linear.bias.as_ref().map_or(vec![0.0; fan_out], |b| {
                zoo_energy::tensor::to_host1(&b.val())
            }),
        }
    }
}

impl HostTape {
    /// The input of layer `l` as recorded (for `l > 0`, the activated output of layer `l - 1`:
    /// the penultimate features when `l` is the last layer).
    pub fn layer_input(&self, l: usize) -> &[f32] {
        &self.inputs[l]
    }
}

impl HostMlp {
    /// The host copy of an [`crate::nn::Mlp`].
    pub fn from_mlp(mlp: &crate::nn::Mlp) -> Self {
        Self {
            layers: mlp.layers.iter().map(HostLayer::from_linear).collect(),
            activation: mlp.activation,
        }
    }

    /// Writes these weights into `layers` (burn `Linear`s on their own device).
    pub fn write_into(&self, layers: &mut [burn::nn::Linear]) {
        write_layers(&self.layers, layers);
    }

    /// Sizes of the parameter tensors, weight then bias of every layer.
    pub fn parameter_sizes(&self) -> Vec<usize> {
        self.layers
            .iter()
            .flat_map(|l| [l.weight.len(), l.bias.len()])
            .collect()
    }

    /// Zeroed gradient buffers, one per parameter tensor in [`HostMlp::parameter_sizes`] order.
    pub fn zero_grads(&self) -> Vec<Vec<f32>> {
        self.parameter_sizes()
            .into_iter()
            .map(|n| vec![0.0; n])
            .collect()
    }

    /// The parameter tensors in [`HostMlp::parameter_sizes`] order.
    pub fn parameters_mut(&mut self) -> impl Iterator<Item = &mut Vec<f32>> {
        self.layers
            .iter_mut()
            .flat_map(|l| [&mut l.weight, &mut l.bias])
    }

    /// The output for `m` rows of `x`, and the tape.
    pub fn forward(&self, x: &[f32], m: usize) -> (Vec<f32>, HostTape) {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut derivs = Vec::with_capacity(self.layers.len().saturating_sub(1));
        let mut h = x.to_vec();
        let last = self.layers.len() - 1;
        for (l, lin) in self.layers.iter().enumerate() {
            let mut z = vec![0f32; m * lin.fan_out];
            affine(lin, &h, &mut z, m);
            inputs.push(std::mem::take(&mut h));
            if l < last {
                let mut dz = vec![0f32; m * lin.fan_out];
                activate(self.activation, &mut z, &mut dz);
                derivs.push(dz);
            }
            h = z;
        }
        (h, HostTape { inputs, derivs })
    }

    /// Accumulates the weight and bias gradients (in [`HostMlp::parameter_sizes`] order) of
    /// sum_rows <delta_out, output> into `grads`, for the rows the tape was recorded on.
    pub fn backward(&self, tape: &HostTape, delta_out: Vec<f32>, grads: &mut [Vec<f32>], m: usize) {
        let mut delta = delta_out;
        for l in (0..self.layers.len()).rev() {
            let lin = &self.layers[l];
            let (gw, rest) = grads[2 * l..].split_at_mut(1);
            weight_grad(
                &tape.inputs[l],
                &delta,
                &mut gw[0],
                &mut rest[0],
                m,
                lin.fan_in,
                lin.fan_out,
            );
            if l > 0 {
                let mut prev = vec![0f32; m * lin.fan_in];
                backprop(lin, &delta, &mut prev, m);
                for (p, dv) in prev.iter_mut().zip(&tape.derivs[l - 1]) {
                    *p *= dv;
                }
                delta = prev;
            }
        }
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
