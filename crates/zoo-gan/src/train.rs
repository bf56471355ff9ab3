//! The training games (alternating Adam updates, `n_critic` discriminator steps per generator
//! step) and VERA's entropy-gradient estimator.
//!
//! **VERA** (Grathwohl, Kelly, Hashemi, Norouzi, Swersky & Duvenaud 2021). The generator is noisy,
//! q(x) = ∫ N(x; mu(z), sigma^2 I) N(z; 0, I) dz, and minimises E_q[E(x)] - lambda H(q). By the
//! reparameterisation x = mu(z0) + sigma eps,
//! grad_theta H(q) = -E[ grad_x log q(x) . d x / d theta ] (the score-function term vanishes), and
//! grad_x log q(x) = E_{z ~ q(z | x)}[ -(x - mu(z)) / sigma^2 ]. The posterior expectation is
//! estimated by self-normalised importance sampling with the proposal xi(z | x) = N(z; z0, eta^2 I)
//! centred on the latent that produced x; eta is learned by maximising the proposal's ELBO
//! E_xi[log q(x, z) - log xi(z | x)]. The generator's loss is then
//! mean E(x) + lambda mean( sg[grad_x log q(x)] . x ), whose gradient is the one above.
//! The energy is trained by contrastive maximum likelihood with generator samples as negatives and
//! a penalty gamma |grad_x E(x)|^2 on the data (VERA's regulariser; the input gradient is the MLP
//! energy's written-out score, differentiated once by autodiff).

use crate::model::{Gan, GanLoss};
use burn::module::Param;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{relu, softplus};
use serde::{Deserialize, Serialize};
use zoo_energy::Energy;
use zoo_energy::rng::{normal, uniform};
use zoo_energy::tensor::{check_finite, row_sq_norm};
use zoo_energy::{
    Error, Result, ZooRng, check_adam_betas, check_count, check_non_negative, check_positive,
};
use zoo_train::{
    Checkpoint, LoopConfig, OptimizerConfig, OptimizerKind, Resume, Trainable, check_value,
};

/// Settings of [`fit`] (a TOML table; unknown keys are errors). Adam's defaults are DCGAN's
/// (lr 2e-4, betas 0.5 and 0.999; Radford et al. 2016); the games' own constants are those of the
/// papers' toy experiments where they give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanTrainConfig {
    /// Generator updates.
    pub iterations: usize,
    /// Discriminator updates per generator update; `None`: the game's usual number
    /// ([`GanLoss::default_n_critic`]).
    pub n_critic: Option<usize>,
    /// Data points and generator samples per update.
    pub batch_size: usize,
    /// Adam's learning rate, generator.
    pub generator_learning_rate: f64,
    /// Adam's learning rate, discriminator.
    pub discriminator_learning_rate: f64,
    /// Adam's beta_1 (0.5 is DCGAN's; 0 is the SN-GAN and WGAN-GP choice).
    pub beta_1: f64,
    /// Adam's beta_2.
    pub beta_2: f64,
    /// Clip every gradient to this norm.
    pub grad_clip: Option<f64>,
    /// WGAN-GP's lambda (0.1 in Gulrajani et al.'s toy experiments, 10 for images).
    pub gradient_penalty: f64,
    /// EBGAN's margin m.
    pub margin: f64,
    /// EBGAN's pulling-away weight (EBGAN-PT; 0 turns it off).
    pub pull_away: f64,
    /// VERA's entropy weight lambda (1: the maximum-likelihood game).
    pub entropy_weight: f64,
    /// VERA's gamma on |grad_x E(x)|^2 at the data.
    pub energy_gradient_penalty: f64,
    /// VERA's importance samples per generated point for the score of q.
    pub posterior_samples: usize,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for GanTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 2000,
            n_critic: None,
            batch_size: 256,
            generator_learning_rate: 2e-4,
            discriminator_learning_rate: 2e-4,
            beta_1: 0.5,
            beta_2: 0.999,
            grad_clip: None,
            gradient_penalty: 0.1,
            margin: 1.0,
            pull_away: 0.1,
            entropy_weight: 1.0,
            energy_gradient_penalty: 0.1,
            posterior_samples: 20,
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl GanTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("iterations", self.iterations)?;
        if let Some(k) = self.n_critic {
            check_count("n_critic", k)?;
        }
        check_count("batch_size", self.batch_size)?;
        check_count("posterior_samples", self.posterior_samples)?;
        check_count("snapshot_every", self.snapshot_every)?;
        check_positive("generator_learning_rate", self.generator_learning_rate)?;
        check_positive(
            "discriminator_learning_rate",
            self.discriminator_learning_rate,
        )?;
        check_positive("margin", self.margin)?;
        check_adam_betas(self.beta_1, self.beta_2)?;
        check_non_negative("gradient_penalty", self.gradient_penalty)?;
        check_non_negative("pull_away", self.pull_away)?;
        check_non_negative("entropy_weight", self.entropy_weight)?;
        check_non_negative("energy_gradient_penalty", self.energy_gradient_penalty)?;
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        Ok(())
    }
}

