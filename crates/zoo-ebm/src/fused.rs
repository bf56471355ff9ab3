//! A fused CPU trainer for MLP energies by persistent contrastive divergence (Tieleman 2008; the
//! loss of Du & Mordatch 2019): persistent chains moved by ULA on the host with the fused energy
//! and score ([`zoo_neural::FusedMlpEnergy`]), then one Adam step on
//!
//! L = mean E(data) - mean E(chains) + alpha (mean E(data)^2 + mean E(chains)^2)
//!
//! with the θ-gradient written out: dL/dE = (1 + 2 alpha E) / B at the data and
//! (-1 + 2 alpha E) / B at the chains, back-propagated through the host MLP
//! ([`HostMlp::backward`], GEMMs of the `gemm` crate) and applied by [`HostAdam`] (the update of
//! burn's Adam). No autodiff tape and no tensor round trip; the loop, its divergence handling and
//! its checkpoints are the shared ones ([`zoo_train::train`]). On GPU backends and for other
//! energies the burn path ([`crate::Trainer`] with [`crate::objective::MaximumLikelihood`]) is
//! the one to use; [`pcd_gradients`] is the shared gradient that a test compares with autodiff.

use crate::data::Dataset;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use zoo_energy::rng::normal_vec;
use zoo_energy::{Error, Result, ZooRng};
use zoo_mcmc::sampler::InitDistribution;
use zoo_neural::kernels::{HostAdam, HostMlp};
use zoo_neural::{FusedMlpEnergy, MlpEnergy};
use zoo_train::{Checkpoint, LoopConfig, Resume, Trainable, check_value};

/// Settings of [`fit_pcd_fused`] (the defaults are the peers' `cd_train` workload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusedPcdConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Data points per step.
    pub batch_size: usize,
    /// Persistent chains (all of them are the negatives of every step).
    pub chains: usize,
    /// ULA steps per chain between two Adam steps.
    pub mcmc_steps: usize,
    /// ULA step size eta: x <- x - eta grad E + sqrt(2 eta) xi.
    pub step_size: f64,
    /// Accept or reject each move by the Metropolis test (MALA: the chains target exp(-E)
    /// exactly instead of ULA's biased stationary law).
    pub metropolis: bool,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// alpha of the energy-magnitude penalty.
    pub energy_penalty: f64,
    /// Where the chains start.
    pub init: InitDistribution,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for FusedPcdConfig {
    fn default() -> Self {
        Self {
            iterations: 500,
            batch_size: 256,
            chains: 256,
            mcmc_steps: 20,
            step_size: 0.01,
            metropolis: false,
            learning_rate: 1e-3,
            energy_penalty: 0.1,
            init: InitDistribution::Uniform {
                low: -3.0,
                high: 3.0,
            },
            snapshot_every: 100,
            resume: Resume::default(),
        }
    }
}

impl FusedPcdConfig {
    /// Checks every setting.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("iterations", self.iterations),
            ("batch_size", self.batch_size),
            ("chains", self.chains),
            ("mcmc_steps", self.mcmc_steps),
            ("snapshot_every", self.snapshot_every),
        ] {
            zoo_energy::check_count(name, v)?;
        }
        zoo_energy::check_positive("step_size", self.step_size)?;
        zoo_energy::check_positive("learning_rate", self.learning_rate)?;
        crate::objective::check_penalty(self.energy_penalty)?;
        self.init.check()
    }
}

/// One iteration's record: the loss and the energy gap mean E(data) - mean E(chains).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PcdLog {
    /// The loss.
    pub loss: f64,
    /// mean E(data) - mean E(chains).
    pub gap: f64,
}

