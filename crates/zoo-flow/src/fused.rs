//! A fused host trainer for coupling flows (RealNVP, NICE) and MAF with MLP (MADE) conditioners,
//! with or without actnorm layers (Glow) and permutations: the forward pass, the hand-written backward pass and Adam run on `f32` buffers with the shared `gemm`
//! kernels, the minibatch split into blocks of 32 to 256 rows processed in parallel (rayon), no autodiff tape.
//! Same mathematics as the burn path ([`crate::fit_max_likelihood`] falls back to it for every
//! other flow, and on GPUs); tests check its loss and gradients against burn's autodiff.
//!
//! Backward of one affine coupling, z_b = x_b e^s + t, s = c tanh(r / c), with g = dL/dz:
//! dL/dx_b = g e^s, dL/dt = g, dL/dr = (g x_b e^s + dL/dlogdet) (1 - (s/c)^2), and the
//! conditioner's input gradient added to dL/dx_a; dL/dlogdet = -1/B for the loss
//! mean(-log q) = mean(|z|^2 / 2 + (d/2) log 2 pi - log|det J|).
//!
//! Backward of an actnorm, z = (x - loc) e^(-s), log|det J| = -sum s: dL/dx = g e^(-s),
//! dL/dloc = -sum_rows g e^(-s), dL/ds = -sum_rows g z - B dL/dlogdet.

use crate::elementwise::Elementwise;
use crate::flow::Flow;
use crate::layers::Layer;
use burn::module::Param;
use rayon::prelude::*;
use zoo_energy::tensor::{from_host1, to_host1, to_host2};
use zoo_neural::Activation;
use zoo_neural::kernels::{
    HostAdam, HostLayer, activate, affine, backprop, weight_grad, write_layers,
};

/// Rows per parallel block at most (a block's activations stay in L2) and at least.
const MAX_BLOCK: usize = 256;
const MIN_BLOCK: usize = 32;

/// An affine or additive transform of the columns `trans` whose parameters an MLP computes from
/// the columns `cond`: a coupling (disjoint column sets) or a MAF layer in its parallel, density
/// direction (every column both; MADE's masks on the weights, and on their gradients).
#[derive(Debug, Clone)]
struct HostCoupling {
    net: Vec<HostLayer>,
    /// One mask per layer, the shape of its weight (MAF), or none (coupling).
    masks: Vec<Vec<f32>>,
    activation: Activation,
    map: Elementwise,
    cond: std::ops::Range<usize>,
    trans: std::ops::Range<usize>,
}

impl HostCoupling {
    /// The conditioner's forward pass on the conditioning columns of `h` (`m x dim`): its
    /// output and the tape (layer inputs, activation derivatives).
    fn conditioner(&self, h: &[f32], dim: usize) -> (Vec<f32>, Tape) {
        let m = h.len() / dim;
        let ca = self.cond.clone();
        let ma = ca.len();
        let mut cond = vec![0f32; m * ma];
        for r in 0..m {
            cond[r * ma..(r + 1) * ma].copy_from_slice(&h[r * dim + ca.start..r * dim + ca.end]);
        }
        let mut hidden: Vec<Vec<f32>> = Vec::new();
        let mut deriv: Vec<Vec<f32>> = Vec::new();
        let (last, inner) = self.net.split_last().expect("a conditioner has layers");
        for (l, lin) in inner.iter().enumerate() {
            let input: &[f32] = if l == 0 { &cond } else { &hidden[l - 1] };
            let mut z = vec![0f32; m * lin.fan_out];
            affine(lin, input, &mut z, m);
            let mut dz = vec![0f32; m * lin.fan_out];
            activate(self.activation, &mut z, &mut dz);
            hidden.push(z);
            deriv.push(dz);
        }
        let top: &[f32] = if inner.is_empty() {
            &cond
        } else {
            &hidden[inner.len() - 1]
        };
        let mut out = vec![0f32; m * last.fan_out];
        affine(last, top, &mut out, m);
        let tape = Tape {
            input: h.to_vec(),
            cond,
            hidden,
            deriv,
            scale: Vec::new(),
            tanh: Vec::new(),
        };
        (out, tape)
    }

