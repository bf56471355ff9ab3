//! Training (the ELBO, and the latent EBM prior by maximum likelihood) and evaluation (ELBO and
//! the importance-weighted bound of Burda et al. 2016).
//!
//! With the EBM prior p_a(z) = exp(-E_a(z)) N(z; 0, I) / Z_a (Pang et al. 2020, eqs. 5-8):
//! * encoder and decoder maximise E_q[log p(x|z)] - KL(q || N(0, I)) - E_q[E_a(z)] (the ELBO up to
//!   the constant log Z_a); E_a enters as a constant network (gradient to z only);
//! * the prior follows the maximum-likelihood gradient of the aggregate posterior,
//!   grad_a = E_{z~q}[-grad_a E_a(z)] - E_{z~p_a}[-grad_a E_a(z)], with prior samples from ULA
//!   (shared sampler): persistent chains by default (PCD), or short-run chains restarted at
//!   N(0, I) as in the paper (`persistent = false`); the posterior is the encoder's. Measured
//!   (docs/vae.md): short-run negatives make E a good short-run sampler but a poor density (its
//!   log Z, checked by SMC and by importance sampling, shows it), persistent ones do not.

use crate::model::Vae;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::{Covariance, Energy, Gaussian, WithGaussianBase};
use zoo_energy::rng::normal;
use zoo_energy::tensor::{check_finite, to_host1};
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};
use zoo_mcmc::estimate::{AnnealConfig, anneal, log_mean_exp};
use zoo_mcmc::sampler::{AnySampler, Mala, Sampler, Ula};
use zoo_train::{Checkpoint, OptimizerConfig, Resume, Trainable, check_value};

/// Settings of [`fit`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaeTrainConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Data points per step (and prior chains).
    pub batch_size: usize,
    /// Adam's learning rate (encoder, decoder and prior alike).
    pub learning_rate: f64,
    /// Clip every parameter's gradient to this norm.
    pub grad_clip: Option<f64>,
    /// Adam's learning rate for the EBM prior (its own optimiser; Pang et al. train the prior
    /// far more slowly than the encoder and decoder).
    pub prior_learning_rate: f64,
    /// alpha in alpha (E(z_q)^2 + E(z_p)^2) added to the prior's loss: keeps the energy from
    /// running away where short-run chains do not reach (the stabiliser of the core-EBM trainer).
    pub prior_energy_penalty: f64,
    /// Negative samples of the EBM prior from persistent chains (PCD: each iteration continues
    /// the previous iteration's chains) instead of short-run chains restarted at N(0, I).
    pub persistent: bool,
    /// ULA steps per iteration for the prior's negative samples (EBM prior).
    pub langevin_steps: usize,
    /// Their step size h (z <- z + h s(z) + sqrt(2h) xi).
    pub langevin_step_size: f64,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for VaeTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 3000,
            batch_size: 128,
            learning_rate: 1e-3,
            prior_learning_rate: 1e-4,
            prior_energy_penalty: 0.01,
            grad_clip: Some(100.0),
            persistent: true,
            langevin_steps: 60,
            langevin_step_size: 0.05,
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl VaeTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_count("langevin_steps", self.langevin_steps)?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("prior_learning_rate", self.prior_learning_rate)?;
        check_positive("langevin_step_size", self.langevin_step_size)?;
        if !(self.prior_energy_penalty.is_finite() && self.prior_energy_penalty >= 0.0) {
            return Err(Error::invalid(
                "prior_energy_penalty",
                "must be finite and >= 0",
            ));
        }
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        Ok(())
    }
}

/// The negative ELBO (without log Z of an EBM prior, nats per example) of every step, the wall
/// time and the resume point.
pub type VaeReport = zoo_train::LossReport;

/// Draws `n` prior samples: exact for the Gaussian prior, short-run ULA from N(0, I) on
/// U(z) = E(z) + |z|^2 / 2 for the EBM prior.
pub fn sample_prior(
    rng: &mut ZooRng,
    vae: &Vae,
    n: usize,
    steps: usize,
    step_size: f64,
    device: &Device,
) -> Result<Tensor<2>> {
    let z0 = normal(rng, [n, vae.latent_dim], device);
    continue_prior_chains(rng, vae, z0, steps, step_size)
}

