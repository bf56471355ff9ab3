//! The VAE (Kingma & Welling 2014) with a Gaussian prior or the latent EBM prior of Pang, Han,
//! Nijkamp, Zhu & Wu (2020), p(z) ∝ exp(-E(z)) N(z; 0, I), E an MLP energy from `zoo-energy`.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softplus};
use serde::{Deserialize, Serialize};
use zoo_energy::energy::{Energy, WithGaussianBase};
use zoo_energy::tensor::{check_batch, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng, check_count};
use zoo_neural::Activation;
use zoo_neural::MlpEnergy;
use zoo_neural::MlpEnergyConfig;
use zoo_neural::nn::{Mlp, check_hidden, layer_widths};

/// The likelihood p(x | z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoderKind {
    /// Independent Bernoulli pixels (binarised images): the decoder outputs logits.
    Bernoulli,
    /// N(x; mean(z), diag(sigma^2)) with a learned per-dimension sigma.
    Gaussian,
}

/// The prior p(z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorKind {
    /// N(0, I).
    Gaussian,
    /// exp(-E(z)) N(z; 0, I) / Z with E an MLP energy (Pang et al. 2020).
    Ebm,
}

/// The architecture (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaeConfig {
    /// Data dimension (64 for 8x8 images).
    pub data_dim: usize,
    /// Latent dimension.
    pub latent_dim: usize,
    /// Hidden widths of the encoder and the decoder.
    pub hidden: Vec<usize>,
    /// Activation of both networks.
    pub activation: Activation,
    /// The likelihood.
    pub decoder: DecoderKind,
    /// The prior.
    pub prior: PriorKind,
    /// Hidden widths of the prior's energy MLP.
    pub prior_hidden: Vec<usize>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            data_dim: 64,
            latent_dim: 8,
            hidden: vec![128, 128],
            activation: Activation::Silu,
            decoder: DecoderKind::Bernoulli,
            prior: PriorKind::Gaussian,
            prior_hidden: vec![64, 64],
        }
    }
}

impl VaeConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("data_dim", self.data_dim)?;
        if self.latent_dim == 0 {
            return Err(Error::invalid(
                "latent_dim",
                "must be >= 1 (a VAE needs a latent space)",
            ));
        }
        check_hidden(&[
            ("hidden", &self.hidden),
            ("prior_hidden", &self.prior_hidden),
        ])
    }

    /// Builds the VAE on `device` (use `device.clone().autodiff()` to train it).
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<Vae> {
        self.check()?;
        let encoder = Mlp::new(
            rng,
            &layer_widths(self.data_dim, &self.hidden, 2 * self.latent_dim),
            self.activation,
            false,
            device,
        )?;
        let decoder = Mlp::new(
            rng,
            &layer_widths(self.latent_dim, &self.hidden, self.data_dim),
            self.activation,
            false,
            device,
        )?;
        let prior = match self.prior {
            PriorKind::Gaussian => None,
            PriorKind::Ebm => {
                let w = layer_widths(self.latent_dim, &self.prior_hidden, 1);
                Some(MlpEnergyConfig::new(w, self.activation).init(rng, device)?)
            }
        };
        Ok(Vae {
            encoder,
            decoder,
            log_std: Param::from_tensor(Tensor::zeros([self.data_dim], device)),
            prior,
            decoder_kind: self.decoder,
            latent_dim: self.latent_dim,
            data_dim: self.data_dim,
        })
    }
}

/// A VAE: amortised Gaussian posterior q(z | x), decoder p(x | z), prior p(z).
#[derive(Module, Debug)]
pub struct Vae {
    /// x -> (mean, log variance) of q(z | x).
    pub encoder: Mlp,
    /// z -> logits (Bernoulli) or mean (Gaussian).
    pub decoder: Mlp,
    /// log sigma per data dimension of the Gaussian decoder (unused for Bernoulli).
    pub log_std: Param<Tensor<1>>,
    /// E(z) of the EBM prior (`None`: Gaussian prior).
    pub prior: Option<MlpEnergy>,
    /// The likelihood.
    #[module(skip)]
    pub decoder_kind: DecoderKind,
    /// Latent dimension.
    #[module(skip)]
    pub latent_dim: usize,
    /// Data dimension.
    #[module(skip)]
    pub data_dim: usize,
}

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

