//! The latent-space hierarchical EBM diffusion prior (Cui & Han, "Learning Latent Space
//! Hierarchical EBM Diffusion Models", ICML 2024, arXiv 2405.13910), and its single-stage
//! counterpart (one EBM tilting N(0, I), as Pang et al. 2020 and Cui & Han's earlier
//! hierarchical EBM prior).
//!
//! A frozen generator z = T(u) ([`LatentMap`]) has the prior N(u; 0, I). A short variance
//! preserving diffusion u_t = a_t u_{t-1} + sigma_t eps (t = 1..T, a_t^2 = 1 - beta_t, a linear
//! beta schedule) leaves N(0, I) invariant; the EBM prior tilts every marginal,
//! p(u_t) ∝ exp(-sum_i E_{t,i}(T(u_t)_i)) N(u_t; 0, I), E_{t,i} one MLP per level and layer.
//! Each step down is a recovery EBM (Gao et al. 2021):
//!
//! -log p(u_t | u_{t+1}) = sum_i E_{t,i}(T(u_t)_i) + |u_t|^2 / 2 + |a_{t+1} u_t - u_{t+1}|^2 /
//! (2 sigma_{t+1}^2) + const,
//!
//! unimodal when sigma_{t+1} is small even where p(u_t) is not, so short Langevin chains mix;
//! the top level T is a marginal EBM. Training is maximum likelihood per level: positives are the
//! diffused posterior draws u_t, negatives Langevin chains on the level's energy started at
//! u_{t+1} (the top level: at N(0, I)). Sampling: u_T by Langevin from N(0, I), then Langevin
//! down to t = 0, then decode. Energies are written as E = -F (the paper's F_i, s_t = 1: with one
//! network per level, a scale s_t is absorbed into the network).
//!
//! Both priors spend the same Langevin budget per sample: `langevin_steps` in total, split
//! evenly over the levels (T + 1 for the diffusion, 1 for the single stage).

use crate::hierarchical::LatentMap;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use zoo_energy::energy::Energy;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{check_batch, check_finite, row_sq_norm};
use zoo_energy::{Error, Result, ZooRng, check_count, check_non_negative, check_positive};
use zoo_mcmc::sampler::{Sampler, Ula};
use zoo_neural::nn::check_hidden;
use zoo_neural::{Activation, MlpEnergy, MlpEnergyConfig};
use zoo_train::{Checkpoint, OptimizerConfig, Resume, Trainable, check_value};

/// The prior over the whitened latent u.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentPriorKind {
    /// N(0, I): the generator's own prior.
    Gaussian,
    /// One EBM tilting N(0, I), sampled by Langevin from N(0, I).
    SingleStage,
    /// The diffusion: T recovery EBMs and a marginal EBM at the top.
    Diffusion,
}

/// The prior's architecture and diffusion (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentDiffusionConfig {
    /// T, the diffusion steps (3 in the setting; >= 1).
    pub steps: usize,
    /// beta_1 of the linear schedule.
    pub beta_min: f64,
    /// beta_T of the linear schedule.
    pub beta_max: f64,
    /// Hidden widths of every level's and layer's energy MLP.
    pub hidden: Vec<usize>,
    /// Their activation.
    pub activation: Activation,
}

impl Default for LatentDiffusionConfig {
    fn default() -> Self {
        Self {
            steps: 3,
            beta_min: 0.1,
            beta_max: 0.5,
            hidden: vec![128, 128],
            activation: Activation::Silu,
        }
    }
}

