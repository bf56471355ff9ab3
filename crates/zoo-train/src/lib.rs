//! # zoo-train: the one training loop of ebm-zoo
//!
//! Every family (EBM objectives, flows, VAEs, GANs, diffusion, RBMs) trains through [`train`]:
//! the family supplies its state and one step ([`Trainable`]); the loop owns the iteration
//! count, divergence handling with a real snapshot and restore, progress, and resumable
//! checkpoints. Minibatches ([`minibatch`]) and optimisers ([`OptimizerConfig`]) are shared too.
//!
//! **Restore.** Every `snapshot_every` good iterations the loop captures the whole state (the
//! same [`Checkpoint`] bytes it writes to disk). When a step fails (a non-finite or exploding
//! value, a diverged sampler) the state, the generator and the history are set back to that
//! snapshot and [`Error::TrainingDiverged`] names both the failing iteration and the restored one.
//!
//! **Resume.** With `checkpoint` set, the state is written atomically every `checkpoint_every`
//! iterations and at the end. A run that finds a checkpoint of the same run (same fingerprint)
//! continues from it; since the checkpoint carries parameters, optimiser moments, chains and
//! buffers, the generator's exact position and the history, the resumed run ends byte-identical
//! to an uninterrupted one.

mod checkpoint;

pub use checkpoint::{Checkpoint, RngState, load_module, module_bytes};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use zoo_energy::{Error, Result, ZooRng};

/// A family's training state and its step.
pub trait Trainable {
    /// What one iteration records (losses, diagnostics): the history is a `Vec` of these.
    type Log: Clone + Serialize + DeserializeOwned;

    /// Iteration `iteration` (from 1): draws its minibatch and noise from `rng`, updates the
    /// state. A non-finite or exploding value is an `Err` ([`check_value`]); the loop restores.
    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<Self::Log>;

    /// Writes everything the next steps depend on (parameters, optimiser state, chains, buffers,
    /// walkers and weights) into `checkpoint`.
    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()>;

    /// Sets the state to what [`Trainable::save`] wrote.
    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()>;

    /// A short line for the progress bar.
    fn summary(_log: &Self::Log) -> String {
        String::new()
    }
}

/// The sizes every family's training config shares, each at least 1: `iterations`,
/// `batch_size` and `snapshot_every` (the errors name the key).
pub fn check_sizes(iterations: usize, batch_size: usize, snapshot_every: usize) -> Result<()> {
    zoo_energy::check_count("iterations", iterations)?;
    zoo_energy::check_count("batch_size", batch_size)?;
    zoo_energy::check_count("snapshot_every", snapshot_every)?;
    Ok(())
}

/// The learning rate of step `iteration` (1-based) of `iterations` under cosine annealing
/// (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts): `base` at the first step,
/// `last` at the final one, `base` throughout when `last` is `None`.
pub fn cosine_learning_rate(
    base: f64,
    last: Option<f64>,
    iteration: usize,
    iterations: usize,
) -> f64 {
    let Some(last) = last else { return base };
    if iterations <= 1 {
        return base;
    }
    let done = (iteration.clamp(1, iterations) - 1) as f64 / (iterations - 1) as f64;
    last + 0.5 * (base - last) * (1.0 + (std::f64::consts::PI * done).cos())
}

/// Checks an optional final learning rate against the first: positive and not above it.
pub fn check_final_learning_rate(base: f64, last: Option<f64>) -> Result<()> {
    match last {
        Some(v) if !(v.is_finite() && v > 0.0 && v <= base) => Err(Error::invalid(
            "final_learning_rate",
            format!("must lie in (0, learning_rate = {base}], got {v}"),
        )),
        _ => Ok(()),
    }
}

/// Settings of [`train`] that are not the family's.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopConfig {
    /// Iterations in all (a resumed run counts the ones already done).
    pub iterations: usize,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint file, if any.
    pub resume: Resume,
    /// Show a progress bar.
    pub progress: bool,
    /// The progress bar's label.
    pub label: String,
}

/// Where and how often a run writes its resumable checkpoint, and which run it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// Resume from, and write, the checkpoint here (`None`: no file, nothing resumes).
    pub path: Option<PathBuf>,
    /// Write it every this many iterations (and at the end).
    pub every: usize,
    /// Identifies the run's settings (model, data, training, seed): a checkpoint carrying
    /// another fingerprint is an error, never silently continued.
    pub fingerprint: String,
}

