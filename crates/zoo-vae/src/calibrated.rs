//! The Energy-Calibrated VAE (Luo, Tang, Xu, Lin & Zhou, "Energy-Calibrated VAE with Test Time
//! Free Lunch", ECCV 2024, arXiv 2311.04071, Algorithm 1 and the official code's defaults).
//!
//! An EBM on the data calibrates the decoder during training; at test time the decoder alone
//! generates (one pass per sample, no MCMC). Per iteration:
//! * the VAE loss L_vae = sum_pixels (x_hat - x)^2 / B + beta KL(q(z|x) || N(0, I));
//! * generated images x_g = Dec(z), z ~ N(0, I), are calibrated by K Langevin-type steps on the
//!   EBM from x0 = stop_grad(x_g): x <- x - h grad E(x) - gamma (x - x0) + sigma xi (gamma = 0 by
//!   default; the paper's proximity term, kept as an option);
//! * L_cal = sum_pixels (Dec(z) - stop_grad(x_cal))^2 / B; one optimiser step on L_vae + lambda L_cal;
//! * the EBM takes a maximum-likelihood step on mean E(x_data) - mean E(x_cal), with
//!   alpha (E(x_data)^2 + E(x_cal)^2) in place of the paper's spectral normalisation;
//! * dual ascent on the multiplier: lambda <- clip(lambda + eta (L_cal - epsilon D), 0, lambda_max).
//!
//! No second-order gradient: x_cal is detached and the Langevin steps use the energy's
//! written-out score. With `calibrate = false` lambda stays 0 and neither the chain nor the EBM
//! runs (they cannot reach the decoder): the identical VAE, trained on the same minibatches and
//! latent draws, is the baseline; its log has L_cal = 0 (not computed).

use crate::model::Vae;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::rng::normal;
use zoo_energy::tensor::check_finite;
use zoo_energy::{Error, Result, ZooRng, check_count, check_non_negative, check_positive};
use zoo_neural::{Activation, MlpEnergy, MlpEnergyConfig};
use zoo_train::{Checkpoint, OptimizerConfig, Resume, Trainable, check_value};

/// The calibration chain: K steps of x <- x + h s(x) - gamma (x - x0) + sigma xi with s = -grad E.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationChain {
    /// K, the steps per calibration (15 in the paper).
    pub steps: usize,
    /// h, the gradient step (0.05).
    pub step_size: f64,
    /// sigma, the noise scale (1e-3).
    pub noise: f64,
    /// gamma, the pull back towards the decoder's image (the paper's proximity term; 0: off).
    pub proximity: f64,
}

impl Default for CalibrationChain {
    fn default() -> Self {
        Self {
            steps: 15,
            step_size: 0.05,
            noise: 1e-3,
            proximity: 0.0,
        }
    }
}

