//! **DDAEBM**: the adversarial EBM split along a short diffusion (Geng, Wang, Xiao, Wang & Wang,
//! "Improving Adversarial Energy-Based Model via Diffusion Process", ICML 2024, arXiv 2403.01666),
//! on the discrete VP chain of denoising diffusion GANs (Xiao, Kreis & Vahdat 2022).
//!
//! The chain: T steps at t_k = eps + (1 - eps) k / T (eps = 1e-3) of the VP SDE, whose marginal
//! variance is var(t) = 1 - exp(-t^2 (beta_max - beta_min) / 2 - t beta_min); the step variances are
//! beta_k = 1 - abar(t_k) / abar(t_{k-1}) and alpha_bar_k = prod_{j <= k} (1 - beta_j), so x_0 is the
//! data. Each step has a conditional EBM
//! p(x_k | x_{k+1}) ∝ exp(f(x_k, k) + log N(x_{k+1}; a x_k, sigma^2)), a = sqrt(1 - beta_{k+1}),
//! sigma^2 = beta_{k+1}, and an amortised sampler: a generator G(x_{k+1}, z, k) -> x0_hat whose
//! x_hat_k is drawn from the DDPM posterior q(x_k | x_{k+1}, x0_hat), and an encoder
//! r(z | x_k, x_{k+1}, k) for the generator's entropy.
//!
//! - EBM step: L_D = mean[-f(x_k) + f(sg x_hat_k)] + (gamma / 2) mean |grad_{x_k}[f + log N]|^2 at
//!   the data pairs; the input gradient is the MLP's written-out vector-Jacobian product
//!   ([`Mlp::vjp`]), so the penalty needs burn's first-order autodiff only.
//! - Generator / encoder step (f frozen): L_G = -E[f(x_hat_k) + log N(x_{k+1}; a x_hat_k, sigma^2)]
//!   + w_mi E[-log r(z | x_hat_k, x_{k+1})] (the entropy's variational bound, w_mi = 0.1)
//!   + E[-log q(x_k | x_{k+1}, G(x_{k+1}, z_r))] + KL(r(z | x_k, x_{k+1}) || N(0, I)) with
//!   z_r ~ r(z | x_k, x_{k+1}) (the forward-KL half of the paper's Jeffrey divergence; the
//!   posterior variance in that likelihood is floored at `posterior_variance_floor`).
//! - Sampling: x_T ~ N(0, I), then G and the posterior down to x_0; no MCMC.
//!
//! The time index enters every network as a one-hot vector of length T.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal;
use zoo_energy::tensor::{check_finite, row_sq_norm};
use zoo_energy::{
    Error, Result, ZooRng, check_adam_betas, check_count, check_non_negative, check_positive,
};
use zoo_neural::Activation;
use zoo_neural::nn::{Mlp, check_hidden, layer_widths};
use zoo_train::{
    Checkpoint, LoopConfig, OptimizerConfig, OptimizerKind, Resume, Trainable, check_value,
};

/// The largest number of diffusion steps (the one-hot time embedding has this many entries).
pub const MAX_STEPS: usize = 1000;

/// The discrete VP chain of DDGAN and DDAEBM (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct VpChain {
    /// beta_1 .. beta_T.
    pub betas: Vec<f64>,
    /// alpha_bar_0 = 1, alpha_bar_1 .. alpha_bar_T.
    pub alpha_bars: Vec<f64>,
}

impl VpChain {
    /// `steps` steps of the VP SDE with `beta(t) = beta_min + t (beta_max - beta_min)`.
    pub fn new(steps: usize, beta_min: f64, beta_max: f64) -> Result<Self> {
        check_steps(steps)?;
        check_betas(beta_min, beta_max)?;
        let eps = 1e-3;
        let abar = |k: usize| {
            let t = eps + (1.0 - eps) * k as f64 / steps as f64;
            (-0.5 * t * t * (beta_max - beta_min) - t * beta_min).exp()
        };
        let betas: Vec<f64> = (1..=steps).map(|k| 1.0 - abar(k) / abar(k - 1)).collect();
        let mut alpha_bars = vec![1.0];
        for b in &betas {
            alpha_bars.push(alpha_bars.last().expect("non-empty") * (1.0 - b));
        }
        Ok(Self { betas, alpha_bars })
    }

