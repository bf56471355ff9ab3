//! The leapfrog (Störmer-Verlet) integrator for H(x, p) = E(x) + |p|^2 / 2 (Neal 2011, §2.3).

use super::ChainState;
use burn::prelude::*;
use zoo_energy::energy::Energy;

/// `steps` leapfrog steps of size `step_size` from `(state, momentum)`; returns the end state and
/// momentum. Uses the cached score at the start, and one energy-and-score call per step.
pub fn leapfrog(
    energy: &dyn Energy,
    state: &ChainState,
    momentum: Tensor<2>,
    step_size: f64,
    steps: usize,
) -> (ChainState, Tensor<2>) {
    let mut p = momentum + state.score.clone().mul_scalar(0.5 * step_size);
    let mut x = state.position.clone();
    let mut end = None;
    for i in 0..steps {
        x = x + p.clone().mul_scalar(step_size);
        let here = ChainState::at(energy, x.clone());
        let kick = if i + 1 == steps {
            0.5 * step_size
        } else {
            step_size
        };
        p = p + here.score.clone().mul_scalar(kick);
        end = Some(here);
    }
    (end.unwrap_or_else(|| state.clone()), p)
}
