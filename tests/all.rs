//! Every workspace test but `memory.rs`, compiled as one binary: one link instead of one per
//! file (the files keep their names; `cargo test --test all ebm::` runs one of them).
//! `memory.rs` measures the resident memory of its process and keeps a binary of its own.

mod common;

#[path = "backends.rs"]
mod backends;
#[path = "data2d.rs"]
mod data2d;
#[path = "diffusion.rs"]
mod diffusion;
#[path = "ebm.rs"]
mod ebm;
#[path = "ebm_jarzynski.rs"]
mod ebm_jarzynski;
#[path = "examples.rs"]
mod examples;
#[path = "features.rs"]
mod features;
#[path = "flows.rs"]
mod flows;
#[path = "gan.rs"]
mod gan;
#[path = "latent_diffusion.rs"]
mod latent_diffusion;
#[path = "logz.rs"]
mod logz;
#[path = "neural.rs"]
mod neural;
#[path = "nuts.rs"]
mod nuts;
#[path = "rbm.rs"]
mod rbm;
#[path = "scores.rs"]
mod scores;
#[path = "spins.rs"]
mod spins;
#[path = "statistics.rs"]
mod statistics;
#[path = "tempering.rs"]
mod tempering;
#[path = "training.rs"]
mod training;
#[path = "uncertainty.rs"]
mod uncertainty;
#[path = "vae.rs"]
mod vae;
