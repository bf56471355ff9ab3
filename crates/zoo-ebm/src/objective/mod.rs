//! Training objectives (review §4): one interface, used by one training loop ([`crate::train`]).
//!
//! An objective turns a data minibatch into a scalar loss whose gradient in theta (one backward
//! pass) is the estimator of the method, and reports live diagnostics. Negative samples always come
//! from the shared samplers of `zoo-energy`; no objective samples on its own.

mod jarzynski;
mod ml;
mod nce;
pub mod score;
mod tempered;

pub use jarzynski::JarzynskiPcd;
pub use ml::{ChainStart, MaximumLikelihood};
pub use nce::Nce;
pub use score::{DenoisingScoreMatching, SlicedScoreMatching};
pub use tempered::TemperedPcd;

use crate::model::EnergyModel;
use burn::prelude::*;
use burn::tensor::Gradients;
use serde::{Deserialize, Serialize};
use zoo_energy::tensor::{from_host1, to_host1, to_host2};
use zoo_energy::{Energy, Error, Result, ZooRng};
use zoo_mcmc::diagnostics::effective_sample_size;
use zoo_train::Checkpoint;

/// Diagnostics of one training iteration (`None` where the method has no such quantity).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Mean energy of the data minibatch.
    pub energy_data: f64,
    /// Mean (or weighted mean) energy of the negative samples.
    pub energy_negative: Option<f64>,
    /// Mean Metropolis acceptance of the negative chains.
    pub acceptance: Option<f64>,
    /// Effective sample size of the Jarzynski weights, as a fraction of the walkers.
    pub weight_ess: Option<f64>,
    /// Effective sample size of the negative chains' energy traces (all chains together).
    pub chain_ess: Option<f64>,
    /// Running estimate of log Z_theta (Jarzynski, NCE).
    pub log_z: Option<f64>,
    /// Running estimate of the cross-entropy mean E(data) + log Z (Jarzynski).
    pub cross_entropy: Option<f64>,
    /// Mean exchange probability of neighbouring replicas (PT-CD).
    #[serde(default)]
    pub swap_rate: Option<f64>,
}

/// The objectives by name (`method = "..."` in run configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Contrastive divergence CD-k ([`MaximumLikelihood`] from the data).
    Cd,
    /// Persistent chains with a replay buffer ([`MaximumLikelihood`]).
    Pcd,
    /// Short-run MCMC from noise ([`MaximumLikelihood`]).
    ShortRun,
    /// Jarzynski-weighted PCD ([`JarzynskiPcd`]).
    Jarzynski,
    /// Persistent parallel-tempering negatives ([`TemperedPcd`]).
    PtCd,
    /// Noise-contrastive estimation ([`Nce`]).
    Nce,
    /// Denoising score matching ([`DenoisingScoreMatching`]).
    Dsm,
    /// Finite-difference sliced score matching ([`SlicedScoreMatching`]).
    Ssm,
}

impl ObjectiveKind {
    /// Every objective, in the order of the docs.
    pub const ALL: [ObjectiveKind; 8] = [
        ObjectiveKind::Cd,
        ObjectiveKind::Pcd,
        ObjectiveKind::ShortRun,
        ObjectiveKind::Jarzynski,
        ObjectiveKind::PtCd,
        ObjectiveKind::Nce,
        ObjectiveKind::Dsm,
        ObjectiveKind::Ssm,
    ];

    /// The name used in configs and tables (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Cd => "cd",
            ObjectiveKind::Pcd => "pcd",
            ObjectiveKind::ShortRun => "short_run",
            ObjectiveKind::Jarzynski => "jarzynski",
            ObjectiveKind::PtCd => "pt_cd",
            ObjectiveKind::Nce => "nce",
            ObjectiveKind::Dsm => "dsm",
            ObjectiveKind::Ssm => "ssm",
        }
    }
}

/// A training objective for models of type `M`.
pub trait Objective<M: EnergyModel> {
    /// A short name (`cd-1`, `pcd`, `jarzynski`, ...).
    fn name(&self) -> String;

