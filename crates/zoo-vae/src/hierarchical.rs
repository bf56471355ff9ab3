//! A hierarchical VAE (a multi-layer generator) and its whitened latent space: the generator of
//! Cui & Han, "Learning Latent Space Hierarchical EBM Diffusion Models" (ICML 2024, arXiv
//! 2405.13910), built as a two-or-more-layer ladder of Gaussians (Sønderby et al. 2016, without
//! the shared top-down inference).
//!
//! Generative model, layers 1 (bottom) .. L (top): z_L ~ N(0, I),
//! z_l | z_{l+1} ~ N(mu_l(z_{l+1}), diag sigma_l(z_{l+1})^2), x | z_1 ~ N(Dec(z_1), diag s^2).
//! Inference, bottom-up: q(z_1 | x), q(z_{l+1} | z_l), each a diagonal Gaussian.
//!
//! The whitened latent u = (u_1, ..., u_L) stacks the per-layer standard-normal noises:
//! z = T(u) with z_L = u_L and z_l = mu_l(z_{l+1}) + sigma_l(z_{l+1}) u_l, so that the
//! generator's prior is N(u; 0, I) and an EBM prior can tilt it in u. [`LatentMap`] is that map
//! with its written-out vector-Jacobian product (samplers never call autodiff).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softplus};
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::rng::normal;
use zoo_energy::tensor::check_batch;
use zoo_energy::{Error, Result, ZooRng, check_count};
use zoo_neural::Activation;
use zoo_neural::nn::{Mlp, MlpTape, check_hidden, layer_widths};

/// The smallest standard deviation of a top-down conditional: sigma = softplus(o) + this.
const SIGMA_MIN: f64 = 1e-3;
const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// The architecture (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HierVaeConfig {
    /// Data dimension (64 for 8x8 images).
    pub data_dim: usize,
    /// Width of every latent layer, bottom (next to the data) to top.
    pub latent: Vec<usize>,
    /// Hidden widths of the encoder (x -> z_1) and the decoder (z_1 -> x).
    pub hidden: Vec<usize>,
    /// Hidden widths of the networks between latent layers (both directions).
    pub layer_hidden: Vec<usize>,
    /// Activation of every network.
    pub activation: Activation,
    /// The EBM prior over the whitened latent (`[model.prior]`; unused by the Gaussian prior).
    pub prior: crate::LatentDiffusionConfig,
}

impl Default for HierVaeConfig {
    fn default() -> Self {
        Self {
            data_dim: 64,
            latent: vec![8, 4],
            hidden: vec![256, 256],
            layer_hidden: vec![64],
            activation: Activation::Silu,
            prior: crate::LatentDiffusionConfig::default(),
        }
    }
}

impl HierVaeConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("data_dim", self.data_dim)?;
        if self.latent.is_empty() {
            return Err(Error::invalid("latent", "needs at least one latent layer"));
        }
        if let Some(i) = self.latent.iter().position(|&w| w == 0) {
            return Err(Error::invalid(
                "latent",
                format!("latent layer {} has width 0; every layer needs >= 1", i + 1),
            ));
        }
        check_hidden(&[
            ("hidden", &self.hidden),
            ("layer_hidden", &self.layer_hidden),
        ])?;
        self.prior.check()
    }

    /// Builds the VAE on `device` (use `device.clone().autodiff()` to train it).
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<HierVae> {
        self.check()?;
        let act = self.activation;
        let l1 = self.latent[0];
        let mut mlp = |input: usize, hidden: &[usize], output: usize| {
            Mlp::new(
                rng,
                &layer_widths(input, hidden, output),
                act,
                false,
                device,
            )
        };
        let encoder = mlp(self.data_dim, &self.hidden, 2 * l1)?;
        let decoder = mlp(l1, &self.hidden, self.data_dim)?;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for w in self.latent.windows(2) {
            up.push(mlp(w[0], &self.layer_hidden, 2 * w[1])?);
            down.push(mlp(w[1], &self.layer_hidden, 2 * w[0])?);
        }
        Ok(HierVae {
            encoder,
            up,
            down,
            decoder,
            log_std: Param::from_tensor(Tensor::zeros([self.data_dim], device)),
            latent: self.latent.clone(),
            data_dim: self.data_dim,
        })
    }
}

