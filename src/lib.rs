//! # ebm-zoo
//!
//! The facade of the workspace: each family crate re-exported under one name.
//!
//! - [`energy`]: the core: the `Energy` trait, analytic energies, errors, RNG, backends (`zoo-energy`).
//! - [`mcmc`]: samplers in BlackJAX's shape, the chain driver, diagnostics, log Z estimators (`zoo-mcmc`).
//! - [`neural`]: MLP and conv energies with written-out scores, fused CPU kernels (`zoo-neural`).
//! - [`spin`]: Ising and Curie-Weiss models, their samplers and exact references (`zoo-spin`).
//! - [`data`]: 2-D data sets with exact densities, 8×8 digits, exact grid metrics (`zoo-data`).
//! - [`plot`]: PNG heat maps, scatter plots, image grids and curves (`zoo-plot`).
//! - [`train`]: the one training loop: divergence snapshot and restore, resumable checkpoints (`zoo-train`).
//! - [`ebm`]: core EBM training: CD, PCD, short-run, Jarzynski, NCE, score matching, RBMs (`zoo-ebm`).
//! - [`vae`]: VAEs with Gaussian or latent EBM priors, ELBO and IWAE (`zoo-vae`).
//! - [`flow`]: normalizing flows; flows as energies, Boltzmann generators and MCMC proposals (`zoo-flow`).
//! - [`runner`]: experiments from TOML configs, resumable results folders, the comparison table (`zoo-runner`).
//! - [`uncertainty`]: energies as uncertainty: OOD scores and AUROC, GCNs, GEBM under graph shifts (`zoo-uncertainty`).

pub use zoo_data as data;
pub use zoo_diffusion as diffusion;
pub use zoo_ebm as ebm;
pub use zoo_energy as energy;
pub use zoo_flow as flow;
pub use zoo_gan as gan;
pub use zoo_mcmc as mcmc;
pub use zoo_neural as neural;
pub use zoo_plot as plot;
pub use zoo_runner as runner;
pub use zoo_spin as spin;
pub use zoo_train as train;
pub use zoo_uncertainty as uncertainty;
pub use zoo_vae as vae;
