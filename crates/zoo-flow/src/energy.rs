//! Flows through the shared energy seam.
//!
//! * [`FlowEnergy`]: a trained flow as an energy E(x) = -log q(x) with log Z = 0 exactly and exact
//!   sampling, so the shared samplers, partition-function estimators and the NCE trainer use it
//!   without knowing it is a flow.
//! * [`NeuTraEnergy`]: a target energy pulled back through a flow (neural transport; Hoffman et al.
//!   2019, "NeuTra-lizing bad geometry in HMC"): U(z) = E(T(z)) - log|det dT/dz| with T = f^-1,
//!   so any shared sampler runs in the flow's latent space and its draws map to the target by T.
//!
//! Both scores come from one first-order autodiff pass through the flow per call (a fresh leaf,
//! no graph survives the call); the target's own score enters as a constant.

use crate::flow::Flow;
use burn::prelude::*;
use zoo_energy::energy::ExactSample;
use zoo_energy::tensor::row_dot;
use zoo_energy::{Energy, Result, ZooRng};

/// An unconditional flow as a normalised energy.
#[derive(Debug, Clone)]
pub struct FlowEnergy {
    flow: Flow,
}

impl FlowEnergy {
    /// A snapshot of `flow` without autodiff; the flow must be unconditional.
    pub fn new(flow: &Flow) -> Result<Self> {
        flow.check_unconditional("a flow energy", None)?;
        Ok(Self { flow: flow.valid() })
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }
}

impl Energy for FlowEnergy {
    fn dim(&self) -> usize {
        self.flow.dim
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        self.flow.log_prob_unchecked(x, None).neg()
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let leaf = x.autodiff().detach().require_grad();
        let energy = self.flow.log_prob_unchecked(leaf.clone(), None).neg();
        let value = energy.clone().without_autodiff();
        let grads = energy.sum().backward();
        let grad = leaf.grad(&grads).expect("the input is on the tape");
        (value, grad.without_autodiff().neg())
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(0.0)
    }
    fn describe(&self) -> String {
        format!("{} as an energy (log Z = 0)", self.flow.describe())
    }
}

impl ExactSample for FlowEnergy {
    fn sample_exact(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let z = zoo_energy::rng::normal(rng, [n, self.flow.dim], device);
        self.flow.sample_from_latent(z, None).0
    }
}

/// A target energy in the latent space of a flow: U(z) = E(T(z)) - log|det dT/dz|, T = f^-1.
/// Its normaliser equals the target's (the change of variables preserves mass).
#[derive(Debug)]
pub struct NeuTraEnergy<E> {
    flow: Flow,
    target: E,
}

impl<E: Energy> NeuTraEnergy<E> {
    /// Pulls `target` back through an unconditional `flow` of the same dimension.
    pub fn new(flow: &Flow, target: E) -> Result<Self> {
        flow.check_unconditional("neural transport", Some(&target))?;
        Ok(Self {
            flow: flow.valid(),
            target,
        })
    }

    /// Maps latent points to the target space: x = T(z).
    pub fn to_target(&self, z: Tensor<2>) -> Tensor<2> {
        self.flow.inverse(z, None).0
    }

    /// The target.
    pub fn target(&self) -> &E {
        &self.target
    }
}

impl<E: Energy> Energy for NeuTraEnergy<E> {
    fn dim(&self) -> usize {
        self.flow.dim
    }
    fn energy(&self, z: Tensor<2>) -> Tensor<1> {
        let (x, log_det) = self.flow.inverse(z, None);
        self.target.energy(x) - log_det
    }
    /// grad_z U = J^T grad_x E - grad_z log|det J|, from one backward pass of
    /// sum(T(z) . g) - log|det J| with g = -s(T(z)) held constant.
    fn energy_and_score(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let leaf = z.autodiff().detach().require_grad();
        let (x, log_det) = self.flow.inverse(leaf.clone(), None);
        let (e, s) = self.target.energy_and_score(x.clone().without_autodiff());
        let value = e - log_det.clone().without_autodiff();
        let surrogate = (row_dot(x, s.neg().autodiff()) - log_det).sum();
        let grads = surrogate.backward();
        let grad = leaf.grad(&grads).expect("the input is on the tape");
        (value, grad.without_autodiff().neg())
    }
    fn log_normalizer(&self) -> Option<f64> {
        self.target.log_normalizer()
    }
    fn describe(&self) -> String {
        format!(
            "{} pulled back through a {}",
            self.target.describe(),
            self.flow.describe()
        )
    }
}
