//! # zoo-neural: neural energies with written-out scores
//!
//! burn has first-order autodiff only, so a neural energy carries its input gradient as plain
//! tensor operations: [`MlpEnergy`] (an MLP, review §2), [`ConvEnergy`] (a small convnet for
//! images), and [`FusedMlpEnergy`] (the same MLP as one fused CPU kernel). [`nn`] holds the
//! layers with their vector-Jacobian products; [`kernels`] the host building blocks (GEMM through
//! the `gemm` crate, vectorisable activations, a host MLP and Adam) shared with the fused flow and
//! diffusion trainers.

mod conv;
mod fused;
pub mod kernels;
mod mlp;
pub mod nn;

pub use conv::{ConvEnergy, ConvEnergyConfig};
pub use fused::FusedMlpEnergy;
pub use mlp::{Activation, LEAKY_SLOPE, MlpEnergy, MlpEnergyConfig};