    /// T.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    /// q(x_k | x_0) = N(m x_0, s^2): `(m, s)`.
    pub fn marginal(&self, k: usize) -> (f64, f64) {
        let ab = self.alpha_bars[k];
        (ab.sqrt(), (1.0 - ab).sqrt())
    }

    /// The forward step q(x_{k+1} | x_k) = N(a x_k, sigma^2): `(a, sigma^2)`.
    pub fn step(&self, k: usize) -> (f64, f64) {
        let b = self.betas[k];
        ((1.0 - b).sqrt(), b)
    }

    /// The DDPM posterior q(x_k | x_{k+1}, x_0) = N(c0 x_0 + c1 x_{k+1}, v): `(c0, c1, v)`
    /// (Ho et al. 2020, eq. 7).
    pub fn posterior(&self, k: usize) -> (f64, f64, f64) {
        let (b, ab_prev, ab) = (self.betas[k], self.alpha_bars[k], self.alpha_bars[k + 1]);
        let c0 = b * ab_prev.sqrt() / (1.0 - ab);
        let c1 = (1.0 - ab_prev) * (1.0 - b).sqrt() / (1.0 - ab);
        (c0, c1, b * (1.0 - ab_prev) / (1.0 - ab))
    }
}

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(Error::invalid(
            "steps",
            format!("the diffusion needs 1 to {MAX_STEPS} steps, got {steps}"),
        ));
    }
    Ok(())
}

fn check_betas(beta_min: f64, beta_max: f64) -> Result<()> {
    check_non_negative("beta_min", beta_min)?;
    if !(beta_max.is_finite() && beta_max > beta_min) {
        return Err(Error::invalid(
            "beta_max",
            format!("must be finite and > beta_min = {beta_min}, got {beta_max}"),
        ));
    }
    Ok(())
}

/// The model of DDAEBM (a TOML table; unknown keys are errors). Defaults: the paper's VP schedule
/// (T = 4, beta_min = 0.1, beta_max = 20) and MLPs of DDGAN's toy width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdaebmConfig {
    /// Data dimension.
    pub data_dim: usize,
    /// Diffusion steps T.
    pub steps: usize,
    /// beta(0) of the VP SDE.
    pub beta_min: f64,
    /// beta(1) of the VP SDE.
    pub beta_max: f64,
    /// Latent dimension of the generator.
    pub latent_dim: usize,
    /// Hidden widths of the energies f(x, k).
    pub energy_hidden: Vec<usize>,
    /// Hidden widths of the generator G(x_{k+1}, z, k).
    pub generator_hidden: Vec<usize>,
    /// Hidden widths of the encoder r(z | x_k, x_{k+1}, k).
    pub encoder_hidden: Vec<usize>,
    /// Activation of all three networks.
    pub activation: Activation,
}

impl Default for DdaebmConfig {
    fn default() -> Self {
        Self {
            data_dim: 2,
            steps: 4,
            beta_min: 0.1,
            beta_max: 20.0,
            latent_dim: 2,
            energy_hidden: vec![128, 128, 128],
            generator_hidden: vec![128, 128, 128],
            encoder_hidden: vec![128, 128],
            activation: Activation::Silu,
        }
    }
}

