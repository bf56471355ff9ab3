//! Sample quality on the 8×8 digits in the feature space of a fixed classifier: the Fréchet
//! distance of Heusel et al. (2017, "FID") and the k-NN precision and recall of Kynkäänniemi et al.
//! (2019) on the penultimate-layer features of a small MLP digit classifier, trained once per
//! process, deterministically (fixed seed, fixed schedule), on the training split.
//!
//! Everything is in the runner's image space: dequantised intensities y = 2 (p + u) / 17 - 1 with
//! p in {0..16} and u ~ U(0, 1) ([`crate::digits::dequantise`]). The classifier sees fresh
//! dequantisation noise every epoch, so its features describe the digits, not one noise draw.

use crate::digits::{Digits, PIXELS, Split, dequantise};
use rand::seq::SliceRandom;
use std::sync::OnceLock;
use zoo_energy::rng::{ZooRng, seeded};
use zoo_energy::{Error, Result};
use zoo_mcmc::diagnostics::{frechet_distance, knn_precision_recall, mean_and_covariance};
use zoo_neural::Activation;
use zoo_neural::kernels::{HostAdam, HostLayer, HostMlp};

/// Classes of the digits.
pub const CLASSES: usize = 10;
/// Neighbours of the k-NN precision and recall.
pub const K_NEAREST: usize = 5;

/// How the classifier is built and trained (the defaults are the metric's classifier).
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// Hidden widths; the last is the feature dimension.
    pub hidden: Vec<usize>,
    /// Passes over the training split (fresh dequantisation noise each).
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the initial weights, the noise and the minibatch order.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            hidden: vec![128, 32],
            epochs: 100,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// An MLP digit classifier (SiLU between layers, softmax output) on host buffers.
#[derive(Debug, Clone)]
pub struct DigitClassifier {
    mlp: HostMlp,
}

/// The Fréchet distance and k-NN precision/recall of a sample of images against reference images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureScores {
    /// Fréchet distance between Gaussians fitted to the two feature sets.
    pub fd: f64,
    /// Share of the sample inside the reference's k-NN manifold (fidelity).
    pub precision: f64,
    /// Share of the reference inside the sample's k-NN manifold (coverage).
    pub recall: f64,
}

