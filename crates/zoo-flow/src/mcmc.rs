//! Independent Metropolis-Hastings with a flow proposal (the flow-based MCMC of Gabrié, Rotskoff &
//! Vanden-Eijnden 2022; Albergo et al. 2019): propose x' ~ q independently of the current x and
//! accept with probability min(1, w(x') / w(x)), w = exp(-E) / q. Exact for any q whose support
//! covers the target's; its acceptance rate measures how close q is to p.

use crate::flow::Flow;
use burn::prelude::*;
use zoo_energy::tensor::{check_batch, check_finite};
use zoo_energy::{Energy, Result, ZooRng};
use zoo_mcmc::sampler::{Sampler, StepInfo, accept_test, select_rows};

/// The independent MH kernel; `step_size` has no meaning for it (reported as 0).
#[derive(Debug, Clone)]
pub struct IndependentMh {
    flow: Flow,
}

/// Chains of the independent MH kernel.
#[derive(Debug, Clone)]
pub struct ImhState {
    /// `[n, d]`.
    pub position: Tensor<2>,
    /// E(position), `[n]`.
    pub energy: Tensor<1>,
    /// log q(position), `[n]`.
    pub log_q: Tensor<1>,
}

impl IndependentMh {
    /// A kernel proposing from a snapshot of the unconditional `flow`.
    pub fn new(flow: &Flow) -> Result<Self> {
        flow.check_unconditional("the independent MH proposal", None)?;
        Ok(Self { flow: flow.valid() })
    }
}

impl Sampler for IndependentMh {
    type State = ImhState;
    type Info = StepInfo;

    fn init(&self, energy: &dyn Energy, position: Tensor<2>) -> Result<ImhState> {
        self.flow
            .check_unconditional("the independent MH proposal", Some(energy))?;
        check_batch("initial position", &position, energy.dim())?;
        check_finite("initial position", &position)?;
        Ok(ImhState {
            energy: energy.energy(position.clone()),
            log_q: self.flow.log_prob_unchecked(position.clone(), None),
            position,
        })
    }

    fn step(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ImhState,
    ) -> Result<(ImhState, StepInfo)> {
        let n = state.position.dims()[0];
        let device = state.position.device();
        let (proposal, log_q) = self.flow.sample_with_log_prob(rng, n, None, &device)?;
        let e = energy.energy(proposal.clone());
        let log_alpha = (state.energy.clone() + state.log_q.clone()) - (e.clone() + log_q.clone());
        let (accept, p) = accept_test(rng, log_alpha);
        let next = ImhState {
            position: select_rows(accept.clone(), state.position, proposal),
            energy: state.energy.mask_where(accept.clone(), e),
            log_q: state.log_q.mask_where(accept, log_q),
        };
        Ok((
            next,
            StepInfo {
                step_size: 0.0,
                acceptance_probability: Some(p),
                divergent: None,
                tree_depth: None,
            },
        ))
    }

    fn name(&self) -> &'static str {
        "flow-imh"
    }
}