/// A hierarchical VAE with Gaussian layers and a Gaussian decoder (see the module docs).
#[derive(Module, Debug)]
pub struct HierVae {
    /// x -> (mean, log variance) of q(z_1 | x).
    pub encoder: Mlp,
    /// z_l -> (mean, log variance) of q(z_{l+1} | z_l), l = 1 .. L-1.
    pub up: Vec<Mlp>,
    /// z_{l+1} -> (mean, pre-softplus sigma) of p(z_l | z_{l+1}), l = 1 .. L-1.
    pub down: Vec<Mlp>,
    /// z_1 -> the decoder's mean.
    pub decoder: Mlp,
    /// log s per data dimension of the Gaussian decoder.
    pub log_std: Param<Tensor<1>>,
    /// Latent widths, bottom to top.
    #[module(skip)]
    pub latent: Vec<usize>,
    /// Data dimension.
    #[module(skip)]
    pub data_dim: usize,
}

/// Splits `[n, 2w]` into its two halves.
fn halves(t: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [n, w2] = t.dims();
    let w = w2 / 2;
    (t.clone().slice([0..n, 0..w]), t.slice([0..n, w..w2]))
}

/// A reparameterised draw from N(mean, diag exp(log_var)), the log variance clamped to [-12, 8].
fn draw(rng: &mut ZooRng, mean: Tensor<2>, log_var: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let log_var = log_var.clamp(-12.0, 8.0);
    // A plain tensor: combined with autodiff ones it is a constant (burn 0.22).
    let eps = normal(rng, mean.dims(), &mean.device());
    let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
    let lq = crate::Vae::log_q(z.clone(), mean, log_var);
    (z, lq)
}

impl HierVae {
    /// Checks that `x` is `[n >= 1, data_dim]`.
    pub fn check_data(&self, what: &str, x: &Tensor<2>) -> Result<usize> {
        check_batch(what, x, self.data_dim)
    }

    /// Total latent width D = sum of the layer widths (the width of u).
    pub fn latent_dim(&self) -> usize {
        self.latent.iter().sum()
    }

    /// (mean, sigma, pre-softplus output) of p(z_l | z_{l+1}) for the bottom layer `l` (0-based).
    fn conditional(
        &self,
        l: usize,
        above: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>, MlpTape, Tensor<2>) {
        let (out, tape) = self.down[l].forward_tape(above);
        let (mean, o) = halves(out);
        let sigma = softplus(o.clone(), 1.0).add_scalar(SIGMA_MIN);
        (mean, sigma, tape, o)
    }

    /// One draw of every layer from q(z | x), bottom to top, and log q of the draw per row.
    pub fn posterior_sample(&self, rng: &mut ZooRng, x: Tensor<2>) -> (Vec<Tensor<2>>, Tensor<1>) {
        let (mean, log_var) = halves(self.encoder.forward(x));
        let (mut z, mut log_q) = draw(rng, mean, log_var);
        let mut zs = Vec::with_capacity(self.latent.len());
        for up in &self.up {
            let (mean, log_var) = halves(up.forward(z.clone()));
            zs.push(z);
            let (next, lq) = draw(rng, mean, log_var);
            log_q = log_q + lq;
            z = next;
        }
        zs.push(z);
        (zs, log_q)
    }

