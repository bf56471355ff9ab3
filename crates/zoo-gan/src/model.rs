//! The two players. The discriminator is always read as an energy E(x), with the GAN's logit
//! d(x) = -E(x) (review §5): a plain MLP energy for the non-saturating, hinge (spectrally
//! normalised), WGAN-GP and VERA games, the reconstruction error of an auto-encoder for EBGAN.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::tensor::{check_batch, row_sq_norm, to_host1, to_host2};
use zoo_energy::{Error, Result, ZooRng, check_count};
use zoo_neural::Activation;
use zoo_neural::MlpEnergy;
use zoo_neural::MlpEnergyConfig;
use zoo_neural::nn::{Mlp, MlpTape, check_hidden, layer_widths};

/// The game the two players play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    /// Goodfellow et al. (2014) with the non-saturating generator loss: D minimises
    /// softplus(E(x)) + softplus(-E(G(z))), G minimises softplus(E(G(z))).
    NonSaturating,
    /// Hinge loss (Lim & Ye 2017; Miyato et al. 2018) with spectral normalisation of every
    /// discriminator layer: D minimises relu(1 + E(x)) + relu(1 - E(G(z))), G minimises E(G(z)).
    Hinge,
    /// Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): D minimises
    /// E(x) - E(G(z)) + lambda (|grad E(x_hat)| - 1)^2 on interpolates x_hat, G minimises E(G(z)).
    /// The penalty differentiates the *input gradient* of E, which burn's first-order autodiff
    /// can do because the MLP energy writes that gradient out as plain tensor operations.
    WganGp,
    /// Energy-based GAN (Zhao et al. 2017): E(x) = |AE(x) - x|^2; D minimises
    /// E(x) + relu(m - E(G(z))), G minimises E(G(z)) plus the pulling-away term.
    Ebgan,
    /// The maximum-likelihood game of the review, with VERA's entropy estimator (Grathwohl et al.
    /// 2021): D minimises E(x) - E(G(z)) + gamma |grad E(x)|^2, the noisy generator
    /// x = mu(z) + sigma eps minimises E(x) - lambda H(q).
    Vera,
}

impl GanLoss {
    /// Every game, in table order.
    pub const ALL: [GanLoss; 5] = [
        GanLoss::NonSaturating,
        GanLoss::Hinge,
        GanLoss::WganGp,
        GanLoss::Ebgan,
        GanLoss::Vera,
    ];

    /// Discriminator updates per generator update in the game's paper: 5 for WGAN-GP
    /// (Gulrajani et al.) and for the hinge loss with spectral normalisation (Miyato et al.,
    /// their settings A and D-F), 1 otherwise.
    pub fn default_n_critic(self) -> usize {
        match self {
            GanLoss::WganGp | GanLoss::Hinge => 5,
            _ => 1,
        }
    }

    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        match self {
            GanLoss::NonSaturating => "non_saturating",
            GanLoss::Hinge => "hinge",
            GanLoss::WganGp => "wgan_gp",
            GanLoss::Ebgan => "ebgan",
            GanLoss::Vera => "vera",
        }
    }
}

impl std::str::FromStr for GanLoss {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        GanLoss::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| Error::UnknownName {
                kind: "GAN loss",
                name: name.into(),
                known: GanLoss::ALL.map(GanLoss::name).join(", "),
            })
    }
}

/// How the generator's last layer maps to data space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Unbounded (2-D sets).
    #[default]
    Linear,
    /// In (0, 1) (images scaled to [0, 1]).
    Sigmoid,
}

