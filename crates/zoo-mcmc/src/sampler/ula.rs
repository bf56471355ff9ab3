//! Unadjusted Langevin algorithm (Roberts & Tweedie 1996; review §3):
//! x' = x + h s(x) + sqrt(2h) xi, xi ~ N(0, I). Biased by O(h) for any fixed h.

use super::{ChainState, StepInfo};
use burn::prelude::*;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Result, check_positive};
use zoo_energy::rng::{ZooRng, normal};

/// ULA with step size `h`.
#[derive(Debug, Clone)]
pub struct Ula {
    step_size: f64,
}

impl Ula {
    /// ULA with step size `step_size` (> 0).
    pub fn new(step_size: f64) -> Result<Self> {
        Ok(Self {
            step_size: check_positive("step_size", step_size)?,
        })
    }
}

/// One Langevin proposal from `state`: x + h s(x) + sqrt(2h) xi. Returns (proposal, xi). The one
/// place where a Langevin move is made (ULA, MALA's proposal, Jarzynski walkers).
pub fn langevin_move(
    rng: &mut ZooRng,
    state: &ChainState,
    step_size: f64,
) -> (Tensor<2>, Tensor<2>) {
    let xi = normal(rng, state.position.dims(), &state.position.device());
    let y = state.position.clone()
        + state.score.clone().mul_scalar(step_size)
        + xi.clone().mul_scalar((2.0 * step_size).sqrt());
    (y, xi)
}

chain_kernel!(Ula, "ula", tested: false);

impl Ula {
    /// One transition of the kernel (the body of [`Sampler::step`]).
    fn transition(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let (y, _) = langevin_move(rng, &state, self.step_size);
        Ok((
            ChainState::at(energy, y),
            StepInfo {
                step_size: self.step_size,
                acceptance_probability: None,
                divergent: None,
                tree_depth: None,
            },
        ))
    }
}
