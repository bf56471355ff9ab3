//! Samplers for spin systems over a batch of replicas, in the crate's init / step shape:
//! single-spin Metropolis (a sweep visits every site in order), heat-bath (Gibbs) sweeps, and the
//! Wolff cluster algorithm (Wolff 1989; one cluster flip per step, h = 0, J > 0).

use super::{Ising, check_beta};
use rand::RngExt;
use serde::Serialize;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;
use zoo_mcmc::diagnostics::effective_sample_size;

/// Replicas of a spin configuration.
#[derive(Debug, Clone)]
pub struct SpinState {
    /// `replicas x sites`, row-major, values ±1.
    pub spins: Vec<i8>,
    /// Number of replicas.
    pub replicas: usize,
}

impl SpinState {
    /// Independent uniformly random configurations (infinite temperature).
    pub fn random(rng: &mut ZooRng, model: &Ising, replicas: usize) -> Self {
        let spins = (0..replicas * model.sites())
            .map(|_| if rng.random::<bool>() { 1 } else { -1 })
            .collect();
        Self { spins, replicas }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpinInfo {
    /// The inverse temperature used.
    pub beta: f64,
    /// Mean acceptance over the sites (Metropolis), 1 (heat bath), or the mean cluster size as a
    /// fraction of the lattice (Wolff).
    pub statistic: f64,
}

/// The spin samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpinSampler {
    /// Single-spin Metropolis sweeps.
    Metropolis,
    /// Heat-bath (Gibbs) sweeps.
    Gibbs,
    /// Wolff single-cluster updates.
    Wolff,
}

impl std::str::FromStr for SpinSampler {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "metropolis" => Ok(Self::Metropolis),
            "gibbs" => Ok(Self::Gibbs),
            "wolff" => Ok(Self::Wolff),
            other => Err(Error::UnknownName {
                kind: "spin sampler",
                name: other.into(),
                known: "metropolis, gibbs, wolff".into(),
            }),
        }
    }
}

impl SpinSampler {
    /// Checks that the sampler applies to `model` (Wolff needs h = 0 and J > 0).
    pub fn check(self, model: &Ising) -> Result<()> {
        if self == Self::Wolff && (model.field() != 0.0 || model.coupling() <= 0.0) {
            return Err(Error::invalid(
                "sampler",
                "the Wolff algorithm needs h = 0 and a ferromagnetic J > 0",
            ));
        }
        Ok(())
    }

    /// The initial state: `replicas` independent uniformly random configurations
    /// (infinite temperature); the `init` of the crate's init / step contract.
    pub fn init(self, rng: &mut ZooRng, model: &Ising, replicas: usize) -> SpinState {
        SpinState::random(rng, model, replicas)
    }

    /// One step on every replica at inverse temperature `beta` (a sweep, or one cluster flip).
    pub fn step(
        self,
        rng: &mut ZooRng,
        model: &Ising,
        beta: f64,
        mut state: SpinState,
    ) -> (SpinState, SpinInfo) {
        let statistic = self.step_in_place(rng, model, beta, &mut state);
        (state, SpinInfo { beta, statistic })
    }

    /// [`Self::step`] without moving the state; returns [`SpinInfo::statistic`].
    pub fn step_in_place(
        self,
        rng: &mut ZooRng,
        model: &Ising,
        beta: f64,
        state: &mut SpinState,
    ) -> f64 {
        let n = model.sites();
        let mut total = 0.0;
        for r in 0..state.replicas {
            let s = &mut state.spins[r * n..(r + 1) * n];
            total += match self {
                Self::Metropolis => {
                    let mut accepted = 0usize;
                    for i in 0..n {
                        let delta = 2.0 * s[i] as f64 * model.local_field(s, i);
                        if delta <= 0.0 || rng.random::<f64>() < (-beta * delta).exp() {
                            s[i] = -s[i];
                            accepted += 1;
                        }
                    }
                    accepted as f64 / n as f64
                }
                Self::Gibbs => {
                    for i in 0..n {
                        let p_up = 1.0 / (1.0 + (-2.0 * beta * model.local_field(s, i)).exp());
                        s[i] = if rng.random::<f64>() < p_up { 1 } else { -1 };
                    }
                    1.0
                }
                Self::Wolff => wolff(rng, model, beta, s) as f64 / n as f64,
            };
        }
        total / state.replicas as f64
    }
}