/// Runs `steps` ULA steps of the EBM prior from `z0` (returns `z0` for the Gaussian prior).
pub fn continue_prior_chains(
    rng: &mut ZooRng,
    vae: &Vae,
    z0: Tensor<2>,
    steps: usize,
    step_size: f64,
) -> Result<Tensor<2>> {
    let Some(prior) = &vae.prior else {
        return Ok(z0);
    };
    let energy = WithGaussianBase::new(prior.sampling_energy(), 1.0)?;
    let ula = Ula::new(step_size)?;
    let mut state = ula.init(&energy, z0)?;
    for step in 1..=steps {
        state = ula.step(rng, &energy, state)?.0;
        if step == steps {
            zoo_energy::tensor::check_finite("prior samples", &state.position).map_err(|_| {
                Error::invalid(
                    "langevin_step_size",
                    format!(
                        "prior ULA diverged within {steps} steps; lower the step size ({step_size})"
                    ),
                )
            })?;
        }
    }
    Ok(state.position)
}

/// Trains `vae` (on an autodiff device) on `data` (`[n, data_dim]`, plain device) through the
/// one training loop ([`zoo_train::train`]): a non-finite ELBO restores the last snapshot (model,
/// both optimisers, persistent prior chains, generator) and `cfg.resume` makes the run resumable.
pub fn fit(
    rng: &mut ZooRng,
    vae: &mut Vae,
    data: &Tensor<2>,
    cfg: &VaeTrainConfig,
) -> Result<VaeReport> {
    cfg.check()?;
    vae.check_data("training data", data)?;
    check_finite("training data", data)?;
    let adam = OptimizerConfig {
        grad_clip: cfg.grad_clip,
        ..OptimizerConfig::adam()
    };
    let mut run = VaeRun {
        vae: zoo_train::stable_ids(vae.clone(), "vae"),
        optim: adam.build(),
        prior_optim: adam.build(),
        adam,
        chains: None,
        data,
        cfg,
    };
    let loop_cfg =
        zoo_train::LoopConfig::quiet("vae", cfg.iterations, cfg.snapshot_every, &cfg.resume);
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *vae = run.vae;
    outcome.map(VaeReport::from)
}

/// One VAE training run: the model, its two optimisers and the prior's persistent chains.
struct VaeRun<'a> {
    vae: Vae,
    optim: ModuleOptimizer,
    prior_optim: ModuleOptimizer,
    adam: OptimizerConfig,
    chains: Option<Tensor<2>>,
    data: &'a Tensor<2>,
    cfg: &'a VaeTrainConfig,
}

impl VaeRun<'_> {
    /// The prior's contrastive loss E(z_q) - E(z_p) + penalty, with z_p from (persistent) ULA.
    fn prior_loss(&mut self, rng: &mut ZooRng, z: &Tensor<2>) -> Result<Option<Tensor<1>>> {
        let (vae, cfg) = (&self.vae, self.cfg);
        let Some(prior) = &vae.prior else {
            return Ok(None);
        };
        let (b, steps, h) = (z.dims()[0], cfg.langevin_steps, cfg.langevin_step_size);
        let negatives = match self.chains.take() {
            Some(z0) if cfg.persistent => continue_prior_chains(rng, vae, z0, steps, h)?,
            _ => sample_prior(rng, vae, b, steps, h, &self.data.device())?,
        };
        self.chains = Some(negatives.clone());
        let positives = z.clone().without_autodiff().autodiff();
        let (e_pos, e_neg) = (prior.energy(positives), prior.energy(negatives.autodiff()));
        let penalty = (e_pos.clone().square().mean() + e_neg.clone().square().mean())
            .mul_scalar(cfg.prior_energy_penalty);
        Ok(Some(e_pos.mean() - e_neg.mean() + penalty))
    }
}

