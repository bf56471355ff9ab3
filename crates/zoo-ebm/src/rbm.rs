//! Bernoulli-Bernoulli restricted Boltzmann machine (Smolensky 1986; Hinton 2002; review §2.3 and
//! §4.1): E(v, h) = -b·v - c·h - v^T W h on {0,1}^nv x {0,1}^nh, trained by CD-k or PCD with block
//! Gibbs sampling, with the exact log-likelihood by summing over the hidden units (nh <= 24) and an
//! AIS estimate of log Z (Salakhutdinov & Murray 2008) for larger models.
//!
//! Sizes here are small (64 visible units, tens of hidden units), so the RBM runs on the host in
//! float64 with rayon: the exact references are then exact to machine precision.

use rand::RngExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal_vec;
use zoo_energy::{Error, Result, ZooRng, check_positive};
use zoo_mcmc::estimate::{
    AnnealPath, AnnealedPopulation, LogZEstimate, check_groups, log_sum_exp, resample_rows,
    run_annealing,
};
use zoo_train::{Checkpoint, LoopConfig, Resume, Trainable};

/// Hidden units up to which [`Rbm::log_z_exact`] enumerates.
pub const MAX_EXACT_HIDDEN: usize = 24;

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A binary RBM.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rbm {
    visible: usize,
    hidden: usize,
    /// Weights, row-major `[visible, hidden]`.
    pub weights: Vec<f64>,
    /// Visible biases b.
    pub visible_bias: Vec<f64>,
    /// Hidden biases c.
    pub hidden_bias: Vec<f64>,
}

/// How the negative phase is sampled.
#[derive(Debug, Clone, PartialEq)]
pub enum RbmTraining {
    /// CD-k: k block-Gibbs sweeps from the minibatch.
    Cd(usize),
    /// PCD: persistent chains, k sweeps per update.
    Pcd {
        /// Sweeps per update.
        sweeps: usize,
        /// Number of persistent chains.
        count: usize,
        /// The persistent visible states, row-major `[chains, visible]` (filled on first use).
        chains: Vec<f64>,
    },
}

impl RbmTraining {
    /// A short name.
    pub fn name(&self) -> String {
        match self {
            RbmTraining::Cd(k) => format!("cd-{k}"),
            RbmTraining::Pcd { .. } => "pcd".into(),
        }
    }
}

/// Validates binary data `[n, visible]`.
pub fn check_binary(data: &[f64], visible: usize) -> Result<usize> {
    if visible == 0 || data.is_empty() || !data.len().is_multiple_of(visible) {
        return Err(Error::Shape {
            what: "binary data".into(),
            expected: format!("[n >= 1, {visible}]"),
            got: vec![data.len()],
        });
    }
    if let Some(i) = data.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(Error::invalid(
            "data",
            format!(
                "RBM data must be 0/1; value {} at row {}, column {}",
                data[i],
                i / visible,
                i % visible
            ),
        ));
    }
    Ok(data.len() / visible)
}

impl Rbm {
    /// An RBM with W ~ N(0, 0.01^2), c = 0, and b = logit of the data's pixel means (Hinton's
    /// practical guide, §8) when `data` is given.
    pub fn new(
        rng: &mut ZooRng,
        visible: usize,
        hidden: usize,
        data: Option<&[f64]>,
    ) -> Result<Self> {
        if visible == 0 || hidden == 0 {
            return Err(Error::invalid(
                "hidden",
                "visible and hidden sizes must be >= 1",
            ));
        }
        let weights = normal_vec(rng, visible * hidden)
            .into_iter()
            .map(|z| 0.01 * z as f64)
            .collect();
        let visible_bias = match data {
            Some(d) => base_rate_bias(d, visible)?,
            None => vec![0.0; visible],
        };
        Ok(Self {
            visible,
            hidden,
            weights,
            visible_bias,
            hidden_bias: vec![0.0; hidden],
        })
    }

    /// Number of visible units.
    pub fn visible(&self) -> usize {
        self.visible
    }

    /// Number of hidden units.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// c_j + sum_i v_i W_ij, scaled by `beta`.
    fn hidden_input(&self, v: &[f64], j: usize) -> f64 {
        self.hidden_bias[j]
            + (0..self.visible)
                .map(|i| v[i] * self.weights[i * self.hidden + j])
                .sum::<f64>()
    }

    fn visible_input(&self, h: &[f64], i: usize) -> f64 {
        self.visible_bias[i]
            + (0..self.hidden)
                .map(|j| h[j] * self.weights[i * self.hidden + j])
                .sum::<f64>()
    }

