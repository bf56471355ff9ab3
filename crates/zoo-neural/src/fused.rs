//! The CPU fast path for MLP energies: energy and score of a block of particles in one fused pass.
//!
//! Why it exists (measured, see `docs/performance.md`): on the CPU backends each burn tensor op is a
//! full pass over a `[n, width]` activation, so an MLP score costs ~15 such passes per step and
//! the memory traffic, not the FLOPs, sets the speed. Here the particles are cut into blocks that
//! stay in cache; each block runs forward and the hand-written backward of
//! [`MlpEnergy::energy_and_score`](super::MlpEnergy) with two SGEMMs per hidden layer (the `gemm`
//! crate, which dispatches to AVX2/FMA or AVX-512 at run time) and one vectorised loop per layer for
//! the activation and its derivative. Blocks run in parallel with rayon.
//!
//! The maths is exactly that of `MlpEnergy` (tests compare both, and both against autodiff and
//! finite differences); only the schedule differs. It works on host memory, so on a GPU backend it
//! would be a round trip: use the tensor path there.

use crate::Activation;
use crate::kernels::{HostLayer, activate, affine, backprop, dot};
use burn::prelude::*;
use rayon::prelude::*;
use zoo_energy::Energy;
use zoo_energy::error::{Error, Result};
use zoo_energy::tensor::{from_host1, from_host2, to_host2};

/// An MLP energy evaluated on the host by a fused, cache-blocked kernel (see the module docs).
#[derive(Debug, Clone)]
pub struct FusedMlpEnergy {
    layers: Vec<HostLayer>,
    activation: Activation,
    block: usize,
}

/// Particles per block: two `[block, width]` buffers per hidden layer stay in L2.
const DEFAULT_BLOCK: usize = 128;