impl CalibrationChain {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("chain.steps", self.steps)?;
        check_positive("chain.step_size", self.step_size)?;
        for (name, v) in [
            ("chain.noise", self.noise),
            ("chain.proximity", self.proximity),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and >= 0, not {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Runs the chain on `energy` from `x0` (a plain tensor): the calibrated samples. A chain
    /// that leaves the finite numbers is an error naming the step size.
    pub fn run(&self, rng: &mut ZooRng, energy: &dyn Energy, x0: Tensor<2>) -> Result<Tensor<2>> {
        self.check()?;
        let mut x = x0.clone();
        for _ in 0..self.steps {
            let xi = normal(rng, x.dims(), &x.device());
            let pull = (x.clone() - x0.clone()).mul_scalar(self.proximity);
            x = x.clone() + energy.score(x).mul_scalar(self.step_size) - pull
                + xi.mul_scalar(self.noise);
        }
        check_finite("calibrated samples", &x).map_err(|_| {
            Error::invalid(
                "calibration step_size",
                format!(
                    "the calibration chain diverged; lower it ({})",
                    self.step_size
                ),
            )
        })?;
        Ok(x)
    }
}

/// Settings of [`fit_calibrated`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EcVaeTrainConfig {
    /// Optimiser steps.
    pub iterations: usize,
    /// Data points (and generated images) per step.
    pub batch_size: usize,
    /// beta, the KL weight of L_vae (0.1).
    pub kl_weight: f64,
    /// Adam's learning rate for encoder and decoder (2e-4, betas (0, 0.9)).
    pub learning_rate: f64,
    /// Adam's learning rate for the EBM (1e-4, betas (0, 0.9)).
    pub energy_learning_rate: f64,
    /// alpha of the energy-magnitude penalty alpha (E(x_data)^2 + E(x_cal)^2).
    pub energy_penalty: f64,
    /// Hidden widths of the EBM's MLP.
    pub energy_hidden: Vec<usize>,
    /// The calibration chain.
    pub chain: CalibrationChain,
    /// lambda_0, the multiplier's start (30).
    pub lambda0: f64,
    /// eta, the dual-ascent step (0.01).
    pub lambda_step: f64,
    /// The multiplier's upper clip (100).
    pub lambda_max: f64,
    /// epsilon per data dimension: the constraint is L_cal <= epsilon D.
    pub epsilon: f64,
    /// false: lambda = 0 throughout (the plain VAE baseline, same minibatches; set by programs,
    /// not by TOML: the runner's method `ec_vae_baseline`).
    #[serde(skip, default = "calibrate_by_default")]
    pub calibrate: bool,
    /// Clip every parameter's gradient to this norm.
    pub grad_clip: Option<f64>,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

fn calibrate_by_default() -> bool {
    true
}

impl Default for EcVaeTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 3000,
            batch_size: 128,
            kl_weight: 0.1,
            learning_rate: 2e-4,
            energy_learning_rate: 1e-4,
            energy_penalty: 0.01,
            energy_hidden: vec![256, 256],
            chain: CalibrationChain::default(),
            lambda0: 30.0,
            lambda_step: 0.01,
            lambda_max: 100.0,
            epsilon: 0.01,
            calibrate: true,
            grad_clip: Some(100.0),
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl EcVaeTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("energy_learning_rate", self.energy_learning_rate)?;
        check_positive("epsilon", self.epsilon)?;
        check_positive("lambda_max", self.lambda_max)?;
        self.chain.check()?;
        zoo_neural::nn::check_hidden(&[("energy_hidden", &self.energy_hidden)])?;
        check_non_negative("lambda0", self.lambda0)?;
        check_non_negative("lambda_step", self.lambda_step)?;
        check_non_negative("kl_weight", self.kl_weight)?;
        check_non_negative("energy_penalty", self.energy_penalty)?;
        if self.lambda0 > self.lambda_max {
            return Err(Error::invalid("lambda0", "must not exceed lambda_max"));
        }
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        Ok(())
    }

    /// The EBM of this config for `data_dim`-dimensional data (on an autodiff device to train).
    pub fn init_energy(
        &self,
        rng: &mut ZooRng,
        data_dim: usize,
        device: &Device,
    ) -> Result<MlpEnergy> {
        let widths = zoo_neural::nn::layer_widths(data_dim, &self.energy_hidden, 1);
        MlpEnergyConfig::new(widths, Activation::Silu).init(rng, device)
    }
}

/// Per iteration: L_vae, L_cal and lambda after the step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EcVaeLog {
    /// The VAE loss (squared error per image + beta KL).
    pub vae_loss: f64,
    /// The calibration loss.
    pub calibration_loss: f64,
    /// The multiplier after the dual step.
    pub lambda: f64,
}

/// What [`fit_calibrated`] returns: the log of every step and the final multiplier.
#[derive(Debug, Clone)]
pub struct EcVaeReport {
    /// One entry per iteration.
    pub log: Vec<EcVaeLog>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The iteration training resumed from (0: it started afresh).
    pub resumed_from: usize,
}