/// Losses per generator update and the wall time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GanReport {
    /// The discriminator's loss (last of its updates per generator update).
    pub discriminator_losses: Vec<f64>,
    /// The generator's loss.
    pub generator_losses: Vec<f64>,
    /// VERA: the posterior proposal's scale eta per update (empty otherwise).
    pub posterior_scales: Vec<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The iteration training resumed from (0: it started afresh).
    pub resumed_from: usize,
}

/// VERA's posterior proposal scale, log eta (its own module and optimiser).
#[derive(Module, Debug)]
struct PosteriorScale {
    log_eta: Param<Tensor<1>>,
}

/// sg[grad_x log q(x)] for generated points `x` `[b, d]` made from latents `z0` `[b, l]`
/// (self-normalised importance sampling with K draws from N(z0, eta^2 I); plain tensors).
pub fn vera_score(
    rng: &mut ZooRng,
    gan: &Gan,
    x: Tensor<2>,
    z0: Tensor<2>,
    eta: f64,
    k: usize,
) -> Result<Tensor<2>> {
    let g = gan.generator.valid();
    let sigma = match g.sigma() {
        Some(s) => f64::from(s.into_scalar::<f32>()),
        None => {
            return Err(Error::invalid(
                "loss",
                "VERA's score needs the noisy generator of the vera game",
            ));
        }
    };
    let [b, d] = x.dims();
    let l = z0.dims()[1];
    let device = x.device();
    let rep = |t: Tensor<2>| -> Tensor<2> {
        let w = t.dims()[1];
        t.unsqueeze_dim::<3>(1)
            .expand([b, k, w])
            .reshape([b * k, w])
    };
    let eps = normal(rng, [b * k, l], &device);
    let z = rep(z0) + eps.clone().mul_scalar(eta);
    let diff = rep(x) - g.mean(z.clone()); // [b k, d]
    // log w = log N(x; mu(z), sigma^2) + log N(z; 0, I) - log N(z; z0, eta^2), constants dropped.
    let log_w = (row_sq_norm(diff.clone()).mul_scalar(-0.5 / (sigma * sigma))
        - row_sq_norm(z).mul_scalar(0.5)
        + row_sq_norm(eps).mul_scalar(0.5))
    .reshape([b, k]);
    let w = burn::tensor::activation::softmax(log_w, 1).reshape([b, k, 1]);
    let score = (diff.reshape([b, k, d]) * w)
        .sum_dim(1)
        .reshape([b, d])
        .mul_scalar(-1.0 / (sigma * sigma));
    Ok(score)
}

/// One generator update's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GanLog {
    discriminator: f64,
    generator: f64,
    posterior_scale: Option<f64>,
}

