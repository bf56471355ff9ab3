//! One row of the table: a (config, sampler, seed) with every metric the runner measures. Metrics
//! a model does not define are `None` (a dash in the table), never a made-up number.

use crate::data::{CELLS, Prepared};
use crate::error::Result;
use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use zoo_data::features::{DigitClassifier, FeatureScores};
use zoo_data::grid::{evaluate, sample_metrics};
use zoo_energy::Energy;

/// The metrics of one sampler of one seed of one config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The config's name.
    pub config: String,
    /// The data set.
    pub data: String,
    /// The family.
    pub family: String,
    /// The method.
    pub method: String,
    /// The sampler and its steps.
    pub sampler: String,
    /// The seed.
    pub seed: u64,
    /// The backend.
    pub backend: String,
    /// Trainable scalars of the whole model (both players of a GAN, encoder + decoder + prior of
    /// a VAE).
    pub params: usize,
    /// Held-out NLL: nats per point (2-D) or bits per dimension (digits).
    pub nll: Option<f64>,
    /// Its standard error over the held-out points.
    pub nll_se: Option<f64>,
    /// `nats` or `bits/dim`.
    pub nll_unit: String,
    /// How the NLL was obtained (exact quadrature, exact flow likelihood, PF-ODE, IWAE bound).
    pub nll_estimator: String,
    /// The NLL of the true density on the same points (2-D).
    pub true_nll: Option<f64>,
    /// Total variation between the model's density and the truth, by grid quadrature (models
    /// with an energy or a density, 2-D).
    pub density_tv: Option<f64>,
    /// Total variation between the histogram of the samples and the true cell masses (2-D).
    pub sample_tv: Option<f64>,
    /// The same TV for as many exact samples from the truth: the finite-sample floor (2-D).
    #[serde(default)]
    pub sample_tv_floor: Option<f64>,
    /// Modes covered by the samples (PacGAN protocol, 2-D).
    pub modes_covered: Option<usize>,
    /// Modes of the set.
    pub modes: Option<usize>,
    /// Total variation between the samples' mode shares and the true mode weights (2-D).
    pub mode_weight_error: Option<f64>,
    /// Share of samples within 3 sigma of the noise-free set (2-D).
    pub high_quality: Option<f64>,
    /// Squared kernel MMD of the samples to the held-out images (digits).
    pub mmd2: Option<f64>,
    /// The same MMD for as many training images: the finite-sample floor (digits).
    #[serde(default)]
    pub mmd2_floor: Option<f64>,
    /// Fréchet distance of the samples to the held-out images on the digit classifier's
    /// features (digits; `zoo_data::features`).
    #[serde(default)]
    pub fd: Option<f64>,
    /// The same distance for as many training images: the finite-sample floor (digits).
    #[serde(default)]
    pub fd_floor: Option<f64>,
    /// k-NN precision (k = 5) of the samples against the held-out images, same features.
    #[serde(default)]
    pub precision: Option<f64>,
    /// k-NN recall (k = 5) of the held-out images against the samples, same features.
    #[serde(default)]
    pub recall: Option<f64>,
    /// Network evaluations per sample (energy/score gradients for MCMC, NFE for diffusion, one
    /// pass for a flow, a generator or a decoder).
    pub evals_per_sample: f64,
    /// Metropolis acceptance (MALA samplers).
    pub acceptance: Option<f64>,
    /// Mean exchange rate of neighbouring replicas (parallel tempering).
    #[serde(default)]
    pub swap_rate: Option<f64>,
    /// Wall-clock training seconds.
    pub train_seconds: f64,
    /// Wall-clock milliseconds per 1000 samples.
    pub ms_per_1000_samples: f64,
}

impl Row {
    /// The row without its wall-clock columns (what must agree between two runs of one seed).
    pub fn without_timing(&self) -> Row {
        Row {
            train_seconds: 0.0,
            ms_per_1000_samples: 0.0,
            ..self.clone()
        }
    }
}

/// How an NLL was obtained: the leading words of [`Row::nll_estimator`] (details follow in
/// parentheses) and the short tag the table prints. Produced by the runner and read back by the
/// table, so both sides use these constants.
pub mod estimator {
    /// Grid quadrature of log Z for an energy (2-D).
    pub const QUADRATURE: &str = "exact (grid quadrature of log Z)";
    /// The same for a GAN discriminator read as E = -D.
    pub const DISCRIMINATOR: &str = "exact for the discriminator's energy (grid quadrature)";
    /// A flow's change of variables.
    pub const FLOW: &str = "exact (change of variables)";
    /// The probability-flow ODE of a diffusion model.
    pub const PF_ODE: &str = "PF-ODE";
    /// The change of variables along a flow-matching model's ODE.
    pub const FLOW_ODE: &str = "flow-matching ODE";
    /// IWAE with a Gaussian prior: an upper bound on the NLL.
    pub const IWAE_BOUND: &str = "IWAE upper bound";
    /// IWAE with an EBM prior whose log Z is estimated.
    pub const IWAE_LOG_Z: &str = "IWAE";

