//! GEBM, the graph energy-based model of epistemic uncertainty (Fuchsgruber, Wollschläger &
//! Günnemann, NeurIPS 2024, arXiv 2406.04043), post hoc on a trained GCN, and its baselines.
//!
//! From the network run *without edges* (logits l, penultimate embeddings h):
//! * per-class diagonal Gaussians on the training nodes' h (variances with a ridge of
//!   `covariance_ridge` times the mean feature variance); squared Mahalanobis distances d,
//!   mapped affinely so that their 2.5/97.5% quantiles (over the training nodes and classes) land
//!   on those of the logits; evidence e = l − γ d̃;
//! * label propagation LP(x): x ← ½ x + ½ P x ten times, P = D̃⁻¹ Ã;
//! * E_ind = −logsumexp(e), E_local = −logsumexp(LP e), E_group = LP(E_ind),
//!   GEBM = E_ind + E_local + E_group.
//!
//! Baselines, from the network *with* edges: the logit energy −logsumexp(l), the maximum softmax,
//! the Mahalanobis distance to the closest class, and GNNSafe (Wu et al. 2023): the logit energy
//! propagated E ← α E + (1 − α) P E, K = 2, α = ½. The edge-free logit energy is reported too.

use crate::graph::{SparseOp, propagate};
use crate::scores::{ClassGaussians, energy_scores, max_softmax_scores, min_rows, quantile};
use serde::{Deserialize, Serialize};
use zoo_energy::{Error, Result};

/// GEBM's settings (the paper's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GebmConfig {
    /// γ in e = l − γ d̃.
    pub gamma: f64,
    /// Temperature T of every energy, −T logsumexp(·/T).
    pub temperature: f64,
    /// Label-propagation steps.
    pub lp_steps: usize,
    /// α in x ← α x + (1 − α) P x.
    pub lp_alpha: f64,
    /// GNNSafe's propagation steps K.
    pub gnnsafe_steps: usize,
    /// GNNSafe's α.
    pub gnnsafe_alpha: f64,
    /// Added to every class variance, in units of the mean feature variance
    /// ([`ClassGaussians::fit`]).
    pub covariance_ridge: f64,
}

impl Default for GebmConfig {
    fn default() -> Self {
        Self {
            gamma: 1.0,
            temperature: 1.0,
            lp_steps: 10,
            lp_alpha: 0.5,
            gnnsafe_steps: 2,
            gnnsafe_alpha: 0.5,
            covariance_ridge: 1.0,
        }
    }
}

impl GebmConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        zoo_energy::check_positive("temperature", self.temperature)?;
        for (name, v) in [
            ("gamma", self.gamma),
            ("covariance_ridge", self.covariance_ridge),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        for (name, a) in [
            ("lp_alpha", self.lp_alpha),
            ("gnnsafe_alpha", self.gnnsafe_alpha),
        ] {
            if !(0.0..=1.0).contains(&a) {
                return Err(Error::invalid(name, format!("must be in [0, 1], got {a}")));
            }
        }
        Ok(())
    }
}

/// The scores, in table order: (name, what it is).
pub const SCORES: [(&str, &str); 9] = [
    (
        "logit_energy",
        "-logsumexp of the GCN's logits (with edges)",
    ),
    ("max_softmax", "-max softmax (with edges)"),
    (
        "mahalanobis",
        "distance to the closest class Gaussian (with edges)",
    ),
    ("gnnsafe", "logit energy propagated, K = 2, alpha = 0.5"),
    (
        "logit_energy_no_edges",
        "-logsumexp of the logits without edges",
    ),
    ("e_ind", "-logsumexp(l - gamma d~), without edges"),
    ("e_local", "-logsumexp(LP(l - gamma d~))"),
    ("e_group", "LP(E_ind)"),
    ("gebm", "E_ind + E_local + E_group"),
];

/// One network's outputs on the evaluation graph.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Embeddings with edges, `nodes x hidden`.
    pub hidden: Vec<f64>,
    /// Logits with edges, `nodes x classes`.
    pub logits: Vec<f64>,
    /// Embeddings without edges.
    pub hidden_free: Vec<f64>,
    /// Logits without edges.
    pub logits_free: Vec<f64>,
    /// Hidden width.
    pub width: usize,
    /// Classes of the network.
    pub classes: usize,
}

/// Every score of [`SCORES`] for every node (higher: more out of distribution). `train` are the
/// labelled training nodes (index in the evaluation graph, class), `p` the graph's D̃⁻¹ Ã.
pub fn scores(
    out: &Outputs,
    train: &[(usize, usize)],
    p: &SparseOp,
    cfg: &GebmConfig,
) -> Result<Vec<Vec<f64>>> {
    cfg.check()?;
    let (k, t) = (out.classes, cfg.temperature);
    let lp = |x: &[f64], width| propagate(p, x, width, cfg.lp_steps, cfg.lp_alpha);
    // Baselines, with edges.
    let logit_energy = energy_scores(&out.logits, k, t);
    let gaussians = ClassGaussians::fit(&out.hidden, out.width, train, k, cfg.covariance_ridge)?;
    let mahalanobis = min_rows(&gaussians.distances(&out.hidden), k);
    let gnnsafe = propagate(p, &logit_energy, 1, cfg.gnnsafe_steps, cfg.gnnsafe_alpha);
    // GEBM, without edges.
    let evidence = regularised_evidence(out, train, cfg)?;
    let e_ind = energy_scores(&evidence, k, t);
    let e_local = energy_scores(&lp(&evidence, k), k, t);
    let e_group = lp(&e_ind, 1);
    let gebm = (0..e_ind.len())
        .map(|i| e_ind[i] + e_local[i] + e_group[i])
        .collect();
    Ok(vec![
        logit_energy,
        max_softmax_scores(&out.logits, k),
        mahalanobis,
        gnnsafe,
        energy_scores(&out.logits_free, k, t),
        e_ind,
        e_local,
        e_group,
        gebm,
    ])
}

/// e = l − γ d̃ (edge-free logits and embeddings), d̃ the rescaled squared Mahalanobis distances.
pub fn regularised_evidence(
    out: &Outputs,
    train: &[(usize, usize)],
    cfg: &GebmConfig,
) -> Result<Vec<f64>> {
    let (k, gamma) = (out.classes, cfg.gamma);
    let gaussians =
        ClassGaussians::fit(&out.hidden_free, out.width, train, k, cfg.covariance_ridge)?;
    let d = gaussians.distances(&out.hidden_free);
    let at_train = |v: &[f64]| -> Vec<f64> {
        train
            .iter()
            .flat_map(|&(i, _)| v[i * k..(i + 1) * k].to_vec())
            .collect()
    };
    let (dt, lt) = (at_train(&d), at_train(&out.logits_free));
    let (d_lo, d_hi) = (quantile(&dt, 0.025), quantile(&dt, 0.975));
    let (l_lo, l_hi) = (quantile(&lt, 0.025), quantile(&lt, 0.975));
    let scale = (l_hi - l_lo) / (d_hi - d_lo).max(1e-12);
    Ok(out
        .logits_free
        .iter()
        .zip(&d)
        .map(|(l, d)| l - gamma * (l_lo + (d - d_lo) * scale))
        .collect())
}
