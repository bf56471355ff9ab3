//! The EBM step of the one training loop ([`zoo_train::train`]): minibatch -> objective loss ->
//! one backward pass -> optimiser step -> optional spectral-norm bound -> objective's after-step
//! hook. The loop restores the last snapshot on divergence and resumes from a checkpoint that
//! holds the model, the optimiser state and the objective's chains, buffers or walkers.

use crate::data::Dataset;
use crate::model::EnergyModel;
use crate::objective::{Loss, Objective, Report};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use zoo_energy::tensor::to_host1;
use zoo_energy::{Error, Result, ZooRng, check_positive};
use zoo_train::{Checkpoint, LoopConfig, OptimizerConfig, Resume, Trainable, check_value};

/// Settings of [`Trainer`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EbmTrainConfig {
    /// Optimiser steps.
    pub iterations: usize,
    /// Data points per minibatch (and negative chains per iteration for CD / short-run).
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate (of the first step).
    pub learning_rate: f64,
    /// Anneal the learning rate by a cosine to this value at the last step
    /// (`zoo_train::cosine_learning_rate`); none: constant.
    pub final_learning_rate: Option<f64>,
    /// Adam beta_1 (0 is common for EBMs, Nijkamp et al. 2019); SGD momentum.
    pub beta1: f64,
    /// Clip every parameter's gradient to this norm (burn's per-tensor norm clipping).
    pub grad_clip: Option<f64>,
    /// Bound every weight matrix's spectral norm (MLP energies) after each step.
    pub spectral_bound: Option<f64>,
    /// |mean energy| above this counts as divergence.
    pub energy_limit: f64,
    /// Differentiate maximum-likelihood losses with the model's written-out host gradient where it
    /// has one (MLP energies on CPU devices; the same numbers as autodiff to float rounding);
    /// false: burn's autodiff always.
    pub host_gradients: bool,
    /// Keep a copy of the model every this many good iterations (the restore point).
    pub snapshot_every: usize,
    /// The resumable checkpoint of the whole training state (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for EbmTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 256,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            final_learning_rate: None,
            beta1: 0.9,
            grad_clip: None,
            spectral_bound: None,
            energy_limit: 1e4,
            host_gradients: true,
            snapshot_every: 50,
            resume: Resume::default(),
            progress: false,
        }
    }
}

impl EbmTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_positive("learning_rate", self.learning_rate)?;
        zoo_train::check_final_learning_rate(self.learning_rate, self.final_learning_rate)?;
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

    /// The optimiser these settings describe (Adam's beta_2 is 0.999).
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            beta1: self.beta1,
            grad_clip: self.grad_clip,
            ..OptimizerConfig::adam()
        }
    }
}

pub use zoo_train::OptimizerKind;

/// One iteration's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Iteration, from 1.
    pub iteration: usize,
    /// The loss.
    pub loss: f64,
    /// The objective's diagnostics.
    #[serde(flatten)]
    pub report: Report,
    /// Wall-clock seconds since this call started training (not kept in checkpoints: a resumed
    /// run reads 0 for the iterations before the resume).
    #[serde(skip)]
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
            ("swap", r.swap_rate),
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

