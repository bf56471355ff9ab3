//! Training a flow: maximum likelihood on data (forward KL), and reverse KL to an energy with no
//! data (a Boltzmann generator, Noé et al. 2019), optionally mixed with forward KL.
//!
//! Reverse KL needs grad_theta E(f^-1(z; theta)). The energy is any [`Energy`], reached through its
//! score only: with x = f^-1(z) on the autodiff tape and g = -s(x) evaluated as a constant,
//! grad_theta sum(x . g) = J_theta^T grad_x E, so the energy itself is never put on the tape (it
//! may be an analytic density, an MLP energy with a hand-written score, or another flow).

use crate::flow::{Flow, standard_normal_log_density};
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::tensor::{row_dot, to_host1};
use zoo_energy::{Energy, Error, Result, ZooRng, check_positive};
use zoo_train::{Checkpoint, LoopConfig, Resume, Trainable, check_value};

/// Settings of both trainers (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowTrainConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Points per step (data for maximum likelihood, base draws for reverse KL).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Clip every parameter's gradient to this norm.
    pub grad_clip: Option<f64>,
    /// Initialise actnorm layers from the first batch (Glow).
    pub data_init: bool,
    /// Keep a copy of the flow every this many steps: the restore point after a divergence.
    pub snapshot_every: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Maximum likelihood on a CPU backend: train coupling flows (RealNVP, NICE without actnorm
    /// or LU layers) with the fused host kernel instead of burn's autodiff (same loss, same Adam).
    pub fused: bool,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for FlowTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 2000,
            batch_size: 256,
            learning_rate: 1e-3,
            grad_clip: None,
            data_init: true,
            snapshot_every: 50,
            progress: false,
            fused: true,
            resume: Resume::default(),
        }
    }
}

impl FlowTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_positive("learning_rate", self.learning_rate)?;
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        Ok(())
    }

    fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        AdamConfig::new()
            .with_grad_clipping(
                self.grad_clip
                    .map(|c| GradientClippingConfig::Norm(c as f32)),
            )
            .init()
    }
}

/// What a training run recorded: the loss of every step (nats per point), seconds, resume point.
pub type FitReport = zoo_train::LossReport;

/// A minibatch's row indices as a tensor ([`zoo_train::minibatch_indices`], the draw the fused
/// path uses too), for selecting data and context rows alike.
fn batch_indices(rng: &mut ZooRng, n: usize, batch: usize, device: &Device) -> Tensor<1, Int> {
    let idx: Vec<i64> = zoo_train::minibatch_indices(rng, n, batch)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    Tensor::from_data(TensorData::new(idx, [batch]), device)
}

/// A non-finite or exploding loss at iteration `it` as a divergence error (the loop fills in
/// the restored iteration).
fn check_loss(it: usize, what: &str, value: f64) -> Result<()> {
    check_value(it, what, value, 1e8)
}

impl FlowTrainConfig {
    fn loop_config(&self, label: &str) -> LoopConfig {
        LoopConfig {
            iterations: self.iterations,
            snapshot_every: self.snapshot_every,
            resume: self.resume.clone(),
            progress: self.progress,
            label: label.into(),
        }
    }
}

/// A flow trained by burn's autodiff and Adam on the loss `loss` gives (objective, value).
struct FlowRun<F> {
    flow: Flow,
    optim: burn::optim::ModuleOptimizer,
    config: FlowTrainConfig,
    what: String,
    loss: F,
}

impl<F> Trainable for FlowRun<F>
where
    F: FnMut(&Flow, &mut ZooRng, usize) -> Result<(Tensor<1>, f64)>,
{
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<f64> {
        let (objective, value) = (self.loss)(&self.flow, rng, it)?;
        check_loss(it, &self.what, value)?;
        let grads = GradientsParams::from_grads(objective.backward(), &self.flow);
        let lr = self.config.learning_rate;
        self.flow = self.optim.step(lr, self.flow.clone(), grads);
        Ok(value)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("flow", &self.flow)?;
        checkpoint.put_optimizer("optimizer", &self.optim)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.flow = checkpoint.module("flow", self.flow.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.config.optimizer())?;
        Ok(())
    }
}

