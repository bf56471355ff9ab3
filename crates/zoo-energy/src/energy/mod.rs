//! The energy seam (review §2: p(x) = exp(-E(x)) / Z). Every model family speaks [`Energy`].
//!
//! Shapes: a batch of `n` points of dimension `d` is a `Tensor<2>` `[n, d]`; per-point scalars are
//! `Tensor<1>` `[n]`. Names: `energy` is E(x); `score` is s(x) = -grad_x E(x) (= grad_x log p).

mod banana;
mod base;
mod double_well;
mod funnel;
mod gaussian;
mod interpolated;
mod mixture;

pub use banana::Banana;
pub use base::WithGaussianBase;
pub use double_well::DoubleWell;
pub use funnel::Funnel;
pub use gaussian::{Covariance, Gaussian};
pub use interpolated::Interpolated;
pub use mixture::GaussianMixture;

use burn::prelude::*;

/// An unnormalised density p(x) ∝ exp(-E(x)) over `R^d`, evaluated in batch.
///
/// burn has first-order autodiff only, so every energy provides its score as plain tensor
/// operations: samplers never build an autodiff graph, and score matching on an energy needs a
/// single backward pass. [`AutodiffEnergy`] is the fallback for energies that don't.
pub trait Energy {
    /// Dimension `d` of one point.
    fn dim(&self) -> usize;

    /// E(x) `[n]` and the score s(x) = -grad_x E(x) `[n, d]` for `x: [n, d]`, in one pass.
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>);

    /// E(x) alone; override when it is cheaper than the pair (an MLP's forward pass).
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        self.energy_and_score(x).0
    }

    /// The score alone.
    fn score(&self, x: Tensor<2>) -> Tensor<2> {
        self.energy_and_score(x).1
    }

    /// log Z = log ∫ exp(-E(x)) dx when it is known in closed form (or by 1-D quadrature).
    fn log_normalizer(&self) -> Option<f64> {
        None
    }

    /// A one-line description with the parameters that matter.
    fn describe(&self) -> String;
}

/// A density that can be sampled exactly: the tractable base of annealing and importance sampling.
pub trait ExactSample {
    /// `n` independent draws, `[n, d]`.
    fn sample_exact(&self, rng: &mut crate::rng::ZooRng, n: usize, device: &Device) -> Tensor<2>;
}

impl ExactSample for Gaussian {
    fn sample_exact(&self, rng: &mut crate::rng::ZooRng, n: usize, device: &Device) -> Tensor<2> {
        self.sample(rng, n, device)
    }
}

impl ExactSample for GaussianMixture {
    fn sample_exact(&self, rng: &mut crate::rng::ZooRng, n: usize, device: &Device) -> Tensor<2> {
        self.sample(rng, n, device)
    }
}

/// Forwards [`Energy`] through a pointer type.
macro_rules! forward_energy {
    ($($ptr:ty),*) => {$(
        impl<E: Energy + ?Sized> Energy for $ptr {
            fn dim(&self) -> usize {
                (**self).dim()
            }
            fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
                (**self).energy_and_score(x)
            }
            fn energy(&self, x: Tensor<2>) -> Tensor<1> {
                (**self).energy(x)
            }
            fn score(&self, x: Tensor<2>) -> Tensor<2> {
                (**self).score(x)
            }
            fn log_normalizer(&self) -> Option<f64> {
                (**self).log_normalizer()
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
        }
    )*};
}
forward_energy!(&E, Box<E>);

impl std::fmt::Debug for dyn Energy + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// -grad_x sum_i E(x_i) by burn's first-order autodiff. Builds a fresh leaf, so no graph
/// outlives the call; the returned tensor carries no autodiff association.
pub fn autodiff_score(energy: impl Fn(Tensor<2>) -> Tensor<1>, x: Tensor<2>) -> Tensor<2> {
    let device = x.device();
    let leaf = x.autodiff().detach().require_grad();
    let grads = energy(leaf.clone()).sum().backward();
    let grad = leaf
        .grad(&grads)
        .unwrap_or_else(|| Tensor::zeros(leaf.dims(), &device));
    grad.without_autodiff().neg()
}

/// An energy given only as a function; its score comes from autodiff (the generic fallback).
pub struct AutodiffEnergy<F> {
    dim: usize,
    function: F,
    name: String,
}

impl<F> std::fmt::Debug for AutodiffEnergy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AutodiffEnergy({}, dim {})", self.name, self.dim)
    }
}

impl<F: Fn(Tensor<2>) -> Tensor<1>> AutodiffEnergy<F> {
    /// Wraps `function: [n, dim] -> [n]`.
    pub fn new(name: impl Into<String>, dim: usize, function: F) -> Self {
        Self {
            dim,
            function,
            name: name.into(),
        }
    }
}

impl<F: Fn(Tensor<2>) -> Tensor<1>> Energy for AutodiffEnergy<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        (
            (self.function)(x.clone()),
            autodiff_score(&self.function, x),
        )
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        (self.function)(x)
    }
    fn describe(&self) -> String {
        format!("{} (score by autodiff)", self.name)
    }
}

/// log of the standard normal normaliser in `d` dimensions: (d / 2) log(2 pi).
pub fn log_2pi_half(d: usize) -> f64 {
    0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
}
