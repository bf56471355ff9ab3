//! MCMC kernels over a batch of chains, in BlackJAX's shape (review §3, sampling):
//! `init(energy, position) -> State` and `step(rng, energy, state) -> (State, Info)`.
//!
//! The energy is passed to every call rather than stored, so that EBM training can change it
//! between steps while persistent chains live on (then call `init` again on the positions: the
//! cached energy and score in the state belong to the old parameters). No autodiff graph is ever
//! built: scores come from [`Energy::energy_and_score`] as plain tensors. All randomness comes from
//! the caller's [`ZooRng`] through [`zoo_energy::rng`].

/// `impl Sampler` and `impl StepSize` for a kernel whose state is a [`ChainState`], whose one
/// tunable is a validated `step_size` field, and whose transition is its inherent
/// `transition(rng, energy, state)`; `tested` says whether the transition applies a Metropolis
/// test (what step-size adaptation targets).
macro_rules! chain_kernel {
    ($ty:ty, $name:literal, tested: $tested:literal) => {
        impl $crate::sampler::StepSize for $ty {
            fn step_size(&self) -> f64 {
                self.step_size
            }
            fn set_step_size(&mut self, step_size: f64) -> Result<()> {
                self.step_size = zoo_energy::error::check_positive("step_size", step_size)?;
                Ok(())
            }
            fn has_acceptance_test(&self) -> bool {
                $tested
            }
        }

        impl $crate::sampler::Sampler for $ty {
            type State = ChainState;
            type Info = StepInfo;
            fn init(&self, energy: &dyn Energy, position: Tensor<2>) -> Result<ChainState> {
                ChainState::new(energy, position)
            }
            fn step(
                &self,
                rng: &mut ZooRng,
                energy: &dyn Energy,
                state: ChainState,
            ) -> Result<(ChainState, StepInfo)> {
                self.transition(rng, energy, state)
            }
            fn name(&self) -> &'static str {
                $name
            }
        }
    };
}

mod accept;
mod adapt;
mod anneal;
mod buffer;
mod hmc;
mod integrator;
mod mala;
mod nuts;
mod tempering;
mod ula;

pub use accept::{accept_test, select_rows};
pub use adapt::DualAveraging;
pub use anneal::{AnnealedLangevin, LevelInfo, check_schedule, geometric_schedule};
pub use buffer::{InitDistribution, ReplayBuffer};
pub use hmc::{Hmc, jittered_length};
pub use integrator::leapfrog;
pub use mala::Mala;
pub use nuts::{MAX_TREE_DEPTH, Nuts};
pub use tempering::{
    Ladder, ParallelTempering, TemperingInfo, TemperingState, adapt_ladder, check_replicas,
};
pub use ula::{Ula, langevin_move};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::error::{Error, Result};
use zoo_energy::rng::ZooRng;
use zoo_energy::tensor::{check_batch, check_finite};

/// The state of a batch of chains: positions with their cached energy and score.
#[derive(Debug, Clone)]
pub struct ChainState {
    /// `[n, d]`.
    pub position: Tensor<2>,
    /// E(position), `[n]`.
    pub energy: Tensor<1>,
    /// s(position) = -grad E(position), `[n, d]`.
    pub score: Tensor<2>,
}

impl ChainState {
    /// Validates `position` (shape `[n >= 1, energy.dim()]`, all finite) and caches E and s.
    pub fn new(energy: &dyn Energy, position: Tensor<2>) -> Result<Self> {
        check_batch("initial position", &position, energy.dim())?;
        check_finite("initial position", &position)?;
        Ok(Self::at(energy, position))
    }

    /// Caches E and s at `position` without validation (inner loops).
    pub fn at(energy: &dyn Energy, position: Tensor<2>) -> Self {
        let (e, s) = energy.energy_and_score(position.clone());
        Self {
            position,
            energy: e,
            score: s,
        }
    }

    /// Number of chains.
    pub fn chains(&self) -> usize {
        self.position.dims()[0]
    }
}

/// Per-step diagnostics.
#[derive(Debug, Clone)]
pub struct StepInfo {
    /// The step size used.
    pub step_size: f64,
    /// min(1, alpha) per chain `[n]` for Metropolis-adjusted kernels; `None` for ULA (no test).
    pub acceptance_probability: Option<Tensor<1>>,
    /// 1 per chain whose trajectory diverged (energy error H - H0 > [`DIVERGENCE_THRESHOLD`] or
    /// not finite), else 0, `[n]`; `None` for kernels without a trajectory (ULA, MALA).
    pub divergent: Option<Tensor<1>>,
    /// NUTS: the tree depth (doublings kept) per chain, `[n]`; `None` for other kernels.
    pub tree_depth: Option<Tensor<1>>,
}