/// Trains `flow` on `loss` through the one training loop ([`zoo_train::train`]): divergence
/// restores the last snapshot (flow, Adam state, generator); `cfg.resume` makes it resumable.
fn optimise(
    rng: &mut ZooRng,
    flow: &mut Flow,
    cfg: &FlowTrainConfig,
    label: &str,
    loss: impl FnMut(&Flow, &mut ZooRng, usize) -> Result<(Tensor<1>, f64)>,
) -> Result<FitReport> {
    cfg.check()?;
    let mut run = FlowRun {
        flow: zoo_train::stable_ids(flow.clone(), "flow"),
        optim: cfg.optimizer(),
        config: cfg.clone(),
        what: format!("{label} loss"),
        loss,
    };
    let outcome = zoo_train::train(rng, &mut run, &cfg.loop_config(label));
    *flow = run.flow;
    outcome.map(FitReport::from)
}

/// Maximum likelihood: minimise -mean log q(x) over minibatches of `data` (`[n, dim]` on the
/// plain device; with its `context` rows for a conditional flow). `flow` lives on an autodiff
/// device. On divergence the flow is restored to its last snapshot and the error names the step.
pub fn fit_max_likelihood(
    rng: &mut ZooRng,
    flow: &mut Flow,
    data: &Tensor<2>,
    context: Option<&Tensor<2>>,
    cfg: &FlowTrainConfig,
) -> Result<FitReport> {
    cfg.check()?;
    let n = zoo_energy::tensor::check_batch("training data", data, flow.dim)?;
    // One host copy serves the finiteness check and, on CPU, the fused trainer.
    let host = zoo_energy::tensor::host_checked("training data", data)?;
    flow.check_context(n, context)?;
    let device = data.device();
    if cfg.data_init
        && flow
            .layers
            .iter()
            .any(|l| matches!(l, crate::Layer::ActNorm(_)))
    {
        let idx = batch_indices(rng, n, n.min(4096), &device);
        let ctx = context.map(|c| c.clone().select(0, idx.clone()).autodiff());
        flow.initialize_actnorm(data.clone().select(0, idx).autodiff(), ctx.as_ref());
    }
    if cfg.fused
        && context.is_none()
        && zoo_energy::BackendKind::is_host_device(&device)
        && let Some(fused) = crate::fused::FusedCouplingFlow::from_flow(flow)
    {
        return fit_fused(rng, flow, fused, &host, cfg);
    }
    optimise(rng, flow, cfg, "maximum likelihood", |flow, rng, _| {
        let idx = batch_indices(rng, n, cfg.batch_size, &device);
        let x = data.clone().select(0, idx.clone()).autodiff();
        let ctx = context.map(|c| c.clone().select(0, idx).autodiff());
        let loss = flow.log_prob_unchecked(x, ctx.as_ref()).mean().neg();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        Ok((loss.reshape([1]), value))
    })
}

/// [`fit_max_likelihood`] on the fused host kernel: the same minibatches, loss and Adam through
/// the one training loop, without autodiff; the parameters (restored ones after a divergence)
/// are written back into `flow` at the end.
fn fit_fused(
    rng: &mut ZooRng,
    flow: &mut Flow,
    host: crate::fused::FusedCouplingFlow,
    data: &[f32],
    cfg: &FlowTrainConfig,
) -> Result<FitReport> {
    let mut run = FusedRun {
        template: zoo_train::stable_ids(flow.clone(), "flow"),
        batch: vec![0f32; cfg.batch_size * flow.dim],
        host,
        data,
        cfg,
    };
    let outcome = zoo_train::train(
        rng,
        &mut run,
        &cfg.loop_config("maximum likelihood (fused)"),
    );
    *flow = run.template;
    run.host.write_back(flow);
    outcome.map(FitReport::from)
}