/// Trains `gan` (built on an autodiff device) on `data` (`[n, data_dim]`, plain device) through
/// the one training loop ([`zoo_train::train`]): a non-finite loss restores the last snapshot
/// (both networks, spectral-norm vectors, all optimisers, VERA's eta, the generator of
/// randomness) and `cfg.resume` makes the run resumable.
pub fn fit(
    rng: &mut ZooRng,
    gan: &mut Gan,
    data: &Tensor<2>,
    cfg: &GanTrainConfig,
    show_progress: bool,
) -> Result<GanReport> {
    cfg.check()?;
    crate::model::check_data(gan, "training data", data)?;
    check_finite("training data", data)?;
    let adam = OptimizerConfig {
        kind: OptimizerKind::Adam,
        beta1: cfg.beta_1,
        beta2: cfg.beta_2,
        grad_clip: cfg.grad_clip,
    };
    let loss = gan.config.loss;
    let device = data.device().autodiff();
    let scale = (loss == GanLoss::Vera).then(|| PosteriorScale {
        log_eta: Param::from_tensor(Tensor::full([1], 0.1f32.ln(), &device)),
    });
    let mut gan_ = gan.clone();
    gan_.generator = zoo_train::stable_ids(gan_.generator, "generator");
    gan_.discriminator = zoo_train::stable_ids(gan_.discriminator, "discriminator");
    let scale = scale.map(|s| zoo_train::stable_ids(s, "posterior_scale"));
    let mut run = GanRun {
        gan: gan_,
        optimizers: [adam.build(), adam.build(), adam.build()],
        adam,
        scale,
        data,
        cfg,
    };
    let loop_cfg = LoopConfig {
        iterations: cfg.iterations,
        snapshot_every: cfg.snapshot_every,
        resume: cfg.resume.clone(),
        progress: show_progress,
        label: loss.name().into(),
    };
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *gan = run.gan;
    let done = outcome?;
    let h = &done.history;
    Ok(GanReport {
        discriminator_losses: h.iter().map(|l| l.discriminator).collect(),
        generator_losses: h.iter().map(|l| l.generator).collect(),
        posterior_scales: h.iter().filter_map(|l| l.posterior_scale).collect(),
        seconds: done.seconds,
        resumed_from: done.resumed_from,
    })
}

/// One GAN training run: the two players, their optimisers (generator, discriminator, VERA's
/// eta) and VERA's posterior scale.
struct GanRun<'a> {
    gan: Gan,
    optimizers: [ModuleOptimizer; 3],
    adam: OptimizerConfig,
    scale: Option<PosteriorScale>,
    data: &'a Tensor<2>,
    cfg: &'a GanTrainConfig,
}

impl GanRun<'_> {
    /// One discriminator update on a real and a fake minibatch; fakes come from a constant copy
    /// of the generator. Returns the loss.
    fn discriminator_step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let (cfg, gan) = (self.cfg, &mut self.gan);
        let (b, l, device) = (cfg.batch_size, gan.config.latent_dim, self.data.device());
        let real = zoo_train::minibatch(rng, self.data, b);
        let z = normal(rng, [b, l], &device);
        let eps = normal(rng, [b, gan.config.data_dim], &device);
        let fake = gan.generator.valid().sample(z, eps);
        gan.discriminator.power_iteration();
        let loss = discriminator_loss(rng, gan, cfg, real, fake);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "discriminator loss", value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let grads = GradientsParams::from_module(&mut grads, &gan.discriminator);
        let lr = cfg.discriminator_learning_rate;
        gan.discriminator = self.optimizers[1].step(lr, gan.discriminator.clone(), grads);
        Ok(value)
    }

    /// VERA's entropy surrogate for the generator's loss, and one ELBO step on eta.
    fn vera_terms(
        &mut self,
        rng: &mut ZooRng,
        z: &Tensor<2>,
        fake: &Tensor<2>,
    ) -> Result<Option<(Tensor<1>, f64)>> {
        let (cfg, gan) = (self.cfg, &self.gan);
        let Some(sc) = self.scale.as_mut() else {
            return Ok(None);
        };
        let (b, l, device) = (cfg.batch_size, gan.config.latent_dim, self.data.device());
        let eta = f64::from(sc.log_eta.val().exp().into_scalar::<f32>());
        let x = fake.clone().without_autodiff();
        let s = vera_score(rng, gan, x.clone(), z.clone(), eta, cfg.posterior_samples)?;
        let entropy_surrogate = (s.autodiff() * fake.clone()).sum_dim(1).mean();
        // The proposal's ELBO in eta (one draw per point, generator held constant).
        let sigma = gan.generator.sigma().expect("the VERA generator is noisy");
        let sigma = f64::from(sigma.into_scalar::<f32>());
        let e = normal(rng, [b, l], &device).autodiff();
        let eta_t = sc.log_eta.val().exp().unsqueeze_dim::<2>(0);
        let zk = z.clone().autodiff() + e.clone() * eta_t;
        let mu = gan.generator.mean(zk.clone());
        let log_joint = row_sq_norm(x.autodiff() - mu).mul_scalar(-0.5 / (sigma * sigma))
            - row_sq_norm(zk).mul_scalar(0.5);
        // log xi(z | x) = -|e|^2 / 2 - l log eta + const.
        let log_xi = row_sq_norm(e).mul_scalar(-0.5) - sc.log_eta.val().mul_scalar(l as f64);
        let neg_elbo = (log_xi - log_joint).mean();
        let mut grads = neg_elbo.backward();
        let grads = GradientsParams::from_module(&mut grads, &*sc);
        *sc = self.optimizers[2].step(cfg.generator_learning_rate, sc.clone(), grads);
        Ok(Some((
            entropy_surrogate.mul_scalar(cfg.entropy_weight),
            eta,
        )))
    }
}

