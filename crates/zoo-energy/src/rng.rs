//! The one place where randomness becomes tensors.
//!
//! burn's CPU backends draw `Tensor::random` from a single process-wide generator, so two tests
//! running in parallel change each other's numbers. Every sampler in this crate therefore takes an
//! explicit, seeded [`ZooRng`] and makes its noise here, on the host, then uploads it. The same
//! seed on the same backend gives the same numbers whatever else runs in the process.

use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The generator every sampler takes: ChaCha with 8 rounds (fast, portable, stable stream).
pub type ZooRng = rand::rngs::ChaCha8Rng;

/// A generator from a 64-bit seed.
pub fn seeded(seed: u64) -> ZooRng {
    ZooRng::seed_from_u64(seed)
}

/// `count` standard normal draws (Ziggurat).
pub fn normal_vec(rng: &mut ZooRng, count: usize) -> Vec<f32> {
    (0..count)
        .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng))
        .collect()
}

/// A `[n, d]` tensor of independent standard normals.
pub fn normal(rng: &mut ZooRng, [n, d]: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(normal_vec(rng, n * d), [n, d]), device)
}

/// A `[n]` tensor of independent U(0, 1) draws, used for Metropolis tests as `log u`.
pub fn uniform(rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<1> {
    let u: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    Tensor::from_data(TensorData::new(u, [n]), device)
}

/// A `[n]` tensor of `log u` with u ~ U(0, 1], for Metropolis-Hastings acceptance tests
/// (`accept if log u < log alpha`). Computed in f64 on the host so that u = 0 never appears.
pub fn log_uniform(rng: &mut ZooRng, n: usize, device: &Device) -> Tensor<1> {
    let u: Vec<f32> = (0..n)
        .map(|_| (1.0 - rng.random::<f64>()).ln() as f32)
        .collect();
    Tensor::from_data(TensorData::new(u, [n]), device)
}
