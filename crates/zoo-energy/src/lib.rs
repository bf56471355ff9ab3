//! # zoo-energy: the core seam of ebm-zoo
//!
//! The small core every crate of ebm-zoo depends on (review §2, p(x) = exp(-E(x))/Z): the
//! [`Energy`] and [`energy::ExactSample`] traits, analytic energies with known log Z (Gaussian,
//! Gaussian mixture, Neal's funnel, banana, double well), the geometric path between two energies
//! ([`energy::Interpolated`]), the errors, the explicit ChaCha8 generator ([`rng`]), tensor
//! helpers, the memory budget, atomic writes and backend selection. No GEMM, FFT, plotting or
//! progress crate: samplers live in `zoo-mcmc`, neural energies in `zoo-neural`, spin systems in
//! `zoo-spin`.
//!
//! Shapes follow burn: a batch of `n` points of dimension `d` is `Tensor<2>` `[n, d]`.
//! Randomness always comes from an explicit [`rng::ZooRng`].

pub mod backend;
pub mod energy;
pub mod error;
pub mod io;
pub mod linalg;
pub mod memory;
pub mod rng;
pub mod tensor;

pub use backend::BackendKind;
pub use energy::Energy;
pub use error::{
    Error, Result, check_adam_betas, check_count, check_non_negative, check_positive,
    check_unit_open,
};
pub use rng::{ZooRng, seeded};

/// burn, re-exported so that users and the family crates use the same version.
pub use burn;
