//! Hamiltonian Monte Carlo (Duane et al. 1987; Neal 2011): momentum p ~ N(0, I), `leapfrog_steps`
//! leapfrog steps of size h on H(x, p) = E(x) + |p|^2 / 2, accepted with probability
//! min(1, exp(H(x, p) - H(x', p'))).
//!
//! By default the number of leapfrog steps is jittered: each transition draws L' uniformly from
//! {1, ..., 2L - 1} (mean L, the same expected cost), independently of the state, so the kernel
//! is a mixture of reversible kernels and still leaves the target invariant. A fixed L resonates
//! when L h is near a multiple of a coordinate's half period (Neal 2011, §3.2; Mackenzie 1989),
//! which Stan and BlackJAX avoid by jittering the step size or the length in the same way.
//! Trajectories whose energy error exceeds [`super::DIVERGENCE_THRESHOLD`] are flagged divergent.

use super::accept::metropolis;
use super::integrator::leapfrog;
use super::{ChainState, StepInfo};
use burn::prelude::*;
use rand::RngExt;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Error, Result, check_positive};
use zoo_energy::rng::{ZooRng, normal};
use zoo_energy::tensor::row_sq_norm;

/// HMC with an identity mass matrix.
#[derive(Debug, Clone)]
pub struct Hmc {
    step_size: f64,
    leapfrog_steps: usize,
    jitter: bool,
}

/// The number of leapfrog steps of one transition: `mean` itself without jitter, else uniform on
/// {1, ..., 2 mean - 1}.
pub fn jittered_length(rng: &mut ZooRng, mean: usize, jitter: bool) -> usize {
    if jitter && mean > 1 {
        rng.random_range(1..2 * mean)
    } else {
        mean
    }
}

impl Hmc {
    /// HMC with step size `step_size` (> 0) and on average `leapfrog_steps` (>= 1) per
    /// transition, jittered (see the module docs).
    pub fn new(step_size: f64, leapfrog_steps: usize) -> Result<Self> {
        if leapfrog_steps == 0 {
            return Err(Error::invalid("leapfrog_steps", "must be >= 1"));
        }
        Ok(Self {
            step_size: check_positive("step_size", step_size)?,
            leapfrog_steps,
            jitter: true,
        })
    }

    /// The same kernel with exactly `leapfrog_steps` per transition (`false`) or jittered
    /// (`true`, the default).
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Leapfrog steps per transition (their mean when jittered).
    pub fn leapfrog_steps(&self) -> usize {
        self.leapfrog_steps
    }

    /// Whether the trajectory length is jittered.
    pub fn jitter(&self) -> bool {
        self.jitter
    }
}

chain_kernel!(Hmc, "hmc", tested: true);

impl Hmc {
    /// One transition of the kernel (the body of [`Sampler::step`]).
    fn transition(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        let steps = jittered_length(rng, self.leapfrog_steps, self.jitter);
        let momentum = normal(rng, state.position.dims(), &state.position.device());
        let kinetic0 = row_sq_norm(momentum.clone()).mul_scalar(0.5);
        let (proposal, p_end) = leapfrog(energy, &state, momentum, self.step_size, steps);
        let kinetic1 = row_sq_norm(p_end).mul_scalar(0.5);
        let log_alpha = state.energy.clone() + kinetic0 - proposal.energy.clone() - kinetic1;
        // H - H0 = -log alpha; NaN counts as divergent too.
        let divergent = log_alpha
            .clone()
            .lower_elem(-super::DIVERGENCE_THRESHOLD)
            .bool_or(log_alpha.clone().is_nan())
            .float();
        let (next, accept) = metropolis(rng, log_alpha, state, proposal);
        Ok((
            next,
            StepInfo {
                step_size: self.step_size,
                acceptance_probability: Some(accept),
                divergent: Some(divergent),
                tree_depth: None,
            },
        ))
    }
}