/// Trains `vae` (Gaussian decoder, Gaussian prior; the decoder mean is the image) and `energy`
/// (both on an autodiff device) on `data` (`[n, data_dim]`, plain device) through the one
/// training loop: a non-finite loss restores the last snapshot (both models, both optimisers,
/// lambda, generator); `cfg.resume` makes the run resumable.
pub fn fit_calibrated(
    rng: &mut ZooRng,
    vae: &mut Vae,
    energy: &mut MlpEnergy,
    data: &Tensor<2>,
    cfg: &EcVaeTrainConfig,
) -> Result<EcVaeReport> {
    cfg.check()?;
    vae.check_data("training data", data)?;
    check_finite("training data", data)?;
    if vae.prior.is_some() || energy.dim() != vae.data_dim {
        return Err(Error::invalid(
            "model",
            "the EC-VAE needs a Gaussian prior and an energy on the data space",
        ));
    }
    let adam = OptimizerConfig {
        beta1: 0.0,
        beta2: 0.9,
        grad_clip: cfg.grad_clip,
        ..OptimizerConfig::adam()
    };
    let mut run = EcVaeRun {
        vae: zoo_train::stable_ids(vae.clone(), "ecvae"),
        energy: zoo_train::stable_ids(energy.clone(), "ecvae_energy"),
        optim: adam.build(),
        energy_optim: adam.build(),
        adam,
        lambda: if cfg.calibrate { cfg.lambda0 } else { 0.0 },
        data,
        cfg,
    };
    let loop_cfg =
        zoo_train::LoopConfig::quiet("ec-vae", cfg.iterations, cfg.snapshot_every, &cfg.resume);
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *vae = run.vae;
    *energy = run.energy;
    let trained = outcome?;
    fit_decoder_scale(vae, data)?;
    Ok(EcVaeReport {
        log: trained.history,
        seconds: trained.seconds,
        resumed_from: trained.resumed_from,
    })
}

/// Sets the Gaussian decoder's per-pixel sigma to its maximum-likelihood value on the training
/// reconstructions, sigma_j^2 = mean (x_j - Dec(mean of q(z | x))_j)^2: the squared-error loss
/// leaves sigma untrained, and the IWAE bound of the row needs one (it stays a bound for any
/// sigma). Samples (decoder means) do not depend on it.
fn fit_decoder_scale(vae: &mut Vae, data: &Tensor<2>) -> Result<()> {
    let model = vae.valid();
    let n = data.dims()[0];
    let mut sum_sq: Option<Tensor<1>> = None;
    for start in (0..n).step_by(4096) {
        let x = data.clone().slice([start..(start + 4096).min(n)]);
        let (mean, _) = model.posterior(x.clone());
        let r = (model.decode_mean(mean) - x)
            .square()
            .sum_dim(0)
            .squeeze_dim::<1>(0);
        sum_sq = Some(match sum_sq {
            Some(s) => s + r,
            None => r,
        });
    }
    let var = sum_sq
        .expect("n >= 1")
        .div_scalar(n as f64)
        .clamp_min(1e-12);
    let log_std = var.log().mul_scalar(0.5);
    let device = vae.log_std.val().device();
    vae.log_std = vae.log_std.clone().map(|_| log_std.to_device(&device));
    Ok(())
}

/// One EC-VAE run: both models, both optimisers, the multiplier.
struct EcVaeRun<'a> {
    vae: Vae,
    energy: MlpEnergy,
    optim: ModuleOptimizer,
    energy_optim: ModuleOptimizer,
    adam: OptimizerConfig,
    lambda: f64,
    data: &'a Tensor<2>,
    cfg: &'a EcVaeTrainConfig,
}