    /// Couples `h` in place (additive: x_b + t; affine: x_b e^s + t with s = c tanh(o / c)),
    /// adding log|det J| to `log_det`; returns the tape of the backward pass.
    fn forward(&self, h: &mut [f32], log_det: &mut [f32], d: usize) -> Tape {
        let m = h.len() / d;
        let cb = self.trans.clone();
        let mb = cb.len();
        let (out, mut tape) = self.conditioner(h, d);
        match self.map {
            Elementwise::Additive => {
                for r in 0..m {
                    for j in 0..mb {
                        h[r * d + cb.start + j] += out[r * mb + j];
                    }
                }
            }
            Elementwise::Affine { max_log_scale } => {
                let c = max_log_scale as f32;
                tape.scale = vec![0f32; m * mb];
                tape.tanh = vec![0f32; m * mb];
                for r in 0..m {
                    for j in 0..mb {
                        let th = (out[r * 2 * mb + 2 * j] / c).tanh();
                        let s = c * th;
                        let e = s.exp();
                        let k = r * d + cb.start + j;
                        h[k] = h[k] * e + out[r * 2 * mb + 2 * j + 1];
                        log_det[r] += s;
                        tape.scale[r * mb + j] = e;
                        tape.tanh[r * mb + j] = th;
                    }
                }
            }
            Elementwise::Spline { .. } => unreachable!("checked in from_flow"),
        }
        tape
    }

    /// Back through the coupling: `g` (dL/d output, `m x d`) becomes dL/d input, and the
    /// conditioner's weight and bias gradients go into `grads` (this layer's, in order).
    fn backward(&self, tape: &Tape, g: &mut [f32], grads: &mut [Vec<f32>], d: usize, scale: f32) {
        let m = g.len() / d;
        let (ca, cb) = (self.cond.clone(), self.trans.clone());
        let (ma, mb) = (ca.len(), cb.len());
        let nl = self.net.len();
        let mut dout = vec![0f32; m * self.net[nl - 1].fan_out];
        match self.map {
            Elementwise::Additive => {
                for r in 0..m {
                    for j in 0..mb {
                        dout[r * mb + j] = g[r * d + cb.start + j];
                    }
                }
            }
            Elementwise::Affine { .. } => {
                for r in 0..m {
                    for j in 0..mb {
                        let k = r * d + cb.start + j;
                        let e = tape.scale[r * mb + j];
                        let th = tape.tanh[r * mb + j];
                        let gz = g[k];
                        let ds = gz * tape.input[k] * e - scale;
                        dout[r * 2 * mb + 2 * j] = ds * (1.0 - th * th);
                        dout[r * 2 * mb + 2 * j + 1] = gz;
                        g[k] = gz * e;
                    }
                }
            }
            Elementwise::Spline { .. } => unreachable!("checked in from_flow"),
        }
        let delta = self.conditioner_backward(tape, dout, grads, m);
        for r in 0..m {
            for i in 0..ma {
                g[r * d + ca.start + i] += delta[r * ma + i];
            }
        }
    }

    /// The conditioner's backward pass, last layer first: weight gradients into `grads`, and
    /// dL/d(conditioning columns) returned.
    fn conditioner_backward(
        &self,
        tape: &Tape,
        dout: Vec<f32>,
        grads: &mut [Vec<f32>],
        m: usize,
    ) -> Vec<f32> {
        let mut delta = dout;
        for l in (0..self.net.len()).rev() {
            let lin = &self.net[l];
            let input: &[f32] = if l == 0 {
                &tape.cond
            } else {
                &tape.hidden[l - 1]
            };
            let (gw, rest) = grads[2 * l..].split_at_mut(1);
            let (k, n) = (lin.fan_in, lin.fan_out);
            weight_grad(input, &delta, &mut gw[0], &mut rest[0], m, k, n);
            if let Some(mask) = self.masks.get(l) {
                gw[0].iter_mut().zip(mask).for_each(|(g, m)| *g *= m);
            }
            let mut prev = vec![0f32; m * lin.fan_in];
            backprop(lin, &delta, &mut prev, m);
            if l > 0 {
                for (p, dv) in prev.iter_mut().zip(&tape.deriv[l - 1]) {
                    *p *= dv;
                }
            }
            delta = prev;
        }
        delta
    }
}

/// An actnorm on the host: location and log-scale, `[d]` each.
#[derive(Debug, Clone)]
struct HostActNorm {
    loc: Vec<f32>,
    log_scale: Vec<f32>,
}

