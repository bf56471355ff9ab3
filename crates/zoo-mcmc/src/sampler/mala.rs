//! Metropolis-adjusted Langevin (Roberts & Tweedie 1996; Besag 1994): the ULA move as a proposal,
//! q(y | x) = N(y; x + h s(x), 2h I), accepted with probability
//! min(1, exp(-E(y) + E(x)) q(x | y) / q(y | x)). Exact for any h.

use super::accept::metropolis;
use super::ula::langevin_move;
use super::{ChainState, StepInfo};
use burn::prelude::*;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Result, check_positive};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::row_sq_norm;

/// MALA with step size `h`.
#[derive(Debug, Clone)]
pub struct Mala {
    step_size: f64,
}

impl Mala {
    /// MALA with step size `step_size` (> 0).
    pub fn new(step_size: f64) -> Result<Self> {
        Ok(Self {
            step_size: check_positive("step_size", step_size)?,
        })
    }
}

chain_kernel!(Mala, "mala", tested: true);

impl Mala {
    /// One transition of the kernel (the body of [`Sampler::step`]).
    fn transition(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let h = self.step_size;
        let (y, xi) = langevin_move(rng, &state, h);
        let proposal = ChainState::at(energy, y.clone());
        // log q(y|x) = -|xi|^2 / 2 ; log q(x|y) = -|x - y - h s(y)|^2 / (4h) (constants cancel).
        let back = state.position.clone() - y - proposal.score.clone().mul_scalar(h);
        let log_q_forward = row_sq_norm(xi).mul_scalar(-0.5);
        let log_q_backward = row_sq_norm(back).mul_scalar(-0.25 / h);
        let log_alpha =
            state.energy.clone() - proposal.energy.clone() + log_q_backward - log_q_forward;
        let (next, accept) = metropolis(rng, log_alpha, state, proposal);
        Ok((
            next,
            StepInfo {
                step_size: h,
                acceptance_probability: Some(accept),
                divergent: None,
                tree_depth: None,
            },
        ))
    }
}