    /// log p(x | z_1) + log p(z_1, ..., z_L) per row.
    pub fn log_joint(&self, x: Tensor<2>, zs: &[Tensor<2>]) -> Tensor<1> {
        let n = x.dims()[0];
        let top = zs.last().expect("at least one layer").clone();
        let mut lp = crate::Vae::log_q(top.clone(), top.zeros_like(), top.zeros_like());
        for l in 0..self.down.len() {
            let (mean, sigma, _, _) = self.conditional(l, zs[l + 1].clone());
            lp = lp + crate::Vae::log_q(zs[l].clone(), mean, sigma.log().mul_scalar(2.0));
        }
        let log_std = self.log_std.val().clamp(-7.0, 5.0).unsqueeze_dim::<2>(0);
        let out = self.decoder.forward(zs[0].clone());
        let rec = (((x - out) * log_std.clone().neg().exp())
            .square()
            .mul_scalar(-0.5)
            - log_std)
            .sub_scalar(0.5 * LOG_2PI)
            .sum_dim(1)
            .reshape([n]);
        lp + rec
    }

    /// A one-sample ELBO per row: log p(x, z) - log q(z | x), z ~ q(z | x).
    pub fn elbo(&self, rng: &mut ZooRng, x: Tensor<2>) -> Tensor<1> {
        let (zs, log_q) = self.posterior_sample(rng, x.clone());
        self.log_joint(x, &zs) - log_q
    }

    /// The decoder's mean at the bottom layer `z1`.
    pub fn decode_mean(&self, z1: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z1)
    }

    /// z = T(u) from the per-layer blocks `us` (bottom to top): the layers, bottom to top, and
    /// every down-network's tape (bottom to top) for [`LatentMap::pull_back`].
    fn top_down(&self, us: &[Tensor<2>]) -> (Vec<Tensor<2>>, Vec<DownTape>) {
        let top = us.len() - 1;
        let (mut zs, mut tapes) = (vec![us[top].clone()], Vec::with_capacity(top));
        for l in (0..top).rev() {
            let above = zs.last().expect("the top layer").clone();
            let (mean, sigma, tape, o) = self.conditional(l, above);
            zs.push(mean + sigma.clone() * us[l].clone());
            tapes.push((tape, sigma, o));
        }
        zs.reverse();
        tapes.reverse();
        (zs, tapes)
    }

    /// u = T^{-1}(z): the per-layer standardised noises, stacked bottom to top `[n, D]`.
    pub fn whiten(&self, zs: &[Tensor<2>]) -> Tensor<2> {
        let mut us = Vec::with_capacity(zs.len());
        for l in 0..self.down.len() {
            let (mean, sigma, _, _) = self.conditional(l, zs[l + 1].clone());
            us.push((zs[l].clone() - mean) / sigma);
        }
        us.push(zs.last().expect("at least one layer").clone());
        Tensor::cat(us, 1)
    }

    /// Splits a stacked `[n, D]` into the layers' blocks, bottom to top.
    pub fn split(&self, u: &Tensor<2>) -> Vec<Tensor<2>> {
        split_layers(&self.latent, u)
    }
}

/// Splits `[n, sum widths]` into blocks of the given widths.
pub fn split_layers(widths: &[usize], u: &Tensor<2>) -> Vec<Tensor<2>> {
    let n = u.dims()[0];
    let mut start = 0;
    widths
        .iter()
        .map(|&w| {
            let block = u.clone().slice([0..n, start..start + w]);
            start += w;
            block
        })
        .collect()
}

/// The map z = T(u) from the whitened latent to the layers of a generator, with the energy of
/// per-layer EBMs pulled back through it: sum_i E_i(T(u)_i) and its score in u,
/// J_T(u)^T s_z (the chain rule written out; samplers call it at every step).
pub trait LatentMap {
    /// Width of every layer, bottom to top (their sum is the width of u).
    fn widths(&self) -> &[usize];

    /// The layers z_1 .. z_L at `u` `[n, D]`.
    fn layers(&self, u: Tensor<2>) -> Vec<Tensor<2>>;

    /// sum_i E_i(T(u)_i) `[n]` and its score -grad_u `[n, D]`; `energies[i]` acts on layer i.
    fn pull_back(&self, u: Tensor<2>, energies: &[&dyn Energy]) -> (Tensor<1>, Tensor<2>);
}

/// T = identity: the layers are the blocks of u (a generator whose layers are independent
/// standard normals, or a latent given directly).
#[derive(Debug, Clone)]
pub struct IdentityMap {
    /// The blocks' widths.
    pub widths: Vec<usize>,
}

