//! Jarzynski/SMC reweighting of the reverse SDE of a diffusion model whose noise levels are
//! energies (Carbone et al. 2023, arXiv 2305.19414; Carbone 2025, arXiv 2506.07843): walkers
//! start from the prior, follow the reverse-time SDE by Euler–Maruyama, and carry weights for the
//! path of densities ρ_τ ∝ exp(−E_{t(τ)}) that the model's own energies define, so that few steps'
//! discretisation error (and a drift that does not match the energies) is corrected at the end.
//!
//! In reverse time τ ∈ [0, 1] with t(τ) = 1 − τ (1 − t_min) and c = 1 − t_min, the reverse SDE
//! of dx = a(t) x dt + g(t) dW (Song et al. 2021, eq. 6) is
//! dx = c (−a x + g² s_t(x)) dτ + √(c g²) dW, i.e. ε(τ) = c g² / 2; the backward kernel's drift
//! −F + 2ε ∇log ρ_τ = c a x makes the weights constant for a model whose energies are the exact
//! marginals. ρ₀ is the prior N(0, s² I) the walkers are drawn from.

use crate::correct::LevelEnergies;
use crate::sde::Sde;
use burn::prelude::*;
use serde::Serialize;
use zoo_energy::energy::Energy;
use zoo_energy::rng::normal;
use zoo_energy::tensor::{from_host2, row_sq_norm, to_host2};
use zoo_energy::{Result, ZooRng, check_count};
use zoo_mcmc::estimate::{SdePath, SdeSmcConfig, log_sum_exp, multinomial, reweighted_sde};

/// The reverse SDE of an energy-parameterised model as a path of densities.
#[allow(missing_debug_implementations)] // holds a borrowed model, printed by its description
pub struct ReversePath<'a, M: LevelEnergies> {
    model: &'a M,
    sde: Sde,
}

impl<'a, M: LevelEnergies> ReversePath<'a, M> {
    /// The path of `model` under its SDE `sde`.
    pub fn new(model: &'a M, sde: Sde) -> Result<Self> {
        sde.check()?;
        Ok(Self { model, sde })
    }

    fn span(&self) -> f64 {
        1.0 - self.sde.t_min()
    }

    fn time(&self, tau: f64) -> f64 {
        1.0 - tau * self.span()
    }

    fn level(&self, tau: f64) -> M::Level {
        // The model's levels exist at every t in [t_min, 1]; a failure is a programming error.
        self.model
            .level_energy(self.time(tau))
            .expect("the model has an energy at every level in [t_min, 1]")
    }
}

impl<M: LevelEnergies> SdePath for ReversePath<'_, M> {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn log_density(&self, tau: f64, x: Tensor<2>) -> Tensor<1> {
        if tau == 0.0 {
            let s2 = self.sde.prior_std().powi(2);
            return row_sq_norm(x).mul_scalar(-0.5 / s2);
        }
        self.level(tau).energy(x).neg()
    }
    fn forward_drift(&self, tau: f64, x: Tensor<2>) -> Tensor<2> {
        let (a, g) = self.sde.drift_and_diffusion(self.time(tau));
        let score = self.level(tau).score(x.clone());
        (score.mul_scalar(g * g) - x.mul_scalar(a)).mul_scalar(self.span())
    }
    fn backward_drift(&self, tau: f64, y: Tensor<2>) -> Tensor<2> {
        let a = self.sde.drift_and_diffusion(self.time(tau)).0;
        y.mul_scalar(a * self.span())
    }
    fn epsilon(&self, tau: f64) -> Option<f64> {
        let g = self.sde.drift_and_diffusion(self.time(tau)).1;
        Some(0.5 * self.span() * g * g)
    }
}

/// What a reweighted sampling run reports.
#[derive(Debug, Clone, Serialize)]
pub struct ReweightedReport {
    /// Network evaluations per walker: two per step (the score at x, the energy at y).
    pub nfe: usize,
    /// ESS of the final weights over all walkers.
    pub ess: f64,
    /// log of the ratio of the model's normaliser at t_min to the prior's, with its error.
    pub log_z: f64,
    /// Its standard error over the groups.
    pub log_z_std_err: f64,
    /// Resampling events over all groups.
    pub resamplings: usize,
    /// Distinct points among the draws: far below their number, the weights were degenerate
    /// (a few walkers carried the mass) and the draws are copies of those few.
    pub distinct: usize,
}

/// `n` draws of the model's energy at t_min by `steps` reweighted reverse-SDE steps of
/// `walkers` walkers in `groups` groups (resampled when a group's ESS < `threshold` of its size),
/// then one multinomial draw from the final weights (each group weighted alike).
#[derive(Debug, Clone, PartialEq)]
pub struct ReweightedSampling {
    /// Reverse-SDE steps (uniform in τ).
    pub steps: usize,
    /// Independent groups (>= 2; the walkers are rounded up to a multiple).
    pub groups: usize,
    /// Resample a group when its ESS falls below this fraction of its size, in (0, 1].
    pub threshold: f64,
}

impl ReweightedSampling {
    /// `n` draws; see the type's documentation.
    pub fn sample<M: LevelEnergies>(
        &self,
        rng: &mut ZooRng,
        model: &M,
        sde: &Sde,
        n: usize,
        device: &Device,
    ) -> Result<(Tensor<2>, ReweightedReport)> {
        check_count("steps", self.steps)?;
        check_count("samples", n)?;
        let path = ReversePath::new(model, *sde)?;
        let config = SdeSmcConfig {
            times: (1..=self.steps)
                .map(|k| k as f64 / self.steps as f64)
                .collect(),
            epsilon: 1.0, // unused: the path has its own ε(τ)
            groups: self.groups,
            resample_threshold: Some(self.threshold),
        };
        let walkers = n.div_ceil(self.groups.max(1)) * self.groups.max(1);
        let x0 = normal(rng, [walkers, path.dim()], device).mul_scalar(sde.prior_std());
        let (estimate, x, log_w) = reweighted_sde(rng, &path, x0, &config)?;
        let per_group = walkers / self.groups;
        // Each group's weights normalised to one, so every group counts alike.
        let normalised: Vec<f64> = log_w
            .chunks(per_group)
            .flat_map(|g| {
                let total = log_sum_exp(g);
                g.iter().map(move |w| w - total)
            })
            .collect();
        let picks = multinomial(rng, &normalised);
        let d = path.dim();
        let rows = to_host2(&x);
        let drawn: Vec<f32> = picks[..n]
            .iter()
            .flat_map(|&i| rows[i * d..(i + 1) * d].to_vec())
            .collect();
        let mut seen: Vec<Vec<u32>> = drawn
            .chunks(d)
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        let distinct = seen.len();
        let report = ReweightedReport {
            nfe: 2 * self.steps,
            ess: estimate.ess,
            log_z: estimate.log_z,
            log_z_std_err: estimate.std_err,
            resamplings: estimate.resamplings,
            distinct,
        };
        Ok((from_host2(drawn, [n, d], device), report))
    }
}
