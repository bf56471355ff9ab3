//! The Energy-Calibrated VAE (Luo et al., ECCV 2024) against the identical VAE with lambda = 0 on
//! the 8×8 digits (dequantised, y in (-1, 1)): both trained on the same minibatches, both
//! generate with one decoder pass per sample. Prints per seed the Fréchet distance, k-NN
//! precision and recall (k = 5) of 299 samples against the 299 test images on the digit
//! classifier's features (`zoo_data::features`; the real-vs-real floor first), and the test
//! reconstruction error (squared error per image through the posterior mean).
//!
//!
//! Then 8 Gaussians embedded in R^16 (exact density known): the share of high-quality samples
//! (projected onto the set's plane, within 3 sigma of a mode), the modes covered, the reverse KL
//! of the mode histogram, KL(sample shares || true weights), and the sample TV, each from 4000
//! samples.
//!
//! Run: `cargo run --release --example ec_vae` (digits, 1 seed, 600 iterations: under a minute on
//! 2 cores); the docs' tables: `-- --seeds 3 --iterations 1500 --sets digits,embedded` and
//! `-- --seeds 3 --iterations 6000 --sets digits,embedded`; the paper's knobs: `--lambda0`,
//! `--proximity`, `--energy-learning-rate`, `--calibration-steps`, `--epsilon`.

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::digits::{PIXELS, dequantised_splits};
use ebm_zoo::data::features::DigitClassifier;
use ebm_zoo::data::grid::true_cell_masses;
use ebm_zoo::data::{Embedded, Toy2d, sample_metrics};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{from_host2, to_host2};
use ebm_zoo::vae::{
    CalibrationChain, DecoderKind, EcVaeTrainConfig, Vae, VaeConfig, fit_calibrated,
};

#[derive(Parser)]
struct Args {
    /// Seeds.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Optimiser steps per model.
    #[arg(long, default_value_t = 600)]
    iterations: usize,
    /// epsilon per pixel of the calibration constraint.
    #[arg(long, default_value_t = 0.01)]
    epsilon: f64,
    /// lambda_0, the multiplier's start (the paper's 30).
    #[arg(long, default_value_t = 30.0)]
    lambda0: f64,
    /// gamma, the chain's pull back towards the decoder's image (the paper's proximity term).
    #[arg(long, default_value_t = 0.0)]
    proximity: f64,
    /// Adam's learning rate for the EBM (the paper's 1e-4).
    #[arg(long, default_value_t = 1e-4)]
    energy_learning_rate: f64,
    /// K, the calibration steps (the paper's 15).
    #[arg(long, default_value_t = 15)]
    calibration_steps: usize,
    /// Data sets: digits, embedded (comma separated).
    #[arg(long, default_value = "digits")]
    sets: String,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
}

/// (FD, precision, recall, reconstruction error) of a trained VAE.
fn score(vae: &Vae, test: &Tensor<2>, seed: u64) -> anyhow::Result<[f64; 4]> {
    let [n, _] = test.dims();
    let vae = vae.valid();
    let z = normal(&mut seeded(500 + seed), [n, vae.latent_dim], &test.device());
    let samples = to_host2(&vae.decode_mean(z));
    let s = DigitClassifier::shared()?.scores(&to_host2(test), &samples)?;
    let (mean, _) = vae.posterior(test.clone());
    let err = (vae.decode_mean(mean) - test.clone()).square().sum() / n as f32;
    Ok([
        s.fd,
        s.precision,
        s.recall,
        f64::from(err.into_scalar::<f32>()),
    ])
}

/// Trains the VAE with (`calibrate`) or without calibration on `train`; returns it and the log.
fn train(
    args: &Args,
    vae_cfg: &VaeConfig,
    seed: u64,
    calibrate: bool,
    data: &Tensor<2>,
) -> anyhow::Result<(Vae, ebm_zoo::vae::EcVaeReport)> {
    let ad = data.device().autodiff();
    let defaults = EcVaeTrainConfig::default();
    let cfg = EcVaeTrainConfig {
        iterations: args.iterations,
        epsilon: args.epsilon,
        lambda0: args.lambda0,
        energy_learning_rate: args.energy_learning_rate,
        chain: CalibrationChain {
            steps: args.calibration_steps,
            proximity: args.proximity,
            ..defaults.chain
        },
        calibrate,
        ..defaults
    };
    let mut rng = seeded(seed);
    let mut vae = vae_cfg.init(&mut rng, &ad)?;
    let mut energy = cfg.init_energy(&mut rng, vae_cfg.data_dim, &ad)?;
    let report = fit_calibrated(&mut rng, &mut vae, &mut energy, data, &cfg)?;
    Ok((vae, report))
}

