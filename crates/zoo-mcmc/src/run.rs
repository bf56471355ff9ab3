//! The driver loop around a kernel: warm-up with optional dual-averaging adaptation, kept draws
//! for diagnostics, and divergence detection (a NaN or infinite energy or position stops the run
//! with the step and chain where it appeared).

use crate::diagnostics::Draws;
use crate::sampler::{ChainKernel, ChainState, DualAveraging};
use burn::prelude::*;
use zoo_energy::energy::Energy;
use zoo_energy::error::{Error, Result, check_unit_open};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{first_non_finite, to_host1, to_host2};

/// How long to run and what to keep.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Warm-up steps (adaptation happens here; nothing is kept).
    pub warmup: usize,
    /// Steps after warm-up.
    pub steps: usize,
    /// Keep every `thin`-th step after warm-up (>= 1).
    pub thin: usize,
    /// Adapt the step size during warm-up towards this mean acceptance (MALA/HMC only).
    pub target_acceptance: Option<f64>,
    /// Check energies for NaN/inf every this many steps (>= 1): one host copy of the energies
    /// since the last check, and the first non-finite one is reported with its own step and
    /// chain. Kept draws are always checked.
    pub check_every: usize,
    /// Copy kept positions to the host for diagnostics.
    pub keep_draws: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            warmup: 0,
            steps: 1000,
            thin: 1,
            target_acceptance: None,
            check_every: 1,
            keep_draws: true,
        }
    }
}

/// What a run returns.
#[derive(Debug)]
pub struct RunOutput {
    /// The final state.
    pub state: ChainState,
    /// Kept draws (when `keep_draws`).
    pub draws: Option<Draws>,
    /// Mean acceptance probability after warm-up (1 for ULA).
    pub acceptance_rate: f64,
    /// The step size after warm-up (adapted or as given).
    pub step_size: f64,
    /// Divergent transitions after warm-up, summed over chains (HMC; 0 for kernels without a
    /// trajectory). Any divergence means the draws may be biased: reduce the step size or
    /// reparameterise (e.g. the non-centred funnel).
    pub divergences: usize,
}

fn divergence(
    step: usize,
    what: &'static str,
    values: &[f32],
    d: usize,
    step_size: f64,
) -> Result<()> {
    match first_non_finite(values, d) {
        None => Ok(()),
        Some((chain, _, value)) => Err(Error::Divergence {
            step,
            chain,
            what,
            value,
            step_size,
        }),
    }
}

/// Checks that `kept` draws of `chains x dim` fit the memory budget before they are kept: 4 bytes
/// a value, plus the diagnostics' f64 traces of one coordinate at a time (16 bytes a draw).
pub fn check_kept_draws(chains: usize, kept: usize, dim: usize) -> Result<()> {
    use zoo_energy::memory::{check, product};
    let (c, k, d) = (chains as u128, kept as u128, dim as u128);
    check(
        "the kept draws (chains x steps / thin x dim)",
        product(&[c, k, d, 4]).saturating_add(product(&[c, k, 16])),
    )
}

/// Runs `sampler` on `energy` from `position`; `on_step(t)` is called after every step (progress).
pub fn run(
    rng: &mut ZooRng,
    sampler: &mut dyn ChainKernel,
    energy: &dyn Energy,
    position: Tensor<2>,
    config: &RunConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<RunOutput> {
    if config.thin == 0 || config.check_every == 0 {
        return Err(Error::invalid("thin", "thin and check_every must be >= 1"));
    }
    let mut adapter = adapter(sampler, config.target_acceptance)?;
    let [chains, dim] = position.dims();
    if config.keep_draws {
        check_kept_draws(chains, config.steps / config.thin, dim)?;
    }
    let mut state = sampler.init(energy, position)?;
    let mut draws = config.keep_draws.then(|| Draws::new(chains, dim));
    // Acceptance after warm-up is summed on the device and read once at the end: no host
    // synchronisation per step for it (only adaptation and the divergence checks read per step).
    let mut accept_total: Option<Tensor<1>> = None;
    let mut accept_count = 0usize;
    let mut divergent_total: Option<Tensor<1>> = None;
    // Energies of the steps since the last check (`checked` steps are known finite).
    let mut unchecked: Vec<Tensor<1>> = Vec::with_capacity(config.check_every.min(1024));
    let mut checked = 0usize;
    let total = config.warmup + config.steps;
    for t in 1..=total {
        let (next, info) = sampler.step(rng, energy, state)?;
        state = next;
        unchecked.push(state.energy.clone());
        if t % config.check_every == 0 || t == total {
            check_energies(std::mem::take(&mut unchecked), checked, info.step_size)?;
            checked = t;
        }
        if t <= config.warmup {
            if let (Some(ad), Some(a)) = (adapter.as_mut(), &info.acceptance_probability) {
                let mean = to_host1(a).iter().map(|&v| v as f64).sum::<f64>() / chains as f64;
                sampler.set_step_size(ad.update(mean))?;
                if t == config.warmup {
                    sampler.set_step_size(ad.final_step_size())?;
                }
            }
            on_step(t);
            continue;
        }
        accept_count += 1;
        add_on_device(&mut accept_total, info.acceptance_probability);
        add_on_device(&mut divergent_total, info.divergent);
        if let Some(store) = draws
            .as_mut()
            .filter(|_| (t - config.warmup).is_multiple_of(config.thin))
        {
            let x = to_host2(&state.position);
            divergence(t, "position", &x, dim, info.step_size)?;
            store.push(&x)?;
        }
        on_step(t);
    }
    let acceptance_rate = match (accept_count, accept_total) {
        (0, _) => f64::NAN,
        (_, None) => 1.0, // no Metropolis test: every move is kept
        (n, Some(sum)) => to_host1(&sum)[0] as f64 / (n * chains) as f64,
    };
    let divergences = divergent_total.map_or(0, |t| to_host1(&t)[0].round() as usize);
    Ok(RunOutput {
        state,
        draws,
        acceptance_rate,
        step_size: sampler.step_size(),
        divergences,
    })
}

/// Dual averaging towards `target` mean acceptance, if one is given and the kernel has a
/// Metropolis test.
fn adapter(sampler: &dyn ChainKernel, target: Option<f64>) -> Result<Option<DualAveraging>> {
    let Some(target) = target else {
        return Ok(None);
    };
    if !sampler.has_acceptance_test() {
        let why = format!(
            "{} has no acceptance test to adapt to; use mala or hmc",
            sampler.name().to_uppercase()
        );
        return Err(Error::invalid("target_acceptance", why));
    }
    let target = check_unit_open("target_acceptance", target)?;
    Ok(Some(DualAveraging::new(sampler.step_size(), target)?))
}

/// The energies of the steps after step `checked`, `[n]` each: the first non-finite one is a
/// divergence, reported with its own step and chain.
fn check_energies(energies: Vec<Tensor<1>>, checked: usize, step_size: f64) -> Result<()> {
    let chains = energies.first().map_or(1, |e| e.dims()[0]);
    let host = to_host1(&Tensor::cat(energies, 0));
    match first_non_finite(&host, 1) {
        None => Ok(()),
        Some((i, _, value)) => Err(Error::Divergence {
            step: checked + i / chains + 1,
            chain: i % chains,
            what: "energy",
            value,
            step_size,
        }),
    }
}

/// `total += sum(value)` on the device (no host synchronisation per step).
fn add_on_device(total: &mut Option<Tensor<1>>, value: Option<Tensor<1>>) {
    if let Some(v) = value {
        let sum = v.sum();
        *total = Some(match total.take() {
            Some(acc) => acc + sum,
            None => sum,
        });
    }
}