impl HostActNorm {
    /// z = (x - loc) e^(-s) in place, log|det J| = -sum s added to `log_det`; returns z.
    fn forward(&self, h: &mut [f32], log_det: &mut [f32], d: usize) -> Vec<f32> {
        let inv: Vec<f32> = self.log_scale.iter().map(|s| (-s).exp()).collect();
        let total: f32 = self.log_scale.iter().sum();
        for (row, ld) in h.chunks_exact_mut(d).zip(log_det.iter_mut()) {
            for ((v, loc), inv) in row.iter_mut().zip(&self.loc).zip(&inv) {
                *v = (*v - loc) * inv;
            }
            *ld -= total;
        }
        h.to_vec()
    }

    /// Back through the actnorm: `g` becomes dL/dx; dL/dloc and dL/ds go into `grads[0..2]`.
    fn backward(&self, z: &[f32], g: &mut [f32], grads: &mut [Vec<f32>], d: usize, scale: f32) {
        let inv: Vec<f32> = self.log_scale.iter().map(|s| (-s).exp()).collect();
        let (gl, gs) = grads.split_at_mut(1);
        for (zr, gr) in z.chunks_exact(d).zip(g.chunks_exact_mut(d)) {
            for j in 0..d {
                gl[0][j] -= gr[j] * inv[j];
                gs[0][j] += scale - gr[j] * zr[j];
                gr[j] *= inv[j];
            }
        }
    }
}

/// One layer of the fused flow.
#[derive(Debug, Clone)]
enum HostFlowLayer {
    /// A coupling or a MAF layer.
    Coupling(HostCoupling),
    ActNorm(HostActNorm),
    /// z_i = x_{perm[i]}.
    Permutation(Vec<usize>),
}

impl HostFlowLayer {
    /// The layer's parameter tensors, in the order of its gradients.
    fn params_mut(&mut self) -> Vec<&mut Vec<f32>> {
        match self {
            Self::Coupling(c) => (c.net.iter_mut())
                .flat_map(|lin| [&mut lin.weight, &mut lin.bias])
                .collect(),
            Self::ActNorm(a) => vec![&mut a.loc, &mut a.log_scale],
            Self::Permutation(_) => Vec::new(),
        }
    }

    /// The sizes of its parameter tensors.
    fn sizes(&self) -> Vec<usize> {
        match self {
            Self::Coupling(c) => (c.net.iter())
                .flat_map(|h| [h.weight.len(), h.bias.len()])
                .collect(),
            Self::ActNorm(a) => vec![a.loc.len(), a.log_scale.len()],
            Self::Permutation(_) => Vec::new(),
        }
    }

    /// The host copy of one layer of an unconditional flow, if the fused trainer has it.
    fn from_layer(layer: &Layer, dim: usize) -> Option<Self> {
        Some(match layer {
            Layer::Coupling(c) if !matches!(c.map, Elementwise::Spline { .. }) => {
                let (a, b) = (0..c.split, c.split..dim);
                let (cond, trans) = if c.condition_on_first { (a, b) } else { (b, a) };
                Self::Coupling(HostCoupling {
                    net: c.net.layers.iter().map(HostLayer::from_linear).collect(),
                    masks: Vec::new(),
                    activation: c.net.activation,
                    map: c.map,
                    cond,
                    trans,
                })
            }
            Layer::Autoregressive(l)
                if !l.inverted && !matches!(l.map, Elementwise::Spline { .. }) =>
            {
                let masks: Vec<Vec<f32>> = l.net.masks.iter().map(to_host2).collect();
                let mut net: Vec<HostLayer> =
                    l.net.layers.iter().map(HostLayer::from_linear).collect();
                for (lin, mask) in net.iter_mut().zip(&masks) {
                    lin.weight.iter_mut().zip(mask).for_each(|(w, m)| *w *= m);
                }
                Self::Coupling(HostCoupling {
                    net,
                    masks,
                    activation: l.net.activation,
                    map: l.map,
                    cond: 0..dim,
                    trans: 0..dim,
                })
            }
            Layer::ActNorm(a) => Self::ActNorm(HostActNorm {
                loc: to_host1(&a.loc.val()),
                log_scale: to_host1(&a.log_scale.val()),
            }),
            Layer::Permutation(p) => Self::Permutation(p.perm.clone()),
            _ => return None,
        })
    }

