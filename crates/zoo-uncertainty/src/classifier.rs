//! Classifiers read as energy-based models.
//!
//! An MLP classifier f: R^d → R^C defines p(y | x) = softmax(f(x))_y and, through the same logits,
//! the energy E(x) = −T logsumexp(f(x)/T) (Liu et al. 2020; Grathwohl et al. 2020, eq. 5).
//! [`ClassifierEnergy`] gives it to the shared samplers with its input gradient written out:
//! ∂E/∂f = −softmax(f/T), so the score −∇ₓE = J_f(x)ᵀ softmax(f(x)/T) is one vector-Jacobian
//! product of the MLP ([`zoo_neural::nn::Mlp::vjp`]), no autodiff.
//!
//! **JEM** (Grathwohl et al. 2020, arXiv 1912.03263): the same network trained on
//! L = cross-entropy + mean E(x_data) − mean E(x_q), with x_q from persistent SGLD through the
//! shared replay buffer (10 000 points, 5% re-initialised from uniform noise) and 20 steps of
//! x ← x − α∇E + σ ξ (α = 1, σ = 0.01), data jittered by N(0, 0.03²). That update is the shared
//! ULA kernel with h = σ²/2 on the energy β E, β = 2α/σ². Samples are detached: first-order
//! gradients only. With `generative = false` the same code trains the plain classifier.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal;
use zoo_energy::tensor::{from_host2, logsumexp_rows};
use zoo_energy::{Energy, Error, Result, ZooRng, check_count, check_positive};
use zoo_mcmc::sampler::{InitDistribution, ReplayBuffer, Sampler, Ula};
use zoo_neural::Activation;
use zoo_neural::nn::Mlp;
use zoo_train::{Checkpoint, LoopConfig, OptimizerConfig, Trainable, check_value};

/// An MLP classifier.
#[derive(Module, Debug)]
pub struct Classifier {
    /// `d → hidden… → C`.
    pub mlp: Mlp,
}

impl Classifier {
    /// A classifier `widths[0] → … → widths[last]` (PyTorch's initialisation, from `rng`).
    pub fn new(
        rng: &mut ZooRng,
        widths: &[usize],
        activation: Activation,
        device: &Device,
    ) -> Result<Self> {
        if widths.len() < 3 {
            return Err(Error::invalid(
                "hidden",
                "a classifier needs at least one hidden layer",
            ));
        }
        Ok(Self {
            mlp: Mlp::new(rng, widths, activation, false, device)?,
        })
    }

    /// The logits `[n, C]`.
    pub fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        self.mlp.forward(x)
    }

    /// The last hidden layer's activations `[n, hidden]` (Mahalanobis features).
    pub fn penultimate(&self, x: Tensor<2>) -> Tensor<2> {
        let (_, hidden) = self.mlp.layers.split_last().expect("at least one layer");
        hidden
            .iter()
            .fold(x, |h, layer| self.mlp.activation.value(layer.forward(h)))
    }

    /// E(x) = −T logsumexp(f(x)/T) `[n]`.
    pub fn energy(&self, x: Tensor<2>, temperature: f64) -> Tensor<1> {
        logsumexp_rows(self.logits(x).div_scalar(temperature)).mul_scalar(-temperature)
    }
}

/// β · E(x) of a classifier (no autodiff), with the score written out, for the samplers.
#[derive(Debug, Clone)]
pub struct ClassifierEnergy {
    mlp: Mlp,
    temperature: f64,
    beta: f64,
}

impl ClassifierEnergy {
    /// The energy of `classifier` (its weights copied without autodiff) at temperature `T`,
    /// multiplied by `beta`.
    pub fn new(classifier: &Classifier, temperature: f64, beta: f64) -> Result<Self> {
        check_positive("temperature", temperature)?;
        check_positive("beta", beta)?;
        Ok(Self {
            mlp: classifier.valid().mlp,
            temperature,
            beta,
        })
    }
}

impl Energy for ClassifierEnergy {
    fn dim(&self) -> usize {
        self.mlp.input_width()
    }

    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (logits, tape) = self.mlp.forward_tape(x);
        let scaled = logits.div_scalar(self.temperature);
        let energy = logsumexp_rows(scaled.clone()).mul_scalar(-self.temperature * self.beta);
        let p = softmax(scaled, 1).mul_scalar(self.beta);
        (energy, self.mlp.vjp(tape, p))
    }

    fn describe(&self) -> String {
        format!(
            "classifier energy (T = {}, scaled by {})",
            self.temperature, self.beta
        )
    }
}

/// Settings of [`fit`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JemConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Data points (and SGLD chains) per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Add the generative term mean E(x_data) − mean E(x_q) (JEM); `false`: the plain classifier.
    pub generative: bool,
    /// Replay buffer size.
    pub buffer_size: usize,
    /// Probability that a chain restarts from uniform noise.
    pub reinit_probability: f64,
    /// The uniform noise's box [low, high]^d.
    pub init_low: f64,
    /// Upper end of the box.
    pub init_high: f64,
    /// SGLD steps per iteration.
    pub sgld_steps: usize,
    /// α in x ← x − α∇E + σξ.
    pub sgld_step: f64,
    /// σ in x ← x − α∇E + σξ.
    pub sgld_noise: f64,
    /// Standard deviation of the Gaussian jitter on the data.
    pub data_noise: f64,
}

