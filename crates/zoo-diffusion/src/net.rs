//! Score networks over noise levels, conditioned on c = log sigma(t) (the noise-conditional
//! input of NCSN, Song & Ermon 2019), and their training by denoising score matching
//! (Vincent 2011) with the weighting lambda(t) = sigma(t)^2 (Song et al. 2021, eq. 7):
//! loss = E_t E_{x0, eps} |sigma(t) s(alpha x0 + sigma eps, t) + eps|^2 / 2.
//!
//! Two parameterisations:
//! * [`MlpScore`]: s(x, t) = -net([x, c]) / sigma(t) (the network predicts the noise, Ho et
//!   al. 2020);
//! * [`EnergyScore`]: every level is an EBM, E_t(x) = U([x, c]) / sigma(t) with U an MLP energy
//!   from `zoo-energy`, s = -grad_x E_t. The input gradient is U's written-out score, so training
//!   needs one backward pass, and E_t is a shared [`Energy`] that MCMC can correct
//!   ([`EnergyScore::energy_at`]).

use crate::score::ScoreModel;
use crate::sde::Sde;
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{check_batch, check_finite, from_host1, from_host2, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng, check_count, check_positive};
use zoo_neural::Activation;
use zoo_neural::MlpEnergy;
use zoo_neural::MlpEnergyConfig;
use zoo_neural::nn::{Mlp, layer_widths};
use zoo_train::{Checkpoint, LoopConfig, OptimizerConfig, Resume, Trainable, check_value};

/// A network that scores every row at its own noise level.
pub trait ScoreNet: Module + Clone {
    /// Data dimension.
    fn data_dim(&self) -> usize;
    /// s for `x: [n, d]` with per-row `log_sigma` and `sigma` columns `[n, 1]`.
    fn score_rows(&self, x: Tensor<2>, log_sigma: Tensor<2>, sigma: Tensor<2>) -> Tensor<2>;
    /// A one-line description.
    fn describe(&self) -> String;
}

/// s(x, t) = -net([x, log sigma]) / sigma.
#[derive(Module, Debug)]
pub struct MlpScore {
    /// [x, c] -> predicted noise.
    pub net: Mlp,
}

/// Architecture of a score network (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreNetConfig {
    /// Data dimension.
    pub data_dim: usize,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Activation (smooth: the energy parameterisation differentiates it twice).
    pub activation: Activation,
}

impl Default for ScoreNetConfig {
    fn default() -> Self {
        Self {
            data_dim: 2,
            hidden: vec![128, 128],
            activation: Activation::Silu,
        }
    }
}

impl ScoreNetConfig {
    /// Validates the fields.
    pub fn check(&self) -> Result<()> {
        check_count("data_dim", self.data_dim)?;
        zoo_neural::nn::check_hidden(&[("hidden", &self.hidden)])
    }

    /// The noise-predicting MLP.
    pub fn mlp(&self, rng: &mut ZooRng, device: &Device) -> Result<MlpScore> {
        self.check()?;
        let w = layer_widths(self.data_dim + 1, &self.hidden, self.data_dim);
        Ok(MlpScore {
            net: Mlp::new(rng, &w, self.activation, false, device)?,
        })
    }

    /// The energy-parameterised model.
    pub fn energy(&self, rng: &mut ZooRng, device: &Device) -> Result<EnergyScore> {
        self.check()?;
        if self.activation == Activation::LeakyRelu {
            return Err(Error::invalid(
                "activation",
                "the energy parameterisation needs a smooth activation (silu, softplus, tanh)",
            ));
        }
        let w = layer_widths(self.data_dim + 1, &self.hidden, 1);
        Ok(EnergyScore {
            energy: MlpEnergyConfig::new(w, self.activation).init(rng, device)?,
        })
    }
}

impl ScoreNet for MlpScore {
    fn data_dim(&self) -> usize {
        self.net.output_width()
    }
    fn score_rows(&self, x: Tensor<2>, log_sigma: Tensor<2>, sigma: Tensor<2>) -> Tensor<2> {
        self.net.forward(Tensor::cat(vec![x, log_sigma], 1)).neg() / sigma
    }
    fn describe(&self) -> String {
        format!(
            "noise-predicting MLP score, input width {}",
            self.net.input_width()
        )
    }
}

