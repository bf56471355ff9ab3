//! Helpers shared by the workspace tests.
#![allow(dead_code)]

use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::Energy;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, GaussianMixture};
use ebm_zoo::energy::tensor::{from_host2, to_host1, to_host2};
use ebm_zoo::runner::spec::EnergySpec;

/// The CPU device the statistical tests run on: flex when compiled in, else ndarray.
pub fn cpu_device() -> Device {
    [BackendKind::Flex, BackendKind::Ndarray]
        .into_iter()
        .find(|b| b.is_compiled())
        .expect("tests need a CPU backend (flex or ndarray)")
        .device()
        .expect("compiled")
}

/// Asserts |estimate - truth| <= k * se, with a message that shows the numbers.
pub fn assert_within(what: &str, estimate: f64, truth: f64, se: f64, k: f64) {
    assert!(
        se.is_finite() && (estimate - truth).abs() <= k * se,
        "{what}: estimate {estimate:.5} vs exact {truth:.5}: off by {:.2} standard errors (se {se:.2e}, allowed {k})",
        (estimate - truth).abs() / se
    );
}

/// Host copy of a `[n, d]` tensor as rows.
pub fn rows(x: &Tensor<2>) -> Vec<Vec<f64>> {
    let [_, d] = x.dims();
    ebm_zoo::energy::tensor::to_host2(x)
        .chunks(d)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// The `mixture` preset (2-D, unequal weights) as a typed mixture, for its exact moments.
pub fn mixture_preset() -> GaussianMixture {
    let EnergySpec::Mixture {
        weights,
        means,
        stds,
        ..
    } = EnergySpec::preset("mixture").unwrap()
    else {
        unreachable!("the mixture preset is a mixture")
    };
    let covariances = stds.iter().map(|s| Covariance::Isotropic(s * s)).collect();
    GaussianMixture::from_parts(weights, means, covariances, &cpu_device()).unwrap()
}

/// ||a - b|| / ||b|| over all entries.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in size");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((*x - *y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    num / den.max(1e-12)
}

/// Central differences of the energy, coordinate by coordinate, with step `eps`.
pub fn finite_difference_score(energy: &dyn Energy, x: &Tensor<2>, eps: f32) -> Vec<f32> {
    let [n, d] = x.dims();
    let host = to_host2(x);
    let device = x.device();
    let mut out = vec![0f32; n * d];
    for j in 0..d {
        let shift = |s: f32| {
            let mut v = host.clone();
            for r in 0..n {
                v[r * d + j] += s;
            }
            to_host1(&energy.energy(from_host2(v, [n, d], &device)))
        };
        let (plus, minus) = (shift(eps), shift(-eps));
        for r in 0..n {
            out[r * d + j] = -(plus[r] - minus[r]) / (2.0 * eps);
        }
    }
    out
}

/// Asserts that `energy`'s score at `x` matches central differences of its energy (step `eps`)
/// entry by entry, within `tol * max(1, |fd|)`.
pub fn assert_score_matches_fd(name: &str, energy: &dyn Energy, x: &Tensor<2>, eps: f32, tol: f32) {
    let (_, s) = energy.energy_and_score(x.clone());
    let fd = finite_difference_score(energy, x, eps);
    for (i, (a, b)) in to_host2(&s).iter().zip(&fd).enumerate() {
        assert!(
            (a - b).abs() < tol * b.abs().max(1.0),
            "{name}: score entry {i} is {a}, finite differences give {b}"
        );
    }
}

/// `n` draws of N(mean, std^2 I) in 2-D from `rng`, row-major.
pub fn gaussian_points(
    rng: &mut ebm_zoo::energy::ZooRng,
    n: usize,
    mean: [f32; 2],
    std: f32,
) -> Vec<f32> {
    ebm_zoo::energy::rng::normal_vec(rng, 2 * n)
        .chunks(2)
        .flat_map(|p| [mean[0] + std * p[0], mean[1] + std * p[1]])
        .collect()
}

/// Checks R independent replicas of an estimator against the exact value, from both sides.
/// `runs` are (estimate, reported s.e.).
///
/// - Each replica within 4.5 of its own s.e. (the s.e. comes from 8-16 groups, so its error is
///   t-distributed with heavy tails), and the replicas' mean within 3 of its pooled s.e.
/// - From above: the mean reported s.e. at most k_R times the replicas' RMS error around the
///   exact value. That RMS estimates the true s.e. with R degrees of freedom; k_R is chosen so
///   that a correct estimator fails with probability 0.1% (chi²_R's 0.1% quantile q_R:
///   k_R = sqrt(R / q_R) = 11.1, 6.6, 4.9, 4.0 for R = 3, 4, 5, 6). An estimator that inflates
///   its error bar k_R-fold fails, where the usual |error| <= 3 s.e. alone would pass it.
pub fn assert_se_bounded_by_replicas(what: &str, runs: &[(f64, f64)], exact: f64) {
    let k = match runs.len() {
        3 => 11.1,
        4 => 6.6,
        5 => 4.9,
        6 => 4.0,
        r => panic!("{what}: use 3 to 6 replicas, not {r}"),
    };
    let r = runs.len() as f64;
    for (e, se) in runs {
        assert!(
            se.is_finite() && *se > 0.0 && (e - exact).abs() <= 4.5 * se,
            "{what}: estimate {e:.5} vs exact {exact:.5}, s.e. {se:.2e}"
        );
    }
    let mean = runs.iter().map(|r| r.0).sum::<f64>() / r;
    let pooled = runs.iter().map(|r| r.1 * r.1).sum::<f64>().sqrt() / r;
    assert!(
        (mean - exact).abs() <= 3.0 * pooled,
        "{what}: mean of the replicas {mean:.5} vs exact {exact:.5}, pooled s.e. {pooled:.2e}"
    );
    let rms = (runs.iter().map(|(e, _)| (e - exact).powi(2)).sum::<f64>() / r).sqrt();
    let mean_se = runs.iter().map(|r| r.1).sum::<f64>() / r;
    println!(
        "{what}: replicas' RMS error {rms:.3e}, mean reported s.e. {mean_se:.3e} (bound {k} x RMS)"
    );
    assert!(
        mean_se <= k * rms,
        "{what}: mean reported s.e. {mean_se:.3e} exceeds {k} x the replicas' RMS error {rms:.3e}"
    );
}