impl Default for JemConfig {
    fn default() -> Self {
        Self {
            iterations: 2000,
            batch_size: 64,
            learning_rate: 1e-3,
            generative: true,
            buffer_size: 10_000,
            reinit_probability: 0.05,
            init_low: -1.0,
            init_high: 1.0,
            sgld_steps: 20,
            sgld_step: 1.0,
            sgld_noise: 0.01,
            data_noise: 0.03,
        }
    }
}

impl JemConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("iterations", self.iterations)?;
        check_count("batch_size", self.batch_size)?;
        check_count("buffer_size", self.buffer_size)?;
        check_count("sgld_steps", self.sgld_steps)?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("sgld_step", self.sgld_step)?;
        check_positive("sgld_noise", self.sgld_noise)?;
        if !(self.data_noise.is_finite() && self.data_noise >= 0.0) {
            return Err(Error::invalid("data_noise", "must be finite and >= 0"));
        }
        InitDistribution::Uniform {
            low: self.init_low,
            high: self.init_high,
        }
        .check()?;
        ReplayBuffer::new(1, 1, self.reinit_probability, self.init())?;
        Ok(())
    }

    fn init(&self) -> InitDistribution {
        InitDistribution::Uniform {
            low: self.init_low,
            high: self.init_high,
        }
    }

    /// The ULA kernel and the energy scale that make JEM's SGLD: h = σ²/2, β = 2α/σ².
    pub fn sgld(&self) -> Result<(Ula, f64)> {
        let h = self.sgld_noise * self.sgld_noise / 2.0;
        Ok((Ula::new(h)?, self.sgld_step / h))
    }
}

/// Trains `classifier` (on an autodiff device) on `data` `[n, d]` (plain device) with class
/// `labels`, through the one training loop. Returns the per-step loss and the replay buffer.
pub fn fit(
    rng: &mut ZooRng,
    classifier: &mut Classifier,
    data: &Tensor<2>,
    labels: &[usize],
    cfg: &JemConfig,
) -> Result<(Vec<f64>, ReplayBuffer)> {
    cfg.check()?;
    let [n, d] = data.dims();
    let classes = classifier.mlp.output_width();
    if labels.len() != n || labels.iter().any(|&y| y >= classes) {
        return Err(Error::invalid(
            "labels",
            format!("need {n} labels below {classes}"),
        ));
    }
    zoo_energy::memory::check_points("the replay buffer", cfg.buffer_size, d)?;
    let adam = OptimizerConfig::adam();
    let mut run = JemRun {
        model: zoo_train::stable_ids(classifier.clone(), "jem"),
        optim: adam.build(),
        adam,
        buffer: ReplayBuffer::new(d, cfg.buffer_size, cfg.reinit_probability, cfg.init())?,
        data,
        labels,
        cfg,
    };
    let label = if cfg.generative { "jem" } else { "classifier" };
    let trained = zoo_train::train(
        rng,
        &mut run,
        &LoopConfig {
            label: label.into(),
            ..LoopConfig::new(cfg.iterations)
        },
    );
    *classifier = run.model;
    Ok((trained?.history, run.buffer))
}

struct JemRun<'a> {
    model: Classifier,
    optim: ModuleOptimizer,
    adam: OptimizerConfig,
    buffer: ReplayBuffer,
    data: &'a Tensor<2>,
    labels: &'a [usize],
    cfg: &'a JemConfig,
}

impl JemRun<'_> {
    /// x_q: `sgld_steps` of JEM's SGLD from the replay buffer; the buffer keeps the result.
    fn negatives(&mut self, rng: &mut ZooRng, b: usize) -> Result<Tensor<2>> {
        let device = self.data.device();
        let (ula, beta) = self.cfg.sgld()?;
        let energy = ClassifierEnergy::new(&self.model, 1.0, beta)?;
        let (x0, _) = self.buffer.sample(rng, b, &device);
        let mut state = ula.init(&energy, x0)?;
        for _ in 0..self.cfg.sgld_steps {
            state = ula.step(rng, &energy, state)?.0;
        }
        zoo_energy::tensor::check_finite("SGLD samples", &state.position)?;
        self.buffer.push(&state.position)?;
        Ok(state.position)
    }
}

