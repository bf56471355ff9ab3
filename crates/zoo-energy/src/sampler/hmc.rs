//! Hamiltonian Monte Carlo (Duane et al. 1987; Neal 2011): momentum p ~ N(0, I), `leapfrog_steps`
//! leapfrog steps of size h on H(x, p) = E(x) + |p|^2 / 2, accepted with probability
//! min(1, exp(H(x, p) - H(x', p'))).

use super::accept::metropolis;
use super::integrator::leapfrog;
use super::{ChainState, Sampler, StepInfo};
use crate::energy::Energy;
use crate::error::{Error, Result, check_positive};
use crate::rng::{ZooRng, normal};
use crate::tensor::row_sq_norm;
use burn::prelude::*;

/// HMC with an identity mass matrix.
#[derive(Debug, Clone)]
pub struct Hmc {
    step_size: f64,
    leapfrog_steps: usize,
}

impl Hmc {
    /// HMC with step size `step_size` (> 0) and `leapfrog_steps` (>= 1) per transition.
    pub fn new(step_size: f64, leapfrog_steps: usize) -> Result<Self> {
        if leapfrog_steps == 0 {
            return Err(Error::invalid("leapfrog_steps", "must be >= 1"));
        }
        Ok(Self {
            step_size: check_positive("step_size", step_size)?,
            leapfrog_steps,
        })
    }

    /// Leapfrog steps per transition.
    pub fn leapfrog_steps(&self) -> usize {
        self.leapfrog_steps
    }
}

impl Sampler for Hmc {
    type State = ChainState;
    type Info = StepInfo;
    chain_kernel_common!("hmc");
    fn step(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let momentum = normal(rng, state.position.dims(), &state.position.device());
        let kinetic0 = row_sq_norm(momentum.clone()).mul_scalar(0.5);
        let (proposal, p_end) = leapfrog(
            energy,
            &state,
            momentum,
            self.step_size,
            self.leapfrog_steps,
        );
        let kinetic1 = row_sq_norm(p_end).mul_scalar(0.5);
        let log_alpha = state.energy.clone() + kinetic0 - proposal.energy.clone() - kinetic1;
        let (next, accept) = metropolis(rng, log_alpha, state, proposal);
        Ok((
            next,
            StepInfo {
                step_size: self.step_size,
                acceptance_probability: Some(accept),
            },
        ))
    }
}