    /// Writes the host parameters into the flow's layer.
    fn write_back(&self, layer: &mut Layer) {
        match (layer, self) {
            (Layer::Coupling(c), Self::Coupling(h)) => write_layers(&h.net, &mut c.net.layers),
            (Layer::Autoregressive(l), Self::Coupling(h)) => {
                write_layers(&h.net, &mut l.net.layers)
            }
            (Layer::ActNorm(a), Self::ActNorm(h)) => {
                let device = a.loc.device();
                let vector = |v: &[f32]| Param::from_tensor(from_host1(v.to_vec(), &device));
                a.loc = vector(&h.loc);
                a.log_scale = vector(&h.log_scale);
            }
            (Layer::Permutation(_), Self::Permutation(_)) => {}
            _ => unreachable!("the host layers mirror the flow's (from_flow)"),
        }
    }

    /// The forward pass of a block, in place, with what the backward pass needs.
    fn forward(&self, h: &mut [f32], log_det: &mut [f32], d: usize) -> LayerTape {
        match self {
            Self::Coupling(c) => LayerTape::Coupling(c.forward(h, log_det, d)),
            Self::ActNorm(a) => LayerTape::ActNorm(a.forward(h, log_det, d)),
            Self::Permutation(perm) => {
                for row in h.chunks_exact_mut(d) {
                    let x = row.to_vec();
                    row.iter_mut().zip(perm).for_each(|(z, &p)| *z = x[p]);
                }
                LayerTape::Permutation
            }
        }
    }

    /// Back through the layer: `g` becomes dL/d input; parameter gradients into `grads`.
    fn backward(
        &self,
        tape: LayerTape,
        g: &mut [f32],
        grads: &mut [Vec<f32>],
        d: usize,
        scale: f32,
    ) {
        match (self, tape) {
            (Self::Coupling(c), LayerTape::Coupling(t)) => c.backward(&t, g, grads, d, scale),
            (Self::ActNorm(a), LayerTape::ActNorm(z)) => a.backward(&z, g, grads, d, scale),
            (Self::Permutation(perm), LayerTape::Permutation) => {
                for row in g.chunks_exact_mut(d) {
                    let gz = row.to_vec();
                    perm.iter().zip(gz).for_each(|(&p, v)| row[p] = v);
                }
            }
            _ => unreachable!("one tape per layer, in order"),
        }
    }
}

/// What a layer's backward pass needs from its forward pass.
enum LayerTape {
    Coupling(Tape),
    /// The actnorm's output.
    ActNorm(Vec<f32>),
    Permutation,
}

/// The flow's parameters on the host, with Adam's state.
#[derive(Debug, Clone)]
pub(crate) struct FusedCouplingFlow {
    layers: Vec<HostFlowLayer>,
    dim: usize,
    adam: HostAdam,
}

/// Per-block buffers of one coupling layer's forward pass.
struct Tape {
    input: Vec<f32>,
    cond: Vec<f32>,
    hidden: Vec<Vec<f32>>,
    deriv: Vec<Vec<f32>>,
    scale: Vec<f32>,
    tanh: Vec<f32>,
}

impl FusedCouplingFlow {
    /// The host copy of `flow`, if every layer is an additive or affine coupling, a MAF layer, an
    /// actnorm or a permutation and the flow is unconditional; `None` otherwise (the caller then
    /// uses the burn path: splines, LU layers, IAF, context).
    pub(crate) fn from_flow(flow: &Flow) -> Option<Self> {
        if flow.context > 0 {
            return None;
        }
        let layers = (flow.layers.iter())
            .map(|l| HostFlowLayer::from_layer(l, flow.dim))
            .collect::<Option<Vec<_>>>()?;
        let sizes: Vec<usize> = layers.iter().flat_map(HostFlowLayer::sizes).collect();
        Some(Self {
            layers,
            dim: flow.dim,
            adam: HostAdam::new(sizes),
        })
    }

    /// Copies the parameters back into `flow` (on the flow's device).
    pub(crate) fn write_back(&self, flow: &mut Flow) {
        for (layer, host) in flow.layers.iter_mut().zip(&self.layers) {
            host.write_back(layer);
        }
    }