/// Every noise level an EBM: E_t(x) = U([x, log sigma(t)]) / sigma(t).
#[derive(Module, Debug)]
pub struct EnergyScore {
    /// U over [x, c].
    pub energy: MlpEnergy,
}

impl ScoreNet for EnergyScore {
    fn data_dim(&self) -> usize {
        self.energy.dim() - 1
    }
    fn score_rows(&self, x: Tensor<2>, log_sigma: Tensor<2>, sigma: Tensor<2>) -> Tensor<2> {
        let [n, d] = x.dims();
        let s = self.energy.score(Tensor::cat(vec![x, log_sigma], 1));
        s.slice([0..n, 0..d]) / sigma
    }
    fn describe(&self) -> String {
        format!("energy-parameterised score, {}", self.energy.describe())
    }
}

/// The energy of one noise level, E_t(x) = U([x, c(t)]) / sigma(t), for the shared samplers.
#[derive(Debug, Clone)]
pub struct LevelEnergy {
    energy: MlpEnergy,
    log_sigma: f64,
    sigma: f64,
}

impl EnergyScore {
    /// E_t as a shared [`Energy`] (call on a non-autodiff copy).
    pub fn energy_at(&self, sde: &Sde, t: f64) -> LevelEnergy {
        let sigma = sde.marginal(t).1;
        LevelEnergy {
            energy: self.energy.clone(),
            log_sigma: sigma.ln(),
            sigma,
        }
    }
}

impl LevelEnergy {
    fn input(&self, x: Tensor<2>) -> Tensor<2> {
        let n = x.dims()[0];
        let c = Tensor::full([n, 1], self.log_sigma, &x.device());
        Tensor::cat(vec![x, c], 1)
    }
}

impl Energy for LevelEnergy {
    fn dim(&self) -> usize {
        self.energy.dim() - 1
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        self.energy.energy(self.input(x)).div_scalar(self.sigma)
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, d] = x.dims();
        let (e, s) = self.energy.energy_and_score(self.input(x));
        (
            e.div_scalar(self.sigma),
            s.slice([0..n, 0..d]).div_scalar(self.sigma),
        )
    }
    fn describe(&self) -> String {
        format!(
            "diffusion level energy at sigma = {:.4} ({})",
            self.sigma,
            self.energy.describe()
        )
    }
}

/// A trained network as a [`ScoreModel`]: a plain copy scores, an autodiff copy gives the exact
/// divergence (one backward pass per dimension) and Hutchinson's estimate.
#[derive(Debug, Clone)]
pub struct NetScore<M: ScoreNet> {
    plain: M,
    tracked: M,
    sde: Sde,
}

impl<M: ScoreNet> NetScore<M> {
    /// Wraps a network trained on an autodiff device under `sde`.
    pub fn new(trained: &M, sde: Sde) -> Self {
        Self {
            plain: trained.valid(),
            tracked: trained.clone(),
            sde,
        }
    }

    /// The network's plain copy.
    pub fn net(&self) -> &M {
        &self.plain
    }

    /// The SDE the network was trained under.
    pub fn sde(&self) -> &Sde {
        &self.sde
    }

    fn columns(&self, n: usize, t: f64, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let sigma = self.sde.marginal(t).1;
        (
            Tensor::full([n, 1], sigma.ln(), device),
            Tensor::full([n, 1], sigma, device),
        )
    }

    /// s(., t) on the tracked copy, for Jacobian quantities.
    fn tracked_at(&self, t: f64) -> TrackedField<impl Fn(Tensor<2>) -> Tensor<2> + '_> {
        TrackedField(move |x: Tensor<2>| {
            let (c, s) = self.columns(x.dims()[0], t, &x.device());
            self.tracked.score_rows(x, c, s)
        })
    }

    /// Hutchinson's estimate of div s (Hutchinson 1989; Grathwohl et al. 2019): the mean of
    /// v^T J v over `probes` Rademacher vectors.
    pub fn hutchinson(&self, rng: &mut ZooRng, x: Tensor<2>, t: f64, probes: usize) -> Tensor<1> {
        self.tracked_at(t).hutchinson(rng, &x, probes)
    }
}

/// The most rows [`TrackedField::divergence`] stacks into one backward pass.
pub(crate) const STACKED_ROWS: usize = 1 << 16;

/// A map of rows `x -> f(x)` (`[n, d] -> [n, d]`, rows independent) written for an autodiff
/// device, and the Jacobian quantities that one backward pass per direction gives.
pub(crate) struct TrackedField<F>(pub F);