impl LatentMap for IdentityMap {
    fn widths(&self) -> &[usize] {
        &self.widths
    }
    fn layers(&self, u: Tensor<2>) -> Vec<Tensor<2>> {
        split_layers(&self.widths, &u)
    }
    fn pull_back(&self, u: Tensor<2>, energies: &[&dyn Energy]) -> (Tensor<1>, Tensor<2>) {
        let (e, scores) = layer_energies(split_layers(&self.widths, &u), energies);
        (e, Tensor::cat(scores, 1))
    }
}

/// sum_i E_i(z_i) `[n]` and every layer's score s_i(z_i), for per-layer energies.
fn layer_energies(zs: Vec<Tensor<2>>, energies: &[&dyn Energy]) -> (Tensor<1>, Vec<Tensor<2>>) {
    let (es, scores): (Vec<_>, Vec<_>) = zs
        .into_iter()
        .zip(energies)
        .map(|(z, energy)| energy.energy_and_score(z))
        .unzip();
    let total = es
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("at least one layer");
    (total, scores)
}

/// One down-network's tape and its (sigma, pre-softplus output), for the reverse pass.
type DownTape = (MlpTape, Tensor<2>, Tensor<2>);

impl LatentMap for HierVae {
    fn widths(&self) -> &[usize] {
        &self.latent
    }

    fn layers(&self, u: Tensor<2>) -> Vec<Tensor<2>> {
        self.top_down(&self.split(&u)).0
    }

    /// Top-down forward keeping every conditional's tape, then bottom-up reverse mode:
    /// s_{u_l} = sigma_l * s̄_l, s̄_{l+1} = s_{z_{l+1}} + J_{down_l}^T [s̄_l, s̄_l * u_l * sigmoid(o_l)].
    fn pull_back(&self, u: Tensor<2>, energies: &[&dyn Energy]) -> (Tensor<1>, Tensor<2>) {
        let us = self.split(&u);
        let top = us.len() - 1;
        let (zs, tapes) = self.top_down(&us);
        let (e, s_z) = layer_energies(zs, energies);
        let mut s_u = Vec::with_capacity(top + 1);
        let mut carried = s_z[0].clone();
        for (l, (tape, sigma, o)) in tapes.into_iter().enumerate() {
            s_u.push(sigma * carried.clone());
            let upstream = Tensor::cat(
                vec![carried.clone(), carried * us[l].clone() * sigmoid(o)],
                1,
            );
            carried = s_z[l + 1].clone() + self.down[l].vjp(tape, upstream);
        }
        s_u.push(carried);
        (e, Tensor::cat(s_u, 1))
    }
}

/// Settings of [`fit_hier_vae`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HierTrainConfig {
    /// Adam steps on the negative ELBO.
    pub iterations: usize,
    /// Data points per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Clip every parameter's gradient to this norm.
    pub grad_clip: Option<f64>,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The EBM prior's training, after the generator's (generator frozen).
    pub prior: crate::LatentPriorTrainConfig,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: zoo_train::Resume,
}

impl Default for HierTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 1500,
            batch_size: 128,
            learning_rate: 1e-3,
            grad_clip: Some(100.0),
            snapshot_every: 50,
            prior: crate::LatentPriorTrainConfig::default(),
            resume: zoo_train::Resume::default(),
        }
    }
}

impl HierTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        zoo_energy::check_positive("learning_rate", self.learning_rate)?;
        if let Some(c) = self.grad_clip {
            zoo_energy::check_positive("grad_clip", c)?;
        }
        self.prior.check()
    }
}