/// The architecture (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Data dimension.
    pub data_dim: usize,
    /// Latent dimension of the generator.
    pub latent_dim: usize,
    /// Hidden widths of the generator.
    pub generator_hidden: Vec<usize>,
    /// Hidden widths of the discriminator (of the encoder, and mirrored in the decoder, for EBGAN).
    pub discriminator_hidden: Vec<usize>,
    /// EBGAN's code width.
    pub code_dim: usize,
    /// Activation of both players.
    pub activation: Activation,
    /// The generator's output map.
    pub output: Output,
    /// The game.
    pub loss: GanLoss,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            data_dim: 2,
            latent_dim: 2,
            generator_hidden: vec![128, 128, 128],
            discriminator_hidden: vec![128, 128, 128],
            code_dim: 16,
            activation: Activation::LeakyRelu,
            output: Output::Linear,
            loss: GanLoss::NonSaturating,
        }
    }
}

impl GanConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        check_count("data_dim", self.data_dim)?;
        if self.latent_dim == 0 {
            return Err(Error::invalid(
                "latent_dim",
                "must be >= 1 (the generator maps a latent space)",
            ));
        }
        check_count("code_dim", self.code_dim)?;
        check_hidden(&[
            ("generator_hidden", &self.generator_hidden),
            ("discriminator_hidden", &self.discriminator_hidden),
        ])
    }

    /// Builds both players on `device` (use `device.clone().autodiff()` to train them).
    pub fn init(&self, rng: &mut ZooRng, device: &Device) -> Result<Gan> {
        self.check()?;
        let net = Mlp::new(
            rng,
            &layer_widths(self.latent_dim, &self.generator_hidden, self.data_dim),
            self.activation,
            false,
            device,
        )?;
        let generator = Generator {
            net,
            // VERA's generator is noisy, x = mu(z) + sigma eps; sigma starts at 0.1.
            log_sigma: (self.loss == GanLoss::Vera)
                .then(|| Param::from_tensor(Tensor::full([1], 0.1f32.ln(), device))),
            output: self.output,
            latent_dim: self.latent_dim,
        };
        let discriminator = match self.loss {
            GanLoss::Ebgan => {
                let mut back = self.discriminator_hidden.clone();
                back.reverse();
                Discriminator {
                    critic: None,
                    encoder: Some(Mlp::new(
                        rng,
                        &layer_widths(self.data_dim, &self.discriminator_hidden, self.code_dim),
                        self.activation,
                        false,
                        device,
                    )?),
                    decoder: Some(Mlp::new(
                        rng,
                        &layer_widths(self.code_dim, &back, self.data_dim),
                        self.activation,
                        false,
                        device,
                    )?),
                    spectral_u: Vec::new(),
                }
            }
            loss => {
                let critic = MlpEnergyConfig::new(
                    layer_widths(self.data_dim, &self.discriminator_hidden, 1),
                    self.activation,
                )
                .init(rng, device)?;
                let spectral_u = if loss == GanLoss::Hinge {
                    critic
                        .widths()
                        .windows(2)
                        .map(|io| {
                            let u = zoo_energy::rng::normal_vec(rng, io[1]);
                            normalised(u)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                Discriminator {
                    critic: Some(critic),
                    encoder: None,
                    decoder: None,
                    spectral_u,
                }
            }
        };
        Ok(Gan {
            generator,
            discriminator,
            config: self.clone(),
        })
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Both players and the architecture they were built from.
#[derive(Debug, Clone)]
pub struct Gan {
    /// The amortised sampler.
    pub generator: Generator,
    /// The energy.
    pub discriminator: Discriminator,
    /// What built them.
    pub config: GanConfig,
}

impl Gan {
    /// The discriminator as a plain [`Energy`] over data space, E(x) = -d(x), for the shared
    /// samplers and the grid evaluation (spectral normalisation baked into the weights).
    pub fn energy(&self) -> Box<dyn Energy> {
        self.discriminator.valid().energy()
    }

    /// Total number of trainable scalars of (generator, discriminator).
    pub fn parameter_count(&self) -> (usize, usize) {
        (self.generator.num_params(), self.discriminator.num_params())
    }
}

/// The generator x = out(mu(z)) (+ sigma eps for VERA), z ~ N(0, I).
#[derive(Module, Debug)]
pub struct Generator {
    /// z -> pre-output.
    pub net: Mlp,
    /// log sigma of VERA's output noise (`None`: a deterministic generator).
    pub log_sigma: Option<Param<Tensor<1>>>,
    /// The output map.
    #[module(skip)]
    pub output: Output,
    /// Latent dimension.
    #[module(skip)]
    pub latent_dim: usize,
}

/// VERA's bounds on the generator's noise scale (Grathwohl et al. 2021, appendix).
pub const SIGMA_RANGE: (f64, f64) = (0.01, 0.3);

impl Generator {
    /// mu(z) `[n, data_dim]`.
    pub fn mean(&self, z: Tensor<2>) -> Tensor<2> {
        let a = self.net.forward(z);
        match self.output {
            Output::Linear => a,
            Output::Sigmoid => sigmoid(a),
        }
    }

    /// sigma of the output noise (a `[1]` tensor), clamped to [`SIGMA_RANGE`]; `None` for a
    /// deterministic generator.
    pub fn sigma(&self) -> Option<Tensor<1>> {
        self.log_sigma
            .as_ref()
            .map(|s| s.val().clamp(SIGMA_RANGE.0.ln(), SIGMA_RANGE.1.ln()).exp())
    }

    /// A sample x = mu(z) + sigma eps (`eps` ignored by a deterministic generator).
    pub fn sample(&self, z: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
        let mean = self.mean(z);
        match self.sigma() {
            Some(s) => mean + eps * s.unsqueeze_dim::<2>(0),
            None => mean,
        }
    }

    /// mu(z) and the vector-Jacobian product v -> v^T d mu / dz at that z.
    pub fn mean_and_vjp(&self, z: Tensor<2>) -> (Tensor<2>, GeneratorTape) {
        let (a, tape) = self.net.forward_tape(z);
        match self.output {
            Output::Linear => (
                a,
                GeneratorTape {
                    tape,
                    out_deriv: None,
                },
            ),
            Output::Sigmoid => {
                let s = sigmoid(a);
                let d = s.clone() * s.clone().neg().add_scalar(1.0);
                (
                    s,
                    GeneratorTape {
                        tape,
                        out_deriv: Some(d),
                    },
                )
            }
        }
    }
}

/// What [`Generator::vjp`] needs from [`Generator::mean_and_vjp`].
#[derive(Debug, Clone)]
pub struct GeneratorTape {
    tape: MlpTape,
    out_deriv: Option<Tensor<2>>,
}

impl Generator {
    /// v^T d mu / dz for the z the tape was recorded at.
    pub fn vjp(&self, tape: GeneratorTape, v: Tensor<2>) -> Tensor<2> {
        let v = match tape.out_deriv {
            Some(d) => v * d,
            None => v,
        };
        self.net.vjp(tape.tape, v)
    }
}

/// The discriminator: an MLP energy (`critic`) or an auto-encoder (`encoder`, `decoder`, EBGAN).
#[derive(Module, Debug)]
pub struct Discriminator {
    /// E(x) = -d(x) (every game but EBGAN).
    pub critic: Option<MlpEnergy>,
    /// EBGAN's encoder.
    pub encoder: Option<Mlp>,
    /// EBGAN's decoder.
    pub decoder: Option<Mlp>,
    /// Spectral normalisation's power-iteration vectors u, one per critic layer (hinge game; empty
    /// otherwise). Layer weights are stored `[in, out]`; u has the `out` width.
    #[module(skip)]
    pub spectral_u: Vec<Vec<f32>>,
}

impl Discriminator {
    /// One power iteration per layer (Miyato et al. 2018, Algorithm 1) on the current weights:
    /// v = W u / |W u|, u = W^T v / |W^T v|. Call once per discriminator update.
    pub fn power_iteration(&mut self) {
        let Some(critic) = &self.critic else { return };
        for (layer, u) in critic.layers.iter().zip(self.spectral_u.iter_mut()) {
            let [fan_in, fan_out] = layer.weight.dims();
            let w = to_host2(&layer.weight.val());
            let v: Vec<f32> = normalised(
                (0..fan_in)
                    .map(|i| (0..fan_out).map(|o| w[i * fan_out + o] * u[o]).sum())
                    .collect(),
            );
            *u = normalised(
                (0..fan_out)
                    .map(|o| (0..fan_in).map(|i| w[i * fan_out + o] * v[i]).sum())
                    .collect(),
            );
        }
    }

    /// sigma_l = v^T W_l u_l per layer as `[1]` tensors differentiable in W (u fixed, v = W u /
    /// |W u|), the spectral-norm estimate of Miyato et al.; empty without spectral normalisation.
    fn spectral_sigmas(&self) -> Vec<Tensor<1>> {
        let Some(critic) = &self.critic else {
            return Vec::new();
        };
        critic
            .layers
            .iter()
            .zip(&self.spectral_u)
            .map(|(layer, u)| {
                let w = layer.weight.val();
                let device = w.device();
                let u = Tensor::<1>::from_data(TensorData::new(u.clone(), [u.len()]), &device)
                    .unsqueeze_dim::<2>(1);
                let wu = w.matmul(u).reshape([-1]);
                // |W u| with u fixed equals v^T W u for v = W u / |W u| (v held constant in
                // Miyato et al.'s gradient; the value is the same).
                let v = wu.clone().detach();
                let v = v.clone() / v.square().sum().sqrt().clamp_min(1e-12);
                (wu * v).sum().reshape([1])
            })
            .collect()
    }

    /// E(x) `[n]`: the critic (with each layer's weight divided by its spectral norm in the hinge
    /// game) or EBGAN's reconstruction error |AE(x) - x|^2.
    pub fn energy_of(&self, x: Tensor<2>) -> Tensor<1> {
        if let Some(critic) = &self.critic {
            if self.spectral_u.is_empty() {
                return critic.energy(x);
            }
            let sigmas = self.spectral_sigmas();
            let n = critic.layers.len();
            let mut h = x;
            for (l, (layer, sigma)) in critic.layers.iter().zip(sigmas).enumerate() {
                let w = layer.weight.val() / sigma.unsqueeze_dim::<2>(0);
                h = h.matmul(w);
                if let Some(b) = &layer.bias {
                    h = h + b.val().unsqueeze_dim::<2>(0);
                }
                if l + 1 < n {
                    h = critic.activation.value(h);
                }
            }
            return h.squeeze_dim(1);
        }
        let (encoder, decoder) = self.auto_encoder();
        let r = decoder.forward(encoder.forward(x.clone())) - x;
        row_sq_norm(r)
    }

    /// EBGAN's code Enc(x) (for the pulling-away term).
    pub fn code(&self, x: Tensor<2>) -> Option<Tensor<2>> {
        self.encoder.as_ref().map(|e| e.forward(x))
    }

    fn auto_encoder(&self) -> (&Mlp, &Mlp) {
        (
            self.encoder
                .as_ref()
                .expect("EBGAN discriminator has an encoder"),
            self.decoder
                .as_ref()
                .expect("EBGAN discriminator has a decoder"),
        )
    }

    /// The discriminator as a plain [`Energy`] (call on a non-autodiff copy: `.valid()`).
    pub fn energy(&self) -> Box<dyn Energy> {
        match &self.critic {
            Some(critic) if self.spectral_u.is_empty() => Box::new(critic.clone()),
            Some(critic) => {
                let sigmas: Vec<f32> = self
                    .spectral_sigmas()
                    .iter()
                    .map(|s| to_host1(s)[0])
                    .collect();
                let layers = critic
                    .host_weights()
                    .into_iter()
                    .zip(sigmas)
                    .map(|((w, b), s)| (w.into_iter().map(|v| v / s).collect(), b))
                    .collect();
                let device = critic.layers[0].weight.device();
                Box::new(
                    MlpEnergy::from_weights(layers, critic.activation, &device)
                        .expect("widths of a built critic are valid"),
                )
            }
            None => {
                let (encoder, decoder) = self.auto_encoder();
                Box::new(ReconstructionEnergy {
                    encoder: encoder.clone(),
                    decoder: decoder.clone(),
                })
            }
        }
    }
}

/// EBGAN's energy E(x) = |Dec(Enc(x)) - x|^2 with its score written out:
/// s(x) = -grad E = 2 (r - J^T r), r = AE(x) - x, J the auto-encoder's Jacobian.
#[derive(Debug, Clone)]
pub struct ReconstructionEnergy {
    /// Enc.
    pub encoder: Mlp,
    /// Dec.
    pub decoder: Mlp,
}

impl Energy for ReconstructionEnergy {
    fn dim(&self) -> usize {
        self.encoder.input_width()
    }
    fn energy(&self, x: Tensor<2>) -> Tensor<1> {
        row_sq_norm(self.decoder.forward(self.encoder.forward(x.clone())) - x)
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (code, enc_tape) = self.encoder.forward_tape(x.clone());
        let (out, dec_tape) = self.decoder.forward_tape(code);
        let r = out - x;
        let jt_r = self
            .encoder
            .vjp(enc_tape, self.decoder.vjp(dec_tape, r.clone()));
        (row_sq_norm(r.clone()), (r - jt_r).mul_scalar(2.0))
    }
    fn describe(&self) -> String {
        format!(
            "EBGAN reconstruction energy |AE(x) - x|^2, code width {}",
            self.encoder.output_width()
        )
    }
}

/// The energy of discriminator-driven latent sampling (Che et al. 2020, eq. 7):
/// E(z) = |z|^2 / 2 - d(G(z)) = |z|^2 / 2 + E_D(G(z)), whose samples pushed through G follow
/// p_g(x) exp(d(x)) / Z (the data density when d is the optimal logit). Score:
/// -z + J_G(z)^T s_D(G(z)), written out (no autodiff).
#[derive(Debug)]
pub struct LatentEnergy {
    /// The generator (non-autodiff copy); VERA's noise is left out, the chain moves mu(z).
    pub generator: Generator,
    /// The discriminator's energy over data space.
    pub critic: Box<dyn Energy>,
    /// Scale 1/T on E_D (T = 1 is Che et al.'s target).
    pub inverse_temperature: f64,
}

impl LatentEnergy {
    /// The DDLS energy of a trained GAN.
    pub fn new(gan: &Gan) -> Self {
        Self {
            generator: gan.generator.valid(),
            critic: gan.energy(),
            inverse_temperature: 1.0,
        }
    }
}

impl Energy for LatentEnergy {
    fn dim(&self) -> usize {
        self.generator.latent_dim
    }
    fn energy(&self, z: Tensor<2>) -> Tensor<1> {
        let e = self.critic.energy(self.generator.mean(z.clone()));
        row_sq_norm(z).mul_scalar(0.5) + e.mul_scalar(self.inverse_temperature)
    }
    fn energy_and_score(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let (x, tape) = self.generator.mean_and_vjp(z.clone());
        let (e, s) = self.critic.energy_and_score(x);
        let pulled = self
            .generator
            .vjp(tape, s.mul_scalar(self.inverse_temperature));
        (
            row_sq_norm(z.clone()).mul_scalar(0.5) + e.mul_scalar(self.inverse_temperature),
            pulled - z,
        )
    }
    fn describe(&self) -> String {
        format!(
            "DDLS latent energy |z|^2/2 + E_D(G(z)) / {} on ({})",
            1.0 / self.inverse_temperature,
            self.critic.describe()
        )
    }
}

/// Checks a data batch against the generator's data dimension.
pub fn check_data(gan: &Gan, what: &str, x: &Tensor<2>) -> Result<usize> {
    check_batch(what, x, gan.config.data_dim)
}
