//! A small convolutional energy for square single-channel images (8×8 digits), with its input
//! gradient written out: conv(1→c1, 3×3, pad 1) → act → conv(c1→c2, 3×3, stride 2, pad 1) → act →
//! flatten → linear(c2·(side/2)², hidden) → act → linear(hidden, 1).
//!
//! The score is reverse mode by hand: the adjoint of a convolution is the transposed convolution
//! with the same weights, so grad_x E needs two `conv_transpose2d` calls and plain tensor algebra.
//! Samplers therefore run without autodiff, and denoising score matching on this energy needs one
//! backward pass (burn has first-order autodiff only).

use crate::Activation;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::Energy;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;

/// Sizes of a [`ConvEnergy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvEnergyConfig {
    /// Image side (even); inputs are `[n, side * side]`.
    pub side: usize,
    /// Channels of the two convolutions.
    pub channels: [usize; 2],
    /// Width of the hidden linear layer.
    pub hidden: usize,
    /// Activation.
    #[serde(default)]
    pub activation: Activation,
    /// Adds |x - 1/2|^2 / (2 s^2) to the energy (a Gaussian base measure centred on mid-grey), so
    /// that exp(-E) is normalisable and Langevin chains cannot drift off to large pixel values.
    #[serde(default)]
    pub base_std: Option<f64>,
}

impl Default for ConvEnergyConfig {
    fn default() -> Self {
        Self {
            side: 8,
            channels: [16, 32],
            hidden: 64,
            activation: Activation::Silu,
            base_std: Some(0.5),
        }
    }
}

impl ConvEnergyConfig {
    /// Initialises every weight as PyTorch does, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from `rng`.
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<ConvEnergy> {
        let [c1, c2] = self.channels;
        if let Some(s) = self.base_std {
            zoo_energy::error::check_positive("base_std", s)?;
        }
        if self.side < 2 || !self.side.is_multiple_of(2) || c1 == 0 || c2 == 0 || self.hidden == 0 {
            return Err(Error::invalid(
                "conv energy",
                format!("need an even side >= 2 and channels, hidden >= 1, got {self:?}"),
            ));
        }
        let mut uniform = |count: usize, fan_in: usize| -> Vec<f32> {
            let k = 1.0 / (fan_in as f32).sqrt();
            (0..count).map(|_| rng.random_range(-k..k)).collect()
        };
        let tensor4 = |v: Vec<f32>, shape: [usize; 4]| {
            Param::from_tensor(Tensor::<4>::from_data(TensorData::new(v, shape), device))
        };
        let tensor1 = |v: Vec<f32>| {
            let n = v.len();
            Param::from_tensor(Tensor::<1>::from_data(TensorData::new(v, [n]), device))
        };
        let flat = c2 * (self.side / 2) * (self.side / 2);
        let mut linear = |fan_in: usize, fan_out: usize| Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(uniform(fan_in * fan_out, fan_in), [fan_in, fan_out]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(uniform(fan_out, fan_in), [fan_out]),
                device,
            ))),
        };
        let fc = linear(flat, self.hidden);
        let out = linear(self.hidden, 1);
        let w1 = uniform(c1 * 9, 9);
        let b1 = uniform(c1, 9);
        let w2 = uniform(c2 * c1 * 9, c1 * 9);
        let b2 = uniform(c2, c1 * 9);
        Ok(ConvEnergy {
            conv1: tensor4(w1, [c1, 1, 3, 3]),
            bias1: tensor1(b1),
            conv2: tensor4(w2, [c2, c1, 3, 3]),
            bias2: tensor1(b2),
            fc,
            out,
            activation: self.activation,
            side: self.side,
            base_precision: self.base_std.map_or(0.0, |s| 1.0 / (s * s)),
        })
    }
}