impl DdaebmConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("data_dim", self.data_dim)?;
        check_count("latent_dim", self.latent_dim)?;
        check_steps(self.steps)?;
        check_betas(self.beta_min, self.beta_max)?;
        check_hidden(&[
            ("energy_hidden", &self.energy_hidden),
            ("generator_hidden", &self.generator_hidden),
            ("encoder_hidden", &self.encoder_hidden),
        ])?;
        let params: u128 = self
            .widths()
            .iter()
            .flat_map(|w| w.windows(2).map(|io| (io[0] as u128 + 1) * io[1] as u128))
            .sum();
        // Parameters, gradients, two Adam moments, snapshot: ~6 copies.
        zoo_energy::memory::check_elements("DDAEBM's networks", params, 24)
    }

    /// The widths of the energy, the generator and the encoder.
    fn widths(&self) -> [Vec<usize>; 3] {
        let (d, l, t) = (self.data_dim, self.latent_dim, self.steps);
        [
            layer_widths(d + t, &self.energy_hidden, 1),
            layer_widths(d + l + t, &self.generator_hidden, d),
            layer_widths(2 * d + t, &self.encoder_hidden, 2 * l),
        ]
    }

    /// Initialises the three networks (PyTorch's initialisation from `rng`).
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<Ddaebm> {
        self.check()?;
        let [e, g, r] = self.widths();
        let act = self.activation;
        Ok(Ddaebm {
            energy: Mlp::new(rng, &e, act, false, device)?,
            sampler: Amortised {
                generator: Mlp::new(rng, &g, act, false, device)?,
                encoder: Mlp::new(rng, &r, act, false, device)?,
            },
            chain: VpChain::new(self.steps, self.beta_min, self.beta_max)?,
            config: self.clone(),
        })
    }
}

/// The amortised sampler: the generator and the encoder of its entropy bound (one module, one
/// optimiser).
#[derive(Module, Debug)]
pub struct Amortised {
    /// G(x_{k+1}, z, onehot(k)) -> x0_hat.
    pub generator: Mlp,
    /// r(z | x_k, x_{k+1}, onehot(k)) -> (mean, log variance).
    pub encoder: Mlp,
}

/// A DDAEBM model: the T conditional energies (one network), the generator and the encoder.
#[derive(Debug, Clone)]
pub struct Ddaebm {
    /// f(x_k, onehot(k)) -> the negative energy of step k.
    pub energy: Mlp,
    /// Generator and encoder.
    pub sampler: Amortised,
    /// The diffusion.
    pub chain: VpChain,
    /// The sizes.
    pub config: DdaebmConfig,
}

/// Per-row time indices and the tensors built from them.
struct Times {
    ks: Vec<usize>,
    onehot: Tensor<2>,
}

impl Times {
    fn new(ks: Vec<usize>, steps: usize, device: &Device) -> Self {
        let mut v = vec![0f32; ks.len() * steps];
        for (i, &k) in ks.iter().enumerate() {
            v[i * steps + k] = 1.0;
        }
        let onehot = Tensor::from_data(TensorData::new(v, [ks.len(), steps]), device);
        Self { ks, onehot }
    }

    /// `[n, 1]` per-row coefficients `coef(k)`.
    fn column(&self, coef: impl Fn(usize) -> f64, device: &Device) -> Tensor<2> {
        let v: Vec<f32> = self.ks.iter().map(|&k| coef(k) as f32).collect();
        Tensor::from_data(TensorData::new(v, [self.ks.len(), 1]), device)
    }

    /// The network input `[parts..., onehot(k)]` (the parts on the device the times were built on).
    fn input(&self, mut parts: Vec<Tensor<2>>) -> Tensor<2> {
        parts.push(self.onehot.clone());
        Tensor::cat(parts, 1)
    }
}

impl Ddaebm {
    /// f(x, k) `[n]`.
    fn f(&self, energy: &Mlp, x: Tensor<2>, t: &Times) -> Tensor<1> {
        energy.forward(t.input(vec![x])).squeeze_dim(1)
    }

    /// f(x, k) `[n]` and its input gradient grad_x f `[n, d]` as differentiable tensor operations.
    fn f_and_grad(&self, x: Tensor<2>, t: &Times) -> (Tensor<1>, Tensor<2>) {
        let (n, d) = (x.dims()[0], x.dims()[1]);
        let dev = x.device();
        let (out, tape) = self.energy.forward_tape(t.input(vec![x]));
        let g = self
            .energy
            .vjp(tape, Tensor::ones([n, 1], &dev))
            .narrow(1, 0, d);
        (out.squeeze_dim(1), g)
    }