impl Vae {
    /// Checks that `x` is `[n >= 1, data_dim]`.
    pub fn check_data(&self, what: &str, x: &Tensor<2>) -> Result<usize> {
        check_batch(what, x, self.data_dim)
    }

    /// q(z | x): (mean, log variance), each `[n, latent]`; the log variance is clamped to
    /// [-12, 8] so that no input can make it overflow.
    pub fn posterior(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let n = x.dims()[0];
        let l = self.latent_dim;
        let out = self.encoder.forward(x);
        let mean = out.clone().slice([0..n, 0..l]);
        let log_var = out.slice([0..n, l..2 * l]).clamp(-12.0, 8.0);
        (mean, log_var)
    }

    /// log q(z | x) per row for the posterior (mean, log_var).
    pub fn log_q(z: Tensor<2>, mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
        let [n, l] = z.dims();
        let t = (z - mean).square() * log_var.clone().neg().exp() + log_var;
        t.sum_dim(1)
            .reshape([n])
            .add_scalar(l as f64 * LOG_2PI)
            .mul_scalar(-0.5)
    }

    /// KL(q(z | x) || N(0, I)) per row for the posterior (mean, log_var), in closed form:
    /// (|mean|^2 + sum exp(log_var) - sum log_var - latent) / 2.
    pub fn kl_to_standard_normal(mean: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
        let [n, l] = mean.dims();
        (mean.square() + log_var.clone().exp() - log_var)
            .sum_dim(1)
            .reshape([n])
            .sub_scalar(l as f64)
            .mul_scalar(0.5)
    }

    /// log p(x | z) per row.
    pub fn log_likelihood(&self, x: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        let n = x.dims()[0];
        let out = self.decoder.forward(z);
        let per_dim = match self.decoder_kind {
            DecoderKind::Bernoulli => x * out.clone() - softplus(out, 1.0),
            DecoderKind::Gaussian => {
                let log_std = self.log_std.val().clamp(-7.0, 5.0).unsqueeze_dim::<2>(0);
                (((x - out) * log_std.clone().neg().exp())
                    .square()
                    .mul_scalar(-0.5)
                    - log_std)
                    .sub_scalar(0.5 * LOG_2PI)
            }
        };
        per_dim.sum_dim(1).reshape([n])
    }

    /// The decoder's mean of p(x | z) (pixel probabilities for Bernoulli).
    pub fn decode_mean(&self, z: Tensor<2>) -> Tensor<2> {
        let out = self.decoder.forward(z);
        match self.decoder_kind {
            DecoderKind::Bernoulli => sigmoid(out),
            DecoderKind::Gaussian => out,
        }
    }

    /// The unnormalised prior energy U(z) = E(z) + |z|^2 / 2 (E = 0 for the Gaussian prior);
    /// log p(z) = -U(z) - log Z_U.
    pub fn prior_energy(&self, z: Tensor<2>) -> Tensor<1> {
        let base = row_sq_norm(z.clone()).mul_scalar(0.5);
        match &self.prior {
            Some(e) => e.energy(z) + base,
            None => base,
        }
    }

    /// A snapshot of the EBM prior's U as a shared-crate energy (for samplers and AIS).
    pub fn prior_as_energy(&self) -> Option<WithGaussianBase<MlpEnergy>> {
        self.prior
            .as_ref()
            .map(|e| WithGaussianBase::new(e.valid(), 1.0).expect("std 1 is valid"))
    }

    /// log Z_U of the Gaussian prior: (latent / 2) log 2 pi.
    pub fn gaussian_log_normalizer(&self) -> f64 {
        0.5 * self.latent_dim as f64 * LOG_2PI
    }
}