impl Trainable for GanRun<'_> {
    type Log = GanLog;

    /// `n_critic` discriminator updates, then one generator update through a discriminator that
    /// is not stepped.
    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<GanLog> {
        let loss_kind = self.gan.config.loss;
        let n_critic = self.cfg.n_critic.unwrap_or(loss_kind.default_n_critic());
        let mut d_value = 0.0;
        for _ in 0..n_critic {
            d_value = self.discriminator_step(rng, iteration)?;
        }
        let (cfg, gan) = (self.cfg, &self.gan);
        let (b, l, device) = (cfg.batch_size, gan.config.latent_dim, self.data.device());
        let z = normal(rng, [b, l], &device);
        let eps = normal(rng, [b, gan.config.data_dim], &device);
        let fake = gan.generator.sample(z.clone().autodiff(), eps.autodiff());
        let e_fake = gan.discriminator.energy_of(fake.clone());
        let mut loss = match loss_kind {
            GanLoss::NonSaturating => softplus(e_fake, 1.0).mean(),
            _ => e_fake.mean(),
        };
        if loss_kind == GanLoss::Ebgan && cfg.pull_away > 0.0 {
            let code = gan.discriminator.code(fake.clone());
            let code = code.expect("EBGAN has an encoder");
            loss = loss + pulling_away(code).mul_scalar(cfg.pull_away);
        }
        let vera = self.vera_terms(rng, &z, &fake)?;
        let posterior_scale = vera.as_ref().map(|v| v.1);
        if let Some((entropy, _)) = vera {
            loss = loss + entropy;
        }
        let g_value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "generator loss", g_value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let gan = &mut self.gan;
        let grads = GradientsParams::from_module(&mut grads, &gan.generator);
        let lr = cfg.generator_learning_rate;
        gan.generator = self.optimizers[0].step(lr, gan.generator.clone(), grads);
        Ok(GanLog {
            discriminator: d_value,
            generator: g_value,
            posterior_scale,
        })
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("generator", &self.gan.generator)?;
        checkpoint.put_module("discriminator", &self.gan.discriminator)?;
        checkpoint.put_json("spectral_u", &self.gan.discriminator.spectral_u)?;
        for (name, o) in OPTIMIZERS.iter().zip(&self.optimizers) {
            checkpoint.put_optimizer(name, o)?;
        }
        if let Some(sc) = &self.scale {
            checkpoint.put_module("posterior_scale", sc)?;
        }
        Ok(())
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let gan = &mut self.gan;
        gan.generator = checkpoint.module("generator", gan.generator.clone())?;
        gan.discriminator = checkpoint.module("discriminator", gan.discriminator.clone())?;
        self.gan.discriminator.spectral_u = checkpoint.json("spectral_u")?;
        for (name, o) in OPTIMIZERS.iter().zip(&mut self.optimizers) {
            *o = checkpoint.optimizer(name, self.adam.build())?;
        }
        if let Some(sc) = &mut self.scale {
            *sc = checkpoint.module("posterior_scale", sc.clone())?;
        }
        Ok(())
    }

    fn summary(log: &GanLog) -> String {
        format!("D {:.3} G {:.3}", log.discriminator, log.generator)
    }
}