impl LatentDiffusionConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid(
                "prior.steps",
                "a diffusion needs at least 1 step (the single-stage prior is its own method)",
            ));
        }
        if self.steps > 1000 {
            return Err(Error::invalid("prior.steps", "must be <= 1000"));
        }
        for (name, v) in [
            ("prior.beta_min", self.beta_min),
            ("prior.beta_max", self.beta_max),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return Err(Error::invalid(name, format!("must be in (0, 1), not {v}")));
            }
        }
        if self.beta_min > self.beta_max {
            return Err(Error::invalid(
                "prior.beta_min",
                "must be <= prior.beta_max",
            ));
        }
        check_hidden(&[("prior.hidden", &self.hidden)])
    }

    /// A Langevin budget `langevin_steps` (per sample, all levels) that `kind` can split: at
    /// least one step per level (the key is `prior.langevin_steps` of the training table).
    pub fn check_budget(&self, kind: LatentPriorKind, langevin_steps: usize) -> Result<()> {
        let levels = match kind {
            LatentPriorKind::Gaussian => return Ok(()),
            LatentPriorKind::SingleStage => 1,
            LatentPriorKind::Diffusion => self.steps + 1,
        };
        split_budget(langevin_steps, levels)
            .map(|_| ())
            .map_err(|e| e.within("prior"))
    }

    /// (a_t, sigma_t^2) for t = 1..T of the linear schedule beta_t.
    pub fn schedule(&self) -> Vec<(f64, f64)> {
        let t = self.steps;
        (0..t)
            .map(|k| {
                let frac = if t == 1 {
                    0.0
                } else {
                    k as f64 / (t - 1) as f64
                };
                let beta = self.beta_min + (self.beta_max - self.beta_min) * frac;
                ((1.0 - beta).sqrt(), beta)
            })
            .collect()
    }

    /// The prior of `kind` over a map with layers `widths` (None for the Gaussian prior).
    pub fn init(
        &self,
        kind: LatentPriorKind,
        widths: &[usize],
        rng: &mut ZooRng,
        device: &Device,
    ) -> Result<Option<LatentEbmPrior>> {
        self.check()?;
        let schedule = match kind {
            LatentPriorKind::Gaussian => return Ok(None),
            LatentPriorKind::SingleStage => Vec::new(),
            LatentPriorKind::Diffusion => self.schedule(),
        };
        if widths.is_empty() || widths.contains(&0) {
            return Err(Error::invalid(
                "latent",
                "every latent layer needs width >= 1",
            ));
        }
        let mut energies = Vec::new();
        for _level in 0..=schedule.len() {
            for &w in widths {
                let cfg = MlpEnergyConfig::new(
                    zoo_neural::nn::layer_widths(w, &self.hidden, 1),
                    self.activation,
                );
                energies.push(cfg.init(rng, device)?);
            }
        }
        Ok(Some(LatentEbmPrior {
            energies,
            widths: widths.to_vec(),
            a: schedule.iter().map(|s| s.0).collect(),
            sigma2: schedule.iter().map(|s| s.1).collect(),
        }))
    }
}

/// The EBM prior: energies E_{t,i} for levels t = 0..T and layers i (T = 0: single stage).
#[derive(Module, Debug)]
pub struct LatentEbmPrior {
    /// E_{t,i} at index t * layers + i.
    pub energies: Vec<MlpEnergy>,
    /// The layers' widths, bottom to top.
    #[module(skip)]
    pub widths: Vec<usize>,
    /// a_t, t = 1..T.
    #[module(skip)]
    pub a: Vec<f64>,
    /// sigma_t^2, t = 1..T.
    #[module(skip)]
    pub sigma2: Vec<f64>,
}

/// The negative log density, up to a constant, of one level: the pulled-back per-layer energies,
/// N(0, I) and, below the top, the diffusion kernel to the level above (see the module docs).
pub struct LevelEnergy<'a> {
    map: &'a dyn LatentMap,
    layers: Vec<Box<dyn Energy + 'a>>,
    /// (u_{t+1}, a_{t+1}, sigma_{t+1}^2), one row per chain.
    above: Option<(Tensor<2>, f64, f64)>,
}

impl std::fmt::Debug for LevelEnergy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<'a> LevelEnergy<'a> {
    /// The level with per-layer energies `layers` through `map`; `above` conditions it on the
    /// level above (None: a marginal level).
    pub fn new(
        map: &'a dyn LatentMap,
        layers: Vec<Box<dyn Energy + 'a>>,
        above: Option<(Tensor<2>, f64, f64)>,
    ) -> Result<Self> {
        let widths = map.widths();
        if layers.len() != widths.len() || layers.iter().zip(widths).any(|(e, &w)| e.dim() != w) {
            return Err(Error::invalid(
                "layers",
                "one energy per latent layer, as wide as it",
            ));
        }
        if let Some((u, a, s2)) = &above {
            check_batch("the level above", u, widths.iter().sum())?;
            check_positive("a", *a)?;
            check_positive("sigma^2", *s2)?;
        }
        Ok(Self { map, layers, above })
    }

