//! A neural energy E_theta(x) = MLP(x) with smooth activations and a hand-written input gradient.
//!
//! burn has first-order autodiff only. The score -grad_x E is therefore written out layer by layer
//! (reverse-mode by hand, as plain tensor operations): samplers need no autodiff at all, and a loss
//! on the score (denoising score matching on an energy) needs a single backward pass for theta.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation;
use serde::{Deserialize, Serialize};
use zoo_energy::Energy;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{to_host1, to_host2};

/// Activations with their derivatives. The smooth ones are for energies trained by score
/// matching (ReLU-like units have a zero second derivative, which score matching cannot use);
/// leaky ReLU is the GAN literature's unit (DCGAN's slope 0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// SiLU / swish: z sigmoid(z); derivative s (1 + z (1 - s)) with s = sigmoid(z).
    #[default]
    Silu,
    /// softplus: log(1 + e^z); derivative sigmoid(z).
    Softplus,
    /// tanh; derivative 1 - tanh(z)^2.
    Tanh,
    /// max(z, 0.2 z); derivative 1 for z > 0, 0.2 otherwise.
    LeakyRelu,
}

/// The negative slope of [`Activation::LeakyRelu`].
pub const LEAKY_SLOPE: f64 = 0.2;

impl Activation {
    /// All names, for error messages.
    pub const NAMES: &'static str = "silu, softplus, tanh, leaky_relu";

    /// (activation(z), activation'(z)) in one pass.
    pub fn value_and_derivative<const D: usize>(self, z: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        match self {
            Activation::Silu => {
                let s = activation::sigmoid(z.clone());
                let h = z.clone() * s.clone();
                // s (1 + z (1 - s)) = s + h (1 - s)
                let d = s.clone() + h.clone() * s.neg().add_scalar(1.0);
                (h, d)
            }
            Activation::Softplus => (activation::softplus(z.clone(), 1.0), activation::sigmoid(z)),
            Activation::Tanh => {
                let t = z.tanh();
                (t.clone(), t.square().neg().add_scalar(1.0))
            }
            Activation::LeakyRelu => {
                let d = z
                    .clone()
                    .greater_elem(0.0)
                    .float()
                    .mul_scalar(1.0 - LEAKY_SLOPE)
                    .add_scalar(LEAKY_SLOPE);
                (z * d.clone(), d)
            }
        }
    }

    /// activation(z) alone.
    pub fn value<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => activation::silu(z),
            Activation::Softplus => activation::softplus(z, 1.0),
            Activation::Tanh => z.tanh(),
            Activation::LeakyRelu => activation::leaky_relu(z, LEAKY_SLOPE),
        }
    }
}

/// Sizes and activation of an [`MlpEnergy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpEnergyConfig {
    /// Layer widths from input to output, e.g. `[2, 128, 128, 1]`; the last must be 1.
    pub widths: Vec<usize>,
    /// Activation between layers (the output layer is linear).
    #[serde(default)]
    pub activation: Activation,
}

impl MlpEnergyConfig {
    /// A config; see the field docs.
    pub fn new(widths: Vec<usize>, activation: Activation) -> Self {
        Self { widths, activation }
    }

    /// Validates the widths.
    pub fn check(&self) -> Result<()> {
        let w = &self.widths;
        if w.len() < 2 {
            return Err(Error::invalid(
                "widths",
                "need at least an input and an output width",
            ));
        }
        if w.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("widths must be >= 1, got {w:?}"),
            ));
        }
        if *w.last().expect("len >= 2") != 1 {
            return Err(Error::invalid(
                "widths",
                format!("the last width must be 1 (a scalar energy), got {w:?}"),
            ));
        }
        // Host weights, their clone for the fused kernel check, the device copy: ~4 copies.
        let params: u128 = w
            .windows(2)
            .map(|io| (io[0] as u128 + 1) * io[1] as u128)
            .sum();
        zoo_energy::memory::check_elements("the MLP's weights (`widths`)", params, 16)
    }

    /// Initialises the weights as PyTorch's `nn.Linear` does, W and b ~ U(-1/sqrt(fan_in),
    /// 1/sqrt(fan_in)), drawn from `rng` (not burn's process-wide generator) so that the same
    /// seed gives the same network whatever else runs.
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<MlpEnergy> {
        self.check()?;
        let layers = self
            .widths
            .windows(2)
            .map(|io| crate::nn::linear_init(rng, io[0], io[1]))
            .collect();
        MlpEnergy::from_weights(layers, self.activation, device)
    }
}