    /// Zeroed gradient buffers in parameter order.
    fn zero_grads(&self) -> Vec<Vec<f32>> {
        self.adam.zero_grads()
    }

    /// Loss mean(-log q(x)) over the `rows x dim` batch `x` and its gradient (parameter order:
    /// layer by layer, weight then bias of every conditioner layer).
    pub(crate) fn loss_and_grad(&self, x: &[f32]) -> (f64, Vec<Vec<f32>>) {
        let d = self.dim;
        let rows = x.len() / d;
        let scale = 1.0 / rows as f32;
        let block = rows
            .div_ceil(rayon::current_num_threads())
            .clamp(MIN_BLOCK, MAX_BLOCK);
        let parts: Vec<(f64, Vec<Vec<f32>>)> = x
            .par_chunks(block * d)
            .map(|block| self.block(block, scale))
            .collect();
        let mut grads = self.zero_grads();
        let mut loss = 0.0;
        for (l, g) in parts {
            loss += l;
            for (acc, part) in grads.iter_mut().zip(g) {
                for (a, p) in acc.iter_mut().zip(part) {
                    *a += p;
                }
            }
        }
        (loss, grads)
    }

    /// Forward and backward over one block; the loss is already divided by the batch size.
    fn block(&self, x: &[f32], scale: f32) -> (f64, Vec<Vec<f32>>) {
        let d = self.dim;
        let m = x.len() / d;
        let mut grads = self.zero_grads();
        let mut h = x.to_vec();
        let mut log_det = vec![0f32; m];
        let tapes: Vec<LayerTape> = (self.layers.iter())
            .map(|layer| layer.forward(&mut h, &mut log_det, d))
            .collect();
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mut loss = 0.0f64;
        for r in 0..m {
            let sq: f64 = h[r * d..(r + 1) * d]
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum();
            loss += 0.5 * sq + d as f64 * half_log_2pi - f64::from(log_det[r]);
        }
        // Backward: g = dL/dz = z / B.
        let mut g: Vec<f32> = h.iter().map(|v| v * scale).collect();
        let mut offset = grads.len();
        for (layer, tape) in self.layers.iter().zip(tapes).rev() {
            offset -= layer.sizes().len();
            layer.backward(tape, &mut g, &mut grads[offset..], d, scale);
        }
        (loss * f64::from(scale), grads)
    }

    /// The Adam moments and step count (for checkpoints).
    pub(crate) fn adam(&self) -> &HostAdam {
        &self.adam
    }

    /// The Adam state, to restore it from a checkpoint.
    pub(crate) fn adam_mut(&mut self) -> &mut HostAdam {
        &mut self.adam
    }

    /// One Adam step ([`HostAdam`], burn's formula and norm clipping).
    pub(crate) fn adam_step(&mut self, mut grads: Vec<Vec<f32>>, lr: f64, clip: Option<f64>) {
        let params = self.layers.iter_mut().flat_map(HostFlowLayer::params_mut);
        self.adam.step(params, &mut grads, lr, clip);
    }
}

#[cfg(test)]
mod tests {
    use super::FusedCouplingFlow;
    use crate::flow::{FlowConfig, FlowKind};
    use crate::layers::{Autoregressive, Coupling, Layer, MaskedMlp};
    use zoo_energy::tensor::{to_host1, to_host2};
    use zoo_energy::{BackendKind, seeded};
    use zoo_neural::Activation;
    use zoo_neural::nn::Mlp;