impl Trainable for VaeRun<'_> {
    type Log = f64;

    /// One step on the negative ELBO (Kingma & Welling 2014) plus, with an EBM prior, the
    /// prior's maximum-likelihood contrast (Pang et al. 2020).
    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let (b, device) = (self.cfg.batch_size, self.data.device());
        let x = zoo_train::minibatch(rng, self.data, b).autodiff();
        let vae = &self.vae;
        let (mean, log_var) = vae.posterior(x.clone());
        let eps = normal(rng, [b, vae.latent_dim], &device).autodiff();
        let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
        let rec = vae.log_likelihood(x, z.clone());
        let kl = Vae::kl_to_standard_normal(mean, log_var);
        let mut objective = kl - rec;
        if let Some(prior) = &vae.prior {
            // Encoder/decoder see E through z only; the prior gets the ML gradient.
            objective = objective + prior.valid().energy(z.clone());
        }
        let contrast = self.prior_loss(rng, &z)?;
        let elbo_loss = objective.mean();
        let value = f64::from(elbo_loss.clone().into_scalar::<f32>());
        check_value(iteration, "negative ELBO", value, f64::INFINITY)?;
        // The contrastive term (zero at the optimum) drives the prior; it is not part of the ELBO.
        let loss = match contrast {
            Some(c) => elbo_loss + c,
            None => elbo_loss,
        };
        let mut grads = loss.backward();
        let cfg = self.cfg;
        let prior = self.vae.prior.take().map(|p| {
            let g = GradientsParams::from_module(&mut grads, &p);
            self.prior_optim.step(cfg.prior_learning_rate, p, g)
        });
        let g = GradientsParams::from_module(&mut grads, &self.vae);
        self.vae = self.optim.step(cfg.learning_rate, self.vae.clone(), g);
        self.vae.prior = prior;
        Ok(value)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("vae", &self.vae)?;
        checkpoint.put_optimizer("optimizer", &self.optim)?;
        checkpoint.put_optimizer("prior_optimizer", &self.prior_optim)?;
        if let Some(chains) = &self.chains {
            checkpoint.put_tensor("prior_chains", chains)?;
        }
        Ok(())
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.vae = checkpoint.module("vae", self.vae.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        self.prior_optim = checkpoint.optimizer("prior_optimizer", self.adam.build())?;
        self.chains = match checkpoint.has("prior_chains") {
            true => Some(checkpoint.tensor("prior_chains", &self.data.device())?),
            false => None,
        };
        Ok(())
    }
}

/// log Z_U of the prior: exact for the Gaussian prior; for the EBM prior SMC along the geometric
/// path from N(0, I) (`levels` levels, two MALA steps each, resampling a group when its ESS falls
/// below half; 16 groups for the error bar). Returns (log Z, s.e.). Too few levels bias log Z low
/// (and so the NLL estimate low): check that the value is stable in `levels`.
pub fn prior_log_normalizer(
    rng: &mut ZooRng,
    vae: &Vae,
    particles: usize,
    levels: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let Some(energy) = vae.prior_as_energy() else {
        return Ok((vae.gaussian_log_normalizer(), 0.0));
    };
    check_count("levels", levels)?;
    let base = Gaussian::new(
        vec![0.0; vae.latent_dim],
        Covariance::Isotropic(1.0),
        device,
    )?;
    let mut kernel = AnySampler::Mala(Mala::new(0.1)?);
    let betas: Vec<f64> = (1..=levels).map(|i| i as f64 / levels as f64).collect();
    let config = AnnealConfig {
        betas,
        steps_per_level: 2,
        resample_threshold: Some(0.5),
        groups: 16,
    };
    let est = anneal(rng, &base, &energy, &mut kernel, particles, &config, device)?;
    Ok((est.log_z, est.std_err))
}

/// Test-set scores in nats per example.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Mean ELBO (the average of log w over the K draws, i.e. K one-sample ELBOs averaged).
    pub elbo: f64,
    /// Its standard error over examples.
    pub elbo_se: f64,
    /// Importance-weighted NLL estimate -mean log mean_k w_k (an upper bound on the NLL when log Z
    /// is exact).
    pub iwae_nll: f64,
    /// Its standard error over examples.
    pub iwae_se: f64,
    /// Importance samples per example.
    pub k: usize,
    /// The prior's log Z_U used (exact or AIS).
    pub log_z: f64,
}

