//! Evaluation: rebuild a run's model from its checkpoint bytes, estimate its NLL, draw from
//! every sampler of the config and score the draws (one table row per sampler). Each family has
//! one function here; the sampler enums are matched exhaustively.

use crate::config::{Plan, RunConfig, SamplerSpec};
use crate::data::{Prepared, bits_per_dim};
use crate::error::Result;
use crate::families::FamilyRun;
use crate::family::Files;
use crate::metrics::{Row, SampleScores, finite, score_density, score_samples};
use burn::prelude::*;
use std::time::Instant;
use zoo_energy::ZooRng;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::{from_host2, to_host2};

/// What [`evaluate`] returns: the rows and the pictures' data.
pub(crate) struct Evaluated {
    pub rows: Vec<Row>,
    /// Per sampler: its label and the samples (`[m, dim]` row-major).
    pub samples: Vec<(String, Vec<f32>)>,
    /// The model's density on the 2-D quadrature grid, when it has one.
    pub density: Option<Vec<f64>>,
}

/// The NLL of one model, shared by its samplers' rows.
pub(crate) struct Nll {
    pub value: Option<f64>,
    pub se: Option<f64>,
    pub unit: &'static str,
    pub estimator: String,
    pub density_tv: Option<f64>,
    pub density: Option<Vec<f64>>,
}

impl Nll {
    pub(crate) fn none() -> Self {
        Nll {
            value: None,
            se: None,
            unit: "nats",
            estimator: "–".into(),
            density_tv: None,
            density: None,
        }
    }

    /// Per-point log-densities of the held-out points (in y-space for digits): the mean NLL in
    /// nats, or in bits per dimension on digits.
    pub(crate) fn from_log_densities(data: &Prepared, log_p: &[f64], estimator: &str) -> Self {
        let digits = data.truth.is_none();
        let per_point: Vec<f64> = log_p
            .iter()
            .map(|l| if digits { bits_per_dim(*l) } else { -l })
            .collect();
        let (value, se) = zoo_data::grid::mean_and_se(&per_point);
        Nll {
            value: finite(value),
            se: finite(se),
            unit: if digits { "bits/dim" } else { "nats" },
            estimator: estimator.into(),
            ..Nll::none()
        }
    }

    /// 2-D: the exact quadrature NLL and density TV of an energy.
    pub(crate) fn of_energy(
        data: &Prepared,
        energy: &dyn zoo_energy::Energy,
        estimator: &str,
        device: &Device,
    ) -> Result<Self> {
        Ok(match score_density(data, energy, device)? {
            Some(s) => Nll {
                value: finite(s.nll),
                se: finite(s.nll_se),
                unit: "nats",
                estimator: estimator.into(),
                density_tv: finite(s.tv),
                density: Some(s.grid_density),
            },
            None => Nll::none(),
        })
    }
}

/// The random stream of sampler `k` of a seed's evaluation: `seed + 2 + 100 k`, apart from the
/// model's init (`seed`), training (`seed + 1`) and the likelihood estimators (`seed + 3`).
fn sampler_stream(seed: u64, k: usize) -> ZooRng {
    seeded(seed + 2 + 100 * k as u64)
}

/// What a family's sampler returns: the samples `[n, d]`, network evaluations per sample, and
/// the chains' mean Metropolis acceptance and neighbour swap rate where it has them.
pub(crate) struct Draw {
    pub x: Tensor<2>,
    pub evals: f64,
    pub acceptance: Option<f64>,
    pub swap_rate: Option<f64>,
}

impl Draw {
    /// Samples that cost `evals` network evaluations each, without chain rates.
    pub fn new(x: Tensor<2>, evals: f64) -> Self {
        Self {
            x,
            evals,
            acceptance: None,
            swap_rate: None,
        }
    }

    /// The same with the chains' acceptance.
    pub fn accepted(self, acceptance: Option<f64>) -> Self {
        Self { acceptance, ..self }
    }
}

/// One sampler's output on the host, with its wall-clock time.
pub(crate) struct Drawn {
    samples: Vec<f32>,
    seconds: f64,
    evals: f64,
    acceptance: Option<f64>,
    swap_rate: Option<f64>,
}

fn timed(f: impl FnOnce() -> Result<Draw>) -> Result<Drawn> {
    let t = Instant::now();
    let d = f()?;
    let samples = to_host2(&d.x);
    Ok(Drawn {
        samples,
        seconds: t.elapsed().as_secs_f64(),
        evals: d.evals,
        acceptance: d.acceptance,
        swap_rate: d.swap_rate,
    })
}

/// What one family's evaluation gives: its parameter count, its NLL and one draw per sampler.
pub(crate) type Scored = (usize, Nll, Vec<Drawn>);