    /// Free energy F(v) = -b·v - sum_j softplus(c_j + v·W_j), so p(v) = exp(-F(v)) / Z.
    pub fn free_energy(&self, v: &[f64]) -> f64 {
        let bv: f64 = v.iter().zip(&self.visible_bias).map(|(a, b)| a * b).sum();
        -bv - (0..self.hidden)
            .map(|j| softplus(self.hidden_input(v, j)))
            .sum::<f64>()
    }

    /// Exact log Z by summing over the 2^hidden hidden states:
    /// log Z = log sum_h exp(c·h + sum_i softplus(b_i + (W h)_i)).
    pub fn log_z_exact(&self) -> Result<f64> {
        if self.hidden > MAX_EXACT_HIDDEN {
            return Err(Error::invalid(
                "hidden",
                format!(
                    "exact log Z enumerates 2^hidden states: at most {MAX_EXACT_HIDDEN} hidden units, got {}; use ais_log_z",
                    self.hidden
                ),
            ));
        }
        let terms: Vec<f64> = (0..1usize << self.hidden)
            .into_par_iter()
            .map(|code| {
                let h: Vec<f64> = (0..self.hidden).map(|j| ((code >> j) & 1) as f64).collect();
                let ch: f64 = h.iter().zip(&self.hidden_bias).map(|(a, c)| a * c).sum();
                ch + (0..self.visible)
                    .map(|i| softplus(self.visible_input(&h, i)))
                    .sum::<f64>()
            })
            .collect();
        Ok(log_sum_exp(&terms))
    }

    /// Mean log-likelihood of binary `data` `[n, visible]` given log Z.
    pub fn mean_log_likelihood(&self, data: &[f64], log_z: f64) -> Result<f64> {
        let n = check_binary(data, self.visible)?;
        let total: f64 = data
            .par_chunks(self.visible)
            .map(|v| -self.free_energy(v))
            .sum();
        Ok(total / n as f64 - log_z)
    }

    /// One block-Gibbs sweep v -> h -> v' at inverse temperature `beta` of the path from the base
    /// rate model (b_base, W = 0, c = 0) to this RBM; `beta = 1` is the RBM itself.
    fn sweep(&self, rng: &mut ZooRng, v: &mut [f64], beta: f64, base: &[f64]) -> Vec<f64> {
        let h: Vec<f64> = (0..self.hidden)
            .map(|j| {
                let p = sigmoid(beta * self.hidden_input(v, j));
                if rng.random::<f64>() < p { 1.0 } else { 0.0 }
            })
            .collect();
        for i in 0..self.visible {
            let x = (1.0 - beta) * base[i] + beta * self.visible_input(&h, i);
            v[i] = if rng.random::<f64>() < sigmoid(x) {
                1.0
            } else {
                0.0
            };
        }
        h
    }

    /// The negative samples of a minibatch: CD-k chains started at the `positives`, or the
    /// persistent chains of PCD advanced by their sweeps.
    fn negatives(
        &self,
        rng: &mut ZooRng,
        positives: &[&[f64]],
        method: &mut RbmTraining,
    ) -> Vec<Vec<f64>> {
        let nv = self.visible;
        let zero = vec![0.0; nv];
        match method {
            RbmTraining::Cd(k) => positives
                .iter()
                .map(|v| {
                    let mut x = v.to_vec();
                    for _ in 0..*k {
                        self.sweep(rng, &mut x, 1.0, &zero);
                    }
                    x
                })
                .collect(),
            RbmTraining::Pcd { sweeps, chains, .. } => {
                for x in chains.chunks_mut(nv) {
                    for _ in 0..*sweeps {
                        self.sweep(rng, x, 1.0, &zero);
                    }
                }
                chains.chunks(nv).map(|x| x.to_vec()).collect()
            }
        }
    }

    /// The averages <v_i p(h_j | v)>, <v_i>, <p(h_j | v)> over `vs` (weights, visible and
    /// hidden biases).
    fn statistics(&self, vs: &[&[f64]]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (nv, nh) = (self.visible, self.hidden);
        let count = vs.len() as f64;
        let mut gw = vec![0.0; nv * nh];
        let mut gb = vec![0.0; nv];
        let mut gc = vec![0.0; nh];
        for v in vs {
            let ph: Vec<f64> = (0..nh).map(|j| sigmoid(self.hidden_input(v, j))).collect();
            for i in 0..nv {
                if v[i] != 0.0 {
                    gb[i] += 1.0 / count;
                    for j in 0..nh {
                        gw[i * nh + j] += ph[j] / count;
                    }
                }
            }
            for j in 0..nh {
                gc[j] += ph[j] / count;
            }
        }
        (gw, gb, gc)
    }