/// The energy error H(x', p') - H(x, p) above which a trajectory counts as divergent (Stan's and
/// BlackJAX's 1000).
pub const DIVERGENCE_THRESHOLD: f64 = 1000.0;

/// A Markov kernel over a batch of chains.
pub trait Sampler {
    /// Everything the kernel carries between steps.
    type State: Clone;
    /// Per-step diagnostics.
    type Info;

    /// A state at `position: [n, d]`; validates shape and finiteness.
    fn init(&self, energy: &dyn Energy, position: Tensor<2>) -> Result<Self::State>;

    /// One transition; the only randomness is `rng`.
    fn step(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: Self::State,
    ) -> Result<(Self::State, Self::Info)>;

    /// The sampler's name (`ula`, `mala`, `hmc`).
    fn name(&self) -> &'static str;
}

/// The step size of a kernel, kept apart from its transition ([`Sampler`]): tuning is not the
/// kernel's job. Warm-up adaptation ([`DualAveraging`], driven by [`crate::run::run`]) sets it
/// between steps; a kernel without a step size (independent MH with a flow proposal) does not
/// implement this trait, and the chain driver does not take it.
pub trait StepSize {
    /// The current step size.
    fn step_size(&self) -> f64;

    /// Changes the step size; must be finite and > 0.
    fn set_step_size(&mut self, step_size: f64) -> Result<()>;

    /// Whether each step applies a Metropolis test whose acceptance rate adaptation can target
    /// (MALA, HMC); ULA has none.
    fn has_acceptance_test(&self) -> bool;
}

/// A kernel over [`ChainState`] with a tunable step size: what the chain driver runs.
pub trait ChainKernel: Sampler<State = ChainState, Info = StepInfo> + StepSize {}

impl<T: Sampler<State = ChainState, Info = StepInfo> + StepSize> ChainKernel for T {}

/// The samplers selectable by name, with their parameters (CLI and TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Unadjusted Langevin.
    Ula,
    /// Metropolis-adjusted Langevin.
    Mala,
    /// Hamiltonian Monte Carlo.
    Hmc,
    /// The No-U-Turn sampler.
    Nuts,
}

impl std::str::FromStr for SamplerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ula" => Ok(Self::Ula),
            "mala" => Ok(Self::Mala),
            "hmc" => Ok(Self::Hmc),
            "nuts" => Ok(Self::Nuts),
            other => Err(Error::UnknownName {
                kind: "sampler",
                name: other.into(),
                known: "ula, mala, hmc, nuts".into(),
            }),
        }
    }
}

/// Any of the three continuous samplers, chosen at run time.
#[derive(Debug, Clone)]
pub enum AnySampler {
    /// See [`Ula`].
    Ula(Ula),
    /// See [`Mala`].
    Mala(Mala),
    /// See [`Hmc`].
    Hmc(Hmc),
    /// See [`Nuts`].
    Nuts(Nuts),
}

impl AnySampler {
    /// Builds the sampler `kind` with `step_size` (and `leapfrog_steps` for HMC; NUTS gets
    /// Stan's maximum depth 10 and the identity mass, see [`Nuts::new`] for others).
    pub fn new(kind: SamplerKind, step_size: f64, leapfrog_steps: usize) -> Result<Self> {
        Ok(match kind {
            SamplerKind::Ula => Self::Ula(Ula::new(step_size)?),
            SamplerKind::Mala => Self::Mala(Mala::new(step_size)?),
            SamplerKind::Hmc => Self::Hmc(Hmc::new(step_size, leapfrog_steps)?),
            SamplerKind::Nuts => Self::Nuts(Nuts::new(step_size, 10)?),
        })
    }

    fn inner(&self) -> &dyn ChainKernel {
        match self {
            Self::Ula(s) => s,
            Self::Mala(s) => s,
            Self::Hmc(s) => s,
            Self::Nuts(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ChainKernel {
        match self {
            Self::Ula(s) => s,
            Self::Mala(s) => s,
            Self::Hmc(s) => s,
            Self::Nuts(s) => s,
        }
    }
}

impl Sampler for AnySampler {
    type State = ChainState;
    type Info = StepInfo;
    fn init(&self, energy: &dyn Energy, position: Tensor<2>) -> Result<ChainState> {
        self.inner().init(energy, position)
    }
    fn step(
        &self,
        rng: &mut ZooRng,
        energy: &dyn Energy,
        state: ChainState,
    ) -> Result<(ChainState, StepInfo)> {
        self.inner().step(rng, energy, state)
    }
    fn name(&self) -> &'static str {
        self.inner().name()
    }
}

impl StepSize for AnySampler {
    fn step_size(&self) -> f64 {
        self.inner().step_size()
    }
    fn set_step_size(&mut self, step_size: f64) -> Result<()> {
        self.inner_mut().set_step_size(step_size)
    }
    fn has_acceptance_test(&self) -> bool {
        self.inner().has_acceptance_test()
    }
}