    const TAGS: [(&str, &str); 7] = [
        (QUADRATURE, "exact (quadrature)"),
        (DISCRIMINATOR, "exact (quadrature, D as energy)"),
        (FLOW, "exact (flow)"),
        (PF_ODE, "PF-ODE estimate"),
        (FLOW_ODE, "ODE estimate"),
        (IWAE_BOUND, "IWAE bound"),
        (IWAE_LOG_Z, "IWAE + log Z estimate"),
    ];

    /// The table's tag of a description: the lead that is the whole text or is followed by
    /// ` (`; a dash for anything else.
    pub fn tag(description: &str) -> &'static str {
        TAGS.iter()
            .find(|(lead, _)| {
                description
                    .strip_prefix(lead)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(" ("))
            })
            .map_or("–", |(_, tag)| tag)
    }
}

/// `Some(v)` for a finite `v`.
pub fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Sample metrics on a 2-D set (`None`s on digits).
#[derive(Debug, Clone, Default)]
pub struct SampleScores {
    /// Histogram TV.
    pub tv: Option<f64>,
    /// Histogram TV of exact samples.
    pub tv_floor: Option<f64>,
    /// Modes covered.
    pub modes_covered: Option<usize>,
    /// Modes of the set.
    pub modes: Option<usize>,
    /// Mode-weight error.
    pub mode_weight_error: Option<f64>,
    /// High-quality share.
    pub high_quality: Option<f64>,
    /// MMD^2 to the held-out images (digits).
    pub mmd2: Option<f64>,
    /// MMD^2 of as many training images (digits).
    pub mmd2_floor: Option<f64>,
    /// Feature scores of the samples against the held-out images (digits).
    pub features: Option<FeatureScores>,
    /// Feature scores of as many training images: the floor (digits).
    pub features_floor: Option<FeatureScores>,
}

/// Scores `samples` (`[m, dim]` row-major) against the data.
pub fn score_samples(data: &Prepared, samples: &[f32]) -> Result<SampleScores> {
    if let Some(truth) = &data.truth {
        let m = sample_metrics(&truth.density, samples, CELLS, &truth.cell_masses)?;
        return Ok(SampleScores {
            tv: Some(m.tv),
            tv_floor: Some(truth.sample_tv_floor),
            modes_covered: Some(m.modes_covered),
            modes: Some(m.modes),
            mode_weight_error: Some(m.mode_weight_error),
            high_quality: Some(m.high_quality),
            ..SampleScores::default()
        });
    }
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(zoo_energy::Error::NonFinite {
            what: "samples".into(),
            row: i / data.dim,
            column: i % data.dim,
            value: samples[i],
        }
        .into());
    }
    let d = data.dim;
    let m = (samples.len() / d).min(data.n_test());
    // Bandwidth: the median heuristic on training vs test images (fixed for every model).
    let (floor, h) =
        zoo_mcmc::diagnostics::mmd2_rbf(&data.train[..m * d], &data.test[..m * d], d, None)?;
    let (mmd, _) =
        zoo_mcmc::diagnostics::mmd2_rbf(&samples[..m * d], &data.test[..m * d], d, Some(h))?;
    let classifier = DigitClassifier::shared()?;
    Ok(SampleScores {
        mmd2: Some(mmd),
        mmd2_floor: Some(floor),
        features: Some(classifier.scores(&data.test[..m * d], &samples[..m * d])?),
        features_floor: Some(classifier.scores(&data.test[..m * d], &data.train[..m * d])?),
        ..SampleScores::default()
    })
}

/// Exact 2-D density metrics of an energy (grid quadrature of its log Z): held-out NLL with its
/// s.e., density TV, and the normalised density on the grid.
#[derive(Debug)]
pub struct DensityScores {
    /// NLL (nats).
    pub nll: f64,
    /// Its s.e.
    pub nll_se: f64,
    /// TV by quadrature.
    pub tv: f64,
    /// The model's density on the quadrature grid (for the heat map).
    pub grid_density: Vec<f64>,
}

/// [`DensityScores`] of `energy` on a 2-D set (`None` on digits).
pub fn score_density(
    data: &Prepared,
    energy: &dyn Energy,
    device: &Device,
) -> Result<Option<DensityScores>> {
    let Some(truth) = &data.truth else {
        return Ok(None);
    };
    let m = evaluate(energy, &truth.density, &data.test, truth.grid, device)?;
    Ok(Some(DensityScores {
        nll: m.nll,
        nll_se: m.nll_se,
        tv: m.tv,
        grid_density: m.density.densities(),
    }))
}