impl Default for Resume {
    fn default() -> Self {
        Self {
            path: None,
            every: 100,
            fingerprint: String::new(),
        }
    }
}

impl Resume {
    /// A checkpoint at `path` for the run `fingerprint`, written every 100 iterations.
    pub fn at(path: impl Into<PathBuf>, fingerprint: &str) -> Self {
        Self {
            path: Some(path.into()),
            fingerprint: fingerprint.to_string(),
            ..Self::default()
        }
    }
}

impl LoopConfig {
    /// A family's loop without a progress bar: `iterations`, a restore point every
    /// `snapshot_every`, the checkpoint `resume`, `label` in messages.
    pub fn quiet(label: &str, iterations: usize, snapshot_every: usize, resume: &Resume) -> Self {
        Self {
            iterations,
            snapshot_every,
            resume: resume.clone(),
            progress: false,
            label: label.into(),
        }
    }

    /// `iterations` iterations, a restore point every 50, no checkpoint file, no progress bar.
    pub fn new(iterations: usize) -> Self {
        Self {
            iterations,
            snapshot_every: 50,
            resume: Resume::default(),
            progress: false,
            label: "train".into(),
        }
    }

    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_energy::check_count("iterations", self.iterations)?;
        zoo_energy::check_count("snapshot_every", self.snapshot_every)?;
        zoo_energy::check_count("checkpoint_every", self.resume.every)?;
        Ok(())
    }
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct Trained<L> {
    /// One log per completed iteration (those of the resumed-from run included).
    pub history: Vec<L>,
    /// The iteration this call started from (0 unless it resumed).
    pub resumed_from: usize,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
}

/// What a family whose steps record one loss returns (flows, diffusion, VAEs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LossReport {
    /// The loss of every iteration (the family's units, per point).
    pub losses: Vec<f64>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
    /// The iteration training resumed from (0: it started afresh).
    pub resumed_from: usize,
}

impl LossReport {
    /// Mean loss of the last `k` iterations.
    pub fn final_loss(&self, k: usize) -> f64 {
        let tail = &self.losses[self.losses.len().saturating_sub(k)..];
        tail.iter().sum::<f64>() / tail.len().max(1) as f64
    }
}

impl From<Trained<f64>> for LossReport {
    fn from(t: Trained<f64>) -> Self {
        LossReport {
            losses: t.history,
            seconds: t.seconds,
            resumed_from: t.resumed_from,
        }
    }
}

/// `Err(TrainingDiverged)` when `value` is not finite or `|value| > limit`.
pub fn check_value(iteration: usize, what: &str, value: f64, limit: f64) -> Result<()> {
    if value.is_finite() && value.abs() <= limit {
        return Ok(());
    }
    Err(Error::TrainingDiverged {
        iteration,
        what: what.into(),
        value,
        last_good: 0,
    })
}

fn capture<T: Trainable>(
    state: &T,
    cfg: &LoopConfig,
    iteration: usize,
    rng: &ZooRng,
    history: &[T::Log],
) -> Result<Checkpoint> {
    let mut c = Checkpoint::new(rng, &cfg.resume.fingerprint, iteration);
    state.save(&mut c)?;
    c.put_json("history", history)?;
    Ok(c)
}

fn restore<T: Trainable>(state: &mut T, c: &Checkpoint) -> Result<(ZooRng, Vec<T::Log>)> {
    state.load(c)?;
    Ok((c.rng.restore()?, c.json("history")?))
}

/// Loads `cfg.checkpoint` into `state` when it holds this run; returns the iteration reached.
fn resume<T: Trainable>(
    rng: &mut ZooRng,
    state: &mut T,
    cfg: &LoopConfig,
    history: &mut Vec<T::Log>,
) -> Result<usize> {
    let Some(path) = &cfg.resume.path else {
        return Ok(0);
    };
    let Some(c) = Checkpoint::load(path)? else {
        return Ok(0);
    };
    if c.fingerprint != cfg.resume.fingerprint {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            message: "belongs to a run with other settings; delete it to start afresh".into(),
        });
    }
    if c.iteration > cfg.iterations {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            message: format!(
                "is at iteration {}, beyond the {} iterations asked for",
                c.iteration, cfg.iterations
            ),
        });
    }
    (*rng, *history) = restore(state, &c)?;
    Ok(c.iteration)
}

