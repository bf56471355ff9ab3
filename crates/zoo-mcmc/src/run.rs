//! The driver loop around a kernel: warm-up with optional dual-averaging adaptation, kept draws
//! for diagnostics, and divergence detection (a NaN or infinite energy or position stops the run
//! with the step and chain where it appeared).

use crate::diagnostics::Draws;
use crate::sampler::{
    ChainKernel, ChainState, DualAveraging, ParallelTempering, Sampler, TemperingState,
    adapt_ladder,
};
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
    /// NUTS: the mean tree depth after warm-up (`None` for other kernels).
    pub mean_tree_depth: Option<f64>,
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
    let mut depth_total: Option<Tensor<1>> = None;
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
                sampler.set_step_size(dual_averaging_step(ad, a, t == config.warmup))?;
            }
            on_step(t);
            continue;
        }
        accept_count += 1;
        add_on_device(&mut accept_total, info.acceptance_probability);
        add_on_device(&mut divergent_total, info.divergent);
        add_on_device(&mut depth_total, info.tree_depth);
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
    let mean_tree_depth = depth_total
        .filter(|_| accept_count > 0)
        .map(|t| f64::from(to_host1(&t)[0]) / (accept_count * chains) as f64);
    Ok(RunOutput {
        state,
        draws,
        acceptance_rate,
        step_size: sampler.step_size(),
        divergences,
        mean_tree_depth,
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

/// How long to run parallel tempering and what to keep.
#[derive(Debug, Clone)]
pub struct TemperingRunConfig {
    /// Warm-up sweeps (ladder adaptation happens here; nothing is kept).
    pub warmup: usize,
    /// Sweeps after warm-up.
    pub steps: usize,
    /// Keep every `thin`-th sweep of the target replica (>= 1).
    pub thin: usize,
    /// During warm-up, move the ladder towards equal swap rates every [`LADDER_WINDOW`] sweeps.
    pub adapt_ladder: bool,
    /// Adapt the kernel's step size in warm-up towards this mean acceptance over all replicas
    /// (they share one step size in their scaled coordinates; MALA/HMC only).
    pub target_acceptance: Option<f64>,
    /// Check energies for NaN/inf every this many sweeps (>= 1).
    pub check_every: usize,
    /// Copy the target replica's kept positions to the host.
    pub keep_draws: bool,
}

/// Sweeps between two ladder adaptations (each pair is proposed in half of them).
pub const LADDER_WINDOW: usize = 100;

/// What a tempering run returns.
#[derive(Debug)]
pub struct TemperingOutput {
    /// The final state of every replica.
    pub state: TemperingState,
    /// Kept draws of the target replica (beta = 1).
    pub draws: Option<Draws>,
    /// Mean kernel acceptance per replica after warm-up (1 for ULA).
    pub acceptance: Vec<f64>,
    /// Mean exchange probability per neighbour pair after warm-up.
    pub swap_rates: Vec<f64>,
    /// The ladder used after warm-up.
    pub betas: Vec<f64>,
    /// The kernel's step size after warm-up (the target replica's).
    pub step_size: f64,
    /// Divergent kernel transitions after warm-up, over every replica.
    pub divergences: usize,
}

/// Runs parallel tempering on `energy`, every replica started at `position: [n, d]`;
/// `on_step(t)` after every sweep.
pub fn run_tempering<K: ChainKernel>(
    rng: &mut ZooRng,
    pt: &mut ParallelTempering<K>,
    energy: &dyn Energy,
    position: Tensor<2>,
    config: &TemperingRunConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<TemperingOutput> {
    if config.thin == 0 || config.check_every == 0 {
        return Err(Error::invalid("thin", "thin and check_every must be >= 1"));
    }
    let [chains, dim] = position.dims();
    let replicas = pt.ladder().len();
    crate::sampler::check_replicas(replicas, chains, dim)?;
    if config.keep_draws {
        check_kept_draws(chains, config.steps / config.thin, dim)?;
    }
    let mut adapter = adapter(pt.kernel_mut(), config.target_acceptance)?;
    let mut state = pt.init(energy, position)?;
    let mut draws = config.keep_draws.then(|| Draws::new(chains, dim));
    let mut tally = Tally::new(replicas - 1);
    let (mut unchecked, mut checked) = (Vec::new(), 0usize);
    let total = config.warmup + config.steps;
    for t in 1..=total {
        let (next, info) = pt.sweep(rng, energy, state)?;
        state = next;
        unchecked.push(state.stacked.energy.clone());
        if t % config.check_every == 0 || t == total {
            let step_size = info.kernel.step_size;
            check_energies(std::mem::take(&mut unchecked), checked, step_size)?;
            checked = t;
        }
        if t <= config.warmup {
            if let (Some(ad), Some(a)) = (adapter.as_mut(), &info.kernel.acceptance_probability) {
                pt.kernel_mut()
                    .set_step_size(dual_averaging_step(ad, a, t == config.warmup))?;
            }
            state = tally.warmup(pt, state, &info, t, config)?;
        } else {
            let step_size = info.kernel.step_size;
            tally.keep(info);
            if let Some(store) = draws
                .as_mut()
                .filter(|_| (t - config.warmup).is_multiple_of(config.thin))
            {
                let x = to_host2(&pt.cold(&state));
                divergence(t, "position", &x, dim, step_size)?;
                store.push(&x)?;
            }
        }
        on_step(t);
    }
    Ok(TemperingOutput {
        state,
        draws,
        acceptance: tally.acceptance(replicas, chains),
        swap_rates: rates(&tally.swaps),
        betas: pt.ladder().betas().to_vec(),
        step_size: pt.kernel_mut().step_size(),
        divergences: tally
            .divergent
            .map_or(0, |t| to_host1(&t)[0].round() as usize),
    })
}

/// What a tempering run accumulates: the swap probabilities of the current adaptation window
/// and after warm-up (per pair: sum, count), the kernel's acceptance per row and the divergences
/// after warm-up.
struct Tally {
    window: Vec<(f64, usize)>,
    windows: usize,
    swaps: Vec<(f64, usize)>,
    accept: Option<Tensor<1>>,
    kept: usize,
    divergent: Option<Tensor<1>>,
}

impl Tally {
    fn new(pairs: usize) -> Self {
        Self {
            window: vec![(0.0, 0); pairs],
            windows: 0,
            swaps: vec![(0.0, 0); pairs],
            accept: None,
            kept: 0,
            divergent: None,
        }
    }

    /// A warm-up sweep: its swap probabilities join the window; at the end of a window (not the
    /// last one before sampling) the ladder moves towards equal rates when asked.
    fn warmup<K: ChainKernel>(
        &mut self,
        pt: &mut ParallelTempering<K>,
        state: TemperingState,
        info: &crate::sampler::TemperingInfo,
        t: usize,
        config: &TemperingRunConfig,
    ) -> Result<TemperingState> {
        add_rates(&mut self.window, &info.swap_probability);
        if !(config.adapt_ladder
            && t.is_multiple_of(LADDER_WINDOW)
            && t + LADDER_WINDOW <= config.warmup)
        {
            return Ok(state);
        }
        self.windows += 1;
        let gain = 1.0 / (self.windows as f64).sqrt();
        let ladder = adapt_ladder(pt.ladder(), &rates(&self.window), gain)?;
        self.window.iter_mut().for_each(|w| *w = (0.0, 0));
        pt.set_ladder(state, ladder)
    }

    /// A sweep after warm-up: rates, acceptance and divergences are summed (on the device).
    fn keep(&mut self, info: crate::sampler::TemperingInfo) {
        add_rates(&mut self.swaps, &info.swap_probability);
        self.kept += 1;
        if let Some(a) = info.kernel.acceptance_probability {
            self.accept = Some(self.accept.take().map_or(a.clone(), |s| s + a));
        }
        add_on_device(&mut self.divergent, info.kernel.divergent);
    }

    /// The mean acceptance per replica (rows of `chains` per replica).
    fn acceptance(&self, replicas: usize, chains: usize) -> Vec<f64> {
        match (self.kept, &self.accept) {
            (0, _) => vec![f64::NAN; replicas],
            (_, None) => vec![1.0; replicas],
            (n, Some(sum)) => to_host1(sum)
                .chunks(chains)
                .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>() / (n * chains) as f64)
                .collect(),
        }
    }
}

/// Adds this sweep's exchange probabilities to per-pair (sum, count).
fn add_rates(sums: &mut [(f64, usize)], probabilities: &[Option<f64>]) {
    for (s, p) in sums.iter_mut().zip(probabilities) {
        if let Some(p) = p {
            s.0 += p;
            s.1 += 1;
        }
    }
}

/// Per-pair mean of (sum, count); NaN for a pair never proposed.
fn rates(sums: &[(f64, usize)]) -> Vec<f64> {
    sums.iter()
        .map(|(s, n)| if *n == 0 { f64::NAN } else { s / *n as f64 })
        .collect()
}

/// One dual-averaging update from the mean of `acceptance` (one host copy); at the `last`
/// warm-up step the averaged step size (Hoffman & Gelman 2014, Algorithm 5).
fn dual_averaging_step(ad: &mut DualAveraging, acceptance: &Tensor<1>, last: bool) -> f64 {
    let a = to_host1(acceptance);
    let h = ad.update(a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len().max(1) as f64);
    if last { ad.final_step_size() } else { h }
}

/// Stan's warm-up for NUTS (Stan reference manual, "HMC algorithm parameters"): dual averaging
/// of the step size towards `target_acceptance` throughout, and a diagonal inverse mass matrix
/// estimated from the draws of windows of 25, 50, 100, ... iterations between an initial buffer
/// of 75 and a final buffer of 50 (15% / 75% / 10% of a warm-up shorter than 150); after each
/// window the mass is set to the window's variances, regularised towards 1e-3 as Stan does
/// ((n / (n + 5)) var + 1e-3 (5 / (n + 5))), and dual averaging restarts. Returns the tuned kernel
/// and the chains' state after `warmup` transitions.
pub fn nuts_warmup(
    rng: &mut ZooRng,
    nuts: &mut crate::sampler::Nuts,
    energy: &dyn Energy,
    position: Tensor<2>,
    warmup: usize,
    target_acceptance: f64,
) -> Result<ChainState> {
    use crate::sampler::StepSize;
    let target = check_unit_open("target_acceptance", target_acceptance)?;
    let mut state = nuts.init(energy, position)?;
    let dim = state.position.dims()[1];
    let windows = mass_windows(warmup);
    let mut adapter = DualAveraging::new(nuts.step_size(), target)?;
    let mut window: Vec<Vec<f64>> = Vec::new();
    for t in 0..warmup {
        let (next, info) = nuts.step(rng, energy, state)?;
        state = next;
        check_energies(vec![state.energy.clone()], t, info.step_size)?;
        if let Some(a) = &info.acceptance_probability {
            nuts.set_step_size(dual_averaging_step(&mut adapter, a, false))?;
        }
        if let Some(&(_, end)) = windows.iter().find(|(s, e)| (*s..*e).contains(&t)) {
            let x = to_host2(&state.position);
            window.extend(
                x.chunks(dim)
                    .map(|r| r.iter().map(|&v| f64::from(v)).collect()),
            );
            if t + 1 == end {
                let inv_mass = regularised_variances(&window, dim);
                *nuts = nuts.clone().with_inv_mass(inv_mass)?;
                adapter = DualAveraging::new(nuts.step_size(), target)?;
                window.clear();
            }
        }
    }
    if warmup > 0 {
        nuts.set_step_size(adapter.final_step_size())?;
    }
    Ok(ChainState::at(energy, state.position))
}

/// Stan's slow adaptation windows `[start, end)` for a warm-up of `warmup` iterations.
pub fn mass_windows(warmup: usize) -> Vec<(usize, usize)> {
    if warmup < 20 {
        return Vec::new();
    }
    let (init, term, base) = if 75 + 50 + 25 > warmup {
        (
            warmup * 15 / 100,
            warmup / 10,
            warmup - warmup * 15 / 100 - warmup / 10,
        )
    } else {
        (75, 50, 25)
    };
    let end = warmup - term;
    let (mut start, mut size, mut out) = (init, base, Vec::new());
    while start < end {
        // The last window stretches to the final buffer when the next would not fit.
        let stop = if start + 3 * size > end {
            end
        } else {
            start + size
        };
        out.push((start, stop));
        start = stop;
        size *= 2;
    }
    out
}

/// Per-coordinate variance of the rows, regularised as Stan's diagonal metric adaptation.
fn regularised_variances(rows: &[Vec<f64>], dim: usize) -> Vec<f64> {
    let n = rows.len() as f64;
    (0..dim)
        .map(|j| {
            let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        })
        .collect()
}
