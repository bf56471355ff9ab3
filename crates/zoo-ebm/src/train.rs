//! The one training loop: minibatch -> objective loss -> one backward pass -> Adam step ->
//! optional spectral-norm bound -> objective's after-step hook, with divergence detection that
//! restores the last good model, live diagnostics and an optional atomic checkpoint file.

use crate::data::Dataset;
use crate::model::EnergyModel;
use crate::objective::{Objective, Report};
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use zoo_energy::tensor::to_host1;
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};

/// Settings of [`Trainer`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub iterations: usize,
    /// Data points per minibatch (and negative chains per iteration for CD / short-run).
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub learning_rate: f64,
    /// Adam beta_1 (0 is common for EBMs, Nijkamp et al. 2019); SGD momentum.
    pub beta1: f64,
    /// Clip every parameter's gradient to this norm (burn's per-tensor norm clipping).
    pub grad_clip: Option<f64>,
    /// Bound every weight matrix's spectral norm (MLP energies) after each step.
    pub spectral_bound: Option<f64>,
    /// |mean energy| above this counts as divergence.
    pub energy_limit: f64,
    /// Keep a copy of the model every this many good iterations (the restore point).
    pub snapshot_every: usize,
    /// Also write the restore point here (burnpack bytes, atomically).
    pub checkpoint: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 256,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            beta1: 0.9,
            grad_clip: None,
            spectral_bound: None,
            energy_limit: 1e4,
            snapshot_every: 50,
            checkpoint: None,
            progress: false,
        }
    }
}

impl TrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("iterations", self.iterations)?;
        check_count("batch_size", self.batch_size)?;
        check_count("snapshot_every", self.snapshot_every)?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("energy_limit", self.energy_limit)?;
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(Error::invalid(
                "beta1",
                format!("must lie in [0, 1), got {}", self.beta1),
            ));
        }
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        if let Some(b) = self.spectral_bound {
            check_positive("spectral_bound", b)?;
        }
        Ok(())
    }
}

/// The optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba 2015).
    Adam,
    /// Stochastic gradient descent with momentum `beta1`. Its steps are proportional to the
    /// gradient, so parameters whose true gradient is zero barely move: what Jarzynski-weighted
    /// training needs (Adam turns gradient noise into steps of size `learning_rate`, and the
    /// walkers' own noise then feeds back into their weights).
    Sgd,
}

/// One iteration's record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Iteration, from 1.
    pub iteration: usize,
    /// The loss.
    pub loss: f64,
    /// The objective's diagnostics.
    #[serde(flatten)]
    pub report: Report,
    /// Wall-clock seconds since training started.
    pub seconds: f64,
}

impl Record {
    /// One line of live diagnostics: loss, energy gap, acceptance, chain ESS, weight ESS, log Z.
    pub fn summary(&self) -> String {
        let mut line = format!("loss {:.4}", self.loss);
        let r = &self.report;
        let parts = [
            ("gap", self.energy_gap()),
            ("acc", r.acceptance),
            ("chain ESS", r.chain_ess),
            ("weight ESS", r.weight_ess),
            ("log Z", r.log_z),
        ];
        for (name, value) in parts {
            if let Some(v) = value {
                line.push_str(&format!(" {name} {v:.3}"));
            }
        }
        line
    }

    /// Mean E(data) - mean E(negatives), when there are negatives.
    pub fn energy_gap(&self) -> Option<f64> {
        self.report
            .energy_negative
            .map(|n| self.report.energy_data - n)
    }
}

/// A model being trained, with its optimiser, history and restore point.
pub struct Trainer<M: EnergyModel> {
    model: Option<M>,
    optimizer: burn::optim::ModuleOptimizer,
    config: TrainConfig,
    /// One record per iteration.
    pub history: Vec<Record>,
    last_good: (usize, M),
    /// Seconds spent in [`Trainer::run`].
    pub seconds: f64,
}

impl<M: EnergyModel> std::fmt::Debug for Trainer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Trainer({:?}, {} iterations done)",
            self.config,
            self.history.len()
        )
    }
}