    /// G(x_{k+1}, z, k) `[n, d]`.
    fn generate(&self, s: &Amortised, x_next: Tensor<2>, z: Tensor<2>, t: &Times) -> Tensor<2> {
        s.generator.forward(t.input(vec![x_next, z]))
    }

    /// r(z | x_k, x_{k+1}, k): `(mean, log variance)`, each `[n, l]`.
    fn encode(&self, x: Tensor<2>, x_next: Tensor<2>, t: &Times) -> (Tensor<2>, Tensor<2>) {
        let l = self.config.latent_dim;
        let out = self.sampler.encoder.forward(t.input(vec![x, x_next]));
        (
            out.clone().narrow(1, 0, l),
            out.narrow(1, l, l).clamp(-10.0, 10.0),
        )
    }

    /// Mean and variance columns of q(x_k | x_{k+1}, x0_hat).
    fn posterior(&self, x0: Tensor<2>, x_next: Tensor<2>, t: &Times) -> (Tensor<2>, Tensor<2>) {
        let (dev, ch) = (x0.device(), &self.chain);
        let c0 = t.column(|k| ch.posterior(k).0, &dev);
        let c1 = t.column(|k| ch.posterior(k).1, &dev);
        (x0 * c0 + x_next * c1, t.column(|k| ch.posterior(k).2, &dev))
    }

    /// The unnormalised log-density of step `k`'s conditional EBM at `x` (x_k) given `x_next`
    /// (x_{k+1}), f(x, k) + log N(x_{k+1}; a x, sigma^2) (constant dropped), `[n]`, and its input
    /// gradient `[n, d]` written out as differentiable tensor operations: what the R1 penalty of
    /// L_D squares.
    pub fn conditional(&self, x: Tensor<2>, x_next: Tensor<2>, k: usize) -> (Tensor<1>, Tensor<2>) {
        let (n, dev) = (x.dims()[0], x.device());
        let t = Times::new(vec![k; n], self.chain.steps(), &dev);
        let (a, var) = self.chain.step(k);
        let (f, g) = self.f_and_grad(x.clone(), &t);
        let resid = x_next - x.mul_scalar(a);
        let log_n = row_sq_norm(resid.clone()).mul_scalar(-0.5 / var);
        (f + log_n, g + resid.mul_scalar(a / var))
    }

    /// `n` samples (plain tensors): x_T ~ N(0, I), then the generator and the posterior down to
    /// x_0 (no noise at the last step, as DDGAN).
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let (d, l, steps) = (
            self.config.data_dim,
            self.config.latent_dim,
            self.chain.steps(),
        );
        let s = self.sampler.valid();
        let mut x = normal(rng, [n, d], device);
        for k in (0..steps).rev() {
            let t = Times::new(vec![k; n], steps, device);
            let x0 = self.generate(&s, x.clone(), normal(rng, [n, l], device), &t);
            let (c0, c1, v) = self.chain.posterior(k);
            let mut next = x0.mul_scalar(c0) + x.mul_scalar(c1);
            if k > 0 {
                next = next + normal(rng, [n, d], device).mul_scalar(v.sqrt());
            }
            x = next;
        }
        x
    }

    /// Parameters of (energy, generator, encoder).
    pub fn parameter_count(&self) -> (usize, usize, usize) {
        (
            self.energy.num_params(),
            self.sampler.generator.num_params(),
            self.sampler.encoder.num_params(),
        )
    }
}