/// The convolutional energy (a burn `Module`).
#[derive(Module, Debug)]
pub struct ConvEnergy {
    /// First convolution `[c1, 1, 3, 3]`.
    pub conv1: Param<Tensor<4>>,
    /// Its bias `[c1]`.
    pub bias1: Param<Tensor<1>>,
    /// Second convolution (stride 2) `[c2, c1, 3, 3]`.
    pub conv2: Param<Tensor<4>>,
    /// Its bias `[c2]`.
    pub bias2: Param<Tensor<1>>,
    /// Hidden linear layer.
    pub fc: Linear,
    /// Output layer.
    pub out: Linear,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
    /// Image side.
    #[module(skip)]
    pub side: usize,
    /// 1 / base_std^2 of the Gaussian base measure (0: none).
    #[module(skip)]
    pub base_precision: f64,
}

fn same() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
}

fn halve() -> ConvOptions<2> {
    ConvOptions::new([2, 2], [1, 1], [1, 1], 1)
}

impl ConvEnergy {
    /// Forward pass; with `keep`, also activation'(z) of the three hidden layers.
    fn forward_keep(
        &self,
        x: Tensor<2>,
        keep: bool,
    ) -> (Tensor<1>, Vec<Tensor<4>>, Option<Tensor<2>>) {
        let [n, _] = x.dims();
        let image = x.reshape([n, 1, self.side, self.side]);
        let act = self.activation;
        let z1 = conv2d(image, self.conv1.val(), Some(self.bias1.val()), same());
        let mut derivs = Vec::new();
        let a1 = if keep {
            let (a, d) = act.value_and_derivative(z1);
            derivs.push(d);
            a
        } else {
            act.value(z1)
        };
        let z2 = conv2d(a1, self.conv2.val(), Some(self.bias2.val()), halve());
        let a2 = if keep {
            let (a, d) = act.value_and_derivative(z2);
            derivs.push(d);
            a
        } else {
            act.value(z2)
        };
        let [_, c2, h, w] = a2.dims();
        let z3 = self.fc.forward(a2.reshape([n, c2 * h * w]));
        let (a3, d3) = if keep {
            let (a, d) = act.value_and_derivative(z3);
            (a, Some(d))
        } else {
            (act.value(z3), None)
        };
        (self.out.forward(a3).squeeze_dim(1), derivs, d3)
    }

    /// The base measure's energy |x - 1/2|^2 / (2 s^2) and its score.
    fn base(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let centred = x.sub_scalar(0.5);
        let energy =
            zoo_energy::tensor::row_sq_norm(centred.clone()).mul_scalar(0.5 * self.base_precision);
        (energy, centred.mul_scalar(-self.base_precision))
    }
}

impl Energy for ConvEnergy {
    fn dim(&self) -> usize {
        self.side * self.side
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        let (base, _) = self.base(x.clone());
        self.forward_keep(x, false).0 + base
    }
    /// delta_3 = act'(z3) * w_out^T; delta_f = delta_3 W_fc^T; delta_z2 = delta_f * act'(z2);
    /// delta_a1 = conv_transpose(delta_z2, W2; stride 2); delta_z1 = delta_a1 * act'(z1);
    /// grad_x E = conv_transpose(delta_z1, W1); score = -grad_x E.
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, d] = x.dims();
        let (base_energy, base_score) = self.base(x.clone());
        let (energy, mut derivs, d3) = self.forward_keep(x, true);
        let d3 = d3.expect("kept");
        let d2 = derivs.pop().expect("kept");
        let d1 = derivs.pop().expect("kept");
        let delta3 = d3 * self.out.weight.val().transpose();
        let delta_f = delta3.matmul(self.fc.weight.val().transpose());
        let delta_z2 = delta_f.reshape(d2.dims()) * d2;
        let up = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
        let delta_z1 = conv_transpose2d(delta_z2, self.conv2.val(), None, up) * d1;
        let back = ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
        let grad = conv_transpose2d(delta_z1, self.conv1.val(), None, back);
        (
            energy + base_energy,
            grad.reshape([n, d]).neg() + base_score,
        )
    }
    fn describe(&self) -> String {
        format!(
            "conv energy {}x{} (channels {}, {}; hidden {}; {:?})",
            self.side,
            self.side,
            self.conv1.dims()[0],
            self.conv2.dims()[0],
            self.fc.weight.dims()[1],
            self.activation
        )
    }
}