impl Trainable for JemRun<'_> {
    type Log = f64;

    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let b = self.cfg.batch_size;
        let idx = zoo_train::minibatch_indices(rng, self.labels.len(), b);
        let (device, d) = (self.data.device(), self.data.dims()[1]);
        let rows: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let x = self.data.clone().select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(rows, [b]), &device),
        );
        let x = x + normal(rng, [b, d], &device).mul_scalar(self.cfg.data_noise);
        let classes = self.model.mlp.output_width();
        let mut one_hot = vec![0.0f32; b * classes];
        idx.iter()
            .enumerate()
            .for_each(|(k, &i)| one_hot[k * classes + self.labels[i]] = 1.0);
        let one_hot = from_host2(one_hot, [b, classes], &device).autodiff();
        let x = x.autodiff();
        let logits = self.model.logits(x.clone());
        let ce = (log_softmax(logits.clone(), 1) * one_hot)
            .sum()
            .neg()
            .div_scalar(b as f64);
        let loss = if self.cfg.generative {
            let negatives = self.negatives(rng, b)?.autodiff();
            let e_data = logsumexp_rows(logits).neg().mean();
            ce + e_data - self.model.energy(negatives, 1.0).mean()
        } else {
            ce
        };
        let value = f64::from(loss.clone().into_scalar::<f32>());
        check_value(iteration, "JEM loss", value, 1e6)?;
        let mut grads = loss.backward();
        let g = GradientsParams::from_module(&mut grads, &self.model);
        self.model = self
            .optim
            .step(self.cfg.learning_rate, self.model.clone(), g);
        Ok(value)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("classifier", &self.model)?;
        checkpoint.put_optimizer("optimizer", &self.optim)?;
        let (data, next) = self.buffer.contents();
        checkpoint.put_bytes(
            "buffer",
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        checkpoint.put_json("buffer_next", &next)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.model = checkpoint.module("classifier", self.model.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        let bytes = checkpoint.bytes("buffer")?;
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        self.buffer.restore(data, checkpoint.json("buffer_next")?)
    }
}

/// Out-of-distribution scores of a classifier, rated against in-distribution test points.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierReport {
    /// Test accuracy.
    pub accuracy: f64,
    /// One entry per out-of-distribution set.
    pub ood: Vec<OodRating>,
}

/// How well each score tells one out-of-distribution set from the test points.
#[derive(Debug, Clone, Serialize)]
pub struct OodRating {
    /// The set's name.
    pub set: String,
    /// AUROC of the energy −T logsumexp(f/T).
    pub energy: f64,
    /// AUROC of −max softmax.
    pub max_softmax: f64,
    /// AUROC of the Mahalanobis distance on the penultimate features.
    pub mahalanobis: f64,
    /// The energy's false-positive rate at 95% true-positive rate.
    pub energy_fpr95: f64,
}

/// A labelled set on the host: points `[n, d]` and classes.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The points.
    pub x: Tensor<2>,
    /// Their classes.
    pub y: Vec<usize>,
}

fn host(t: Tensor<2>) -> Vec<f64> {
    zoo_energy::tensor::to_host2(&t)
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Accuracy on `test` and AUROCs of the energy (temperature `T`), maximum softmax and
/// Mahalanobis (class Gaussians fitted on `train`'s penultimate features) for every `ood` set.
pub fn evaluate(
    classifier: &Classifier,
    train: &Labelled,
    test: &Labelled,
    ood: &[(String, Tensor<2>)],
    temperature: f64,
) -> Result<ClassifierReport> {
    use crate::scores::{
        ClassGaussians, argmax_rows, auroc, energy_scores, fpr_at_95_tpr, max_softmax_scores,
        min_rows,
    };
    let model = classifier.valid();
    let classes = model.mlp.output_width();
    let width = model.mlp.layers.last().expect("layers").weight.dims()[0];
    let train_features = host(model.penultimate(train.x.clone()));
    let pairs: Vec<(usize, usize)> = train.y.iter().copied().enumerate().collect();
    let ridge = crate::gebm::GebmConfig::default().covariance_ridge;
    let gaussians = ClassGaussians::fit(&train_features, width, &pairs, classes, ridge)?;
    let scores = |x: &Tensor<2>| {
        let logits = host(model.logits(x.clone()));
        let maha = min_rows(
            &gaussians.distances(&host(model.penultimate(x.clone()))),
            classes,
        );
        (
            energy_scores(&logits, classes, temperature),
            max_softmax_scores(&logits, classes),
            maha,
            logits,
        )
    };
    let (e_in, s_in, m_in, logits) = scores(&test.x);
    let predicted = argmax_rows(&logits, classes);
    let correct = predicted
        .iter()
        .zip(&test.y)
        .filter(|(p, y)| p == y)
        .count();
    let ood = ood
        .iter()
        .map(|(name, x)| {
            let (e, s, m, _) = scores(x);
            OodRating {
                set: name.clone(),
                energy: auroc(&e, &e_in),
                max_softmax: auroc(&s, &s_in),
                mahalanobis: auroc(&m, &m_in),
                energy_fpr95: fpr_at_95_tpr(&e, &e_in),
            }
        })
        .collect();
    Ok(ClassifierReport {
        accuracy: correct as f64 / test.y.len() as f64,
        ood,
    })
}
