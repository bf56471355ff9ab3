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
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, softplus};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use zoo_energy::Energy;
use zoo_energy::rng::{normal, uniform};
use zoo_energy::tensor::{check_finite, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};

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
        check_positive("generator_learning_rate", self.generator_learning_rate)?;
        check_positive(
            "discriminator_learning_rate",
            self.discriminator_learning_rate,
        )?;
        check_positive("margin", self.margin)?;
        for (name, v) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::invalid(name, format!("must be in [0, 1), got {v}")));
            }
        }
        for (name, v) in [
            ("gradient_penalty", self.gradient_penalty),
            ("pull_away", self.pull_away),
            ("entropy_weight", self.entropy_weight),
            ("energy_gradient_penalty", self.energy_gradient_penalty),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
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
}

/// VERA's posterior proposal scale, log eta (its own module and optimiser).
#[derive(Module, Debug)]
struct PosteriorScale {
    log_eta: Param<Tensor<1>>,
}

/// sg[grad_x log q(x)] for generated points `x` `[b, d]` made from latents `z0` `[b, l]`
/// (self-normalised importance sampling with K draws from N(z0, eta^2 I); plain tensors).
pub fn vera_score(
    gan: &Gan,
    x: Tensor<2>,
    z0: Tensor<2>,
    eta: f64,
    k: usize,
    rng: &mut ZooRng,
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

/// Trains `gan` (built on an autodiff device) on `data` (`[n, data_dim]`, plain device).
pub fn fit(
    gan: &mut Gan,
    data: &Tensor<2>,
    cfg: &GanTrainConfig,
    rng: &mut ZooRng,
    show_progress: bool,
) -> Result<GanReport> {
    cfg.check()?;
    let n = crate::model::check_data(gan, "training data", data)?;
    check_finite("training data", data)?;
    let device = data.device();
    let adam = || {
        AdamConfig::new()
            .with_beta_1(cfg.beta_1 as f32)
            .with_beta_2(cfg.beta_2 as f32)
            .with_grad_clipping(
                cfg.grad_clip
                    .map(|c| GradientClippingConfig::Norm(c as f32)),
            )
            .init()
    };
    let (mut g_optim, mut d_optim, mut eta_optim) = (adam(), adam(), adam());
    let loss_kind = gan.config.loss;
    let n_critic = cfg.n_critic.unwrap_or(loss_kind.default_n_critic());
    let (b, l) = (cfg.batch_size, gan.config.latent_dim);
    let mut scale = (loss_kind == GanLoss::Vera).then(|| PosteriorScale {
        log_eta: Param::from_tensor(Tensor::full([1], 0.1f32.ln(), &device.clone().autodiff())),
    });
    let mut report = GanReport::default();
    let bar = zoo_energy::progress::bar(show_progress, cfg.iterations, loss_kind.name());
    let started = Instant::now();
    let batch = |rng: &mut ZooRng| {
        let idx: Vec<i64> = (0..b).map(|_| rng.random_range(0..n) as i64).collect();
        data.clone().select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &device),
        )
    };
    let diverged = |it: usize, what: &str, value: f64| Error::TrainingDiverged {
        iteration: it,
        what: what.into(),
        value,
        last_good: it - 1,
    };
    for it in 1..=cfg.iterations {
        // Discriminator updates: fakes come from a constant copy of the generator.
        let mut d_value = 0.0;
        for _ in 0..n_critic {
            let real = batch(rng);
            let z = normal(rng, [b, l], &device);
            let eps = normal(rng, [b, gan.config.data_dim], &device);
            let fake = gan.generator.valid().sample(z, eps);
            gan.discriminator.power_iteration();
            let disc = &gan.discriminator;
            let e_fake = disc.energy_of(fake.clone().autodiff());
            // VERA penalises the input gradient at the data: energy and score in one pass.
            let (e_real, real_score) = match (loss_kind, disc.critic.as_ref()) {
                (GanLoss::Vera, Some(critic)) => {
                    let (e, s) = critic.energy_and_score(real.clone().autodiff());
                    (e, Some(s))
                }
                _ => (disc.energy_of(real.clone().autodiff()), None),
            };
            let loss = match loss_kind {
                GanLoss::NonSaturating => {
                    softplus(e_real, 1.0).mean() + softplus(e_fake.neg(), 1.0).mean()
                }
                GanLoss::Hinge => {
                    relu(e_real.add_scalar(1.0)).mean() + relu(e_fake.neg().add_scalar(1.0)).mean()
                }
                GanLoss::WganGp => {
                    let t = uniform(rng, b, &device).unsqueeze_dim::<2>(1);
                    let hat = real.clone() * t.clone() + fake * t.neg().add_scalar(1.0);
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
            };
            d_value = f64::from(loss.clone().into_scalar::<f32>());
            if !d_value.is_finite() {
                return Err(diverged(it, "discriminator loss", d_value));
            }
            let mut grads = loss.backward();
            let grads = GradientsParams::from_module(&mut grads, &gan.discriminator);
            gan.discriminator = d_optim.step(
                cfg.discriminator_learning_rate,
                gan.discriminator.clone(),
                grads,
            );
        }
        // Generator update through a discriminator that is not stepped.
        let z = normal(rng, [b, l], &device);
        let eps = normal(rng, [b, gan.config.data_dim], &device);
        let fake = gan.generator.sample(z.clone().autodiff(), eps.autodiff());
        let e_fake = gan.discriminator.energy_of(fake.clone());
        let mut loss = match loss_kind {
            GanLoss::NonSaturating => softplus(e_fake, 1.0).mean(),
            _ => e_fake.mean(),
        };
        if loss_kind == GanLoss::Ebgan && cfg.pull_away > 0.0 {
            let code = gan
                .discriminator
                .code(fake.clone())
                .expect("EBGAN has an encoder");
            loss = loss + pulling_away(code).mul_scalar(cfg.pull_away);
        }
        if let (GanLoss::Vera, Some(sc)) = (loss_kind, scale.as_mut()) {
            let eta = f64::from(sc.log_eta.val().exp().into_scalar::<f32>());
            report.posterior_scales.push(eta);
            let x = fake.clone().without_autodiff();
            let s = vera_score(gan, x.clone(), z.clone(), eta, cfg.posterior_samples, rng)?;
            let entropy_surrogate = (s.autodiff() * fake).sum_dim(1).mean();
            loss = loss + entropy_surrogate.mul_scalar(cfg.entropy_weight);
            // The proposal's ELBO in eta (one draw per point, generator held constant).
            let sigma = f64::from(
                gan.generator
                    .sigma()
                    .expect("the VERA generator is noisy")
                    .into_scalar::<f32>(),
            );
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
            *sc = eta_optim.step(cfg.generator_learning_rate, sc.clone(), grads);
        }
        let g_value = f64::from(loss.clone().into_scalar::<f32>());
        if !g_value.is_finite() {
            return Err(diverged(it, "generator loss", g_value));
        }
        let mut grads = loss.backward();
        let grads = GradientsParams::from_module(&mut grads, &gan.generator);
        gan.generator = g_optim.step(cfg.generator_learning_rate, gan.generator.clone(), grads);
        report.discriminator_losses.push(d_value);
        report.generator_losses.push(g_value);
        bar.inc(1);
        if it % 100 == 0 {
            bar.set_message(format!("D {d_value:.3} G {g_value:.3}"));
        }
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
pub fn sample(gan: &Gan, n: usize, rng: &mut ZooRng, device: &Device) -> Tensor<2> {
    let z = normal(rng, [n, gan.config.latent_dim], device);
    let eps = normal(rng, [n, gan.config.data_dim], device);
    gan.generator.valid().sample(z, eps)
}