/// What [`fit_pcd_fused`] returns.
#[derive(Debug, Clone)]
pub struct FusedPcdReport {
    /// One record per iteration.
    pub history: Vec<PcdLog>,
    /// The persistent chains at the end, `[chains x d]` row-major.
    pub chains: Vec<f32>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The loss L and its θ-gradients (weight then bias of every layer, [`HostMlp::parameter_sizes`]
/// order) at `data` and `chains` (row-major, `d` columns), and the energy gap.
pub fn pcd_gradients(
    mlp: &HostMlp,
    data: &[f32],
    chains: &[f32],
    d: usize,
    alpha: f64,
) -> (f64, f64, Vec<Vec<f32>>) {
    let c = contrast_gradients(mlp, data, chains, None, d, alpha);
    (c.loss, c.energy_data - c.energy_negative, c.grads)
}

/// A [`crate::objective::Contrast`] differentiated on the host.
#[derive(Debug, Clone)]
pub struct HostContrast {
    /// L = mean E(data) - sum_i w_i E(neg_i) + alpha (mean E(data)^2 + mean E(neg)^2).
    pub loss: f64,
    /// mean E(data).
    pub energy_data: f64,
    /// sum_i w_i E(neg_i).
    pub energy_negative: f64,
    /// dL/dθ, weight then bias of every layer ([`HostMlp::parameter_sizes`] order).
    pub grads: Vec<Vec<f32>>,
}

/// The contrastive loss of [`crate::objective::Contrast`] and its θ-gradient written out:
/// dL/dE = (1 + 2 alpha E) / n at the data and -w_i + 2 alpha E_i / m at the negatives (w_i = 1/m
/// without weights), back-propagated through the host MLP; the two sides run on two threads.
pub fn contrast_gradients(
    mlp: &HostMlp,
    data: &[f32],
    negatives: &[f32],
    weights: Option<&[f32]>,
    d: usize,
    alpha: f64,
) -> HostContrast {
    let ((ed, sd, mut grads), (en, sn, other)) = rayon::join(
        || side(mlp, data, d, (1.0, None), alpha),
        || side(mlp, negatives, d, (-1.0, weights), alpha),
    );
    for (g, o) in grads.iter_mut().zip(other) {
        g.iter_mut().zip(o).for_each(|(a, b)| *a += b);
    }
    HostContrast {
        loss: ed - en + alpha * (sd + sn),
        energy_data: ed,
        energy_negative: en,
        grads,
    }
}

/// One side of the contrast over the rows of `x` (weights w_i, or 1/m each): sum_i w_i E_i, mean
/// E^2 and the gradient of sum_i (sign w_i + alpha E_i / m) E_i.
fn side(
    mlp: &HostMlp,
    x: &[f32],
    d: usize,
    (sign, weights): (f64, Option<&[f32]>),
    alpha: f64,
) -> (f64, f64, Vec<Vec<f32>>) {
    let m = x.len() / d;
    let (e, tape) = mlp.forward(x, m);
    let share = |i: usize| weights.map_or(1.0 / m as f64, |w| f64::from(w[i]));
    let mean = e
        .iter()
        .enumerate()
        .map(|(i, &v)| share(i) * f64::from(v))
        .sum::<f64>();
    let square = e.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / m as f64;
    let delta = e
        .iter()
        .enumerate()
        .map(|(i, &v)| (sign * share(i) + 2.0 * alpha * f64::from(v) / m as f64) as f32)
        .collect();
    let mut grads = mlp.zero_grads();
    mlp.backward(&tape, delta, &mut grads, m);
    (mean, square, grads)
}

/// The trainer's state: host weights and Adam moments, the chains, a template network for
/// checkpoints.
struct FusedPcdRun<'a> {
    mlp: HostMlp,
    adam: HostAdam,
    chains: Vec<f32>,
    template: MlpEnergy,
    data: &'a Dataset,
    cfg: &'a FusedPcdConfig,
}

impl FusedPcdRun<'_> {
    /// `mcmc_steps` ULA steps of every chain at the current weights.
    fn move_chains(&mut self, rng: &mut ZooRng) -> Result<()> {
        let layers = self
            .mlp
            .layers
            .iter()
            .map(|l| (l.weight.clone(), l.bias.clone()))
            .collect();
        let energy = FusedMlpEnergy::new(layers, self.mlp.activation)?;
        let (eta, noise) = (
            self.cfg.step_size as f32,
            (2.0 * self.cfg.step_size).sqrt() as f32,
        );
        if !self.cfg.metropolis {
            for _ in 0..self.cfg.mcmc_steps {
                let (_, score) = energy.energy_and_score_host(&self.chains);
                let xi = normal_vec(rng, self.chains.len());
                for ((x, s), z) in self.chains.iter_mut().zip(&score).zip(&xi) {
                    *x += eta * s + noise * z;
                }
            }
            return Ok(());
        }
        let (mut e, mut score) = energy.energy_and_score_host(&self.chains);
        for _ in 0..self.cfg.mcmc_steps {
            let xi = normal_vec(rng, self.chains.len());
            let proposal: Vec<f32> = self
                .chains
                .iter()
                .zip(&score)
                .zip(&xi)
                .map(|((x, s), z)| x + eta * s + noise * z)
                .collect();
            let (e_new, s_new) = energy.energy_and_score_host(&proposal);
            let uniforms: Vec<f64> = (0..e.len()).map(|_| 1.0 - rng.random::<f64>()).collect();
            let moves = Moves {
                proposal: &proposal,
                xi: &xi,
                energy: &e_new,
                score: &s_new,
                uniforms: &uniforms,
            };
            self.metropolis(&moves, &mut e, &mut score);
        }
        Ok(())
    }

