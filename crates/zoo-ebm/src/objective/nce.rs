//! Noise-contrastive estimation (Gutmann & Hyvärinen 2010; review §4.4): logistic regression of data
//! against `ratio` times as many noise samples, with the model's log density -E_theta(x) - c and
//! a learned log-normaliser c. At the optimum c = log Z_theta, so c is an estimate of log Z.
//!
//! The noise is any energy with a known log Z that can be sampled exactly (the shared traits): a
//! Gaussian fitted to the data here; a trained flow can be passed without changes to this code.

use super::{Loss, Objective, Report, mean};
use crate::data::Dataset;
use crate::model::EnergyModel;
use burn::prelude::*;
use burn::tensor::Gradients;
use burn::tensor::activation::softplus;
use zoo_energy::energy::{Covariance, ExactSample, Gaussian};
use zoo_energy::tensor::to_host1;
use zoo_energy::{Energy, Error, Result, ZooRng};
use zoo_train::Checkpoint;

/// An exactly samplable, normalised noise density.
pub trait NoiseDensity: Energy + ExactSample {}
impl<T: Energy + ExactSample> NoiseDensity for T {}

/// NCE with a learned log-normaliser.
pub struct Nce {
    noise: Box<dyn NoiseDensity>,
    noise_log_z: f64,
    ratio: usize,
    log_z: f64,
    leaf: Option<Tensor<1>>,
    adam: (f64, f64, i32),
}

impl std::fmt::Debug for Nce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Nce(noise: {}, ratio {}, log_z {})",
            self.noise.describe(),
            self.ratio,
            self.log_z
        )
    }
}

impl Nce {
    /// NCE against `noise` (which must know its log Z) with `ratio` noise samples per data point.
    pub fn new(noise: Box<dyn NoiseDensity>, ratio: usize) -> Result<Self> {
        if ratio == 0 {
            return Err(Error::invalid("noise_ratio", "must be >= 1"));
        }
        let noise_log_z = noise
            .log_normalizer()
            .ok_or_else(|| Error::invalid("noise", "the noise density must have a known log Z"))?;
        Ok(Self {
            noise,
            noise_log_z,
            ratio,
            log_z: 0.0,
            leaf: None,
            adam: (0.0, 0.0, 0),
        })
    }

    /// NCE against a Gaussian with the data's mean and covariance (times `inflate`^2).
    pub fn fitted(data: &Dataset, ratio: usize, inflate: f64, device: &Device) -> Result<Self> {
        zoo_energy::check_positive("inflate", inflate)?;
        let (mean, mut cov) = data.mean_and_covariance();
        for (i, row) in cov.iter_mut().enumerate() {
            for v in row.iter_mut() {
                *v *= inflate * inflate;
            }
            row[i] += 1e-6;
        }
        let noise = Gaussian::new(mean, Covariance::Full(cov), device)?;
        Self::new(Box::new(noise), ratio)
    }

    /// The current learned log-normaliser c (an estimate of log Z_theta).
    pub fn log_z(&self) -> f64 {
        self.log_z
    }
}

impl<M: EnergyModel> Objective<M> for Nce {
    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_json("nce", &(self.log_z, self.adam))
    }

    fn load(&mut self, checkpoint: &Checkpoint, _device: &Device) -> Result<()> {
        (self.log_z, self.adam) = checkpoint.json("nce")?;
        Ok(())
    }

    fn name(&self) -> String {
        "nce".into()
    }

    /// loss = mean softplus(-G(x_data)) + ratio * mean softplus(G(y_noise)),
    /// G(x) = -E(x) - c - log(ratio q(x)).
    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)> {
        let [n, _] = batch.dims();
        let noise = self.noise.sample_exact(rng, self.ratio * n, device);
        let log_q = |x: Tensor<2>| self.noise.energy(x).neg().sub_scalar(self.noise_log_z);
        let shift = (self.ratio as f64).ln();
        let c = Tensor::<1>::from_data(
            TensorData::new(vec![self.log_z as f32], [1]),
            &device.clone().autodiff(),
        )
        .require_grad();
        let e_data = model.energy(batch.clone());
        let e_noise = model.energy(noise.clone());
        let g_data = (e_data.clone().neg() - c.clone() - log_q(batch)).sub_scalar(shift);
        let g_noise = (e_noise.clone().neg() - c.clone() - log_q(noise)).sub_scalar(shift);
        let loss = softplus(g_data.neg(), 1.0).mean()
            + softplus(g_noise, 1.0).mean().mul_scalar(self.ratio as f64);
        self.leaf = Some(c);
        let report = Report {
            energy_data: mean(&to_host1(&e_data)),
            energy_negative: Some(mean(&to_host1(&e_noise))),
            log_z: Some(self.log_z),
            ..Report::default()
        };
        Ok((Loss::Tensor(loss), report))
    }

    /// Adam on c with the trainer's learning rate (beta = 0.9, 0.999).
    fn apply_gradients(&mut self, gradients: &Gradients, learning_rate: f64) {
        let Some(leaf) = self.leaf.take() else { return };
        let Some(g) = leaf.grad(gradients) else {
            return;
        };
        let g = to_host1(&g)[0] as f64;
        let (m, v, t) = &mut self.adam;
        *t += 1;
        *m = 0.9 * *m + 0.1 * g;
        *v = 0.999 * *v + 0.001 * g * g;
        let m_hat = *m / (1.0 - 0.9f64.powi(*t));
        let v_hat = *v / (1.0 - 0.999f64.powi(*t));
        self.log_z -= learning_rate * m_hat / (v_hat.sqrt() + 1e-8);
    }
}