/// The fused trainer's state: host parameters with their Adam moments.
struct FusedRun<'a> {
    host: crate::fused::FusedCouplingFlow,
    /// A flow of the same structure: what the host parameters are written into for checkpoints.
    template: Flow,
    batch: Vec<f32>,
    data: &'a [f32],
    cfg: &'a FlowTrainConfig,
}

impl Trainable for FusedRun<'_> {
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<f64> {
        let d = self.template.dim;
        let n = self.data.len() / d;
        let data = self.data;
        let picks = zoo_train::minibatch_indices(rng, n, self.cfg.batch_size);
        for (row, i) in picks.into_iter().enumerate() {
            self.batch[row * d..(row + 1) * d].copy_from_slice(&data[i * d..(i + 1) * d]);
        }
        let (value, grads) = self.host.loss_and_grad(&self.batch);
        check_loss(it, "maximum likelihood loss", value)?;
        if let Some(g) = grads.iter().flatten().find(|g| !g.is_finite()) {
            check_loss(it, "gradient", f64::from(*g))?;
        }
        self.host
            .adam_step(grads, self.cfg.learning_rate, self.cfg.grad_clip);
        Ok(value)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let mut flow = self.template.clone();
        self.host.write_back(&mut flow);
        // Writing host weights back makes fresh parameters: give them their stable ids again.
        checkpoint.put_module("flow", &zoo_train::stable_ids(flow, "flow"))?;
        checkpoint.put_json("adam", self.host.adam())
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let flow = checkpoint.module("flow", self.template.clone())?;
        let mut host = crate::fused::FusedCouplingFlow::from_flow(&flow)
            .ok_or_else(|| Error::invalid("checkpoint", "not a fused coupling flow"))?;
        *host.adam_mut() = checkpoint.json("adam")?;
        self.host = host;
        self.template = flow;
        Ok(())
    }
}

/// Settings of the Boltzmann-generator trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseKlTrainConfig {
    /// The optimiser loop.
    pub fit: FlowTrainConfig,
    /// Weight of the forward-KL term when samples of the target are given (0: reverse KL only).
    pub forward_weight: f64,
}

impl Default for ReverseKlTrainConfig {
    fn default() -> Self {
        Self {
            fit: FlowTrainConfig {
                grad_clip: Some(10.0),
                data_init: false,
                ..FlowTrainConfig::default()
            },
            forward_weight: 0.0,
        }
    }
}