/// One Wolff cluster flip; returns the cluster size.
fn wolff(rng: &mut ZooRng, model: &Ising, beta: f64, s: &mut [i8]) -> usize {
    let p_add = 1.0 - (-2.0 * beta * model.coupling()).exp();
    let seed = rng.random_range(0..s.len());
    let sign = s[seed];
    let mut stack = vec![seed];
    s[seed] = -sign;
    let mut size = 1;
    while let Some(i) = stack.pop() {
        for &j in model.neighbours(i) {
            if s[j] == sign && rng.random::<f64>() < p_add {
                s[j] = -sign;
                stack.push(j);
                size += 1;
            }
        }
    }
    size
}

/// Observables from a run, with standard errors from the ESS over replicas.
#[derive(Debug, Clone, Serialize)]
pub struct Observables {
    /// Inverse temperature.
    pub beta: f64,
    /// <E> / N and its standard error.
    pub energy_per_spin: f64,
    /// Standard error of `energy_per_spin`.
    pub energy_se: f64,
    /// <|m|>.
    pub abs_magnetisation: f64,
    /// Standard error of `abs_magnetisation`.
    pub abs_magnetisation_se: f64,
    /// beta N (<m^2> - <|m|>^2).
    pub susceptibility: f64,
    /// beta^2 N (<e^2> - <e>^2), e = E / N.
    pub specific_heat: f64,
    /// 1 - <m^4> / (3 <m^2>^2).
    pub binder_cumulant: f64,
    /// Integrated autocorrelation time of |m| in steps of the sampler, (replicas x steps) / ESS.
    pub tau_abs_magnetisation: f64,
    /// Mean acceptance (single-spin) or mean cluster fraction (Wolff).
    pub mean_step_statistic: f64,
}

/// Runs `warmup + steps` steps of `sampler` from random configurations and measures.
pub fn observe(
    rng: &mut ZooRng,
    model: &Ising,
    sampler: SpinSampler,
    beta: f64,
    replicas: usize,
    warmup: usize,
    steps: usize,
) -> Result<Observables> {
    let beta = check_beta(beta)?;
    sampler.check(model)?;
    if replicas == 0 || steps < 8 {
        return Err(Error::invalid(
            "sweeps",
            "need >= 1 replica and >= 8 measured steps",
        ));
    }
    let n = model.sites();
    // Spins (1 byte a site, a copy for the cluster stack) and the E, m, |m| traces.
    let bytes = zoo_energy::memory::product(&[replicas as u128, n as u128, 2]).saturating_add(
        zoo_energy::memory::product(&[replicas as u128, steps as u128, 24]),
    );
    zoo_energy::memory::check(
        "the replicas' spins and traces (replicas x sites, replicas x sweeps)",
        bytes,
    )?;
    let mut state = sampler.init(rng, model, replicas);
    for _ in 0..warmup {
        sampler.step_in_place(rng, model, beta, &mut state);
    }
    let mut e_trace = vec![Vec::with_capacity(steps); replicas];
    let mut m_trace = vec![Vec::with_capacity(steps); replicas];
    let mut stat = 0.0;
    for _ in 0..steps {
        stat += sampler.step_in_place(rng, model, beta, &mut state);
        for r in 0..replicas {
            let s = &state.spins[r * n..(r + 1) * n];
            e_trace[r].push(model.energy(s) / n as f64);
            m_trace[r].push(s.iter().map(|&v| v as f64).sum::<f64>() / n as f64);
        }
    }
    let abs_m: Vec<Vec<f64>> = m_trace
        .iter()
        .map(|c| c.iter().map(|m| m.abs()).collect())
        .collect();
    let mean = |t: &[Vec<f64>], f: &dyn Fn(f64) -> f64| {
        let count = (t.len() * t[0].len()) as f64;
        t.iter().flatten().map(|&v| f(v)).sum::<f64>() / count
    };
    let e = mean(&e_trace, &|v| v);
    let e2 = mean(&e_trace, &|v| v * v);
    let am = mean(&abs_m, &|v| v);
    let m2 = mean(&m_trace, &|v| v * v);
    let m4 = mean(&m_trace, &|v| v.powi(4));
    let total = (replicas * steps) as f64;
    let (ess_e, ess_m) = (
        effective_sample_size(&e_trace),
        effective_sample_size(&abs_m),
    );
    Ok(Observables {
        beta,
        energy_per_spin: e,
        energy_se: ((e2 - e * e).max(0.0) / ess_e).sqrt(),
        abs_magnetisation: am,
        abs_magnetisation_se: ((m2 - am * am).max(0.0) / ess_m).sqrt(),
        susceptibility: beta * n as f64 * (m2 - am * am),
        specific_heat: beta * beta * n as f64 * (e2 - e * e),
        binder_cumulant: 1.0 - m4 / (3.0 * m2 * m2),
        tau_abs_magnetisation: total / ess_m,
        mean_step_statistic: stat / steps as f64,
    })
}