/// How DDAEBM trains (a TOML table; unknown keys are errors). Adam's betas are DDGAN's (0.5, 0.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdaebmTrainConfig {
    /// Iterations (one energy and one generator update each).
    pub iterations: usize,
    /// Data pairs per update.
    pub batch_size: usize,
    /// Adam's learning rate for the energies.
    pub energy_learning_rate: f64,
    /// Adam's learning rate for the generator and the encoder.
    pub generator_learning_rate: f64,
    /// Adam's beta_1.
    pub beta_1: f64,
    /// Adam's beta_2.
    pub beta_2: f64,
    /// gamma of the R1 penalty (gamma / 2) |grad_x [f + log N]|^2 at the data.
    pub r1_gamma: f64,
    /// alpha of an energy-magnitude penalty alpha (mean f(x_k)^2 + mean f(x_hat_k)^2) in L_D (as
    /// the contrastive-divergence trainers'; 0: the paper's loss). It keeps the linear
    /// (maximum-likelihood) loss from driving f to infinity away from the data.
    pub energy_penalty: f64,
    /// Weight of E[-log r(z | x_hat_k, x_{k+1})] (the entropy bound).
    pub entropy_weight: f64,
    /// Keep the forward-KL terms (reconstruction through the encoder and KL(r || N(0, I))); off:
    /// the generator sees the reverse-KL terms only (a plain adversarial EBM).
    pub forward_kl: bool,
    /// Floor on the posterior variance in the reconstruction likelihood.
    pub posterior_variance_floor: f64,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for DdaebmTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 4000,
            batch_size: 256,
            energy_learning_rate: 1e-4,
            generator_learning_rate: 1e-4,
            beta_1: 0.5,
            beta_2: 0.9,
            r1_gamma: 0.02,
            energy_penalty: 0.0,
            entropy_weight: 0.1,
            forward_kl: true,
            posterior_variance_floor: 1e-2,
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl DdaebmTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_positive("energy_learning_rate", self.energy_learning_rate)?;
        check_positive("generator_learning_rate", self.generator_learning_rate)?;
        check_positive("posterior_variance_floor", self.posterior_variance_floor)?;
        check_adam_betas(self.beta_1, self.beta_2)?;
        check_non_negative("r1_gamma", self.r1_gamma)?;
        check_non_negative("energy_penalty", self.energy_penalty)?;
        check_non_negative("entropy_weight", self.entropy_weight)?;
        Ok(())
    }
}

/// Losses per iteration and the wall time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DdaebmReport {
    /// L_D per iteration.
    pub energy_losses: Vec<f64>,
    /// L_G per iteration.
    pub generator_losses: Vec<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The iteration training resumed from (0: it started afresh).
    pub resumed_from: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DdaebmLog {
    energy: f64,
    generator: f64,
}

/// Trains `model` (built on an autodiff device) on `data` (`[n, data_dim]`, plain device) through
/// the one training loop: a non-finite loss restores the last snapshot, `cfg.resume` makes the run
/// resumable.
pub fn fit_ddaebm(
    rng: &mut ZooRng,
    model: &mut Ddaebm,
    data: &Tensor<2>,
    cfg: &DdaebmTrainConfig,
    show_progress: bool,
) -> Result<DdaebmReport> {
    cfg.check()?;
    zoo_energy::tensor::check_batch("training data", data, model.config.data_dim)?;
    check_finite("training data", data)?;
    let adam = OptimizerConfig {
        kind: OptimizerKind::Adam,
        beta1: cfg.beta_1,
        beta2: cfg.beta_2,
        grad_clip: None,
    };
    let mut m = model.clone();
    m.energy = zoo_train::stable_ids(m.energy, "energy");
    m.sampler = zoo_train::stable_ids(m.sampler, "sampler");
    let mut run = DdaebmRun {
        model: m,
        optimizers: [adam.build(), adam.build()],
        adam,
        data,
        cfg,
    };
    let loop_cfg = LoopConfig {
        iterations: cfg.iterations,
        snapshot_every: cfg.snapshot_every,
        resume: cfg.resume.clone(),
        progress: show_progress,
        label: "ddaebm".into(),
    };
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *model = run.model;
    let done = outcome?;
    let h = &done.history;
    Ok(DdaebmReport {
        energy_losses: h.iter().map(|l| l.energy).collect(),
        generator_losses: h.iter().map(|l| l.generator).collect(),
        seconds: done.seconds,
        resumed_from: done.resumed_from,
    })
}

