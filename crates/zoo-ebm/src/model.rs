//! Trainable energies: a burn [`Module`] that is also an [`Energy`] (with a hand-written score).
//!
//! Training puts the module on an autodiff device, so E_theta(x) is differentiable in theta with
//! one backward pass; the samplers get a snapshot without autodiff ([`EnergyModel::sampling_energy`]),
//! so no graph is ever built across MCMC steps.

use crate::objective::{Contrast, ContrastStep};
use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use rand::RngExt;
use zoo_energy::backend::BackendKind;
use zoo_energy::rng::normal_vec;
use zoo_energy::tensor::{
    from_host1, from_host2, logsumexp_rows, matrix, row_sq_norm, to_host1, to_host2,
};
use zoo_energy::{Energy, Error, Result, ZooRng};
use zoo_neural::ConvEnergy;
use zoo_neural::MlpEnergy;

/// A trainable energy.
pub trait EnergyModel: Module + Energy + 'static {
    /// A snapshot of the current parameters without autodiff, for the samplers (the fused CPU
    /// kernel for MLPs on host devices).
    fn sampling_energy(&self) -> Box<dyn Energy>;

    /// The θ-gradient of a contrastive loss written out on host buffers, where the model has such
    /// a path (an MLP energy on a CPU device: [`crate::fused::contrast_gradients`]); `None` where
    /// the trainer should use burn's autodiff ([`Contrast::autodiff`]). Expects a contrast that
    /// passed [`Contrast::check`] (the trainer checks it first).
    fn contrast_gradients(&self, _contrast: &Contrast) -> Option<ContrastStep> {
        None
    }

    /// Projects the weights so that every layer's spectral norm is at most `bound` (applied after
    /// each optimiser step; a clipped form of spectral normalisation, Miyato et al. 2018). Models
    /// without weight matrices return themselves.
    fn bound_spectral_norm(self, _bound: f64) -> Self {
        self
    }
}

/// Largest singular value of a row-major `rows x cols` matrix by power iteration on W^T W.
pub fn spectral_norm(w: &[f32], rows: usize, cols: usize) -> f64 {
    let mut v = vec![1.0 / (cols as f64).sqrt(); cols];
    let mut sigma = 0.0;
    for _ in 0..100 {
        let u: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * v[c]).sum())
            .collect();
        let mut next: Vec<f64> = (0..cols)
            .map(|c| (0..rows).map(|r| w[r * cols + c] as f64 * u[r]).sum())
            .collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        next.iter_mut().for_each(|x| *x /= norm);
        let new_sigma = norm.sqrt();
        v = next;
        if (new_sigma - sigma).abs() <= 1e-7 * new_sigma {
            return new_sigma;
        }
        sigma = new_sigma;
    }
    sigma
}

/// Multiplies a parameter by `factor`, keeping its id (optimiser state) and its grad flag.
fn rescale<const D: usize>(param: Param<Tensor<D>>, factor: f32) -> Param<Tensor<D>> {
    param.map(|t| {
        let tracked = t.is_require_grad();
        let t = t.mul_scalar(factor).detach();
        if tracked { t.require_grad() } else { t }
    })
}

impl EnergyModel for MlpEnergy {
    fn sampling_energy(&self) -> Box<dyn Energy> {
        MlpEnergy::sampling_energy(self)
    }

    fn contrast_gradients(&self, contrast: &Contrast) -> Option<ContrastStep> {
        let device = self.layers[0].weight.val().device();
        if !BackendKind::is_host_device(&device) {
            return None;
        }
        let plain = device.without_autodiff();
        let (data, negatives) = (to_host2(&contrast.data), to_host2(&contrast.negatives));
        let host = crate::fused::contrast_gradients(
            &crate::fused::host_mlp(self),
            &data,
            &negatives,
            contrast.weights.as_deref(),
            self.dim(),
            contrast.alpha,
        );
        let mut gradients = GradientsParams::new();
        let mut grads = host.grads.into_iter();
        for layer in &self.layers {
            let [fan_in, fan_out] = layer.weight.dims();
            let (w, b) = (grads.next()?, grads.next()?);
            gradients.register(layer.weight.id, from_host2(w, [fan_in, fan_out], &plain));
            if let Some(bias) = &layer.bias {
                gradients.register(bias.id, from_host1(b, &plain));
            }
        }
        Some(ContrastStep {
            loss: host.loss,
            energy_data: host.energy_data,
            energy_negative: host.energy_negative,
            gradients,
        })
    }

