//! The Metropolis-Hastings test over a batch of chains (shared by MALA, HMC and any kernel with
//! its own state, such as the flow proposal of `zoo-flow`).

use super::ChainState;
use burn::prelude::*;
use zoo_energy::rng::{ZooRng, log_uniform};

/// The accept/reject decision per chain: `accept[i]` where log u < `log_alpha[i]` (u ~ U(0, 1]; NaN
/// never accepts), and min(1, alpha) per chain (NaN mapped to 0) for diagnostics.
pub fn accept_test(rng: &mut ZooRng, log_alpha: Tensor<1>) -> (Tensor<1, Bool>, Tensor<1>) {
    let n = log_alpha.dims()[0];
    let log_u = log_uniform(rng, n, &log_alpha.device());
    let accept = log_u.lower(log_alpha.clone()); // false for NaN
    let finite = log_alpha
        .clone()
        .mask_fill(log_alpha.is_nan(), f32::NEG_INFINITY);
    (accept, finite.clamp_max(0.0).exp())
}

/// Rows of `proposal` where `accept`, rows of `current` elsewhere (`[n, d]`).
pub fn select_rows(accept: Tensor<1, Bool>, current: Tensor<2>, proposal: Tensor<2>) -> Tensor<2> {
    let dims = current.dims();
    current.mask_where(accept.unsqueeze_dim::<2>(1).expand(dims), proposal)
}

/// Accepts `proposal` per chain by [`accept_test`]; returns the new state and min(1, alpha).
pub(crate) fn metropolis(
    rng: &mut ZooRng,
    log_alpha: Tensor<1>,
    current: ChainState,
    proposal: ChainState,
) -> (ChainState, Tensor<1>) {
    let (accept, probability) = accept_test(rng, log_alpha);
    let state = ChainState {
        position: select_rows(accept.clone(), current.position, proposal.position),
        energy: current.energy.mask_where(accept.clone(), proposal.energy),
        score: select_rows(accept, current.score, proposal.score),
    };
    (state, probability)
}