struct DdaebmRun<'a> {
    model: Ddaebm,
    optimizers: [ModuleOptimizer; 2],
    adam: OptimizerConfig,
    data: &'a Tensor<2>,
    cfg: &'a DdaebmTrainConfig,
}

/// A minibatch of diffusion pairs (x_k, x_{k+1}) with uniform k, on the autodiff device.
struct Pairs {
    x: Tensor<2>,
    x_next: Tensor<2>,
    t: Times,
    /// a, 1 / sigma^2 of the forward step per row.
    a: Tensor<2>,
    inv_var: Tensor<2>,
}

impl DdaebmRun<'_> {
    fn pairs(&self, rng: &mut ZooRng) -> Pairs {
        let (b, chain) = (self.cfg.batch_size, &self.model.chain);
        let dev = self.data.device().autodiff();
        let x0 = zoo_train::minibatch(rng, self.data, b).autodiff();
        let d = x0.dims()[1];
        let ks: Vec<usize> = (0..b).map(|_| rng.random_range(0..chain.steps())).collect();
        let t = Times::new(ks, chain.steps(), &dev);
        let (m, s) = (
            t.column(|k| chain.marginal(k).0, &dev),
            t.column(|k| chain.marginal(k).1, &dev),
        );
        let x = x0 * m + normal(rng, [b, d], &dev) * s;
        let a = t.column(|k| chain.step(k).0, &dev);
        let sd = t.column(|k| chain.step(k).1.sqrt(), &dev);
        let x_next = x.clone() * a.clone() + normal(rng, [b, d], &dev) * sd;
        let inv_var = t.column(|k| 1.0 / chain.step(k).1, &dev);
        Pairs {
            x,
            x_next,
            t,
            a,
            inv_var,
        }
    }

    /// x_hat_k from the generator at (x_{k+1}, z) by the reparameterised posterior draw (its
    /// variance is 0 at k = 0).
    fn fake(&self, rng: &mut ZooRng, s: &Amortised, p: &Pairs, z: Tensor<2>) -> Tensor<2> {
        let dev = p.x.device();
        let x0 = self.model.generate(s, p.x_next.clone(), z, &p.t);
        let (mean, var) = self.model.posterior(x0, p.x_next.clone(), &p.t);
        mean + normal(rng, p.x.dims(), &dev) * var.sqrt()
    }

    /// L_D on one minibatch of pairs; one Adam step on the energies.
    fn energy_step(&mut self, rng: &mut ZooRng, p: &Pairs, iteration: usize) -> Result<f64> {
        let (b, l, dev) = (
            self.cfg.batch_size,
            self.model.config.latent_dim,
            p.x.device(),
        );
        let s = self.model.sampler.clone().no_grad();
        let z = normal(rng, [b, l], &dev);
        let fake = self.fake(rng, &s, p, z).detach();
        let (f_real, g_real) = self.model.f_and_grad(p.x.clone(), &p.t);
        let f_fake = self.model.f(&self.model.energy, fake, &p.t);
        // grad_{x_k} log N(x_{k+1}; a x_k, sigma^2) = a (x_{k+1} - a x_k) / sigma^2.
        let g_log_n =
            (p.x_next.clone() - p.x.clone() * p.a.clone()) * p.a.clone() * p.inv_var.clone();
        let r1 = row_sq_norm(g_real + g_log_n).mean();
        let magnitude = (f_real.clone().square().mean() + f_fake.clone().square().mean())
            .mul_scalar(self.cfg.energy_penalty);
        let loss =
            f_fake.mean() - f_real.mean() + r1.mul_scalar(0.5 * self.cfg.r1_gamma) + magnitude;
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "DDAEBM energy loss", value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let grads = GradientsParams::from_module(&mut grads, &self.model.energy);
        let lr = self.cfg.energy_learning_rate;
        self.model.energy = self.optimizers[0].step(lr, self.model.energy.clone(), grads);
        Ok(value)
    }

    /// L_G on the same pairs; one Adam step on the generator and the encoder.
    fn generator_step(&mut self, rng: &mut ZooRng, p: &Pairs, iteration: usize) -> Result<f64> {
        let (b, l, dev) = (
            self.cfg.batch_size,
            self.model.config.latent_dim,
            p.x.device(),
        );
        let frozen = self.model.energy.clone().no_grad();
        let s = self.model.sampler.clone();
        let z = normal(rng, [b, l], &dev);
        let fake = self.fake(rng, &s, p, z.clone());
        let resid = p.x_next.clone() - fake.clone() * p.a.clone();
        let log_n = (row_sq_norm(resid * p.inv_var.clone().sqrt())).mul_scalar(-0.5);
        let mut loss = (self.model.f(&frozen, fake.clone(), &p.t) + log_n)
            .mean()
            .neg();
        if self.cfg.entropy_weight > 0.0 {
            let (mu, lv) = self.model.encode(fake, p.x_next.clone(), &p.t);
            loss = loss
                + gauss_nll(z, mu, lv)
                    .mean()
                    .mul_scalar(self.cfg.entropy_weight);
        }
        if self.cfg.forward_kl {
            let (mu, lv) = self.model.encode(p.x.clone(), p.x_next.clone(), &p.t);
            let z_r = mu.clone() + normal(rng, [b, l], &dev) * lv.clone().mul_scalar(0.5).exp();
            let x0 = self.model.generate(&s, p.x_next.clone(), z_r, &p.t);
            let (mean, var) = self.model.posterior(x0, p.x_next.clone(), &p.t);
            let var = var.clamp_min(self.cfg.posterior_variance_floor);
            let d = p.x.dims()[1];
            let rec = gauss_nll(p.x.clone(), mean, var.log().expand([b, d]));
            let kl = (mu.square() + lv.clone().exp() - lv.add_scalar(1.0))
                .sum_dim(1)
                .mul_scalar(0.5);
            loss = loss + rec.mean() + kl.squeeze_dim::<1>(1).mean();
        }
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "DDAEBM generator loss", value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let grads = GradientsParams::from_module(&mut grads, &self.model.sampler);
        let lr = self.cfg.generator_learning_rate;
        self.model.sampler = self.optimizers[1].step(lr, self.model.sampler.clone(), grads);
        Ok(value)
    }
}