/// ELBO and IWAE (K importance samples from q(z | x)) of `vae` on `data`, with log p(z) =
/// -U(z) - `log_z`. Examples are processed `chunk` at a time (K rows each).
pub fn evaluate(
    rng: &mut ZooRng,
    vae: &Vae,
    data: &Tensor<2>,
    k: usize,
    log_z: f64,
) -> Result<Evaluation> {
    check_count("k", k)?;
    let n = vae.check_data("evaluation data", data)?;
    check_finite("evaluation data", data)?;
    let vae = vae.valid();
    let device = data.device();
    let d = vae.data_dim;
    let chunk = (65_536 / k).max(1);
    let (mut elbos, mut iwaes) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut start = 0;
    while start < n {
        let m = chunk.min(n - start);
        let x = data.clone().slice([start..start + m, 0..d]);
        let (mean, log_var) = vae.posterior(x.clone());
        // Repeat every example K times: rows i*K .. (i+1)*K belong to example i.
        let rep = |t: Tensor<2>| -> Tensor<2> {
            let w = t.dims()[1];
            t.unsqueeze_dim::<3>(1)
                .expand([m, k, w])
                .reshape([m * k, w])
        };
        let (mean, log_var, xr) = (rep(mean), rep(log_var), rep(x));
        let eps = normal(rng, [m * k, vae.latent_dim], &device);
        let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
        let log_w = vae.log_likelihood(xr, z.clone())
            - vae.prior_energy(z.clone()).add_scalar(log_z)
            - Vae::log_q(z, mean, log_var);
        let lw: Vec<f64> = to_host1(&log_w).into_iter().map(f64::from).collect();
        for row in lw.chunks(k) {
            elbos.push(row.iter().sum::<f64>() / k as f64);
            iwaes.push(log_mean_exp(row));
        }
        start += m;
    }
    let (elbo, elbo_se) = mean_and_se(&elbos);
    let (iwae, iwae_se) = mean_and_se(&iwaes);
    Ok(Evaluation {
        elbo,
        elbo_se,
        iwae_nll: -iwae,
        iwae_se,
        k,
        log_z,
    })
}

/// The mean of `v` and its standard error (sample sd / sqrt(n); 0 for one value).
pub(crate) fn mean_and_se(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (mean, (var / v.len() as f64).sqrt())
}

/// A second, independent estimate of the prior's log Z_U: importance sampling with the aggregate
/// posterior q(z) = (1/N) sum_n q(z | x_n) over `data` as proposal (the density the prior is
/// trained to match): log Z = log mean exp(-U(z) - log q(z)), z ~ q, with a delta-method s.e.
/// Agreement with [`prior_log_normalizer`] is the check that neither has failed.
pub fn aggregate_posterior_log_z(
    rng: &mut ZooRng,
    vae: &Vae,
    data: &Tensor<2>,
    samples: usize,
) -> Result<(f64, f64)> {
    use rand::RngExt;
    check_count("samples", samples)?;
    let n = vae.check_data("data", data)?;
    let vae = vae.valid();
    let device = data.device();
    let l = vae.latent_dim;
    let (mean, log_var) = vae.posterior(data.clone());
    let (mh, vh) = (
        zoo_energy::tensor::to_host2(&mean),
        zoo_energy::tensor::to_host2(&log_var),
    );
    let picks: Vec<usize> = (0..samples).map(|_| rng.random_range(0..n)).collect();
    let eps = zoo_energy::rng::normal_vec(rng, samples * l);
    let z: Vec<f32> = (0..samples)
        .flat_map(|m| {
            let i = picks[m];
            (0..l)
                .map(|k| mh[i * l + k] + (0.5 * vh[i * l + k]).exp() * eps[m * l + k])
                .collect::<Vec<_>>()
        })
        .collect();
    let u = to_host1(&vae.prior_energy(zoo_energy::tensor::from_host2(
        z.clone(),
        [samples, l],
        &device,
    )));
    let log_2pi = (2.0 * std::f64::consts::PI).ln();
    let mut log_w = Vec::with_capacity(samples);
    let mut terms = vec![0f64; n];
    for m in 0..samples {
        for (i, t) in terms.iter_mut().enumerate() {
            let mut acc = 0.0;
            for k in 0..l {
                let lv = f64::from(vh[i * l + k]);
                let d = f64::from(z[m * l + k]) - f64::from(mh[i * l + k]);
                acc += d * d * (-lv).exp() + lv + log_2pi;
            }
            *t = -0.5 * acc;
        }
        let log_q = zoo_mcmc::estimate::log_sum_exp(&terms) - (n as f64).ln();
        log_w.push(-f64::from(u[m]) - log_q);
    }
    let log_z = log_mean_exp(&log_w);
    let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|v| (v - mx).exp()).collect();
    let mean_w = w.iter().sum::<f64>() / samples as f64;
    let var = w.iter().map(|v| (v - mean_w).powi(2)).sum::<f64>() / (samples.max(2) - 1) as f64;
    Ok((log_z, var.sqrt() / (mean_w * (samples as f64).sqrt())))
}