    /// One epoch of minibatch SGD on binary `data` `[n, visible]` (shuffled by `rng`) with learning
    /// rate `lr`: grad = <v p(h|v)>_data - <v p(h|v)>_negatives.
    pub fn train_epoch(
        &mut self,
        rng: &mut ZooRng,
        data: &[f64],
        method: &mut RbmTraining,
        lr: f64,
        batch: usize,
    ) -> Result<()> {
        let n = check_binary(data, self.visible)?;
        check_positive("learning_rate", lr)?;
        if batch == 0 {
            return Err(Error::invalid("batch_size", "must be >= 1"));
        }
        let (nv, nh) = (self.visible, self.hidden);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        if let RbmTraining::Pcd { chains, count, .. } = method
            && chains.is_empty()
        {
            if *count == 0 {
                return Err(Error::invalid("chains", "PCD needs >= 1 persistent chain"));
            }
            *chains = (0..*count * nv)
                .map(|k| data[order[(k / nv) % n] * nv + k % nv])
                .collect();
        }
        for rows in order.chunks(batch) {
            let positives: Vec<&[f64]> =
                rows.iter().map(|&r| &data[r * nv..(r + 1) * nv]).collect();
            let negatives = self.negatives(rng, &positives, method);
            let (pw, pb, pc) = self.statistics(&positives);
            let negatives: Vec<&[f64]> = negatives.iter().map(|v| v.as_slice()).collect();
            let (nw, nb, nc) = self.statistics(&negatives);
            for k in 0..nv * nh {
                self.weights[k] += lr * (pw[k] - nw[k]);
            }
            for i in 0..nv {
                self.visible_bias[i] += lr * (pb[i] - nb[i]);
            }
            for j in 0..nh {
                self.hidden_bias[j] += lr * (pc[j] - nc[j]);
            }
        }
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::TrainingDiverged {
                iteration: 0,
                what: "RBM weight".into(),
                value: f64::NAN,
                last_good: 0,
            });
        }
        Ok(())
    }

    /// Trains for `cfg.epochs` epochs of [`Rbm::train_epoch`] through the one training loop
    /// ([`zoo_train::train`], one iteration per epoch): a non-finite weight restores the RBM,
    /// the persistent chains and the generator to the last snapshot; `cfg.resume` makes the run
    /// resumable. Returns the seconds spent.
    pub fn fit(
        &mut self,
        rng: &mut ZooRng,
        data: &[f64],
        method: &mut RbmTraining,
        cfg: &RbmTrainConfig,
    ) -> Result<f64> {
        check_binary(data, self.visible)?;
        let loop_cfg = LoopConfig {
            iterations: cfg.epochs,
            snapshot_every: cfg.snapshot_every,
            resume: cfg.resume.clone(),
            progress: cfg.progress,
            label: method.name(),
        };
        let mut run = RbmRun {
            rbm: self.clone(),
            method: method.clone(),
            data,
            cfg,
        };
        let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
        (*self, *method) = (run.rbm, run.method);
        Ok(outcome?.seconds)
    }

    /// AIS estimate of log Z (Salakhutdinov & Murray 2008): from the base-rate model
    /// p_0(v) ∝ exp(b_base·v) (exact log Z_0 = sum softplus(b_base) + nh log 2) along
    /// log p*_beta(v) = (1 - beta) b_base·v + beta b·v + sum_j softplus(beta (c_j + v·W_j)),
    /// one block-Gibbs sweep per level; `groups` independent groups give the standard error.
    pub fn ais_log_z(
        &self,
        rng: &mut ZooRng,
        base_bias: &[f64],
        levels: usize,
        particles: usize,
        groups: usize,
    ) -> Result<LogZEstimate> {
        if base_bias.len() != self.visible {
            return Err(Error::invalid(
                "base_bias",
                "needs one bias per visible unit",
            ));
        }
        if levels < 2 {
            return Err(Error::invalid("levels", "need >= 2 annealing levels"));
        }
        let per_group = check_groups(particles, groups)?;
        let n = per_group * groups;
        let log_z0 = base_bias.iter().map(|&b| softplus(b)).sum::<f64>()
            + self.hidden as f64 * std::f64::consts::LN_2;
        let visible: Vec<f64> = (0..n * self.visible)
            .map(|k| {
                let b = base_bias[k % self.visible];
                f64::from(u8::from(rng.random::<f64>() < sigmoid(b)))
            })
            .collect();
        let betas: Vec<f64> = (1..=levels).map(|k| k as f64 / levels as f64).collect();
        let path = AnnealPath {
            betas: &betas,
            groups,
            resample_threshold: None,
            log_z0,
        };
        let mut chains = RbmChains {
            rbm: self,
            base_bias,
            visible,
        };
        run_annealing(rng, &mut chains, &path)
    }
}