    /// The fused loss and every parameter gradient against burn's autodiff on the same flow, and
    /// a few gradient entries against central finite differences of the fused loss.
    #[test]
    fn fused_gradients_match_autodiff_and_finite_differences() {
        let device = BackendKind::compiled()
            .into_iter()
            .filter(|b| b.is_cpu())
            .find_map(|b| b.device().ok())
            .expect("the tests need a CPU backend (flex or ndarray)");
        let ad = device.clone().autodiff();
        for (kind, dim, activation, actnorm) in [
            (FlowKind::RealNvp, 3, Activation::Silu, false),
            (FlowKind::Nice, 2, Activation::Tanh, true),
            (FlowKind::RealNvp, 2, Activation::Softplus, true),
            (FlowKind::Maf, 3, Activation::Silu, true),
            (FlowKind::Maf, 2, Activation::Tanh, false),
        ] {
            let cfg = FlowConfig {
                dim,
                kind,
                layers: 3,
                hidden: vec![24, 20],
                activation,
                zero_init: false,
                max_log_scale: 1.5,
                actnorm,
                ..FlowConfig::default()
            };
            let mut flow = cfg.init(&mut seeded(5), &ad).unwrap();
            let mut rng = seeded(6);
            let rows = 300; // two blocks, the second partial
            let x = zoo_energy::rng::normal(&mut rng, [rows, dim], &device).mul_scalar(1.3);
            // Actnorms initialised on shifted data: locations and scales away from 0 and 1.
            flow.initialize_actnorm(x.clone().add_scalar(0.7).autodiff(), None);
            let host = FusedCouplingFlow::from_flow(&flow).unwrap();
            let (loss, grads) = host.loss_and_grad(&to_host2(&x));
            let burn_loss = flow
                .log_prob_unchecked(x.clone().autodiff(), None)
                .mean()
                .neg();
            let reference = f64::from(burn_loss.clone().into_scalar::<f32>());
            assert!(
                (loss - reference).abs() < 1e-5 * reference.abs().max(1.0),
                "{kind:?}: loss {loss} vs {reference}"
            );
            let autodiff = autodiff_gradients(&flow, &burn_loss.backward());
            assert_eq!(autodiff.len(), grads.len());
            for ((name, auto), fused) in autodiff.iter().zip(&grads) {
                let scale = auto.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                let err = auto
                    .iter()
                    .zip(fused)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= 2e-4 * scale,
                    "{kind:?}: {name} gradient off by {err} (scale {scale})"
                );
            }
            check_finite_differences(&host, &to_host2(&x), &grads, &format!("{kind:?}"));
        }
    }

    /// burn's parameter gradients of `flow`, in the fused flow's order (layer by layer; weight and
    /// bias of every conditioner layer, actnorm location and log-scale).
    fn autodiff_gradients(
        flow: &crate::flow::Flow,
        tape: &burn::tensor::Gradients,
    ) -> Vec<(&'static str, Vec<f32>)> {
        let grad1 = |p: &burn::module::Param<burn::prelude::Tensor<1>>| {
            to_host1(&p.grad(tape).unwrap().without_autodiff())
        };
        let mut out = Vec::new();
        for layer in &flow.layers {
            match layer {
                Layer::Coupling(Coupling {
                    net: Mlp { layers, .. },
                    ..
                })
                | Layer::Autoregressive(Autoregressive {
                    net: MaskedMlp { layers, .. },
                    ..
                }) => {
                    for lin in layers {
                        let gw = lin.weight.grad(tape).unwrap().without_autodiff();
                        out.push(("weight", to_host2(&gw)));
                        out.push(("bias", grad1(lin.bias.as_ref().unwrap())));
                    }
                }
                Layer::Permutation(_) => {}
                Layer::ActNorm(a) => {
                    out.push(("actnorm loc", grad1(&a.loc)));
                    out.push(("actnorm log-scale", grad1(&a.log_scale)));
                }
                _ => unreachable!("the fused flow has no other layers"),
            }
        }
        out
    }

    /// Central differences of the fused loss for the largest-gradient entry of the first four and
    /// the last two parameter tensors (with actnorms the first two are the first actnorm's).
    fn check_finite_differences(
        host: &FusedCouplingFlow,
        xs: &[f32],
        grads: &[Vec<f32>],
        what: &str,
    ) {
        for p in [0, 1, 2, 3, grads.len() - 2, grads.len() - 1] {
            let i = (0..grads[p].len())
                .max_by(|&a, &b| grads[p][a].abs().total_cmp(&grads[p][b].abs()))
                .unwrap();
            let h = 1e-2f32;
            let shifted = |delta: f32| {
                let mut h2 = host.clone();
                let mut params: Vec<&mut Vec<f32>> =
                    h2.layers.iter_mut().flat_map(|l| l.params_mut()).collect();
                params[p][i] += delta;
                h2.loss_and_grad(xs).0
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * f64::from(h));
            let g = f64::from(grads[p][i]);
            assert!(
                (fd - g).abs() <= 2e-2 * g.abs().max(1e-2),
                "{what}: parameter {p}[{i}]: fd {fd} vs {g}"
            );
        }
    }
}