    /// MALA's accept/reject per chain (q(y | x) = N(x + eta s(x), 2 eta I)): log alpha =
    /// E(x) - E(y) - |x - y - eta s(y)|^2 / (4 eta) + |xi|^2 / 2, accepted where log u < log alpha.
    fn metropolis(&mut self, moves: &Moves, e: &mut [f32], score: &mut [f32]) {
        let d = self.data.dim();
        let eta = self.cfg.step_size;
        for c in 0..e.len() {
            let r = c * d..(c + 1) * d;
            let (x, y, sy) = (
                &self.chains[r.clone()],
                &moves.proposal[r.clone()],
                &moves.score[r.clone()],
            );
            let back: f64 = (0..d)
                .map(|j| f64::from(x[j] - y[j]) - eta * f64::from(sy[j]))
                .map(|v| v * v)
                .sum();
            let fwd: f64 = moves.xi[r.clone()]
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum();
            let log_alpha =
                f64::from(e[c]) - f64::from(moves.energy[c]) - back / (4.0 * eta) + fwd / 2.0;
            if moves.uniforms[c].ln() < log_alpha {
                self.chains[r.clone()].copy_from_slice(y);
                score[r].copy_from_slice(sy);
                e[c] = moves.energy[c];
            }
        }
    }
}

/// One batch of proposed moves: the proposals, their noise, energies and scores, and a uniform
/// in (0, 1] per chain.
struct Moves<'a> {
    proposal: &'a [f32],
    xi: &'a [f32],
    energy: &'a [f32],
    score: &'a [f32],
    uniforms: &'a [f64],
}

impl Trainable for FusedPcdRun<'_> {
    type Log = PcdLog;

    fn step(&mut self, rng: &mut ZooRng, it: usize) -> Result<PcdLog> {
        self.move_chains(rng)?;
        let d = self.data.dim();
        let batch = self.data.batch_host(rng, self.cfg.batch_size);
        let (loss, gap, mut grads) =
            pcd_gradients(&self.mlp, &batch, &self.chains, d, self.cfg.energy_penalty);
        check_value(it, "PCD loss", loss, f64::INFINITY)?;
        if let Some(g) = grads.iter().flatten().find(|g| !g.is_finite()) {
            check_value(it, "gradient", f64::from(*g), f64::INFINITY)?;
        }
        if let Some(x) = self.chains.iter().find(|x| !x.is_finite()) {
            check_value(it, "chain position", f64::from(*x), f64::INFINITY)?;
        }
        let lr = self.cfg.learning_rate;
        self.adam
            .step(self.mlp.parameters_mut(), &mut grads, lr, None);
        Ok(PcdLog { loss, gap })
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        let mut net = self.template.clone();
        zoo_neural::kernels::write_layers(&self.mlp.layers, &mut net.layers);
        checkpoint.put_module("energy", &zoo_train::stable_ids(net, "energy"))?;
        checkpoint.put_json("adam", &self.adam)?;
        checkpoint.put_json("chains", &self.chains)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let net = checkpoint.module("energy", self.template.clone())?;
        self.mlp = host_mlp(&net);
        self.adam = checkpoint.json("adam")?;
        self.chains = checkpoint.json("chains")?;
        self.template = net;
        Ok(())
    }

    fn summary(log: &PcdLog) -> String {
        format!("loss {:.4} gap {:.3}", log.loss, log.gap)
    }
}

/// The host copy of an MLP energy.
pub fn host_mlp(model: &MlpEnergy) -> HostMlp {
    HostMlp {
        layers: model
            .layers
            .iter()
            .map(zoo_neural::kernels::HostLayer::from_linear)
            .collect(),
        activation: model.activation,
    }
}

/// Trains `model` by PCD on `data` with the fused host kernels (see the module docs); the
/// trained weights are written back into `model`.
pub fn fit_pcd_fused(
    rng: &mut ZooRng,
    model: &mut MlpEnergy,
    data: &Dataset,
    cfg: &FusedPcdConfig,
    progress: bool,
) -> Result<FusedPcdReport> {
    cfg.check()?;
    let d = data.dim();
    if model.widths()[0] != d {
        return Err(Error::invalid(
            "data",
            format!(
                "dimension {d} for an energy of input width {}",
                model.widths()[0]
            ),
        ));
    }
    zoo_energy::memory::check_points("the chains (chains x dim)", cfg.chains, d)?;
    let chains = cfg.init.draw(rng, cfg.chains * d);
    let mlp = host_mlp(model);
    let mut run = FusedPcdRun {
        adam: HostAdam::new(mlp.parameter_sizes()),
        mlp,
        chains,
        template: zoo_train::stable_ids(model.clone(), "energy"),
        data,
        cfg,
    };
    let loop_config = LoopConfig {
        iterations: cfg.iterations,
        snapshot_every: cfg.snapshot_every,
        resume: cfg.resume.clone(),
        progress,
        label: "pcd (fused)".into(),
    };
    let outcome = zoo_train::train(rng, &mut run, &loop_config);
    *model = run.template.clone();
    zoo_neural::kernels::write_layers(&run.mlp.layers, &mut model.layers);
    let trained = outcome?;
    Ok(FusedPcdReport {
        history: trained.history,
        chains: run.chains,
        seconds: trained.seconds,
    })
}
