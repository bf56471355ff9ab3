//! The latent-space hierarchical EBM diffusion prior (Cui & Han, ICML 2024) against the
//! single-stage latent EBM prior at the same Langevin budget per sample.
//!
//! `latent25` (default): the prior's positives are exact draws of the 25-Gaussian grid in a 2-D
//! latent (the aggregate posterior known exactly; the map T is the identity). Prints, from 4000
//! prior samples, the modes covered (PacGAN protocol), the histogram KL of the mode shares,
//! the share of high-quality samples and the histogram TV.
//!
//! `digits`: a two-layer generator (latent widths 8 and 4) trained once per seed, frozen, and
//! three priors over its whitened latent: N(0, I), the single-stage EBM, the diffusion. Prints
//! the Fréchet distance, precision and recall (k = 5) of 299 decoded samples against the 299 test
//! images on the digit classifier's features (`zoo_data::features`).
//!
//! Run: `cargo run --release --example latent_diffusion` (latent25, 1 seed, 800 iterations: under
//! a minute on 2 cores); the docs' tables: `-- --seeds 3 --iterations 1000 --sets latent25,digits`
//! (and `--learning-rate 1e-3`).

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::digits::{PIXELS, dequantised_splits};
use ebm_zoo::data::features::DigitClassifier;
use ebm_zoo::data::grid::true_cell_masses;
use ebm_zoo::data::{Toy2d, sample_metrics};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::energy::ExactSample;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::{from_host2, to_host2};
use ebm_zoo::vae::{
    HierPosterior, HierTrainConfig, HierVaeConfig, IdentityMap, LatentDiffusionConfig,
    LatentEbmPrior, LatentMap, LatentPriorKind, LatentPriorTrainConfig, LatentSource, fit_hier_vae,
    fit_latent_prior,
};