/// Runs `state` to `cfg.iterations` iterations (see the crate docs for restore and resume).
pub fn train<T: Trainable>(
    rng: &mut ZooRng,
    state: &mut T,
    cfg: &LoopConfig,
) -> Result<Trained<T::Log>> {
    cfg.check()?;
    let started = Instant::now();
    let mut history = Vec::new();
    let resumed_from = resume(rng, state, cfg, &mut history)?;
    let mut snapshot = capture(state, cfg, resumed_from, rng, &history)?;
    let bar = zoo_mcmc::progress::bar(cfg.progress, cfg.iterations, &cfg.label);
    bar.set_position(resumed_from as u64);
    for iteration in resumed_from + 1..=cfg.iterations {
        match state.step(rng, iteration) {
            Ok(log) => {
                bar.set_message(T::summary(&log));
                history.push(log);
            }
            Err(error) => {
                bar.finish_and_clear();
                *rng = restore(state, &snapshot)?.0;
                return Err(diverged(iteration, snapshot.iteration, error));
            }
        }
        let last = iteration == cfg.iterations;
        if iteration % cfg.snapshot_every == 0 || last {
            snapshot = capture(state, cfg, iteration, rng, &history)?;
        }
        if let Some(path) = &cfg.resume.path
            && (iteration % cfg.resume.every == 0 || last)
        {
            let c = if snapshot.iteration == iteration {
                &snapshot
            } else {
                &capture(state, cfg, iteration, rng, &history)?
            };
            c.save(path)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Trained {
        history,
        resumed_from,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Turns a step's error into [`Error::TrainingDiverged`] naming the restored iteration.
fn diverged(iteration: usize, last_good: usize, error: Error) -> Error {
    match error {
        Error::TrainingDiverged { what, value, .. } => Error::TrainingDiverged {
            iteration,
            what,
            value,
            last_good,
        },
        Error::Divergence {
            step,
            chain,
            what,
            value,
            ..
        } => Error::TrainingDiverged {
            iteration,
            what: format!("sampler {what} (MCMC step {step}, chain {chain})"),
            value: value as f64,
            last_good,
        },
        Error::NonFinite { what, value, .. } => Error::TrainingDiverged {
            iteration,
            what,
            value: value as f64,
            last_good,
        },
        other => other,
    }
}

/// Gives the parameters of `module` ids that depend only on `namespace` and their order.
///
/// burn draws a fresh random [`ParamId`] for every parameter it creates, writes the ids into
/// module records and keys optimiser state by them. Two runs of one configuration, or a run and
/// its resumption in another process, would otherwise hold different ids and write different
/// checkpoint bytes for the same state. Families call this on their modules before training.
pub fn stable_ids<M: Module>(module: M, namespace: &str) -> M {
    struct Renumber {
        base: u64,
        next: u64,
    }
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            self.next += 1;
            let id = ParamId::from(self.base ^ self.next.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            Param::from_mapped_value(id, value, mapper)
        }
    }
    // FNV-1a of the namespace.
    let base = namespace.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    module.map(&mut Renumber { base, next: 0 })
}

/// `b` indices drawn uniformly with replacement from `0..n` (the minibatch of every family).
pub fn minibatch_indices(rng: &mut ZooRng, n: usize, b: usize) -> Vec<usize> {
    (0..b).map(|_| rng.random_range(0..n)).collect()
}

/// A minibatch of `b` rows of `data` (`[n, d]`), drawn with [`minibatch_indices`].
pub fn minibatch(rng: &mut ZooRng, data: &Tensor<2>, b: usize) -> Tensor<2> {
    let n = data.dims()[0];
    let idx: Vec<i64> = minibatch_indices(rng, n, b)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &data.device());
    data.clone().select(0, idx)
}

/// The optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba 2015).
    Adam,
    /// Stochastic gradient descent with momentum `beta1`. Its steps are proportional to the
    /// gradient, so parameters whose true gradient is zero barely move: what Jarzynski-weighted
    /// training needs (Adam turns gradient noise into steps of size `learning_rate`).
    Sgd,
}

/// One optimiser's settings, shared by every family (burn's [`ModuleOptimizer`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    /// Adam or SGD.
    pub kind: OptimizerKind,
    /// Adam beta_1; SGD momentum (0: none).
    pub beta1: f64,
    /// Adam beta_2.
    pub beta2: f64,
    /// Clip every parameter's gradient to this norm (burn's per-tensor norm clipping).
    pub grad_clip: Option<f64>,
}