/// The settings of [`anneal_log_z`] (the spin counterpart of `zoo_mcmc::estimate::AnnealConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpinAnnealConfig {
    /// The kernel of one step: each sampler applied once, in turn.
    pub samplers: Vec<SpinSampler>,
    /// Inverse temperatures beta_1 < ... < beta_K (beta_0 = 0 is implied).
    pub schedule: Vec<f64>,
    /// Kernel steps per level.
    pub sweeps_per_level: usize,
    /// Replicas in all (split evenly into `groups`).
    pub replicas: usize,
    /// Independent groups, for the standard error.
    pub groups: usize,
    /// Resample a group when its ESS falls below this fraction (SMC); `None`: AIS.
    pub resample_threshold: Option<f64>,
}

/// log Z of `model` at `beta` by annealed importance sampling over inverse temperatures
/// (Neal 2001; for one kernel step per level this is Jarzynski's equality for Markov jumps):
/// replicas start at beta_0 = 0, where log Z = N ln 2 and configurations are uniform; at each
/// level log w -= (beta_k - beta_{k-1}) E(s), then `sweeps_per_level` steps of `sampler` at
/// beta_k, each step applying every sampler of `samplers` once in turn (e.g. a heat-bath sweep
/// then a Wolff cluster flip, which removes the domain walls that single-spin sweeps leave
/// below the critical temperature). With `resample_threshold`, a group is resampled when its ESS falls below that
/// fraction (SMC). Standard errors come from independent groups, as for continuous energies.
pub fn anneal_log_z(
    rng: &mut ZooRng,
    model: &Ising,
    config: &SpinAnnealConfig,
) -> Result<zoo_mcmc::estimate::LogZEstimate> {
    let (samplers, schedule) = (&config.samplers[..], &config.schedule[..]);
    let (sweeps_per_level, replicas) = (config.sweeps_per_level, config.replicas);
    let (groups, resample_threshold) = (config.groups, config.resample_threshold);
    for &b in schedule {
        check_beta(b)?;
    }
    if schedule.is_empty() || schedule.windows(2).any(|w| w[1] <= w[0]) || schedule[0] <= 0.0 {
        return Err(Error::invalid(
            "schedule",
            "inverse temperatures must be > 0 and strictly increasing",
        ));
    }
    if sweeps_per_level == 0 || samplers.is_empty() {
        return Err(Error::invalid(
            "sweeps",
            "need >= 1 sweep per level and at least one sampler",
        ));
    }
    for s in samplers {
        s.check(model)?;
    }
    let per_group = zoo_mcmc::estimate::check_groups(replicas, groups)?;
    let n = model.sites();
    let total = per_group * groups;
    zoo_energy::memory::check_elements(
        "the annealed replicas' spins (particles x sites)",
        total as u128 * n as u128,
        2,
    )?;
    let mut population = Replicas {
        state: SpinState::random(rng, model, total),
        model,
        samplers,
        sweeps: sweeps_per_level,
    };
    let path = zoo_mcmc::estimate::AnnealPath {
        betas: schedule,
        groups,
        resample_threshold,
        log_z0: n as f64 * 2f64.ln(),
    };
    zoo_mcmc::estimate::run_annealing(rng, &mut population, &path)
}

/// Spin replicas on the path exp(-beta E) / Z_beta from beta = 0 (uniform, log Z = N ln 2).
struct Replicas<'a> {
    state: SpinState,
    model: &'a Ising,
    samplers: &'a [SpinSampler],
    sweeps: usize,
}

impl zoo_mcmc::estimate::AnnealedPopulation for Replicas<'_> {
    fn len(&self) -> usize {
        self.state.spins.len() / self.model.sites()
    }

    fn reweight(&mut self, _rng: &mut ZooRng, from: f64, to: f64, log_w: &mut [f64]) -> Result<()> {
        let n = self.model.sites();
        for (r, w) in log_w.iter_mut().enumerate() {
            *w -= (to - from) * self.model.energy(&self.state.spins[r * n..(r + 1) * n]);
        }
        Ok(())
    }

    fn resample(&mut self, moves: &[(std::ops::Range<usize>, Vec<usize>)]) {
        zoo_mcmc::estimate::resample_rows(&mut self.state.spins, self.model.sites(), moves);
    }

    /// `sweeps` rounds of every sampler in turn at `beta`.
    fn transition(&mut self, rng: &mut ZooRng, beta: f64) -> Result<()> {
        for _ in 0..self.sweeps {
            for s in self.samplers {
                s.step_in_place(rng, self.model, beta, &mut self.state);
            }
        }
        Ok(())
    }
}