    fn bound_spectral_norm(mut self, bound: f64) -> Self {
        self.layers = self
            .layers
            .into_iter()
            .map(|mut layer| {
                let [rows, cols] = layer.weight.dims();
                let sigma = spectral_norm(&to_host2(&layer.weight.val()), rows, cols);
                if sigma > bound {
                    layer.weight = rescale(layer.weight, (bound / sigma) as f32);
                }
                layer
            })
            .collect();
        self
    }
}

impl EnergyModel for ConvEnergy {
    fn sampling_energy(&self) -> Box<dyn Energy> {
        Box::new(self.valid())
    }
}

/// A mixture of K unit-variance Gaussians with learnable means and weights:
/// E(x) = -log sum_k softmax(logits)_k exp(-|x - mu_k|^2 / 2), so log Z = (d/2) log 2 pi exactly.
/// The student of the mixture experiment of Carbone et al. (2023), §4.1.
#[derive(Module, Debug)]
pub struct MixtureModel {
    /// Component means `[K, d]`.
    pub means: Param<Tensor<2>>,
    /// Unnormalised log weights `[K]`.
    pub logits: Param<Tensor<1>>,
}

impl MixtureModel {
    /// A mixture with the given means (one row per component) and weights (normalised here).
    pub fn new(means: &[Vec<f64>], weights: &[f64], device: &Device) -> Result<Self> {
        let k = means.len();
        if k == 0 || weights.len() != k {
            return Err(Error::invalid(
                "weights",
                format!("need one weight per component ({k}), got {}", weights.len()),
            ));
        }
        let d = means[0].len();
        if d == 0
            || means
                .iter()
                .any(|m| m.len() != d || m.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::invalid(
                "means",
                "need K finite rows of one dimension >= 1",
            ));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::invalid(
                "weights",
                format!("must be > 0, got {weights:?}"),
            ));
        }
        let logits: Vec<f32> = weights.iter().map(|w| w.ln() as f32).collect();
        Ok(Self {
            means: Param::from_tensor(matrix(means, device)),
            logits: Param::from_tensor(Tensor::from_data(TensorData::new(logits, [k]), device)),
        })
    }

    /// The normalised weights.
    pub fn weights(&self) -> Vec<f64> {
        to_host1(&softmax(self.logits.val(), 0))
            .into_iter()
            .map(f64::from)
            .collect()
    }

    /// The means, one row per component.
    pub fn means(&self) -> Vec<Vec<f64>> {
        let [_, d] = self.means.dims();
        to_host2(&self.means.val())
            .chunks(d)
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect()
    }

    /// `n` exact draws `[n, d]`: a component by its weight, plus N(0, I) noise.
    pub fn sample(&self, rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<2> {
        let weights = self.weights();
        let means = self.means();
        let d = means[0].len();
        let noise = normal_vec(rng, n * d);
        let mut out = Vec::with_capacity(n * d);
        for i in 0..n {
            let mut u = rng.random::<f64>();
            let k = weights
                .iter()
                .position(|w| {
                    u -= w;
                    u < 0.0
                })
                .unwrap_or(weights.len() - 1);
            out.extend((0..d).map(|j| (means[k][j] + noise[i * d + j] as f64) as f32));
        }
        from_host2(out, [n, d], device)
    }

    /// log w_k - |x - mu_k|^2 / 2, `[n, K]`.
    fn log_joint(&self, x: Tensor<2>) -> Tensor<2> {
        let means = self.means.val();
        let cross = x.clone().matmul(means.clone().transpose());
        let sq = row_sq_norm(x).unsqueeze_dim::<2>(1);
        let msq = row_sq_norm(means).unsqueeze_dim::<2>(0);
        let log_w = log_softmax(self.logits.val(), 0).unsqueeze_dim::<2>(0);
        log_w - (sq - cross.mul_scalar(2.0) + msq).mul_scalar(0.5)
    }
}