    /// The variance of the level's Gaussian part: 1 at a marginal level, sigma^2 / (sigma^2 + a^2)
    /// below (Langevin step sizes are scaled by it).
    pub fn base_variance(&self) -> f64 {
        self.above
            .as_ref()
            .map_or(1.0, |(_, a, s2)| s2 / (s2 + a * a))
    }
}

impl Energy for LevelEnergy<'_> {
    fn dim(&self) -> usize {
        self.map.widths().iter().sum()
    }

    fn energy_and_score(&self, u: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let refs: Vec<&dyn Energy> = self.layers.iter().map(|e| e.as_ref()).collect();
        let (e, s) = self.map.pull_back(u.clone(), &refs);
        let (mut e, mut s) = (e + row_sq_norm(u.clone()).mul_scalar(0.5), s - u.clone());
        if let Some((above, a, s2)) = &self.above {
            let r = u.mul_scalar(*a) - above.clone();
            e = e + row_sq_norm(r.clone()).div_scalar(2.0 * s2);
            s = s - r.mul_scalar(a / s2);
        }
        (e, s)
    }

    fn describe(&self) -> String {
        match &self.above {
            Some((_, a, s2)) => format!("recovery EBM (a = {a:.4}, sigma^2 = {s2:.4})"),
            None => "marginal latent EBM".into(),
        }
    }
}

/// Langevin settings of the prior: the total budget per sample and the step size at unit base
/// variance (each level's step is this times [`LevelEnergy::base_variance`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorChain {
    /// ULA steps per sample, all levels together (split evenly over the levels).
    pub steps: usize,
    /// h at unit base variance.
    pub step_size: f64,
}

impl LatentEbmPrior {
    /// Levels: T + 1 (diffusion) or 1 (single stage).
    pub fn levels(&self) -> usize {
        self.a.len() + 1
    }

    /// Level `t`'s energy through `map` (a snapshot for samplers), conditioned on `above` below the top.
    pub fn level<'a>(
        &'a self,
        t: usize,
        map: &'a dyn LatentMap,
        above: Option<Tensor<2>>,
    ) -> Result<LevelEnergy<'a>> {
        let l = self.widths.len();
        let layers = self.energies[t * l..(t + 1) * l]
            .iter()
            .map(|e| e.sampling_energy() as Box<dyn Energy + 'a>)
            .collect();
        let above = above.map(|u| (u, self.a[t], self.sigma2[t]));
        LevelEnergy::new(map, layers, above)
    }

    /// ULA steps per level for a total budget `steps` (an error when fewer than the levels).
    pub fn steps_per_level(&self, steps: usize) -> Result<usize> {
        split_budget(steps, self.levels())
    }

    /// `k` ULA steps on `energy` from `u0`; a chain that leaves the finite numbers is an error.
    fn langevin(
        rng: &mut ZooRng,
        energy: &LevelEnergy<'_>,
        u0: Tensor<2>,
        k: usize,
        step_size: f64,
    ) -> Result<Tensor<2>> {
        let h = step_size * energy.base_variance();
        let ula = Ula::new(h)?;
        let mut state = ula.init(energy, u0)?;
        for _ in 0..k {
            state = ula.step(rng, energy, state)?.0;
        }
        check_finite("latent prior samples", &state.position).map_err(|_| {
            Error::invalid(
                "langevin_step_size",
                format!("the prior's Langevin chain diverged; lower the step size ({step_size})"),
            )
        })?;
        Ok(state.position)
    }

    /// `n` draws of u_0: the top level by Langevin from N(0, I), then each level below from the
    /// one above (module docs). Returns u_0 `[n, D]`.
    pub fn sample(
        &self,
        rng: &mut ZooRng,
        map: &dyn LatentMap,
        n: usize,
        chain: PriorChain,
        device: &Device,
    ) -> Result<Tensor<2>> {
        check_count("samples", n)?;
        let k = self.steps_per_level(chain.steps)?;
        let top = self.levels() - 1;
        let d = self.widths.iter().sum();
        let energy = self.level(top, map, None)?;
        let u0 = normal(rng, [n, d], device);
        let mut u = Self::langevin(rng, &energy, u0, k, chain.step_size)?;
        for t in (0..top).rev() {
            let energy = self.level(t, map, Some(u.clone()))?;
            u = Self::langevin(rng, &energy, u, k, chain.step_size)?;
        }
        Ok(u)
    }
}