/// -log N(x; mean, exp(log_var)) per row, without the constant d/2 log(2 pi).
fn gauss_nll(x: Tensor<2>, mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    let z2 = (x - mean).square() * log_var.clone().neg().exp();
    (z2 + log_var)
        .sum_dim(1)
        .squeeze_dim::<1>(1)
        .mul_scalar(0.5)
}

impl Trainable for DdaebmRun<'_> {
    type Log = DdaebmLog;

    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<DdaebmLog> {
        let pairs = self.pairs(rng);
        let energy = self.energy_step(rng, &pairs, iteration)?;
        let generator = self.generator_step(rng, &pairs, iteration)?;
        Ok(DdaebmLog { energy, generator })
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("energy", &self.model.energy)?;
        checkpoint.put_module("sampler", &self.model.sampler)?;
        checkpoint.put_optimizer("energy_optimizer", &self.optimizers[0])?;
        checkpoint.put_optimizer("sampler_optimizer", &self.optimizers[1])
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.model.energy = checkpoint.module("energy", self.model.energy.clone())?;
        self.model.sampler = checkpoint.module("sampler", self.model.sampler.clone())?;
        self.optimizers[0] = checkpoint.optimizer("energy_optimizer", self.adam.build())?;
        self.optimizers[1] = checkpoint.optimizer("sampler_optimizer", self.adam.build())?;
        Ok(())
    }

    fn summary(log: &DdaebmLog) -> String {
        format!("D {:.3} G {:.3}", log.energy, log.generator)
    }
}