/// Visible biases log(p / (1 - p)) of the pixel means, clamped to p in [1e-3, 1 - 1e-3].
pub fn base_rate_bias(data: &[f64], visible: usize) -> Result<Vec<f64>> {
    let n = check_binary(data, visible)? as f64;
    Ok((0..visible)
        .map(|i| {
            let p = (data.iter().skip(i).step_by(visible).sum::<f64>() / n).clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        })
        .collect())
}

/// Settings of [`Rbm::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct RbmTrainConfig {
    /// Epochs (passes over the shuffled data).
    pub epochs: usize,
    /// SGD learning rate.
    pub learning_rate: f64,
    /// Rows per update.
    pub batch_size: usize,
    /// Capture a restore point every this many good epochs.
    pub snapshot_every: usize,
    /// The resumable checkpoint.
    pub resume: Resume,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for RbmTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            learning_rate: 0.05,
            batch_size: 20,
            snapshot_every: 1,
            resume: Resume::default(),
            progress: false,
        }
    }
}

/// One RBM training run: the model and its negative-phase state (PCD chains).
struct RbmRun<'a> {
    rbm: Rbm,
    method: RbmTraining,
    data: &'a [f64],
    cfg: &'a RbmTrainConfig,
}

impl Trainable for RbmRun<'_> {
    type Log = ();

    fn step(&mut self, rng: &mut ZooRng, epoch: usize) -> Result<()> {
        let (lr, b) = (self.cfg.learning_rate, self.cfg.batch_size);
        match self
            .rbm
            .train_epoch(rng, self.data, &mut self.method, lr, b)
        {
            Err(Error::TrainingDiverged { what, value, .. }) => Err(Error::TrainingDiverged {
                iteration: epoch,
                what,
                value,
                last_good: 0,
            }),
            other => other,
        }
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_json("rbm", &self.rbm)?;
        if let RbmTraining::Pcd { chains, .. } = &self.method {
            checkpoint.put_json("chains", chains)?;
        }
        Ok(())
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let rbm: Rbm = checkpoint.json("rbm")?;
        if (rbm.visible, rbm.hidden) != (self.rbm.visible, self.rbm.hidden) {
            return Err(Error::invalid("checkpoint", "an RBM of another size"));
        }
        self.rbm = rbm;
        if let RbmTraining::Pcd { chains, .. } = &mut self.method {
            *chains = checkpoint.json("chains")?;
        }
        Ok(())
    }
}

/// Visible states annealed from the base-rate model (beta = 0) to the RBM (beta = 1) along
/// log p*_beta(v) = (1 - beta) b_base.v + beta b.v + sum_j softplus(beta (c_j + v.W_j)).
struct RbmChains<'a> {
    rbm: &'a Rbm,
    base_bias: &'a [f64],
    visible: Vec<f64>,
}

impl RbmChains<'_> {
    fn log_p(&self, v: &[f64], beta: f64) -> f64 {
        let r = self.rbm;
        let lin: f64 = (0..r.visible)
            .map(|i| v[i] * ((1.0 - beta) * self.base_bias[i] + beta * r.visible_bias[i]))
            .sum();
        lin + (0..r.hidden)
            .map(|j| softplus(beta * r.hidden_input(v, j)))
            .sum::<f64>()
    }
}

impl AnnealedPopulation for RbmChains<'_> {
    fn len(&self) -> usize {
        self.visible.len() / self.rbm.visible
    }

    fn reweight(&mut self, _rng: &mut ZooRng, from: f64, to: f64, log_w: &mut [f64]) -> Result<()> {
        for (v, w) in self.visible.chunks(self.rbm.visible).zip(log_w) {
            *w += self.log_p(v, to) - self.log_p(v, from);
        }
        Ok(())
    }

    fn resample(&mut self, moves: &[(std::ops::Range<usize>, Vec<usize>)]) {
        resample_rows(&mut self.visible, self.rbm.visible, moves);
    }

    /// One block-Gibbs sweep at `beta` (none at the target: it would not change the weights).
    fn transition(&mut self, rng: &mut ZooRng, beta: f64) -> Result<()> {
        if beta < 1.0 {
            for v in self.visible.chunks_mut(self.rbm.visible) {
                self.rbm.sweep(rng, v, beta, self.base_bias);
            }
        }
        Ok(())
    }
}
