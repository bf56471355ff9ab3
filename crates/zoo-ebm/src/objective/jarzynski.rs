//! Jarzynski-weighted persistent training (Carbone, Hua, Coste & Vanden-Eijnden 2023, NeurIPS,
//! "Efficient training of energy-based models using Jarzynski equality"; review §4.3).
//!
//! Walkers X_i move by one ULA step per parameter update while theta_k -> theta_{k+1}, and carry log
//! weights A_i updated with the same half-increments as the Jarzynski estimator of `zoo-energy`:
//!   A_{k+1} = A_k + a_k(X_k, X_{k+1}) - a_{k+1}(X_{k+1}, X_k),
//!   a_k(x, y) = U_k(x) + (y - x)·∇U_k(x)/2 + h |∇U_k(x)|^2 / 4,
//! so that sum_i w_i f(X_i) with w = softmax(A) is an unbiased-in-the-limit estimate of E_theta_k[f]
//! whatever the step size and however fast theta moves. The negative phase is this weighted
//! average; walkers are resampled (multinomial) when the weights' ESS falls below a fraction of N;
//! log Z_theta_k = log Z_0 + log mean exp(A) and the cross-entropy mean E(data) + log Z come out as
//! by-products.
//!
//! Initial walkers are drawn from a Gaussian q with A_0 = -U_0(X) - log q(X) (importance weights,
//! exact for any initial model, log Z_0 absorbed), or given by the caller as exact samples of the
//! initial model with A_0 = 0 and its known log Z_0.

use super::{Contrast, Loss, Objective, Report, gather_rows};
use crate::model::EnergyModel;
use burn::prelude::*;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{check_finite, from_host1, from_host2, row_sq_norm, to_host1};
use zoo_energy::{Error, Result, ZooRng, check_positive};
use zoo_mcmc::ChainState;
use zoo_mcmc::estimate::{ess, jarzynski_increment, log_mean_exp, multinomial};
use zoo_mcmc::sampler::langevin_move;
use zoo_train::Checkpoint;

/// Where the walkers start.
#[derive(Debug, Clone)]
enum Start {
    /// N(mean, std^2 I), importance-weighted to the initial model.
    Gaussian { mean: Vec<f64>, std: f64 },
    /// Exact samples of the initial model and its log Z.
    Exact { walkers: Tensor<2>, log_z: f64 },
}

#[derive(Debug, Clone)]
struct Walkers {
    /// Positions with U and its score under the current parameters.
    chains: ChainState,
    log_w: Vec<f64>,
}

/// Jarzynski-weighted PCD.
#[derive(Debug, Clone)]
pub struct JarzynskiPcd {
    walkers: usize,
    step_size: f64,
    steps_per_update: usize,
    resample_below: f64,
    energy_penalty: f64,
    start: Start,
    log_z0: f64,
    state: Option<Walkers>,
    /// Resampling events so far.
    pub resamplings: usize,
}

impl JarzynskiPcd {
    /// `walkers` walkers moved by ULA with `step_size`, started from N(mean, std^2 I) with importance
    /// weights, resampled when ESS / N < `resample_below` (0 disables resampling; 1 resamples every
    /// step).
    pub fn new(
        walkers: usize,
        step_size: f64,
        resample_below: f64,
        mean: Vec<f64>,
        std: f64,
    ) -> Result<Self> {
        if walkers < 2 {
            return Err(Error::invalid(
                "walkers",
                format!("need >= 2, got {walkers}"),
            ));
        }
        check_positive("step_size", step_size)?;
        check_positive("std", std)?;
        if !(0.0..=1.0).contains(&resample_below) {
            return Err(Error::invalid(
                "resample_below",
                format!("must lie in [0, 1], got {resample_below}"),
            ));
        }
        Ok(Self {
            walkers,
            step_size,
            steps_per_update: 1,
            resample_below,
            energy_penalty: 0.0,
            start: Start::Gaussian { mean, std },
            log_z0: 0.0,
            state: None,
            resamplings: 0,
        })
    }

    /// Starts from exact samples `[walkers, d]` of the initial model, whose log Z is `log_z`.
    pub fn with_exact_start(mut self, walkers: Tensor<2>, log_z: f64) -> Result<Self> {
        check_finite("initial walkers", &walkers)?;
        self.walkers = walkers.dims()[0];
        self.start = Start::Exact { walkers, log_z };
        Ok(self)
    }

