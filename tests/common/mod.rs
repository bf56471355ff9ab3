//! Helpers shared by the workspace tests.
#![allow(dead_code)]

use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, EnergySpec, GaussianMixture};

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