fn name(calibrate: bool) -> &'static str {
    if calibrate {
        "EC-VAE"
    } else {
        "VAE (lambda = 0)"
    }
}

fn digits(args: &Args, device: &Device) -> anyhow::Result<()> {
    let (y_train, y_test) = dequantised_splits(8)?;
    let n_test = y_test.len() / PIXELS;
    let n_train = y_train.len() / PIXELS;
    let floor = DigitClassifier::shared()?.scores(&y_test, &y_train[..n_test * PIXELS])?;
    println!("digits; real vs real (299 training images): {floor:?}");
    let train_t = from_host2(y_train, [n_train, PIXELS], device);
    let test_t = from_host2(y_test, [n_test, PIXELS], device);
    let vae_cfg = VaeConfig {
        data_dim: PIXELS,
        latent_dim: 8,
        hidden: vec![256, 256],
        decoder: DecoderKind::Gaussian,
        ..VaeConfig::default()
    };
    println!(
        "| model | seed | FD | precision | recall | reconstruction | train s | final lambda |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for seed in 0..args.seeds {
        for calibrate in [false, true] {
            let (vae, report) = train(args, &vae_cfg, seed, calibrate, &train_t)?;
            let [fd, p, r, rec] = score(&vae, &test_t, seed)?;
            let lambda = report.log.last().map_or(0.0, |l| l.lambda);
            println!(
                "| {} | {seed} | {fd:.3} | {p:.3} | {r:.3} | {rec:.2} | {:.1} | {lambda:.2} |",
                name(calibrate),
                report.seconds
            );
        }
    }
    Ok(())
}

fn embedded(args: &Args, device: &Device) -> anyhow::Result<()> {
    let set = Embedded::new(Toy2d::EightGaussians, 16, 0.05, 7)?;
    let density = Toy2d::EightGaussians.density();
    let masses = true_cell_masses(&density, 64, device)?;
    let data = from_host2(
        set.sample_host(&mut seeded(1000), 20_000),
        [20_000, 16],
        device,
    );
    let vae_cfg = VaeConfig {
        data_dim: 16,
        latent_dim: 2,
        hidden: vec![128, 128],
        decoder: DecoderKind::Gaussian,
        ..VaeConfig::default()
    };
    println!("\n8 Gaussians in R^16, 4000 samples projected onto the plane");
    println!(
        "| model | seed | high quality | modes | mode-histogram reverse KL | TV | final lambda |"
    );
    println!("|---|---|---|---|---|---|---|");
    for seed in 0..args.seeds {
        for calibrate in [false, true] {
            let (vae, report) = train(args, &vae_cfg, seed, calibrate, &data)?;
            let vae = vae.valid();
            let z = normal(&mut seeded(600 + seed), [4000, 2], device);
            let plane = set.project(&to_host2(&vae.decode_mean(z)));
            let m = sample_metrics(&density, &plane, 64, &masses)?;
            let lambda = report.log.last().map_or(0.0, |l| l.lambda);
            println!(
                "| {} | {seed} | {:.3} | {} / {} | {:.4} | {:.3} | {lambda:.2} |",
                name(calibrate),
                m.high_quality,
                m.modes_covered,
                m.modes,
                m.mode_kl,
                m.tv
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    ebm_zoo::energy::check_count("seeds", args.seeds as usize)?;
    for set in args.sets.split(',') {
        match set.trim() {
            "digits" => digits(&args, &device)?,
            "embedded" => embedded(&args, &device)?,
            other => anyhow::bail!("unknown set {other:?} (digits, embedded)"),
        }
    }
    Ok(())
}