/// ULA steps per level for a budget of `steps` per sample over `levels` levels: at least one each.
fn split_budget(steps: usize, levels: usize) -> Result<usize> {
    if steps < levels {
        return Err(Error::invalid(
            "langevin_steps",
            format!("{steps} cannot be split over the prior's {levels} levels; need one each"),
        ));
    }
    Ok(steps / levels)
}

/// Where the prior's positives come from: draws of u_0 (the aggregate posterior).
pub trait LatentSource {
    /// `n` draws `[n, D]` on a plain device.
    fn draw(&self, rng: &mut ZooRng, n: usize) -> Result<Tensor<2>>;
}

impl<F: Fn(&mut ZooRng, usize) -> Result<Tensor<2>>> LatentSource for F {
    fn draw(&self, rng: &mut ZooRng, n: usize) -> Result<Tensor<2>> {
        self(rng, n)
    }
}

/// Settings of [`fit_latent_prior`] (a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentPriorTrainConfig {
    /// Adam steps.
    pub iterations: usize,
    /// Positives (and chains) per level and step.
    pub batch_size: usize,
    /// Adam's learning rate (3e-3: on the 25-Gaussian latent 1e-3 left the modes blurred,
    /// 1e-2 lost modes; docs/vae.md).
    pub learning_rate: f64,
    /// alpha in alpha (mean E+^2 + mean E-^2) per level (keeps the energies bounded).
    pub energy_penalty: f64,
    /// ULA steps per negative sample, all levels together (split evenly over the levels).
    pub langevin_steps: usize,
    /// h at unit base variance (each level's step is h times its base variance).
    pub langevin_step_size: f64,
    /// Capture a restore point every this many good iterations.
    pub snapshot_every: usize,
    /// The resumable checkpoint (set by programs, not by TOML).
    #[serde(skip)]
    pub resume: Resume,
}

impl Default for LatentPriorTrainConfig {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 128,
            learning_rate: 3e-3,
            energy_penalty: 0.01,
            langevin_steps: 60,
            langevin_step_size: 0.05,
            snapshot_every: 50,
            resume: Resume::default(),
        }
    }
}

impl LatentPriorTrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_train::check_sizes(self.iterations, self.batch_size, self.snapshot_every)
            .map_err(|e| e.within("prior"))?;
        check_count("prior.langevin_steps", self.langevin_steps)?;
        check_positive("prior.learning_rate", self.learning_rate)?;
        check_positive("prior.langevin_step_size", self.langevin_step_size)?;
        check_non_negative("prior.energy_penalty", self.energy_penalty)?;
        Ok(())
    }

    /// The sampling chain these settings train with.
    pub fn chain(&self) -> PriorChain {
        PriorChain {
            steps: self.langevin_steps,
            step_size: self.langevin_step_size,
        }
    }
}

