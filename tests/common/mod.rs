//! Helpers shared by the workspace tests.
#![allow(dead_code)]

use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::Energy;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, EnergySpec, GaussianMixture};
use ebm_zoo::energy::tensor::{from_host2, to_host1, to_host2};

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