    /// ULA steps per parameter update (the first moves with theta, the rest at fixed theta); >= 1.
    pub fn with_steps_per_update(mut self, steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::invalid("steps_per_update", "must be >= 1"));
        }
        self.steps_per_update = steps;
        Ok(self)
    }

    /// Adds alpha (E(data)^2 + E(walkers)^2) to the loss; alpha >= 0.
    pub fn with_energy_penalty(mut self, alpha: f64) -> Result<Self> {
        self.energy_penalty = super::check_penalty(alpha)?;
        Ok(self)
    }

    /// The walkers' normalised weights.
    pub fn weights(&self) -> Option<Vec<f64>> {
        self.state.as_ref().map(|s| normalised(&s.log_w))
    }

    /// Current estimate of log Z_theta.
    pub fn log_z(&self) -> Option<f64> {
        self.state
            .as_ref()
            .map(|s| self.log_z0 + log_mean_exp(&s.log_w))
    }

    /// One ULA step of every walker from the cached (U_k, s_k) to `energy` (= U_{k+1}), with the
    /// weight update.
    fn advance(&mut self, rng: &mut ZooRng, energy: &dyn zoo_energy::Energy) -> Result<()> {
        let h = self.step_size;
        let state = self.state.as_mut().expect("started");
        let (y, _) = langevin_move(rng, &state.chains, h);
        let moved = ChainState::at(energy, y);
        let delta = to_host1(&jarzynski_increment(&state.chains, &moved, h));
        if let Some(i) = delta.iter().position(|v| !v.is_finite()) {
            return Err(Error::Divergence {
                step: 1,
                chain: i,
                what: "energy",
                value: delta[i],
                step_size: h,
            });
        }
        for (a, d) in state.log_w.iter_mut().zip(delta) {
            *a += d as f64;
        }
        state.chains = moved;
        Ok(())
    }

    fn maybe_resample(&mut self, rng: &mut ZooRng, device: &Device) {
        let n = self.walkers as f64;
        let state = self.state.as_mut().expect("started");
        if ess(&state.log_w) / n >= self.resample_below {
            return;
        }
        let index = multinomial(rng, &state.log_w);
        let level = log_mean_exp(&state.log_w);
        let c = &mut state.chains;
        let u = to_host1(&c.energy);
        c.position = gather_rows(&c.position, &index, device);
        c.score = gather_rows(&c.score, &index, device);
        c.energy = from_host1(index.iter().map(|&i| u[i]).collect(), device);
        state.log_w = vec![level; index.len()];
        self.resamplings += 1;
    }
}

fn normalised(log_w: &[f64]) -> Vec<f64> {
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|a| (a - m).exp()).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

impl<M: EnergyModel> Objective<M> for JarzynskiPcd {
    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let Some(w) = &self.state else { return Ok(()) };
        checkpoint.put_tensor("walkers.position", &w.chains.position)?;
        checkpoint.put_tensor("walkers.energy", &w.chains.energy)?;
        checkpoint.put_tensor("walkers.score", &w.chains.score)?;
        checkpoint.put_json("walkers.log_w", &w.log_w)
    }

    fn load(&mut self, checkpoint: &Checkpoint, device: &Device) -> Result<()> {
        if !checkpoint.has("walkers.log_w") {
            self.state = None;
            return Ok(());
        }
        let chains = ChainState {
            position: checkpoint.tensor("walkers.position", device)?,
            energy: checkpoint.tensor("walkers.energy", device)?,
            score: checkpoint.tensor("walkers.score", device)?,
        };
        let log_w = checkpoint.json("walkers.log_w")?;
        self.state = Some(Walkers { chains, log_w });
        Ok(())
    }

    fn name(&self) -> String {
        "jarzynski".into()
    }

    /// Draws the walkers; a second call (training resumed) keeps them.
    fn start(&mut self, rng: &mut ZooRng, model: &M, device: &Device) -> Result<()> {
        if self.state.is_some() {
            return Ok(());
        }
        let energy = model.sampling_energy();
        let d = model.dim();
        let (x, log_w, log_z0) = match &self.start {
            Start::Gaussian { mean, std } => {
                if mean.len() != d {
                    return Err(Error::invalid(
                        "mean",
                        format!("walker mean has dimension {}, the model {d}", mean.len()),
                    ));
                }
                let z = normal(rng, [self.walkers, d], device);
                let m: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
                let x = z.clone().mul_scalar(*std) + from_host2(m, [1, d], device);
                // log q(x) = -|z|^2/2 - d log(std sqrt(2 pi))
                let log_q = row_sq_norm(z)
                    .mul_scalar(-0.5)
                    .sub_scalar(d as f64 * (std * (2.0 * std::f64::consts::PI).sqrt()).ln());
                let u = energy.energy(x.clone());
                let log_w = to_host1(&(u.neg() - log_q))
                    .into_iter()
                    .map(f64::from)
                    .collect();
                (x, log_w, 0.0)
            }
            Start::Exact { walkers, log_z } => {
                (walkers.clone(), vec![0.0; walkers.dims()[0]], *log_z)
            }
        };
        if x.dims()[1] != d {
            return Err(Error::Shape {
                what: "initial walkers".into(),
                expected: format!("[n, {d}]"),
                got: x.dims().to_vec(),
            });
        }
        self.log_z0 = log_z0;
        self.state = Some(Walkers {
            chains: ChainState::at(&*energy, x),
            log_w,
        });
        self.maybe_resample(rng, device);
        Ok(())
    }

    fn loss(
        &mut self,
        _rng: &mut ZooRng,
        _model: &M,
        batch: Tensor<2>,
        _device: &Device,
    ) -> Result<(Loss, Report)> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| Error::Config("Jarzynski objective used before start()".into()))?;
        let weights: Vec<f32> = normalised(&state.log_w).iter().map(|&w| w as f32).collect();
        let ess_fraction = ess(&state.log_w) / self.walkers as f64;
        let contrast = Contrast {
            data: batch,
            negatives: state.chains.position.clone(),
            weights: Some(weights),
            alpha: self.energy_penalty,
        };
        let report = Report {
            weight_ess: Some(ess_fraction),
            log_z: self.log_z(),
            ..Report::default()
        };
        Ok((Loss::Contrast(contrast), report))
    }

    fn after_step(&mut self, rng: &mut ZooRng, model: &M, device: &Device) -> Result<()> {
        let energy = model.sampling_energy();
        for _ in 0..self.steps_per_update {
            self.advance(rng, &*energy)?;
        }
        self.maybe_resample(rng, device);
        Ok(())
    }

    fn negatives(&self) -> Option<(Tensor<2>, Option<Vec<f64>>)> {
        self.state
            .as_ref()
            .map(|s| (s.chains.position.clone(), Some(normalised(&s.log_w))))
    }
}