/// Trains `prior` (on an autodiff device) by maximum likelihood per level through the one
/// training loop, `map` frozen, positives from `source`. Returns the summed contrast
/// sum_t (mean E_t(u_t+) - mean E_t(u_t-)) of every step.
pub fn fit_latent_prior(
    rng: &mut ZooRng,
    prior: &mut LatentEbmPrior,
    map: &dyn LatentMap,
    source: &dyn LatentSource,
    cfg: &LatentPriorTrainConfig,
) -> Result<crate::VaeReport> {
    cfg.check()?;
    prior.steps_per_level(cfg.langevin_steps)?;
    if map.widths() != prior.widths.as_slice() {
        return Err(Error::invalid(
            "prior",
            "its layers differ from the generator's",
        ));
    }
    let adam = OptimizerConfig::adam();
    let mut run = PriorRun {
        prior: zoo_train::stable_ids(prior.clone(), "latent_prior"),
        optim: adam.build(),
        adam,
        map,
        source,
        cfg,
    };
    let loop_cfg = zoo_train::LoopConfig::quiet(
        "latent prior",
        cfg.iterations,
        cfg.snapshot_every,
        &cfg.resume,
    );
    let outcome = zoo_train::train(rng, &mut run, &loop_cfg);
    *prior = run.prior;
    outcome.map(crate::VaeReport::from)
}

/// One prior training run.
struct PriorRun<'a> {
    prior: LatentEbmPrior,
    optim: ModuleOptimizer,
    adam: OptimizerConfig,
    map: &'a dyn LatentMap,
    source: &'a dyn LatentSource,
    cfg: &'a LatentPriorTrainConfig,
}

impl PriorRun<'_> {
    /// sum_i E_{t,i}(T(u)_i) on the autodiff device (the map is frozen: u is data).
    fn level_energy(&self, t: usize, u: Tensor<2>) -> Tensor<1> {
        let l = self.prior.widths.len();
        let energies = &self.prior.energies[t * l..(t + 1) * l];
        (self.map.layers(u).into_iter().zip(energies))
            .map(|(z, e)| e.energy(z.without_autodiff().autodiff()))
            .reduce(|a, b| a + b)
            .expect("at least one layer")
    }
}

impl Trainable for PriorRun<'_> {
    type Log = f64;

    /// Per level: diffuse the positives, run the negatives' chains, add the level's contrast.
    fn step(&mut self, rng: &mut ZooRng, iteration: usize) -> Result<f64> {
        let cfg = self.cfg;
        let prior = self.prior.valid();
        let k = prior.steps_per_level(cfg.langevin_steps)?;
        let top = prior.levels() - 1;
        let mut positives = vec![self.source.draw(rng, cfg.batch_size)?];
        for t in 0..top {
            let u = positives[t].clone();
            let eps = normal(rng, u.dims(), &u.device());
            positives.push(u.mul_scalar(prior.a[t]) + eps.mul_scalar(prior.sigma2[t].sqrt()));
        }
        let (mut loss, mut contrast) = (None::<Tensor<1>>, 0.0);
        for t in 0..=top {
            let (start, above) = match t < top {
                true => (positives[t + 1].clone(), Some(positives[t + 1].clone())),
                false => {
                    let dims = positives[t].dims();
                    (normal(rng, dims, &positives[t].device()), None)
                }
            };
            let energy = prior.level(t, self.map, above)?;
            let negatives =
                LatentEbmPrior::langevin(rng, &energy, start, k, cfg.langevin_step_size)?;
            let e_pos = self.level_energy(t, positives[t].clone());
            let e_neg = self.level_energy(t, negatives);
            let penalty = (e_pos.clone().square().mean() + e_neg.clone().square().mean())
                .mul_scalar(cfg.energy_penalty);
            let level = e_pos.mean() - e_neg.mean();
            contrast += f64::from(level.clone().into_scalar::<f32>());
            let term = level + penalty;
            loss = Some(match loss {
                Some(acc) => acc + term,
                None => term,
            });
        }
        check_value(iteration, "prior contrast", contrast, 1e6)?;
        let mut grads = loss.expect("at least one level").backward();
        let g = GradientsParams::from_module(&mut grads, &self.prior);
        self.prior = self.optim.step(cfg.learning_rate, self.prior.clone(), g);
        Ok(contrast)
    }

    fn save(&self, checkpoint: &mut Checkpoint) -> Result<()> {
        checkpoint.put_module("prior", &self.prior)?;
        checkpoint.put_optimizer("optimizer", &self.optim)
    }

    fn load(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        self.prior = checkpoint.module("prior", self.prior.clone())?;
        self.optim = checkpoint.optimizer("optimizer", self.adam.build())?;
        Ok(())
    }
}