/// What every family's evaluation reads: the config, the checkpoint, the data, the seed.
pub(crate) struct EvalCtx<'a> {
    pub cfg: &'a RunConfig,
    pub files: &'a Files,
    pub data: &'a Prepared,
    pub seed: u64,
    pub device: &'a Device,
    /// The held-out points, `[m, dim]`.
    pub test: Tensor<2>,
}

impl EvalCtx<'_> {
    /// Samples drawn per sampler.
    pub fn n(&self) -> usize {
        self.cfg.eval.samples
    }

    /// Runs `draw` for every sampler of the config, each on its own random stream, timed.
    pub fn draw_each(
        &self,
        mut draw: impl FnMut(&SamplerSpec, &mut ZooRng) -> Result<Draw>,
    ) -> Result<Vec<Drawn>> {
        let mut drawn = Vec::new();
        for (k, s) in self.cfg.samplers.iter().enumerate() {
            let mut rng = sampler_stream(self.seed, k);
            drawn.push(timed(|| draw(s, &mut rng))?);
        }
        Ok(drawn)
    }
}

/// Rebuilds the model of `cfg` from `files` and scores every sampler.
pub(crate) fn evaluate(
    cfg: &RunConfig,
    files: &Files,
    data: &Prepared,
    seed: u64,
    train_seconds: f64,
    device: &Device,
) -> Result<Evaluated> {
    let (m, d) = (data.n_test(), data.dim);
    let ctx = EvalCtx {
        cfg,
        files,
        data,
        seed,
        device,
        test: from_host2(data.test.clone(), [m, d], device),
    };
    let (params, nll, drawn) = match &cfg.plan {
        Plan::Ebm(p) => p.evaluate(&ctx)?,
        Plan::Flow(p) => p.evaluate(&ctx)?,
        Plan::Diffusion(p) => p.evaluate(&ctx)?,
        Plan::Gan(p) => p.evaluate(&ctx)?,
        Plan::Vae(p) => p.evaluate(&ctx)?,
    };
    let common = RowCommon {
        cfg,
        data,
        seed,
        params,
        nll: &nll,
        train_seconds,
    };
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (s, dr) in cfg.samplers.iter().zip(drawn) {
        rows.push(common.row(s, &dr)?);
        samples.push((s.label(), dr.samples));
    }
    Ok(Evaluated {
        rows,
        samples,
        density: nll.density,
    })
}

/// What the rows of one seed share.
struct RowCommon<'a> {
    cfg: &'a RunConfig,
    data: &'a Prepared,
    seed: u64,
    params: usize,
    nll: &'a Nll,
    train_seconds: f64,
}

impl RowCommon<'_> {
    /// The table row of sampler `s` with its draws scored.
    fn row(&self, s: &SamplerSpec, dr: &Drawn) -> Result<Row> {
        let (cfg, nll) = (self.cfg, self.nll);
        let scores: SampleScores = score_samples(self.data, &dr.samples)?;
        Ok(Row {
            config: cfg.name.clone(),
            data: cfg.data.name().into(),
            family: cfg.family.name().into(),
            method: cfg.method.to_string(),
            sampler: s.label(),
            seed: self.seed,
            backend: cfg.backend.name().into(),
            params: self.params,
            nll: nll.value,
            nll_se: nll.se,
            nll_unit: nll.unit.into(),
            nll_estimator: nll.estimator.clone(),
            true_nll: self.data.truth.as_ref().map(|t| t.true_nll),
            density_tv: nll.density_tv,
            sample_tv: scores.tv,
            sample_tv_floor: scores.tv_floor,
            modes_covered: scores.modes_covered,
            modes: scores.modes,
            mode_weight_error: scores.mode_weight_error,
            high_quality: scores.high_quality,
            mmd2: scores.mmd2,
            mmd2_floor: scores.mmd2_floor,
            fd: scores.features.map(|f| f.fd),
            fd_floor: scores.features_floor.map(|f| f.fd),
            precision: scores.features.map(|f| f.precision),
            recall: scores.features.map(|f| f.recall),
            evals_per_sample: dr.evals,
            acceptance: dr.acceptance,
            swap_rate: dr.swap_rate,
            train_seconds: self.train_seconds,
            ms_per_1000_samples: dr.seconds * 1e6 / cfg.eval.samples as f64,
        })
    }
}

/// A sampler of another family: the config parser rules it out, so this is a bug if reached.
pub(crate) fn not_for(s: &SamplerSpec, what: &str) -> crate::error::Error {
    let why = format!("{} is not a sampler of {what}", s.kind.name());
    zoo_energy::Error::invalid("sampler", why).into()
}