/// A model being trained, with its optimiser and history.
pub struct Trainer<M: EnergyModel> {
    model: Option<M>,
    optimizer: Option<ModuleOptimizer>,
    config: EbmTrainConfig,
    /// One record per iteration.
    pub history: Vec<Record>,
    /// Seconds spent in [`Trainer::fit`].
    pub seconds: f64,
    /// The iteration the last [`Trainer::fit`] resumed from (0: it started afresh).
    pub resumed_from: usize,
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
    pub fn new(model: M, config: EbmTrainConfig) -> Result<Self> {
        config.check()?;
        Ok(Self {
            model: Some(zoo_train::stable_ids(model, "model")),
            optimizer: Some(config.optimizer().build()),
            config,
            history: Vec::new(),
            seconds: 0.0,
            resumed_from: 0,
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

    /// Trains to `config.iterations` iterations on `data` with `objective`, minibatches and noise
    /// from `rng`; `device` is the plain (non-autodiff) device of the data and the samplers.
    ///
    /// On divergence (a non-finite loss, energies beyond `energy_limit`, a sampler whose energy
    /// becomes NaN/inf) the model, the optimiser, the objective's state, the generator and the
    /// history are restored to the last snapshot and [`Error::TrainingDiverged`] names both
    /// iterations. With `config.resume` set, a run with the same fingerprint resumes.
    pub fn fit<O: Objective<M> + ?Sized>(
        &mut self,
        rng: &mut ZooRng,
        objective: &mut O,
        data: &Dataset,
        device: &Device,
    ) -> Result<()> {
        data.check_dim("the model", self.model().dim())?;
        let started = Instant::now();
        objective.start(rng, self.model(), device)?;
        let c = &self.config;
        let cfg = LoopConfig {
            iterations: c.iterations,
            snapshot_every: c.snapshot_every,
            resume: c.resume.clone(),
            progress: c.progress,
            label: objective.name(),
        };
        let mut run = EbmRun {
            trainer: self,
            objective,
            data,
            device,
            started,
        };
        let outcome = zoo_train::train(rng, &mut run, &cfg);
        if let Ok(done) = &outcome {
            self.history = done.history.clone();
            self.resumed_from = done.resumed_from;
        }
        self.seconds += started.elapsed().as_secs_f64();
        outcome.map(|_| ())
    }
}

/// The loss and the mean energies against the divergence limit (`|value| <= limit`, finite).
fn check_values(iteration: usize, loss: f64, report: &Report, limit: f64) -> Result<()> {
    check_value(iteration, "loss", loss, limit)?;
    check_value(
        iteration,
        "mean energy of the data",
        report.energy_data,
        limit,
    )?;
    if let Some(e) = report.energy_negative {
        check_value(iteration, "mean energy of the negatives", e, limit)?;
    }
    Ok(())
}

/// One EBM training run: the trainer's model and optimiser, the objective and the data.
struct EbmRun<'a, M: EnergyModel, O: Objective<M> + ?Sized> {
    trainer: &'a mut Trainer<M>,
    objective: &'a mut O,
    data: &'a Dataset,
    device: &'a Device,
    started: Instant,
}

impl<M: EnergyModel, O: Objective<M> + ?Sized> Trainable for EbmRun<'_, M, O> {
    type Log = Record;

    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<Record> {
        let t = &mut *self.trainer;
        let config = &t.config;
        let batch = self.data.batch(rng, config.batch_size, self.device);
        let model = t.model.as_ref().expect("present between steps");
        let (loss, mut report) = self.objective.loss(rng, model, batch, self.device)?;
        let lr = zoo_train::cosine_learning_rate(
            config.learning_rate,
            config.final_learning_rate,
            iteration,
            config.iterations,
        );
        let (value, gradients) = match loss {
            Loss::Tensor(loss) => {
                let value = f64::from(to_host1(&loss)[0]);
                check_values(iteration, value, &report, config.energy_limit)?;
                let gradients = loss.backward();
                self.objective.apply_gradients(&gradients, lr);
                (value, GradientsParams::from_grads(gradients, model))
            }
            Loss::Contrast(contrast) => {
                contrast.check()?;
                let fused = config
                    .host_gradients
                    .then(|| model.contrast_gradients(&contrast));
                let step = fused.flatten().unwrap_or_else(|| contrast.autodiff(model));
                report.energy_data = step.energy_data;
                report.energy_negative = Some(step.energy_negative);
                // The cross-entropy estimate mean E(data) + log Z of the objectives that track log Z.
                report.cross_entropy = report.log_z.map(|z| step.energy_data + z);
                check_values(iteration, step.loss, &report, config.energy_limit)?;
                (step.loss, step.gradients)
            }
        };
        let model = t.model.take().expect("present between steps");
        let optimizer = t.optimizer.as_mut().expect("present between steps");
        let mut model = optimizer.step(lr, model, gradients);
        if let Some(bound) = config.spectral_bound {
            model = model.bound_spectral_norm(bound);
        }
        let model = t.model.insert(model);
        self.objective.after_step(rng, model, self.device)?;
        Ok(Record {
            iteration,
            loss: value,
            report,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let t = &*self.trainer;
        checkpoint.put_module("model", t.model.as_ref().expect("present"))?;
        checkpoint.put_optimizer("optimizer", t.optimizer.as_ref().expect("present"))?;
        self.objective.save(checkpoint)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let t = &mut *self.trainer;
        let init = t.model.clone().expect("present between steps");
        t.model = Some(checkpoint.module("model", init)?);
        let fresh = t.config.optimizer().build();
        t.optimizer = Some(checkpoint.optimizer("optimizer", fresh)?);
        self.objective.load(checkpoint, self.device)
    }

    fn summary(log: &Record) -> String {
        log.summary()
    }
}