    /// Called once before training with the initial model and the training data.
    fn start(&mut self, _rng: &mut ZooRng, _model: &M, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// The loss on a minibatch `[n, d]` (plain device), and the iteration's diagnostics (for a
    /// [`Loss::Contrast`] the trainer fills in the two mean energies).
    fn loss(
        &mut self,
        rng: &mut ZooRng,
        model: &M,
        batch: Tensor<2>,
        device: &Device,
    ) -> Result<(Loss, Report)>;

    /// Sees the gradients before the optimiser step (for parameters the objective owns itself,
    /// such as NCE's log-normaliser).
    fn apply_gradients(&mut self, _gradients: &Gradients, _learning_rate: f64) {}

    /// Called after every optimiser step with the updated model (Jarzynski's weight update).
    fn after_step(&mut self, _rng: &mut ZooRng, _model: &M, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// Writes the objective's state (chains, buffers, walkers and weights, own parameters) into
    /// a training checkpoint; stateless objectives write nothing.
    fn save(&self, _checkpoint: &mut Checkpoint) -> Result<()> {
        Ok(())
    }

    /// Sets the state to what [`Objective::save`] wrote (tensors onto `device`).
    fn load(&mut self, _checkpoint: &Checkpoint, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// The current negative samples with their normalised weights, if the method keeps any.
    fn negatives(&self) -> Option<(Tensor<2>, Option<Vec<f64>>)> {
        None
    }
}

/// What an objective hands the trainer for one step.
#[derive(Debug)]
pub enum Loss {
    /// A `[1]` loss tensor tracked in the model's parameters: burn's autodiff gives its gradient.
    Tensor(Tensor<1>),
    /// The maximum-likelihood estimator with negatives ([`Contrast`]): the trainer differentiates
    /// it, with the model's written-out host gradient where it has one
    /// ([`EnergyModel::contrast_gradients`]), by autodiff otherwise.
    Contrast(Contrast),
}

/// The contrastive loss of maximum likelihood with negatives (review §4.1)
///
/// L = mean_data E - sum_i w_i E(neg_i) + alpha (mean_data E^2 + mean_neg E^2),
///
/// w_i = 1/m unless weights are given (Jarzynski's normalised weights). The gradient of the first
/// two terms is the maximum-likelihood gradient E_data[grad E] - E_model[grad E]; the last is the
/// energy-magnitude penalty of Du & Mordatch (2019).
#[derive(Debug, Clone)]
pub struct Contrast {
    /// The data minibatch `[n, d]` (plain device).
    pub data: Tensor<2>,
    /// The negative samples `[m, d]` (plain device).
    pub negatives: Tensor<2>,
    /// Normalised weights of the negatives (sum 1); `None`: the plain mean.
    pub weights: Option<Vec<f32>>,
    /// alpha of the energy penalty.
    pub alpha: f64,
}

/// A differentiated [`Contrast`]: the loss, mean E(data), the (weighted) mean E(negatives) and the
/// parameter gradients, ready for the optimiser.
#[derive(Debug)]
pub struct ContrastStep {
    /// The loss L.
    pub loss: f64,
    /// mean E(data).
    pub energy_data: f64,
    /// sum_i w_i E(neg_i).
    pub energy_negative: f64,
    /// dL/dtheta of every parameter of the model.
    pub gradients: burn::optim::GradientsParams,
}

impl Contrast {
    /// Checks that data and negatives have the same width and that the weights, if any, are one
    /// per negative.
    pub fn check(&self) -> Result<()> {
        let ([_, d], [m, e]) = (self.data.dims(), self.negatives.dims());
        if d != e {
            return Err(Error::Shape {
                what: "negatives".into(),
                expected: format!("[m, {d}]"),
                got: vec![m, e],
            });
        }
        match &self.weights {
            Some(w) if w.len() != m => Err(Error::Shape {
                what: "negative weights".into(),
                expected: format!("[{m}]"),
                got: vec![w.len()],
            }),
            _ => Ok(()),
        }
    }

    /// The loss as a tensor tracked in `model`'s parameters, with mean E(data) and the (weighted)
    /// mean E(negatives) on the host.
    pub fn loss<M: EnergyModel>(&self, model: &M) -> (Tensor<1>, f64, f64) {
        let e_data = model.energy(self.data.clone());
        let e_neg = model.energy(self.negatives.clone());
        let host_data = mean(&to_host1(&e_data));
        let host_neg = to_host1(&e_neg);
        let (negative, neg_term) = match &self.weights {
            Some(w) => {
                let device = e_neg.device();
                let sum = w.iter().zip(&host_neg).map(|(w, e)| f64::from(w * e)).sum();
                (sum, (e_neg.clone() * from_host1(w.clone(), &device)).sum())
            }
            None => (mean(&host_neg), e_neg.clone().mean()),
        };
        let mut loss = e_data.clone().mean() - neg_term;
        if self.alpha > 0.0 {
            loss = loss + (e_data.square().mean() + e_neg.square().mean()).mul_scalar(self.alpha);
        }
        (loss, host_data, negative)
    }

    /// The θ-gradient by burn's autodiff (the path for every model and device).
    pub fn autodiff<M: EnergyModel>(&self, model: &M) -> ContrastStep {
        let (loss, energy_data, energy_negative) = self.loss(model);
        let value = f64::from(to_host1(&loss)[0]);
        let gradients = burn::optim::GradientsParams::from_grads(loss.backward(), model);
        ContrastStep {
            loss: value,
            energy_data,
            energy_negative,
            gradients,
        }
    }
}

/// Validates an energy-penalty weight alpha >= 0.
pub(crate) fn check_penalty(alpha: f64) -> Result<f64> {
    if alpha.is_finite() && alpha >= 0.0 {
        Ok(alpha)
    } else {
        Err(Error::invalid(
            "energy_penalty",
            format!("must be >= 0, got {alpha}"),
        ))
    }
}

pub(crate) fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

/// What a run of negative chains produced.
pub(crate) struct ChainRun {
    pub position: Tensor<2>,
    pub acceptance: Option<f64>,
    pub ess: Option<f64>,
}

/// Runs `steps` transitions of `sampler` from `start`; returns the final positions, the mean
/// acceptance and the ESS of the energy traces (when `steps >= 4`). Energies and acceptance stay on
/// the device during the run and come to the host once at the end, where every energy is checked:
/// the first NaN/inf is reported with its MCMC step and chain.
pub(crate) fn run_chains<S: zoo_mcmc::sampler::ChainKernel>(
    rng: &mut ZooRng,
    sampler: &S,
    energy: &dyn Energy,
    start: Tensor<2>,
    steps: usize,
) -> Result<ChainRun> {
    let mut state = sampler.init(energy, start)?;
    let n = state.chains();
    let mut trace = Vec::with_capacity(steps);
    let mut acceptance: Option<Tensor<1>> = None;
    let mut step_size = sampler.step_size();
    for _ in 0..steps {
        let (next, info) = sampler.step(rng, energy, state)?;
        state = next;
        step_size = info.step_size;
        trace.push(state.energy.clone());
        if let Some(p) = info.acceptance_probability {
            let m = p.mean();
            acceptance = Some(acceptance.map_or(m.clone(), |a| a + m));
        }
    }
    // [steps, n] row-major: step-major energies, one host copy.
    let host = to_host2(&Tensor::stack::<2>(trace, 0));
    if let Some(i) = host.iter().position(|v| !v.is_finite()) {
        return Err(Error::Divergence {
            step: i / n + 1,
            chain: i % n,
            what: "energy",
            value: host[i],
            step_size,
        });
    }
    let ess = (steps >= 4).then(|| {
        let chains: Vec<Vec<f64>> = (0..n)
            .map(|c| (0..steps).map(|t| host[t * n + c] as f64).collect())
            .collect();
        effective_sample_size(&chains)
    });
    Ok(ChainRun {
        position: state.position,
        acceptance: acceptance.map(|a| to_host1(&a)[0] as f64 / steps as f64),
        ess,
    })
}

/// The `[n, d]` rows of `x` listed in `index` (host gather).
pub(crate) fn gather_rows(x: &Tensor<2>, index: &[usize], device: &Device) -> Tensor<2> {
    let [_, d] = x.dims();
    let host = to_host2(x);
    let rows: Vec<f32> = index
        .iter()
        .flat_map(|&i| host[i * d..(i + 1) * d].iter().copied())
        .collect();
    zoo_energy::tensor::from_host2(rows, [index.len(), d], device)
}