impl<F: Fn(Tensor<2>) -> Tensor<2>> TrackedField<F> {
    /// v^T J(x) v per row, J the Jacobian of f, by one backward pass.
    pub fn vjv(&self, x: &Tensor<2>, v: Tensor<2>) -> Tensor<1> {
        let leaf = x.clone().autodiff().detach().require_grad();
        let out = (self.0)(leaf.clone());
        let grads = (out * v.clone().autodiff()).sum().backward();
        let g = leaf
            .grad(&grads)
            .expect("the input requires a gradient")
            .without_autodiff();
        (g * v).sum_dim(1).squeeze_dim(1)
    }

    /// div f per row exactly: the sum over the coordinate directions e_i of e_i^T J e_i, with
    /// the d directions stacked into one batch (`[d n, d]`) per backward pass, as many
    /// directions per pass as keep the batch within [`STACKED_ROWS`] rows.
    pub fn divergence(&self, x: &Tensor<2>) -> Tensor<1> {
        let [n, d] = x.dims();
        let device = x.device();
        let per_pass = (STACKED_ROWS / n.max(1)).clamp(1, d);
        let mut total = Tensor::<1>::zeros([n], &device);
        for first in (0..d).step_by(per_pass) {
            let dirs = per_pass.min(d - first);
            let stacked = Tensor::cat(vec![x.clone(); dirs], 0);
            let e: Vec<f32> = (0..dirs * n * d)
                .map(|k| {
                    if k % d == first + k / (n * d) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let q = self.vjv(&stacked, from_host2(e, [dirs * n, d], &device));
            total = total + q.reshape([dirs, n]).sum_dim(0).reshape([n]);
        }
        total
    }

    /// Hutchinson's estimate of div f: the mean of v^T J v over `probes` Rademacher vectors.
    pub fn hutchinson(&self, rng: &mut ZooRng, x: &Tensor<2>, probes: usize) -> Tensor<1> {
        let [n, d] = x.dims();
        let device = x.device();
        let mut total = Tensor::<1>::zeros([n], &device);
        for _ in 0..probes.max(1) {
            let signs: Vec<f32> = (0..n * d)
                .map(|_| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                .collect();
            total = total + self.vjv(x, from_host2(signs, [n, d], &device));
        }
        total.div_scalar(probes.max(1) as f64)
    }
}

impl<M: ScoreNet> ScoreModel for NetScore<M> {
    fn dim(&self) -> usize {
        self.plain.data_dim()
    }
    fn score(&self, x: Tensor<2>, t: f64) -> Tensor<2> {
        let n = x.dims()[0];
        let (c, s) = self.columns(n, t, &x.device());
        self.plain.score_rows(x, c, s)
    }
    fn divergence(&self, x: Tensor<2>, t: f64) -> Option<Tensor<1>> {
        Some(self.tracked_at(t).divergence(&x))
    }
    fn divergence_hutchinson(
        &self,
        rng: &mut ZooRng,
        x: Tensor<2>,
        t: f64,
        probes: usize,
    ) -> Option<Tensor<1>> {
        Some(self.hutchinson(rng, x, t, probes))
    }
    fn describe(&self) -> String {
        self.plain.describe()
    }
}

/// Settings of [`fit_dsm`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DsmTrainConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Data points per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Clip the gradient to this norm.
    pub grad_clip: Option<f64>,
    /// The weighting lambda(t) of the loss over noise levels.
    pub weighting: DsmWeighting,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

/// The weighting lambda(t) in E_t[lambda(t) |s(x_t, t) - grad log p(x_t | x_0)|^2] / 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DsmWeighting {
    /// lambda = sigma(t)^2 (Song et al. 2021, the DDPM / NCSN choice): the loss is
    /// |sigma s + eps|^2 / 2, every level weighted alike.
    #[default]
    NoiseVariance,
    /// lambda = g(t)^2, the likelihood weighting (Song, Durkan, Murray & Ermon 2021): the loss is
    /// an upper bound on the negative log-likelihood up to constants; times sampled uniformly, so
    /// its variance is larger at small t.
    Likelihood,
}

impl DsmWeighting {
    /// lambda(t) / sigma(t)^2, the factor on |sigma s + eps|^2 / 2.
    pub fn factor(self, sde: &Sde, t: f64) -> f64 {
        match self {
            DsmWeighting::NoiseVariance => 1.0,
            DsmWeighting::Likelihood => {
                let g = sde.drift_and_diffusion(t).1;
                let sigma = sde.marginal(t).1;
                g * g / (sigma * sigma)
            }
        }
    }
}

impl Default for DsmTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 3000,
            batch_size: 512,
            learning_rate: 1e-3,
            grad_clip: Some(10.0),
            weighting: DsmWeighting::NoiseVariance,
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl DsmTrainConfig {
    /// Validates the fields.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)?;
        check_positive("learning_rate", self.learning_rate)?;
        if let Some(c) = self.grad_clip {
            check_positive("grad_clip", c)?;
        }
        Ok(())
    }
}

/// The weighted DSM loss per step, the wall time and the resume point.
pub type DsmReport = zoo_train::LossReport;

impl DsmTrainConfig {
    pub(crate) fn loop_config(&self, progress: bool, label: &str) -> LoopConfig {
        LoopConfig {
            iterations: self.iterations,
            snapshot_every: self.snapshot_every,
            resume: self.resume.clone(),
            progress,
            label: label.into(),
        }
    }