/// Trains the generator `vae` (on an autodiff device) on `data` by the one-sample ELBO through
/// the one training loop; returns the negative ELBO (nats per example) of every step.
pub fn fit_hier_vae(
    rng: &mut ZooRng,
    vae: &mut HierVae,
    data: &Tensor<2>,
    cfg: &HierTrainConfig,
) -> Result<crate::VaeReport> {
    cfg.check()?;
    vae.check_data("training data", data)?;
    zoo_energy::tensor::check_finite("training data", data)?;
    let adam = zoo_train::OptimizerConfig {
        grad_clip: cfg.grad_clip,
        ..zoo_train::OptimizerConfig::adam()
    };
    let mut run = HierRun {
        vae: zoo_train::stable_ids(vae.clone(), "hier_vae"),
        optim: adam.build(),
        adam,
        data,
        cfg,
    };
    let loop_cfg = zoo_train::LoopConfig::quiet(
        "hierarchical vae",
        cfg.iterations,
        cfg.snapshot_every,
        &cfg.resume,
    );
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *vae = run.vae;
    outcome.map(crate::VaeReport::from)
}

/// One generator training run.
struct HierRun<'a> {
    vae: HierVae,
    optim: burn::optim::ModuleOptimizer,
    adam: zoo_train::OptimizerConfig,
    data: &'a Tensor<2>,
    cfg: &'a HierTrainConfig,
}

impl zoo_train::Trainable for HierRun<'_> {
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let x = zoo_train::minibatch(rng, self.data, self.cfg.batch_size).autodiff();
        let loss = self.vae.elbo(rng, x).neg().mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        zoo_train::check_value(iteration, "negative ELBO", value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let g = burn::optim::GradientsParams::from_module(&mut grads, &self.vae);
        self.vae = self.optim.step(self.cfg.learning_rate, self.vae.clone(), g);
        Ok(value)
    }

    fn save(&self, checkpoint: &mut zoo_train::Checkpoint) -> Result<()> {
        checkpoint.put_module("vae", &self.vae)?;
        checkpoint.put_optimizer("optimizer", &self.optim)
    }

    fn load(&mut self, checkpoint: &zoo_train::Checkpoint) -> Result<()> {
        self.vae = checkpoint.module("vae", self.vae.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        Ok(())
    }
}

/// The aggregate posterior of a frozen generator over `data`: a minibatch, one draw of
/// q(z | x), whitened to u (the prior's positives).
#[derive(Debug)]
pub struct HierPosterior<'a> {
    /// The generator (plain device).
    pub vae: &'a HierVae,
    /// The training data `[n, data_dim]`.
    pub data: &'a Tensor<2>,
}

impl crate::LatentSource for HierPosterior<'_> {
    fn draw(&self, rng: &mut ZooRng, n: usize) -> Result<Tensor<2>> {
        let x = zoo_train::minibatch(rng, self.data, n);
        let (zs, _) = self.vae.posterior_sample(rng, x);
        Ok(self.vae.whiten(&zs))
    }
}

impl HierVae {
    /// `n` draws x = Dec(T(u)_1) (decoder means) from u drawn by `prior` (None: N(0, I)).
    pub fn generate(
        &self,
        rng: &mut ZooRng,
        prior: Option<(&crate::LatentEbmPrior, crate::PriorChain)>,
        n: usize,
        device: &Device,
    ) -> Result<Tensor<2>> {
        let u = match prior {
            Some((p, chain)) => p.sample(rng, self, n, chain, device)?,
            None => normal(rng, [n, self.latent_dim()], device),
        };
        let zs = self.layers(u);
        Ok(self.decode_mean(zs[0].clone()))
    }

    /// The importance-weighted bound (Burda et al. 2016) with the Gaussian prior: mean over the
    /// rows of `data` of -log mean_k p(x, z_k) / q(z_k | x), and its standard error (nats).
    pub fn iwae_nll(&self, rng: &mut ZooRng, data: &Tensor<2>, k: usize) -> Result<(f64, f64)> {
        check_count("k", k)?;
        let n = self.check_data("evaluation data", data)?;
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let x = data.clone().slice([i..i + 1]).expand([k, self.data_dim]);
            let lw = zoo_energy::tensor::to_host1(&self.elbo(rng, x));
            let lw: Vec<f64> = lw.into_iter().map(f64::from).collect();
            values.push(-zoo_mcmc::estimate::log_mean_exp(&lw));
        }
        Ok(crate::train::mean_and_se(&values))
    }
}