impl OptimizerConfig {
    /// Adam with beta = (0.9, 0.999) and no clipping.
    pub fn adam() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            beta1: 0.9,
            beta2: 0.999,
            grad_clip: None,
        }
    }

    /// This optimiser with fresh state.
    pub fn build(&self) -> ModuleOptimizer {
        let clip = self
            .grad_clip
            .map(|c| GradientClippingConfig::Norm(c as f32));
        match self.kind {
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(self.beta1 as f32)
                .with_beta_2(self.beta2 as f32)
                .with_grad_clipping(clip)
                .init(),
            OptimizerKind::Sgd => {
                let momentum = (self.beta1 > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.beta1)
                        .with_dampening(0.0)
                });
                SgdConfig::new()
                    .with_momentum(momentum)
                    .with_gradient_clipping(clip)
                    .init()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_annealing_runs_from_the_first_rate_to_the_last_and_falls_monotonically() {
        let lr = cosine_learning_rate;
        assert_eq!(lr(1e-3, None, 7, 100), 1e-3);
        assert!((lr(1e-3, Some(1e-5), 1, 100) - 1e-3).abs() < 1e-18);
        assert!((lr(1e-3, Some(1e-5), 100, 100) - 1e-5).abs() < 1e-18);
        // Half-way (iteration 51 of 101) the cosine is 0: the mean of the two rates.
        assert!((lr(1e-3, Some(1e-5), 51, 101) - 0.505e-3).abs() < 1e-15);
        let rates: Vec<f64> = (1..=100).map(|i| lr(1e-3, Some(1e-5), i, 100)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]));
        assert!(check_final_learning_rate(1e-3, Some(2e-3)).is_err());
        assert!(check_final_learning_rate(1e-3, Some(0.0)).is_err());
        assert!(check_final_learning_rate(1e-3, Some(1e-3)).is_ok());
    }

    /// A counter that fails at a chosen iteration: the loop's own bookkeeping, without a model.
    struct Counter {
        value: u64,
        fail_at: Option<usize>,
    }

    impl Trainable for Counter {
        type Log = u64;
        fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<u64> {
            self.value = self
                .value
                .wrapping_mul(31)
                .wrapping_add(rng.random::<u64>() % 1000);
            let bad = if Some(iteration) == self.fail_at {
                f64::NAN
            } else {
                1.0
            };
            check_value(iteration, "value", bad, 10.0)?;
            Ok(self.value)
        }
        fn save(&self, c: &mut Checkpoint) -> Result<()> {
            c.put_json("value", &self.value)
        }
        fn load(&mut self, c: &Checkpoint) -> Result<()> {
            self.value = c.json("value")?;
            Ok(())
        }
    }

    #[test]
    fn a_failing_step_restores_the_last_snapshot_and_names_both_iterations() {
        let cfg = LoopConfig {
            snapshot_every: 5,
            ..LoopConfig::new(40)
        };
        let mut reference = Counter {
            value: 1,
            fail_at: None,
        };
        let mut rng = zoo_energy::seeded(3);
        let upto = LoopConfig {
            iterations: 15,
            ..cfg.clone()
        };
        train(&mut rng, &mut reference, &upto).unwrap();
        let mut c = Counter {
            value: 1,
            fail_at: Some(18),
        };
        let mut rng2 = zoo_energy::seeded(3);
        let err = train(&mut rng2, &mut c, &cfg).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TrainingDiverged {
                    iteration: 18,
                    last_good: 15,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(c.value, reference.value);
        assert_eq!(
            RngState::of(&rng2),
            RngState::of(&rng),
            "the generator is restored too"
        );
    }

    #[test]
    fn stable_ids_depend_only_on_the_namespace_and_the_order() {
        use burn::module::Param;
        #[derive(Module, Debug)]
        struct Two {
            a: Param<Tensor<1>>,
            b: Param<Tensor<1>>,
        }
        let dev = zoo_energy::BackendKind::Flex
            .device()
            .or_else(|_| zoo_energy::BackendKind::Ndarray.device())
            .unwrap();
        let make = || Two {
            a: Param::from_tensor(Tensor::zeros([2], &dev)),
            b: Param::from_tensor(Tensor::ones([3], &dev)),
        };
        let (x, y) = (stable_ids(make(), "m"), stable_ids(make(), "m"));
        assert_eq!((x.a.id, x.b.id), (y.a.id, y.b.id));
        assert_ne!(x.a.id, x.b.id);
        assert_ne!(stable_ids(make(), "other").a.id, x.a.id);
    }
}