    pub(crate) fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            grad_clip: self.grad_clip,
            ..OptimizerConfig::adam()
        }
    }
}

/// Trains `net` (on an autodiff device) by denoising score matching under `sde` on `data`
/// (`[n, d]`, plain device): t ~ U(t_min, 1) per row. Runs on the one training loop
/// ([`zoo_train::train`]): divergence restores the last snapshot (network, Adam state,
/// generator); `cfg.resume` makes the run resumable.
pub fn fit_dsm<M: ScoreNet>(
    rng: &mut ZooRng,
    net: &mut M,
    sde: &Sde,
    data: &Tensor<2>,
    cfg: &DsmTrainConfig,
    show_progress: bool,
) -> Result<DsmReport> {
    sde.check()?;
    cfg.check()?;
    check_batch("training data", data, net.data_dim())?;
    check_finite("training data", data)?;
    let mut run = DsmRun {
        state: NetAdam::new(net, cfg),
        sde,
        data,
        cfg,
    };
    let outcome = zoo_train::train(rng, &mut run, &cfg.loop_config(show_progress, "dsm"));
    *net = run.state.net;
    outcome.map(DsmReport::from)
}

/// A network and its Adam state, as the DSM and flow-matching trainers keep them.
pub(crate) struct NetAdam<M> {
    pub net: M,
    optim: burn::optim::ModuleOptimizer,
}

impl<M: Module + Clone> NetAdam<M> {
    /// `net` with the optimiser of `cfg` (parameter ids made stable for checkpoints).
    pub fn new(net: &M, cfg: &DsmTrainConfig) -> Self {
        Self {
            net: zoo_train::stable_ids(net.clone(), "net"),
            optim: cfg.optimizer().build(),
        }
    }

    /// Checks the loss `what` at iteration `it`, then one Adam step on it; returns its value.
    pub fn step(&mut self, loss: Tensor<1>, it: usize, what: &str, lr: f64) -> Result<f64> {
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(it, what, value, f64::INFINITY)?;
        let mut grads = loss.backward();
        let g = GradientsParams::from_module(&mut grads, &self.net);
        self.net = self.optim.step(lr, self.net.clone(), g);
        Ok(value)
    }

    /// Writes the network and the Adam state.
    pub fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("net", &self.net)?;
        checkpoint.put_optimizer("optimizer", &self.optim)
    }

    /// Reads them back (`cfg` builds the optimiser the state loads into).
    pub fn load(&mut self, checkpoint: &Checkpoint, cfg: &DsmTrainConfig) -> Result<()> {
        self.net = checkpoint.module("net", self.net.clone())?;
        self.optim = checkpoint.optimizer("optimizer", cfg.optimizer().build())?;
        Ok(())
    }
}

/// One DSM run: the network and its Adam state.
struct DsmRun<'a, M> {
    state: NetAdam<M>,
    sde: &'a Sde,
    data: &'a Tensor<2>,
    cfg: &'a DsmTrainConfig,
}