const OPTIMIZERS: [&str; 3] = [
    "generator_optimizer",
    "discriminator_optimizer",
    "eta_optimizer",
];

/// The discriminator's loss of each game on a real and a fake minibatch (plain tensors).
fn discriminator_loss(
    rng: &mut ZooRng,
    gan: &Gan,
    cfg: &GanTrainConfig,
    real: Tensor<2>,
    fake: Tensor<2>,
) -> Tensor<1> {
    let (disc, kind, b) = (&gan.discriminator, gan.config.loss, cfg.batch_size);
    let e_fake = disc.energy_of(fake.clone().autodiff());
    // VERA penalises the input gradient at the data: energy and score in one pass.
    let (e_real, real_score) = match (kind, disc.critic.as_ref()) {
        (GanLoss::Vera, Some(critic)) => {
            let (e, s) = critic.energy_and_score(real.clone().autodiff());
            (e, Some(s))
        }
        _ => (disc.energy_of(real.clone().autodiff()), None),
    };
    match kind {
        GanLoss::NonSaturating => softplus(e_real, 1.0).mean() + softplus(e_fake.neg(), 1.0).mean(),
        GanLoss::Hinge => {
            relu(e_real.add_scalar(1.0)).mean() + relu(e_fake.neg().add_scalar(1.0)).mean()
        }
        GanLoss::WganGp => {
            let t = uniform(rng, b, &real.device()).unsqueeze_dim::<2>(1);
            let hat = real * t.clone() + fake * t.neg().add_scalar(1.0);
            let critic = disc.critic.as_ref().expect("WGAN-GP has an MLP critic");
            let s = critic.score(hat.autodiff());
            let penalty = row_sq_norm(s)
                .add_scalar(1e-12)
                .sqrt()
                .sub_scalar(1.0)
                .square()
                .mean();
            e_real.mean() - e_fake.mean() + penalty.mul_scalar(cfg.gradient_penalty)
        }
        GanLoss::Ebgan => e_real.mean() + relu(e_fake.neg().add_scalar(cfg.margin)).mean(),
        GanLoss::Vera => {
            let s = real_score.expect("VERA has an MLP critic");
            e_real.mean() - e_fake.mean()
                + row_sq_norm(s)
                    .mean()
                    .mul_scalar(cfg.energy_gradient_penalty)
        }
    }
}

/// EBGAN's pulling-away term (Zhao et al. 2017, eq. 6): the mean squared cosine similarity
/// between the codes of distinct generated points.
pub fn pulling_away(code: Tensor<2>) -> Tensor<1> {
    let n = code.dims()[0];
    if n < 2 {
        return Tensor::zeros([1], &code.device());
    }
    let norm = row_sq_norm(code.clone())
        .add_scalar(1e-12)
        .sqrt()
        .unsqueeze_dim::<2>(1);
    let s = code / norm;
    let cos2 = s.clone().matmul(s.transpose()).square();
    // The diagonal is 1 per row.
    (cos2.sum().sub_scalar(n as f64))
        .div_scalar((n * (n - 1)) as f64)
        .reshape([1])
}

/// `n` generator samples (plain tensors), x = mu(z) + sigma eps.
pub fn sample(rng: &mut ZooRng, gan: &Gan, n: usize, device: &Device) -> Tensor<2> {
    let z = normal(rng, [n, gan.config.latent_dim], device);
    let eps = normal(rng, [n, gan.config.data_dim], device);
    gan.generator.valid().sample(z, eps)
}