#[derive(Parser)]
struct Args {
    /// Seeds.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// The first seed (seeds first-seed .. first-seed + seeds).
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Prior training iterations (the docs' tables: 1000).
    #[arg(long, default_value_t = 800)]
    iterations: usize,
    /// Langevin steps per sample, all levels together.
    #[arg(long, default_value_t = 60)]
    langevin_steps: usize,
    /// Langevin step size at unit base variance (each level scales it by its base variance).
    #[arg(long, default_value_t = 0.05)]
    step_size: f64,
    /// beta_T of the diffusion's linear schedule (beta_1 = 0.1).
    #[arg(long, default_value_t = 0.5)]
    beta_max: f64,
    /// alpha of the energy-magnitude penalty per level.
    #[arg(long, default_value_t = 0.01)]
    energy_penalty: f64,
    /// Adam's learning rate for the prior.
    #[arg(long, default_value_t = 3e-3)]
    learning_rate: f64,
    /// Adam's learning rate for the single-stage prior (default: --learning-rate).
    #[arg(long)]
    single_learning_rate: Option<f64>,
    /// Priors: gaussian (digits only), single, diffusion (comma separated).
    #[arg(long, default_value = "gaussian,single,diffusion")]
    priors: String,
    /// Data sets: latent25, digits (comma separated).
    #[arg(long, default_value = "latent25")]
    sets: String,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
}

/// The priors named by `--priors`: (table name, kind).
fn selected(args: &Args) -> impl Iterator<Item = (&'static str, LatentPriorKind)> + '_ {
    [
        ("gaussian", "Gaussian N(0, I)", LatentPriorKind::Gaussian),
        ("single", "single-stage EBM", LatentPriorKind::SingleStage),
        (
            "diffusion",
            "EBM diffusion (T = 3)",
            LatentPriorKind::Diffusion,
        ),
    ]
    .into_iter()
    .filter(|(key, _, _)| args.priors.split(',').any(|p| p.trim() == *key))
    .map(|(_, name, kind)| (name, kind))
}

/// The training settings of the prior `kind` from the arguments.
fn train_config(args: &Args, kind: LatentPriorKind) -> LatentPriorTrainConfig {
    let learning_rate = match (kind, args.single_learning_rate) {
        (LatentPriorKind::SingleStage, Some(lr)) => lr,
        _ => args.learning_rate,
    };
    LatentPriorTrainConfig {
        iterations: args.iterations,
        langevin_steps: args.langevin_steps,
        langevin_step_size: args.step_size,
        energy_penalty: args.energy_penalty,
        learning_rate,
        ..LatentPriorTrainConfig::default()
    }
}

/// The seeds of the run.
fn seeds(args: &Args) -> std::ops::Range<u64> {
    args.first_seed..args.first_seed + args.seeds
}

/// Trains a prior of `kind` over `map` on `source`; returns it and the training seconds.
fn prior(
    args: &Args,
    kind: LatentPriorKind,
    map: &dyn LatentMap,
    source: &dyn LatentSource,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(LatentEbmPrior, f64)> {
    let cfg = LatentDiffusionConfig {
        beta_max: args.beta_max,
        ..LatentDiffusionConfig::default()
    };
    let train = train_config(args, kind);
    let mut rng = seeded(seed);
    let ad = device.clone().autodiff();
    let mut p = cfg
        .init(kind, map.widths(), &mut rng, &ad)?
        .expect("an EBM prior");
    let report = fit_latent_prior(&mut rng, &mut p, map, source, &train)?;
    Ok((p.valid(), report.seconds))
}

fn latent25(args: &Args, device: &Device) -> anyhow::Result<()> {
    let truth = Toy2d::Grid25.density();
    let masses = true_cell_masses(&truth, 64, device)?;
    let map = IdentityMap { widths: vec![2] };
    let source =
        |rng: &mut ebm_zoo::energy::ZooRng, n: usize| Ok(truth.sample_exact(rng, n, device));
    println!("25 Gaussians as the aggregate posterior of a 2-D latent; 4000 prior samples");
    println!("| prior | seed | modes covered | mode-histogram KL | high quality | TV | train s |");
    println!("|---|---|---|---|---|---|---|");
    for seed in seeds(args) {
        for (name, kind) in selected(args).filter(|(_, k)| *k != LatentPriorKind::Gaussian) {
            let (p, secs) = prior(args, kind, &map, &source, seed, device)?;
            let chain = train_config(args, kind).chain();
            let u = p.sample(&mut seeded(100 + seed), &map, 4000, chain, device)?;
            let m = sample_metrics(&truth, &to_host2(&u), 64, &masses)?;
            println!(
                "| {name} | {seed} | {}/{} | {:.4} | {:.3} | {:.3} | {secs:.1} |",
                m.modes_covered, m.modes, m.mode_kl, m.high_quality, m.tv
            );
        }
    }
    Ok(())
}

fn digits(args: &Args, device: &Device) -> anyhow::Result<()> {
    let (y_train, y_test) = dequantised_splits(8)?;
    let n_test = y_test.len() / PIXELS;
    let n_train = y_train.len() / PIXELS;
    let classifier = DigitClassifier::shared()?;
    let floor = classifier.scores(&y_test, &y_train[..n_test * PIXELS])?;
    println!(
        "\ndigits; real vs real (299 training images): FD {:.2}",
        floor.fd
    );
    let train_t = from_host2(y_train, [n_train, PIXELS], device);
    println!("| prior | seed | FD | precision | recall | generator s | prior s |");
    println!("|---|---|---|---|---|---|---|");
    for seed in seeds(args) {
        let cfg = HierVaeConfig::default();
        let mut rng = seeded(seed);
        let mut vae = cfg.init(&mut rng, &device.clone().autodiff())?;
        let report = fit_hier_vae(&mut rng, &mut vae, &train_t, &HierTrainConfig::default())?;
        let vae = vae.valid();
        let source = HierPosterior {
            vae: &vae,
            data: &train_t,
        };
        for (name, kind) in selected(args) {
            let chain = train_config(args, kind).chain();
            let (p, secs) = match kind {
                LatentPriorKind::Gaussian => (None, 0.0),
                _ => {
                    let (p, s) = prior(args, kind, &vae, &source, seed, device)?;
                    (Some(p), s)
                }
            };
            let x = vae.generate(
                &mut seeded(500 + seed),
                p.as_ref().map(|p| (p, chain)),
                n_test,
                device,
            )?;
            let s = classifier.scores(&y_test, &to_host2(&x))?;
            println!(
                "| {name} | {seed} | {:.2} | {:.3} | {:.3} | {:.1} | {secs:.1} |",
                s.fd, s.precision, s.recall, report.seconds
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    for set in args.sets.split(',') {
        match set.trim() {
            "latent25" => latent25(&args, &device)?,
            "digits" => digits(&args, &device)?,
            other => anyhow::bail!("unknown set {other:?}; use latent25, digits"),
        }
    }
    Ok(())
}
