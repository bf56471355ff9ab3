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
use std::time::Instant;
use zoo_energy::tensor::{row_dot, to_host1};
use zoo_energy::{Energy, Error, Result, ZooRng, check_count, check_positive};

/// Settings of both trainers (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
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
}

impl Default for FitConfig {
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
        }
    }
}

impl FitConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("iterations", self.iterations)?;
        check_count("batch_size", self.batch_size)?;
        check_count("snapshot_every", self.snapshot_every)?;
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

/// What a training run recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FitReport {
    /// The loss of every step (nats per point).
    pub losses: Vec<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl FitReport {
    /// Mean loss of the last `k` steps.
    pub fn final_loss(&self, k: usize) -> f64 {
        let tail = &self.losses[self.losses.len().saturating_sub(k)..];
        tail.iter().sum::<f64>() / tail.len().max(1) as f64
    }
}

/// Row indices of a minibatch, drawn with replacement (the one source of minibatch randomness,
/// shared by the burn and the fused paths).
fn draw_indices(rng: &mut ZooRng, n: usize, batch: usize) -> Vec<usize> {
    use rand::RngExt;
    (0..batch).map(|_| rng.random_range(0..n)).collect()
}

fn batch_indices(rng: &mut ZooRng, n: usize, batch: usize, device: &Device) -> Tensor<1, Int> {
    let idx: Vec<i64> = draw_indices(rng, n, batch)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    Tensor::from_data(TensorData::new(idx, [batch]), device)
}

/// A non-finite or exploding loss at iteration `it` as a divergence error (its `last_good` is
/// filled in by [`run_loop`]).
fn check_loss(it: usize, what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value.abs() <= 1e8 {
        return Ok(());
    }
    Err(Error::TrainingDiverged {
        iteration: it,
        what: what.to_string(),
        value,
        last_good: 0,
    })
}

/// The loop every trainer here shares, whatever holds the parameters (a burn `Flow` or the fused
/// host copy): `step` computes the loss, returns a divergence error before touching the
/// parameters, or applies the update; the loop records the loss, keeps a snapshot every
/// `snapshot_every` steps, restores it on divergence (naming the step it came from), and shows
/// the progress bar.
fn run_loop<S: Clone>(
    state: &mut S,
    cfg: &FitConfig,
    label: &str,
    mut step: impl FnMut(&mut S, usize) -> Result<f64>,
) -> Result<FitReport> {
    cfg.check()?;
    let started = Instant::now();
    let mut report = FitReport::default();
    let (mut snapshot, mut snapshot_at) = (state.clone(), 0);
    let bar = zoo_energy::progress::bar(cfg.progress, cfg.iterations, label);
    for it in 1..=cfg.iterations {
        let value = match step(state, it) {
            Ok(value) => value,
            Err(Error::TrainingDiverged {
                iteration,
                what,
                value,
                ..
            }) => {
                *state = snapshot;
                return Err(Error::TrainingDiverged {
                    iteration,
                    what,
                    value,
                    last_good: snapshot_at,
                });
            }
            Err(other) => return Err(other),
        };
        report.losses.push(value);
        if it % cfg.snapshot_every == 0 {
            snapshot = state.clone();
            snapshot_at = it;
        }
        bar.inc(1);
        if it % 20 == 0 {
            bar.set_message(format!("loss {value:.4}"));
        }
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// [`run_loop`] with burn's autodiff and Adam: `loss` gives the objective and its value.
fn optimise(
    flow: &mut Flow,
    cfg: &FitConfig,
    label: &str,
    mut loss: impl FnMut(&Flow, usize) -> Result<(Tensor<1>, f64)>,
) -> Result<FitReport> {
    let mut optim = cfg.optimizer();
    let what = format!("{label} loss");
    run_loop(flow, cfg, label, |flow, it| {
        let (objective, value) = loss(flow, it)?;
        check_loss(it, &what, value)?;
        let grads = GradientsParams::from_grads(objective.backward(), &*flow);
        *flow = optim.step(cfg.learning_rate, flow.clone(), grads);
        Ok(value)
    })
}

/// Maximum likelihood: minimise -mean log q(x) over minibatches of `data` (`[n, dim]` on the
/// plain device; with its `context` rows for a conditional flow). `flow` lives on an autodiff
/// device. On divergence the flow is restored to its last snapshot and the error names the step.
pub fn fit_max_likelihood(
    flow: &mut Flow,
    data: &Tensor<2>,
    context: Option<&Tensor<2>>,
    cfg: &FitConfig,
    rng: &mut ZooRng,
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
    if cfg.fused && context.is_none() && zoo_energy::BackendKind::is_host_device(&device) {
        if let Some(fused) = crate::fused::FusedCouplingFlow::from_flow(flow) {
            return fit_fused(flow, fused, &host, cfg, rng);
        }
    }
    optimise(flow, cfg, "maximum likelihood", |flow, _| {
        let idx = batch_indices(rng, n, cfg.batch_size, &device);
        let x = data.clone().select(0, idx.clone()).autodiff();
        let ctx = context.map(|c| c.clone().select(0, idx).autodiff());
        let loss = flow.log_prob_unchecked(x, ctx.as_ref()).mean().neg();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        Ok((loss.reshape([1]), value))
    })
}

/// [`fit_max_likelihood`] on the fused host kernel: the same minibatches, loss, Adam, snapshots
/// and divergence handling ([`run_loop`]), without autodiff; the parameters (restored ones after
/// a divergence) are written back into `flow` at the end.
fn fit_fused(
    flow: &mut Flow,
    mut host: crate::fused::FusedCouplingFlow,
    data: &[f32],
    cfg: &FitConfig,
    rng: &mut ZooRng,
) -> Result<FitReport> {
    let d = flow.dim;
    let n = data.len() / d;
    let mut batch = vec![0f32; cfg.batch_size * d];
    let result = run_loop(&mut host, cfg, "maximum likelihood (fused)", |host, it| {
        for (row, i) in draw_indices(rng, n, cfg.batch_size).into_iter().enumerate() {
            batch[row * d..(row + 1) * d].copy_from_slice(&data[i * d..(i + 1) * d]);
        }
        let (value, grads) = host.loss_and_grad(&batch);
        check_loss(it, "maximum likelihood loss", value)?;
        if let Some(g) = grads.iter().flatten().find(|g| !g.is_finite()) {
            check_loss(it, "gradient", f64::from(*g))?;
        }
        host.adam_step(grads, cfg.learning_rate, cfg.grad_clip);
        Ok(value)
    });
    host.write_back(flow);
    result
}

/// Settings of the Boltzmann-generator trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseKlConfig {
    /// The optimiser loop.
    pub fit: FitConfig,
    /// Weight of the forward-KL term when samples of the target are given (0: reverse KL only).
    pub forward_weight: f64,
}

impl Default for ReverseKlConfig {
    fn default() -> Self {
        Self {
            fit: FitConfig {
                grad_clip: Some(10.0),
                data_init: false,
                ..FitConfig::default()
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
    flow: &mut Flow,
    target: &dyn Energy,
    samples: Option<&Tensor<2>>,
    cfg: &ReverseKlConfig,
    rng: &mut ZooRng,
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
    optimise(flow, &cfg.fit, "reverse KL", |flow, it| {
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
                    last_good: 0, // filled in (and the flow restored) by `run_loop`
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
    flow: &Flow,
    target: &dyn Energy,
    n: usize,
    batch: usize,
    rng: &mut ZooRng,
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
        ess: zoo_energy::estimate::ess(log_w),
        elbo: finite.iter().sum::<f64>() / finite.len().max(1) as f64,
    }
}