impl FusedMlpEnergy {
    /// From host weights `(W [fan_in x fan_out] row-major, b [fan_out])`, input to output.
    pub fn new(layers: Vec<(Vec<f32>, Vec<f32>)>, activation: Activation) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::invalid("widths", "an MLP needs at least one layer"));
        }
        let mut out = Vec::with_capacity(layers.len());
        let mut prev: Option<usize> = None;
        for (i, (weight, bias)) in layers.into_iter().enumerate() {
            let fan_out = bias.len();
            if fan_out == 0 || weight.len() % fan_out != 0 {
                return Err(Error::invalid(
                    "widths",
                    format!("layer {i}: weight and bias sizes disagree"),
                ));
            }
            let fan_in = weight.len() / fan_out;
            if prev.is_some_and(|p| p != fan_in) {
                return Err(Error::invalid(
                    "widths",
                    format!("layer {i}: input width {fan_in} does not match"),
                ));
            }
            prev = Some(fan_out);
            out.push(HostLayer {
                fan_in,
                fan_out,
                weight,
                bias,
            });
        }
        if prev != Some(1) {
            return Err(Error::invalid(
                "widths",
                "the last layer must have one output",
            ));
        }
        Ok(Self {
            layers: out,
            activation,
            block: DEFAULT_BLOCK,
        })
    }

    /// Sets the number of particles per block (tuning; >= 1).
    pub fn with_block(mut self, block: usize) -> Self {
        self.block = block.max(1);
        self
    }

    /// Energy `[n]` and score `[n, d]` of row-major host particles `x` `[n, d]`.
    pub fn energy_and_score_host(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let d = self.layers[0].fan_in;
        let n = x.len() / d;
        let mut energy = vec![0f32; n];
        let mut score = vec![0f32; n * d];
        let threads = rayon::current_num_threads().max(1);
        // Small batches: split evenly across threads rather than leave a core idle.
        let block = self.block.min(n.div_ceil(threads)).max(1);
        energy
            .par_chunks_mut(block)
            .zip(score.par_chunks_mut(block * d))
            .zip(x.par_chunks(block * d))
            .for_each_init(
                || Scratch::new(&self.layers, block),
                |scratch, ((e, s), xb)| self.block_pass_dispatch(scratch, xb, e, s),
            );
        (energy, score)
    }

    /// Runs [`Self::block_pass`] compiled for the best vector extension the CPU has (the loops
    /// between the GEMMs are written to auto-vectorise; the GEMMs dispatch on their own).
    fn block_pass_dispatch(
        &self,
        scratch: &mut Scratch,
        x: &[f32],
        energy: &mut [f32],
        score: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                return unsafe { self.block_pass_avx512(scratch, x, energy, score) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { self.block_pass_avx2(scratch, x, energy, score) };
            }
        }
        self.block_pass(scratch, x, energy, score)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_pass_avx512(
        &self,
        scratch: &mut Scratch,
        x: &[f32],
        energy: &mut [f32],
        score: &mut [f32],
    ) {
        self.block_pass(scratch, x, energy, score)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_pass_avx2(
        &self,
        scratch: &mut Scratch,
        x: &[f32],
        energy: &mut [f32],
        score: &mut [f32],
    ) {
        self.block_pass(scratch, x, energy, score)
    }

    #[inline(always)]
    fn block_pass(&self, scratch: &mut Scratch, x: &[f32], energy: &mut [f32], score: &mut [f32]) {
        let m = energy.len();
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        // Forward: h_l = act(h_{l-1} W_l + b_l); keep act'(z_l) in `deriv[l]`.
        for (l, layer) in hidden.iter().enumerate() {
            let (before, after) = scratch.hidden.split_at_mut(l);
            let input: &[f32] = if l == 0 {
                x
            } else {
                &before[l - 1][..m * layer.fan_in]
            };
            let z = &mut after[0][..m * layer.fan_out];
            affine(layer, input, z, m);
            activate(
                self.activation,
                z,
                &mut scratch.deriv[l][..m * layer.fan_out],
            );
        }
        // Output layer: E = h W_L + b_L, a dot product per row.
        let top: &[f32] = if hidden.is_empty() {
            x
        } else {
            &scratch.hidden[hidden.len() - 1][..m * last.fan_in]
        };
        for (r, e) in energy.iter_mut().enumerate() {
            let h = &top[r * last.fan_in..(r + 1) * last.fan_in];
            *e = dot(h, &last.weight) + last.bias[0];
        }
        // Backward: delta = w_out^T; delta <- (delta * act'(z_l)) W_l^T; score = -delta.
        if hidden.is_empty() {
            for r in 0..m {
                for (s, w) in score[r * last.fan_in..(r + 1) * last.fan_in]
                    .iter_mut()
                    .zip(&last.weight)
                {
                    *s = -w;
                }
            }
            return;
        }
        let top_width = last.fan_in;
        let delta = &mut scratch.delta[..m * top_width];
        let dl = &scratch.deriv[hidden.len() - 1][..m * top_width];
        for (drow, lrow) in delta
            .chunks_exact_mut(top_width)
            .zip(dl.chunks_exact(top_width))
        {
            for ((o, d), w) in drow.iter_mut().zip(lrow).zip(&last.weight) {
                *o = d * w;
            }
        }
        for l in (0..hidden.len()).rev() {
            let layer = &hidden[l];
            let out: &mut [f32] = if l == 0 {
                &mut *score
            } else {
                &mut scratch.delta_next[..m * layer.fan_in]
            };
            backprop(layer, &scratch.delta[..m * layer.fan_out], out, m);
            if l > 0 {
                let dprev = &scratch.deriv[l - 1][..m * layer.fan_in];
                for (o, dv) in scratch.delta_next[..m * layer.fan_in].iter_mut().zip(dprev) {
                    *o *= dv;
                }
                std::mem::swap(&mut scratch.delta, &mut scratch.delta_next);
            }
        }
        for s in score.iter_mut() {
            *s = -*s;
        }
    }
}

struct Scratch {
    hidden: Vec<Vec<f32>>,
    deriv: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_next: Vec<f32>,
}

impl Scratch {
    fn new(layers: &[HostLayer], block: usize) -> Self {
        let widest = layers
            .iter()
            .map(|l| l.fan_in.max(l.fan_out))
            .max()
            .unwrap_or(1);
        let hidden_widths: Vec<usize> = layers[..layers.len() - 1]
            .iter()
            .map(|l| l.fan_out)
            .collect();
        Self {
            hidden: hidden_widths.iter().map(|w| vec![0.0; block * w]).collect(),
            deriv: hidden_widths.iter().map(|w| vec![0.0; block * w]).collect(),
            delta: vec![0.0; block * widest],
            delta_next: vec![0.0; block * widest],
        }
    }
}

impl Energy for FusedMlpEnergy {
    fn dim(&self) -> usize {
        self.layers[0].fan_in
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let device = x.device();
        let dims = x.dims();
        let (e, s) = self.energy_and_score_host(&to_host2(&x));
        (from_host1(e, &device), from_host2(s, dims, &device))
    }
    fn describe(&self) -> String {
        let mut w = vec![self.layers[0].fan_in];
        w.extend(self.layers.iter().map(|l| l.fan_out));
        format!("mlp energy {w:?} ({:?}), fused cpu kernel", self.activation)
    }
}