impl DigitClassifier {
    /// Trains a classifier on the training split by minibatch Adam on the cross-entropy.
    pub fn train(config: &ClassifierConfig) -> Result<Self> {
        if config.hidden.is_empty() || config.hidden.contains(&0) {
            return Err(Error::invalid(
                "hidden",
                "needs at least one layer, none of width 0",
            ));
        }
        if config.epochs == 0 || config.batch_size == 0 || config.learning_rate <= 0.0 {
            return Err(Error::invalid(
                "classifier",
                "epochs, batch_size and learning_rate must be positive",
            ));
        }
        let data = Digits::load(Split::Train)?;
        let (scaled, labels) = (data.scaled(), data.labels);
        let mut rng = seeded(config.seed);
        let mut mlp = init_mlp(&mut rng, &config.hidden);
        let mut adam = HostAdam::new(mlp.parameter_sizes());
        let mut order: Vec<usize> = (0..labels.len()).collect();
        for _ in 0..config.epochs {
            let y = dequantise(&scaled, &mut rng);
            order.shuffle(&mut rng);
            for batch in order.chunks(config.batch_size) {
                let x: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| y[i * PIXELS..(i + 1) * PIXELS].iter().copied())
                    .collect();
                let targets: Vec<u8> = batch.iter().map(|&i| labels[i]).collect();
                let (logits, tape) = mlp.forward(&x, batch.len());
                let delta = cross_entropy_delta(&logits, &targets);
                let mut grads = mlp.zero_grads();
                mlp.backward(&tape, delta, &mut grads, batch.len());
                adam.step(mlp.parameters_mut(), &mut grads, config.learning_rate, None);
            }
        }
        Ok(Self { mlp })
    }

    /// The metric's classifier: [`ClassifierConfig::default`], trained on first use in this
    /// process (about a second) and shared afterwards. The same weights on every machine.
    pub fn shared() -> Result<&'static Self> {
        static SHARED: OnceLock<std::result::Result<DigitClassifier, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::train(&ClassifierConfig::default()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Config(format!("digit classifier: {e}")))
    }

    /// Width of the features.
    pub fn feature_dim(&self) -> usize {
        self.mlp.layers.last().map_or(0, |l| l.fan_in)
    }

    /// Logits `[n, 10]` and penultimate features `[n, feature_dim]` of `n` images `[n, 64]`.
    pub fn forward(&self, images: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = check_images(images)?;
        let (logits, tape) = self.mlp.forward(images, n);
        let features = tape.layer_input(self.mlp.layers.len() - 1).to_vec();
        Ok((logits, features))
    }

    /// Share of `images` whose largest logit is their label.
    pub fn accuracy(&self, images: &[f32], labels: &[u8]) -> Result<f64> {
        let (logits, _) = self.forward(images)?;
        if logits.len() != labels.len() * CLASSES {
            return Err(Error::invalid("labels", "one label per image"));
        }
        let correct = logits
            .chunks(CLASSES)
            .zip(labels)
            .filter(|(row, label)| argmax(row) == usize::from(**label))
            .count();
        Ok(correct as f64 / labels.len() as f64)
    }

    /// FD and precision/recall (k = [`K_NEAREST`]) of `sample` against `reference` (both
    /// `[n, 64]` images in y-space, more than k of each).
    pub fn scores(&self, reference: &[f32], sample: &[f32]) -> Result<FeatureScores> {
        let (_, real) = self.forward(reference)?;
        let (_, fake) = self.forward(sample)?;
        let d = self.feature_dim();
        let (m1, c1) = mean_and_covariance(&real, d)?;
        let (m2, c2) = mean_and_covariance(&fake, d)?;
        let fd = frechet_distance(&m1, &c1, &m2, &c2)?;
        let (precision, recall) = knn_precision_recall(&real, &fake, d, K_NEAREST)?;
        Ok(FeatureScores {
            fd,
            precision,
            recall,
        })
    }
}

/// Rows of 64 finite pixels: their number.
fn check_images(images: &[f32]) -> Result<usize> {
    if images.is_empty() || !images.len().is_multiple_of(PIXELS) {
        return Err(Error::invalid(
            "images",
            format!(
                "need whole rows of {PIXELS} pixels; got {} values",
                images.len()
            ),
        ));
    }
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "images".into(),
            row: i / PIXELS,
            column: i % PIXELS,
            value: images[i],
        });
    }
    Ok(images.len() / PIXELS)
}

/// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases (PyTorch's `Linear` default).
fn init_mlp(rng: &mut ZooRng, hidden: &[usize]) -> HostMlp {
    use rand::RngExt;
    let widths: Vec<usize> = std::iter::once(PIXELS)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(CLASSES))
        .collect();
    let layers = widths
        .windows(2)
        .map(|w| {
            let bound = 1.0 / (w[0] as f32).sqrt();
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            HostLayer {
                fan_in: w[0],
                fan_out: w[1],
                weight: draw(w[0] * w[1]),
                bias: draw(w[1]),
            }
        })
        .collect();
    HostMlp {
        layers,
        activation: Activation::Silu,
    }
}

/// d(mean cross-entropy)/d logits = (softmax - one-hot) / n.
fn cross_entropy_delta(logits: &[f32], targets: &[u8]) -> Vec<f32> {
    let n = targets.len() as f32;
    let mut delta = Vec::with_capacity(logits.len());
    for (row, &t) in logits.chunks(CLASSES).zip(targets) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        delta.extend(
            exps.iter()
                .enumerate()
                .map(|(c, e)| (e / total - f32::from(u8::from(c == usize::from(t)))) / n),
        );
    }
    delta
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}
