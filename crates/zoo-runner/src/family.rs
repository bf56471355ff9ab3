//! Each family behind the same two calls: [`train`] (returns the checkpoint as named burnpack
//! buffers and the training curve) and [`evaluate`] (rebuilds the model from those buffers and
//! scores every sampler). Evaluation always starts from the checkpoint bytes, so a run resumed
//! after a kill scores exactly what an uninterrupted run scores.

use crate::config::{Plan, RunConfig};
use crate::data::Prepared;
use crate::error::{Error, Result};
use crate::families::FamilyRun;
use burn::module::Module;
use burn::prelude::*;
use zoo_energy::ZooRng;
use zoo_energy::rng::seeded;
use zoo_energy::tensor::from_host2;
use zoo_mcmc::sampler::InitDistribution;

/// A checkpoint: named burnpack (or JSON) buffers.
pub(crate) type Files = Vec<(String, Vec<u8>)>;

/// A training curve: column names (the first is the iteration) and one row per step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Curve {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Curve {
    pub(crate) fn from_series(series: &[(&str, &[f64])]) -> Self {
        let mut columns = vec!["iteration".to_string()];
        columns.extend(series.iter().map(|(n, _)| n.to_string()));
        let len = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let rows = (0..len)
            .map(|i| {
                let mut r = vec![(i + 1) as f64];
                r.extend(
                    series
                        .iter()
                        .map(|(_, v)| v.get(i).copied().unwrap_or(f64::NAN)),
                );
                r
            })
            .collect();
        Curve { columns, rows }
    }
}

/// What [`train`] returns.
pub(crate) struct Trained {
    pub files: Files,
    pub curve: Curve,
    pub seconds: f64,
    /// The iteration training resumed from (0: started afresh).
    pub resumed_from: usize,
}

pub(crate) fn module_bytes<M: Module>(m: &M) -> Result<Vec<u8>> {
    zoo_train::module_bytes(m).map_err(|message| Error::Corrupt {
        path: "checkpoint".into(),
        message,
    })
}

pub(crate) fn load_module<M: Module>(init: M, files: &Files, name: &str) -> Result<M> {
    let corrupt = |message: String| Error::Corrupt {
        path: name.into(),
        message,
    };
    let (_, bytes) = files
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| corrupt("missing from the checkpoint".into()))?;
    zoo_train::load_module(init, bytes).map_err(corrupt)
}

/// The box the chains of a set start in: the set's bounds in 2-D, (-1, 1) for digits.
pub(crate) fn init_box(data: &Prepared) -> InitDistribution {
    let (low, high) = data
        .truth
        .as_ref()
        .map_or((-1.0, 1.0), |t| t.density.bounds());
    InitDistribution::Uniform { low, high }
}

/// What every family's trainer receives: the data and the device, the checkpoint to resume
/// from, and the two generators (model init, training).
pub(crate) struct Ctx<'a> {
    pub data: &'a Prepared,
    pub device: &'a Device,
    pub ad: Device,
    pub progress: bool,
    pub resume: zoo_train::Resume,
    pub init_rng: ZooRng,
    pub rng: ZooRng,
}

impl Ctx<'_> {
    /// The training points as a `[n, dim]` tensor on the plain device.
    pub fn train_tensor(&self) -> Tensor<2> {
        let (n, d) = (self.data.n_train(), self.data.dim);
        from_host2(self.data.train.clone(), [n, d], self.device)
    }
}

/// Trains `cfg` for `seed`. Model init draws from `seeded(seed)`, training from
/// `seeded(seed + 1)`; `resume` is the run's training checkpoint.
pub(crate) fn train(
    cfg: &RunConfig,
    data: &Prepared,
    seed: u64,
    device: &Device,
    progress: bool,
    resume: zoo_train::Resume,
) -> Result<Trained> {
    let mut ctx = Ctx {
        data,
        device,
        ad: device.clone().autodiff(),
        progress,
        resume,
        init_rng: seeded(seed),
        rng: seeded(seed + 1),
    };
    match &cfg.plan {
        Plan::Ebm(p) => p.train(&mut ctx),
        Plan::Flow(p) => p.train(&mut ctx),
        Plan::Diffusion(p) => p.train(&mut ctx),
        Plan::Gan(p) => p.train(&mut ctx),
        Plan::Vae(p) => p.train(&mut ctx),
    }
}