/// Reverse KL to exp(-E)/Z: minimise E_q[E(x) + log q(x)] = KL(q || p) - log Z, with x = f^-1(z),
/// z ~ N(0, I) (the reparameterisation trick). With `samples` of the target and
/// `forward_weight > 0`, adds `forward_weight * (-mean log q(samples))`. The recorded loss is the
/// reverse-KL term (a bound: >= -log Z, equal when q = p).
pub fn fit_reverse_kl(
    rng: &mut ZooRng,
    flow: &mut Flow,
    target: &dyn Energy,
    samples: Option<&Tensor<2>>,
    cfg: &ReverseKlTrainConfig,
    device: &Device,
) -> Result<FitReport> {
    flow.check_unconditional("a Boltzmann generator", Some(target))?;
    if !(cfg.forward_weight.is_finite() && cfg.forward_weight >= 0.0) {
        return Err(Error::invalid("forward_weight", "must be finite and >= 0"));
    }
    if let Some(s) = samples {
        flow.check_input("target samples", s, None)?;
    }
    let batch = cfg.fit.batch_size;
    let dim = flow.dim;
    optimise(rng, flow, &cfg.fit, "reverse KL", |flow, rng, it| {
        let z = zoo_energy::rng::normal(rng, [batch, dim], device).autodiff();
        let base = standard_normal_log_density(z.clone().without_autodiff());
        let (x, log_det) = flow.inverse(z, None);
        let (energy, score) = target.energy_and_score(x.clone().without_autodiff());
        // E(x) + log q(x), log q(x) = log N(z) - log|det dx/dz|: one read of the device per step.
        let value = (energy.clone() + base - log_det.clone().without_autodiff())
            .mean()
            .into_scalar::<f32>();
        if !value.is_finite() {
            // Only now look for the sample whose target energy broke, to name it.
            let e_host = to_host1(&energy);
            if let Some(i) = e_host.iter().position(|e| !e.is_finite()) {
                return Err(Error::TrainingDiverged {
                    iteration: it,
                    what: format!("target energy of flow sample {i}"),
                    value: f64::from(e_host[i]),
                    last_good: 0, // filled in (and the flow restored) by the loop
                });
            }
        }
        let mut objective = (row_dot(x, score.neg().autodiff()) - log_det).mean();
        if let (Some(s), true) = (samples, cfg.forward_weight > 0.0) {
            let idx = batch_indices(rng, s.dims()[0], batch, device);
            let xs = s.clone().select(0, idx).autodiff();
            objective = objective
                - flow
                    .log_prob_unchecked(xs, None)
                    .mean()
                    .mul_scalar(cfg.forward_weight);
        }
        Ok((objective.reshape([1]), f64::from(value)))
    })
}

/// Importance sampling with the flow as proposal: log w = -E(x) - log q(x), x ~ q.
#[derive(Debug, Clone, Serialize)]
pub struct ImportanceReport {
    /// Draws.
    pub n: usize,
    /// log Z = log mean w.
    pub log_z: f64,
    /// Its delta-method standard error sd(w) / (mean(w) sqrt(n)).
    pub log_z_se: f64,
    /// Effective sample size (sum w)^2 / sum w^2.
    pub ess: f64,
    /// The reverse-KL bound E_q[log w] <= log Z.
    pub elbo: f64,
}

/// Importance weights of `n` flow samples against `target` (in batches of `batch`), with the
/// free-energy (log Z) estimate, its error bar and the ESS.
pub fn importance_weights(
    rng: &mut ZooRng,
    flow: &Flow,
    target: &dyn Energy,
    n: usize,
    batch: usize,
    device: &Device,
) -> Result<(Vec<f64>, ImportanceReport)> {
    if n < 2 || batch == 0 {
        return Err(Error::invalid(
            "n",
            "need at least 2 draws and a batch >= 1",
        ));
    }
    let flow = flow.valid();
    let mut log_w = Vec::with_capacity(n);
    while log_w.len() < n {
        let m = batch.min(n - log_w.len());
        let (x, log_q) = flow.sample_with_log_prob(rng, m, None, device)?;
        let e = target.energy(x);
        let lw = (e + log_q).neg();
        log_w.extend(to_host1(&lw).into_iter().map(|v| {
            if v.is_nan() {
                f64::NEG_INFINITY
            } else {
                f64::from(v)
            }
        }));
    }
    let report = importance_summary(&log_w);
    Ok((log_w, report))
}

/// log Z, its standard error, ESS and the ELBO from log weights.
pub fn importance_summary(log_w: &[f64]) -> ImportanceReport {
    let n = log_w.len();
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|v| (v - m).exp()).collect();
    let mean = w.iter().sum::<f64>() / n as f64;
    let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    let finite: Vec<f64> = log_w.iter().cloned().filter(|v| v.is_finite()).collect();
    ImportanceReport {
        n,
        log_z: m + mean.ln(),
        log_z_se: var.sqrt() / (mean * (n as f64).sqrt()),
        ess: zoo_mcmc::estimate::ess(log_w),
        elbo: finite.iter().sum::<f64>() / finite.len().max(1) as f64,
    }
}