impl EcVaeRun<'_> {
    /// L_vae on a minibatch: squared error per image plus beta KL, averaged over the batch.
    fn vae_loss(&self, rng: &mut ZooRng, x: Tensor<2>) -> Tensor<1> {
        let (vae, b) = (&self.vae, x.dims()[0]);
        let (mean, log_var) = vae.posterior(x.clone());
        let eps = normal(rng, [b, vae.latent_dim], &self.data.device()).autodiff();
        let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
        let rec = (vae.decode_mean(z) - x).square().sum_dim(1).reshape([b]);
        let kl = Vae::kl_to_standard_normal(mean, log_var);
        (rec + kl.mul_scalar(self.cfg.kl_weight)).mean()
    }

    /// The EBM's maximum-likelihood loss with calibrated samples as negatives:
    /// mean E(x_data) - mean E(x_cal) + alpha (mean E(x_data)^2 + mean E(x_cal)^2).
    fn energy_loss(&self, x: Tensor<2>, x_cal: Tensor<2>) -> Tensor<1> {
        let e_data = self.energy.energy(x.autodiff());
        let e_cal = self.energy.energy(x_cal.autodiff());
        let penalty = (e_data.clone().square().mean() + e_cal.clone().square().mean())
            .mul_scalar(self.cfg.energy_penalty);
        e_data.mean() - e_cal.mean() + penalty
    }
}

/// The host value of a one-element tensor.
fn scalar(t: &Tensor<1>) -> f64 {
    f64::from(t.clone().into_scalar::<f32>())
}

impl Trainable for EcVaeRun<'_> {
    type Log = EcVaeLog;

    /// One step of Algorithm 1 (module docs).
    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<EcVaeLog> {
        let (b, device, cfg) = (self.cfg.batch_size, self.data.device(), self.cfg);
        let x = zoo_train::minibatch(rng, self.data, b);
        let vae_loss = self.vae_loss(rng, x.clone().autodiff());
        // The chain draws from its own stream, so that the baseline (no chain) sees the same
        // minibatches and latent draws.
        let mut chain_rng = zoo_energy::rng::seeded(rng.random::<u64>());
        let mut log = EcVaeLog {
            vae_loss: scalar(&vae_loss),
            calibration_loss: 0.0,
            lambda: self.lambda,
        };
        let z = normal(rng, [b, self.vae.latent_dim], &device).autodiff();
        if !cfg.calibrate {
            check_value(iteration, "EC-VAE loss", log.vae_loss, f64::INFINITY)?;
            let g = GradientsParams::from_grads(vae_loss.backward(), &self.vae);
            self.vae = self.optim.step(cfg.learning_rate, self.vae.clone(), g);
            return Ok(log);
        }
        let generated = self.vae.decode_mean(z);
        let energy = self.energy.sampling_energy();
        let x_cal = cfg
            .chain
            .run(&mut chain_rng, &*energy, generated.clone().inner())?;
        let cal_loss = (generated - x_cal.clone().autodiff())
            .square()
            .sum_dim(1)
            .reshape([b])
            .mean();
        log.calibration_loss = scalar(&cal_loss);
        let total = log.vae_loss + log.calibration_loss;
        check_value(iteration, "EC-VAE loss", total, f64::INFINITY)?;
        // Disjoint parameters: one backward pass serves both optimisers.
        let loss = vae_loss + cal_loss.mul_scalar(self.lambda) + self.energy_loss(x, x_cal);
        let mut grads = loss.backward();
        let g = GradientsParams::from_module(&mut grads, &self.energy);
        let lr = cfg.energy_learning_rate;
        self.energy = self.energy_optim.step(lr, self.energy.clone(), g);
        let g = GradientsParams::from_module(&mut grads, &self.vae);
        self.vae = self.optim.step(cfg.learning_rate, self.vae.clone(), g);
        let target = cfg.epsilon * self.vae.data_dim as f64;
        let next = self.lambda + cfg.lambda_step * (log.calibration_loss - target);
        self.lambda = next.clamp(0.0, cfg.lambda_max);
        log.lambda = self.lambda;
        Ok(log)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("vae", &self.vae)?;
        checkpoint.put_module("energy", &self.energy)?;
        checkpoint.put_optimizer("optimizer", &self.optim)?;
        checkpoint.put_optimizer("energy_optimizer", &self.energy_optim)?;
        checkpoint.put_json("lambda", &self.lambda)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.vae = checkpoint.module("vae", self.vae.clone())?;
        self.energy = checkpoint.module("energy", self.energy.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        self.energy_optim = checkpoint.optimizer("energy_optimizer", self.adam.build())?;
        self.lambda = checkpoint.json("lambda")?;
        Ok(())
    }
}