impl Energy for MixtureModel {
    fn dim(&self) -> usize {
        self.means.dims()[1]
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        logsumexp_rows(self.log_joint(x)).neg()
    }
    /// score = sum_k r_k(x) (mu_k - x) with responsibilities r = softmax(log_joint).
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let logs = self.log_joint(x.clone());
        let energy = logsumexp_rows(logs.clone()).neg();
        let score = softmax(logs, 1).matmul(self.means.val()) - x;
        (energy, score)
    }
    fn log_normalizer(&self) -> Option<f64> {
        Some(0.5 * self.dim() as f64 * (2.0 * std::f64::consts::PI).ln())
    }
    fn describe(&self) -> String {
        format!(
            "unit-variance gaussian mixture, {} components, dim {}, weights {:?}",
            self.means.dims()[0],
            self.dim(),
            self.weights()
        )
    }
}

impl EnergyModel for MixtureModel {
    fn sampling_energy(&self) -> Box<dyn Energy> {
        Box::new(self.valid())
    }
}

/// An isotropic Gaussian energy with learnable mean and scale, E(x) = |x - mu|^2 / (2 sigma^2)
/// (unnormalised: log Z = (d/2) log(2 pi sigma^2)). The exact reference for NCE's learned log Z.
#[derive(Module, Debug)]
pub struct GaussianModel {
    /// Mean `[d]`.
    pub mean: Param<Tensor<1>>,
    /// log sigma, `[1]`.
    pub log_std: Param<Tensor<1>>,
}

impl GaussianModel {
    /// N(mean, std^2 I) as an energy.
    pub fn new(mean: &[f64], std: f64, device: &Device) -> Result<Self> {
        zoo_energy::check_positive("std", std)?;
        if mean.is_empty() || mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::invalid(
                "mean",
                "need a finite mean of dimension >= 1",
            ));
        }
        let m: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
        Ok(Self {
            mean: Param::from_tensor(Tensor::from_data(TensorData::new(m, [mean.len()]), device)),
            log_std: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![std.ln() as f32], [1]),
                device,
            )),
        })
    }

    /// The current sigma.
    pub fn std(&self) -> f64 {
        (to_host1(&self.log_std.val())[0] as f64).exp()
    }

    /// The current mean.
    pub fn mean(&self) -> Vec<f64> {
        to_host1(&self.mean.val())
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn centred_and_precision(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let centred = x - self.mean.val().unsqueeze_dim::<2>(0);
        let precision = self
            .log_std
            .val()
            .mul_scalar(-2.0)
            .exp()
            .unsqueeze_dim::<2>(0);
        (centred, precision)
    }
}

impl Energy for GaussianModel {
    fn dim(&self) -> usize {
        self.mean.dims()[0]
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (centred, precision) = self.centred_and_precision(x);
        let energy = (row_sq_norm(centred.clone()).unsqueeze_dim::<2>(1) * precision.clone())
            .mul_scalar(0.5)
            .squeeze_dim(1);
        (energy, (centred * precision).neg())
    }
    fn log_normalizer(&self) -> Option<f64> {
        let s = self.std();
        Some(0.5 * self.dim() as f64 * (2.0 * std::f64::consts::PI * s * s).ln())
    }
    fn describe(&self) -> String {
        format!("gaussian energy, dim {}, std {:.4}", self.dim(), self.std())
    }
}

impl EnergyModel for GaussianModel {
    fn sampling_energy(&self) -> Box<dyn Energy> {
        Box::new(self.valid())
    }
}