impl<M: ScoreNet> Trainable for DsmRun<'_, M> {
    type Log = f64;

    /// One step of lambda(t) |sigma s(x_t, t) + eps|^2 / 2 (Vincent 2011; Song et al. 2021).
    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<f64> {
        let (cfg, sde, device) = (self.cfg, self.sde, self.data.device());
        let (b, d, t_min) = (cfg.batch_size, self.state.net.data_dim(), sde.t_min());
        let x0 = zoo_train::minibatch(rng, self.data, b);
        let ts: Vec<f64> = (0..b).map(|_| rng.random_range(t_min..1.0)).collect();
        let (alpha, sigma): (Vec<f32>, Vec<f32>) = ts
            .iter()
            .map(|&t| {
                let (a, s) = sde.marginal(t);
                (a as f32, s as f32)
            })
            .unzip();
        let weight: Vec<f32> = ts
            .iter()
            .map(|&t| cfg.weighting.factor(sde, t) as f32)
            .collect();
        let column = |v: &[f32]| from_host2(v.to_vec(), [b, 1], &device);
        let (alpha, sigma) = (column(&alpha), column(&sigma));
        let weight = from_host1(weight, &device).autodiff();
        let eps = normal(rng, [b, d], &device);
        let xt = x0 * alpha + eps.clone() * sigma.clone();
        let s = self.state.net.score_rows(
            xt.autodiff(),
            sigma.clone().log().autodiff(),
            sigma.clone().autodiff(),
        );
        let loss = (row_sq_norm(s * sigma.autodiff() + eps.autodiff()) * weight)
            .mean()
            .mul_scalar(0.5);
        let what = "denoising score-matching loss";
        self.state.step(loss, it, what, cfg.learning_rate)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        self.state.save(checkpoint)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.state.load(checkpoint, self.cfg)
    }
}

/// A small convolutional noise predictor for square single-channel images: the image and a
/// constant log-sigma channel, three 3x3 convolutions (padding 1, activation between), output
/// the predicted noise; s = -out / sigma.
#[derive(Module, Debug)]
pub struct ConvScore {
    /// Convolution weights `[out, in, 3, 3]`, input to output.
    pub weights: Vec<burn::module::Param<Tensor<4>>>,
    /// Their biases.
    pub biases: Vec<burn::module::Param<Tensor<1>>>,
    /// Activation between convolutions.
    #[module(skip)]
    pub activation: Activation,
    /// Image side.
    #[module(skip)]
    pub side: usize,
}

impl ConvScore {
    /// `channels` hidden channels per layer (two hidden layers), PyTorch-default initialisation
    /// drawn from `rng`.
    pub fn new(
        rng: &mut ZooRng,
        side: usize,
        channels: usize,
        activation: Activation,
        device: &Device,
    ) -> Result<Self> {
        check_count("side", side)?;
        check_count("channels", channels)?;
        let shapes = [[channels, 2], [channels, channels], [1, channels]];
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for [out, inp] in shapes {
            let k = 1.0 / ((inp * 9) as f32).sqrt();
            let w: Vec<f32> = (0..out * inp * 9)
                .map(|_| rng.random_range(-k..k))
                .collect();
            let b: Vec<f32> = (0..out).map(|_| rng.random_range(-k..k)).collect();
            weights.push(burn::module::Param::from_tensor(Tensor::<4>::from_data(
                TensorData::new(w, [out, inp, 3, 3]),
                device,
            )));
            biases.push(burn::module::Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(b, [out]),
                device,
            )));
        }
        Ok(Self {
            weights,
            biases,
            activation,
            side,
        })
    }
}

impl ScoreNet for ConvScore {
    fn data_dim(&self) -> usize {
        self.side * self.side
    }
    fn score_rows(&self, x: Tensor<2>, log_sigma: Tensor<2>, sigma: Tensor<2>) -> Tensor<2> {
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        let [n, d] = x.dims();
        let side = self.side;
        let image = x.reshape([n, 1, side, side]);
        let level = log_sigma.reshape([n, 1, 1, 1]).expand([n, 1, side, side]);
        let mut h = Tensor::cat(vec![image, level], 1);
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            h = conv2d(
                h,
                w.val(),
                Some(b.val()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            if l < last {
                h = self.activation.value(h);
            }
        }
        h.reshape([n, d]).neg() / sigma
    }
    fn describe(&self) -> String {
        format!(
            "convolutional noise predictor, {} channels, {}x{} images",
            self.weights[0].dims()[0],
            self.side,
            self.side
        )
    }
}