/// An MLP energy, a burn `Module` (trainable with burn's optimisers), whose score is written out.
#[derive(Module, Debug)]
pub struct MlpEnergy {
    /// The layers; the last maps to one output.
    pub layers: Vec<Linear>,
    /// Activation after every layer but the last.
    #[module(skip)]
    pub activation: Activation,
}

impl MlpEnergy {
    /// An MLP from host weights `(W [fan_in x fan_out] row-major, b [fan_out])`, input to output
    /// (e.g. weights shared with another framework).
    pub fn from_weights(
        layers: Vec<(Vec<f32>, Vec<f32>)>,
        activation: Activation,
        device: &Device,
    ) -> Result<Self> {
        // The fused kernel's constructor validates the same shapes.
        super::FusedMlpEnergy::new(layers.clone(), activation)?;
        let layers = layers
            .into_iter()
            .map(|(w, b)| crate::nn::linear_from_host(w, b, device))
            .collect();
        Ok(Self { layers, activation })
    }

    /// The widths, input to output.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].weight.dims()[0]];
        w.extend(self.layers.iter().map(|l| l.weight.dims()[1]));
        w
    }

    /// Layer weights on the host, `(W [fan_in x fan_out] row-major, b)`, for the fused CPU kernel.
    pub fn host_weights(&self) -> Vec<(Vec<f32>, Vec<f32>)> {
        self.layers
            .iter()
            .map(|l| {
                let w = to_host2(&l.weight.val());
                let b = match &l.bias {
                    Some(b) => to_host1(&b.val()),
                    None => vec![0.0; l.weight.dims()[1]],
                };
                (w, b)
            })
            .collect()
    }

    /// The fused CPU kernel for this network (a snapshot of the current weights).
    pub fn fused(&self) -> super::FusedMlpEnergy {
        super::FusedMlpEnergy::new(self.host_weights(), self.activation)
            .expect("widths of a built MLP are valid")
    }

    /// A snapshot of the current weights for samplers (no autodiff): the fused CPU kernel on host
    /// backends, burn tensor operations elsewhere (a GPU would pay a host round trip per step).
    pub fn sampling_energy(&self) -> Box<dyn Energy> {
        let plain = self.valid();
        if zoo_energy::BackendKind::is_host_device(&plain.layers[0].weight.val().device()) {
            Box::new(plain.fused())
        } else {
            Box::new(plain)
        }
    }

    /// Forward pass keeping activation'(z) of every hidden layer: (E [n], derivatives).
    fn forward_keep(&self, x: Tensor<2>, keep: bool) -> (Tensor<1>, Vec<Tensor<2>>) {
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut h = x;
        let mut derivs = Vec::with_capacity(hidden.len());
        for layer in hidden {
            let z = layer.forward(h);
            if keep {
                let (a, d) = self.activation.value_and_derivative(z);
                derivs.push(d);
                h = a;
            } else {
                h = self.activation.value(z);
            }
        }
        (last.forward(h).squeeze_dim(1), derivs)
    }
}

impl Energy for MlpEnergy {
    fn dim(&self) -> usize {
        self.layers[0].weight.dims()[0]
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        self.forward_keep(x, false).0
    }
    /// Reverse mode by hand: delta_L = w_out^T; delta_{l-1} = (delta_l * act'(z_l)) W_l^T;
    /// grad_x E = delta_0; score = -grad_x E.
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let dims = x.dims();
        let (energy, derivs) = self.forward_keep(x, true);
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut delta = last.weight.val().transpose(); // [1, h]: broadcasts over the batch
        for (layer, d) in hidden.iter().zip(derivs).rev() {
            delta = (d * delta).matmul(layer.weight.val().transpose());
        }
        // Without hidden layers the gradient is the same row for every point.
        (energy, delta.expand(dims).neg())
    }
    fn describe(&self) -> String {
        format!("mlp energy {:?} ({:?})", self.widths(), self.activation)
    }
}