impl<M: EnergyModel> Trainer<M> {
    /// A trainer for `model` (which must live on an autodiff device).
    pub fn new(model: M, config: TrainConfig) -> Result<Self> {
        config.check()?;
        let clip = config
            .grad_clip
            .map(|c| GradientClippingConfig::Norm(c as f32));
        let optimizer = match config.optimizer {
            OptimizerKind::Adam => AdamConfig::new()
                .with_beta_1(config.beta1 as f32)
                .with_grad_clipping(clip)
                .init(),
            OptimizerKind::Sgd => {
                let momentum = (config.beta1 > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(config.beta1)
                        .with_dampening(0.0)
                });
                SgdConfig::new()
                    .with_momentum(momentum)
                    .with_gradient_clipping(clip)
                    .init()
            }
        };
        Ok(Self {
            last_good: (0, model.clone()),
            model: Some(model),
            optimizer,
            config,
            history: Vec::new(),
            seconds: 0.0,
        })
    }

    /// The current model (the restored last good one after a divergence).
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during a step")
    }

    /// Consumes the trainer, returning the model.
    pub fn into_model(self) -> M {
        self.model.expect("the model is only taken during a step")
    }

    /// Trains for `config.iterations` iterations on `data` with `objective`, minibatches and noise
    /// from `rng`; `device` is the plain (non-autodiff) device of the data and the samplers.
    ///
    /// On divergence (a non-finite loss, energies beyond `energy_limit`, a sampler whose energy
    /// becomes NaN/inf) the model is restored to the last snapshot and
    /// [`Error::TrainingDiverged`] names the iteration.
    pub fn run<O: Objective<M> + ?Sized>(
        &mut self,
        objective: &mut O,
        data: &Dataset,
        rng: &mut ZooRng,
        device: &Device,
    ) -> Result<()> {
        data.check_dim("the model", self.model().dim())?;
        let start = Instant::now();
        objective.start(rng, self.model(), device)?;
        let bar = zoo_energy::progress::bar(
            self.config.progress,
            self.config.iterations,
            &objective.name(),
        );
        let lr = self.config.learning_rate;
        for iteration in 1..=self.config.iterations {
            let outcome = self.step(objective, data, rng, device, iteration, lr, &start);
            if let Err(error) = outcome {
                bar.finish_and_clear();
                return Err(self.diverged(iteration, error));
            }
            if iteration % self.config.snapshot_every == 0 {
                self.snapshot(iteration)?;
            }
            if let Some(r) = self.history.last() {
                bar.set_message(r.summary());
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        self.seconds += start.elapsed().as_secs_f64();
        Ok(())
    }

    fn step<O: Objective<M> + ?Sized>(
        &mut self,
        objective: &mut O,
        data: &Dataset,
        rng: &mut ZooRng,
        device: &Device,
        iteration: usize,
        lr: f64,
        start: &Instant,
    ) -> Result<()> {
        let batch = data.batch(rng, self.config.batch_size, device);
        let (loss, report) = objective.loss(rng, self.model(), batch, device)?;
        let value = to_host1(&loss)[0] as f64;
        let limit = self.config.energy_limit;
        let bad = |what: &str, v: f64| -> Result<()> {
            if v.is_finite() && v.abs() <= limit {
                Ok(())
            } else {
                Err(Error::TrainingDiverged {
                    iteration,
                    what: what.into(),
                    value: v,
                    last_good: 0,
                })
            }
        };
        bad("loss", value)?;
        bad("mean energy of the data", report.energy_data)?;
        if let Some(e) = report.energy_negative {
            bad("mean energy of the negatives", e)?;
        }
        let gradients = loss.backward();
        objective.apply_gradients(&gradients, lr);
        let model = self.model.take().expect("present between steps");
        let gradients = GradientsParams::from_grads(gradients, &model);
        let mut model = self.optimizer.step(lr, model, gradients);
        if let Some(bound) = self.config.spectral_bound {
            model = model.bound_spectral_norm(bound);
        }
        self.model = Some(model);
        objective.after_step(rng, self.model(), device)?;
        self.history.push(Record {
            iteration,
            loss: value,
            report,
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    fn snapshot(&mut self, iteration: usize) -> Result<()> {
        let model = self.model().clone();
        if let Some(path) = &self.config.checkpoint {
            let bytes = model
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| Error::Config(format!("cannot serialise the model: {e:?}")))?;
            zoo_energy::io::write_atomic(path, &bytes)?;
        }
        self.last_good = (iteration, model);
        Ok(())
    }

    /// Restores the last good model and turns `error` into [`Error::TrainingDiverged`].
    fn diverged(&mut self, iteration: usize, error: Error) -> Error {
        let last_good = self.last_good.0;
        self.model = Some(self.last_good.1.clone());
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
            other => other,
        }
    }
}
