//! Plain neural-network building blocks shared by the model families (conditioners of flows,
//! score networks, generators, encoders): a multilayer perceptron with an explicit, seeded
//! initialisation. Its gradients come from burn's autodiff; an *energy* that samplers call
//! writes out its input gradient instead ([`crate::MlpEnergy`]).

use crate::Activation;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use rand::RngExt;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;

/// PyTorch's `nn.Linear` initialisation, W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn
/// from `rng` (not burn's process-wide generator). Returns `(W [fan_in x fan_out] row-major, b)`.
pub fn linear_init(rng: &mut ZooRng, fan_in: usize, fan_out: usize) -> (Vec<f32>, Vec<f32>) {
    let k = 1.0 / (fan_in.max(1) as f32).sqrt();
    let mut draw =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random_range(-k..k)).collect() };
    let w = draw(fan_in * fan_out);
    (w, draw(fan_out))
}

/// A burn `Linear` layer from host weights `W [fan_in x fan_out]` (row-major) and `b [fan_out]`.
pub fn linear_from_host(w: Vec<f32>, b: Vec<f32>, device: &Device) -> Linear {
    let fan_out = b.len();
    let fan_in = w.len() / fan_out.max(1);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(w, [fan_in, fan_out]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [fan_out]),
            device,
        ))),
    }
}

/// `[input, hidden..., output]`: the widths of an MLP.
pub fn layer_widths(input: usize, hidden: &[usize], output: usize) -> Vec<usize> {
    let mut w = Vec::with_capacity(hidden.len() + 2);
    w.push(input);
    w.extend_from_slice(hidden);
    w.push(output);
    w
}

/// Checks every `(name, hidden widths)` pair of a config: none may be zero.
pub fn check_hidden(pairs: &[(&str, &[usize])]) -> Result<()> {
    for (name, widths) in pairs {
        if widths.contains(&0) {
            return Err(Error::invalid(
                *name,
                format!("widths must be >= 1, got {widths:?}"),
            ));
        }
    }
    Ok(())
}

/// A multilayer perceptron `widths[0] -> ... -> widths[last]`, activation between layers, linear
/// output.
#[derive(Module, Debug)]
pub struct Mlp {
    /// The layers, input to output.
    pub layers: Vec<Linear>,
    /// Activation after every layer but the last.
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// Checks `widths` (at least two, none zero) and initialises with [`linear_init`]; with
    /// `zero_output` the last layer starts at zero (a residual block then starts as identity).
    pub fn new(
        rng: &mut ZooRng,
        widths: &[usize],
        activation: Activation,
        zero_output: bool,
        device: &Device,
    ) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("need at least two widths, all >= 1; got {widths:?}"),
            ));
        }
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, io)| {
                let (mut w, mut b) = linear_init(rng, io[0], io[1]);
                if zero_output && i == last {
                    w.iter_mut().for_each(|v| *v = 0.0);
                    b.iter_mut().for_each(|v| *v = 0.0);
                }
                linear_from_host(w, b, device)
            })
            .collect();
        Ok(Self { layers, activation })
    }

    /// `[n, widths[0]] -> [n, widths[last]]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut h = x;
        for layer in hidden {
            h = self.activation.value(layer.forward(h));
        }
        last.forward(h)
    }

    /// The forward pass keeping what its vector-Jacobian product needs: the output
    /// `[n, widths[last]]` and a [`MlpTape`]. The product is written out as plain tensor
    /// operations, so it runs without autodiff (samplers) and is itself differentiable by burn's
    /// first-order autodiff with respect to the weights (penalties on input gradients).
    pub fn forward_tape(&self, x: Tensor<2>) -> (Tensor<2>, MlpTape) {
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut h = x;
        let mut derivs = Vec::with_capacity(hidden.len());
        for layer in hidden {
            let (a, d) = self.activation.value_and_derivative(layer.forward(h));
            derivs.push(d);
            h = a;
        }
        (last.forward(h), MlpTape { derivs })
    }

    /// v^T J(x) for the Jacobian J of the map at the `x` the tape was recorded at: `upstream`
    /// `[n, widths[last]]` -> `[n, widths[0]]` (backpropagation, Rumelhart et al. 1986).
    pub fn vjp(&self, tape: MlpTape, upstream: Tensor<2>) -> Tensor<2> {
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut delta = upstream.matmul(last.weight.val().transpose());
        for (layer, d) in hidden.iter().zip(tape.derivs).rev() {
            delta = (d * delta).matmul(layer.weight.val().transpose());
        }
        delta
    }

    /// Input width.
    pub fn input_width(&self) -> usize {
        self.layers[0].weight.dims()[0]
    }

    /// Output width.
    pub fn output_width(&self) -> usize {
        self.layers
            .last()
            .expect("at least one layer")
            .weight
            .dims()[1]
    }
}

/// What [`Mlp::vjp`] needs from a forward pass: the activation derivatives of every hidden layer.
#[derive(Debug, Clone)]
pub struct MlpTape {
    derivs: Vec<Tensor<2>>,
}
