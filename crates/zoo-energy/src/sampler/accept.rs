//! The Metropolis-Hastings test over a batch of chains (shared by MALA and HMC).

use super::ChainState;
use crate::rng::{ZooRng, log_uniform};
use burn::prelude::*;

/// Accepts `proposal` per chain where log u < `log_alpha` (u ~ U(0, 1]); NaN never accepts.
/// Returns the new state and min(1, alpha) per chain (NaN mapped to 0).
pub(crate) fn metropolis(
    rng: &mut ZooRng,
    log_alpha: Tensor<1>,
    current: ChainState,
    proposal: ChainState,
) -> (ChainState, Tensor<1>) {
    let [n, d] = current.position.dims();
    let device = current.position.device();
    let log_u = log_uniform(rng, n, &device);
    let accept = log_u.lower(log_alpha.clone()); // false for NaN
    let accept_rows = accept.clone().unsqueeze_dim::<2>(1).expand([n, d]);
    let state = ChainState {
        position: current
            .position
            .mask_where(accept_rows.clone(), proposal.position),
        energy: current.energy.mask_where(accept, proposal.energy),
        score: current.score.mask_where(accept_rows, proposal.score),
    };
    let finite = log_alpha
        .clone()
        .mask_fill(log_alpha.is_nan(), f32::NEG_INFINITY);
    (state, finite.clamp_max(0.0).exp())
}
