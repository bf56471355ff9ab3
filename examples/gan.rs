//! GANs as energy-based models (review §5), side by side: the non-saturating GAN, the hinge GAN
//! with spectral normalisation, WGAN-GP, EBGAN and the entropy-regularised maximum-likelihood game
//! (VERA), each sampled by its generator and by discriminator-driven latent MALA (Che et al. 2020).
//! On 2-D sets: modes covered, high-quality share, sample TV to the true density, and the NLL of
//! the discriminator read as an energy (grid quadrature); on digits: sample grids.
//!
//! Run: `cargo run --release --example gan` (8 Gaussians, one seed, under a minute on 2 cores);
//! the table of `docs/gan.md`: `-- --sets 8gaussians,25gaussians --seeds 3 --iterations 3000`;
//! the digit grids: `-- --sets digits`.

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::grid::{sample_metrics, true_cell_masses};
use ebm_zoo::data::{Digits, Grid2d, Split, Toy2d, evaluate};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::{from_host2, to_host2};
use ebm_zoo::gan::{
    GanConfig, GanLoss, GanTrainConfig, LatentLangevinConfig, Output, fit, latent_langevin, sample,
};
use ebm_zoo::mcmc::diagnostics::mmd2_rbf;
use ebm_zoo::neural::Activation;
use ebm_zoo::plot::{Scatter, image_grid, scatter_grid};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Data sets: any 2-D set name (8gaussians, 25gaussians, moons, rings, checkerboard,
    /// unequal) or digits, comma separated.
    #[arg(long, default_value = "8gaussians")]
    sets: String,
    /// Games: non_saturating, hinge, wgan_gp, ebgan, vera (comma separated).
    #[arg(long, default_value = "non_saturating,hinge,wgan_gp,ebgan,vera")]
    losses: String,
    /// Seeds per configuration.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Generator updates.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// Latent dimension of the generator on 2-D sets.
    #[arg(long, default_value_t = 2)]
    latent_dim: usize,
    /// Adam learning rate of both players.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Adam learning rate of the discriminator (default: --lr).
    #[arg(long)]
    d_lr: Option<f64>,
    /// Adam's beta_1 and beta_2.
    #[arg(long, num_args = 2, default_values_t = [0.5, 0.999])]
    betas: Vec<f64>,
    /// Samples scored per model.
    #[arg(long, default_value_t = 4_000)]
    samples: usize,
    /// Latent MALA steps.
    #[arg(long, default_value_t = 100)]
    latent_steps: usize,
    /// Latent MALA step size.
    #[arg(long, default_value_t = 0.05)]
    latent_step_size: f64,
    /// Activation of both players (leaky_relu, silu, softplus, tanh).
    #[arg(long, default_value = "leaky_relu")]
    activation: String,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Folder for the PNGs.
    #[arg(long, default_value = "results/gan")]
    out: PathBuf,
}

fn mean_sd(v: &[f64], digits: usize) -> String {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() < 2 {
        return format!("{m:.digits$}");
    }
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    format!("{m:.digits$} ± {sd:.digits$}")
}

/// Per-seed numbers of one (set, game, sampler) row.
#[derive(Default)]
struct Row {
    modes: Vec<f64>,
    high_quality: Vec<f64>,
    tv: Vec<f64>,
    nll: Vec<f64>,
    train_s: Vec<f64>,
    ms_per_1000: Vec<f64>,
    acceptance: Vec<f64>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("gan: {e:#}");
        std::process::exit(1);
    }
}

/// The 2-D game settings of `args` (checked before anything runs).
fn settings(
    args: &Args,
    loss: GanLoss,
    activation: Activation,
) -> anyhow::Result<(GanConfig, GanTrainConfig)> {
    let cfg = GanConfig {
        latent_dim: args.latent_dim,
        activation,
        loss,
        ..GanConfig::default()
    };
    cfg.check()?;
    let train = GanTrainConfig {
        iterations: args.iterations,
        generator_learning_rate: args.lr,
        discriminator_learning_rate: args.d_lr.unwrap_or(args.lr),
        beta_1: args.betas[0],
        beta_2: args.betas[1],
        ..GanTrainConfig::default()
    };
    train.check()?;
    Ok((cfg, train))
}

fn run(args: Args) -> anyhow::Result<()> {
    let device = args.backend.device()?;
    let losses: Vec<GanLoss> = args
        .losses
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let latent = LatentLangevinConfig {
        steps: args.latent_steps,
        step_size: args.latent_step_size,
        ..LatentLangevinConfig::default()
    };
    latent.check()?;
    let activation: Activation = serde_json::from_value(serde_json::Value::String(
        args.activation.clone(),
    ))
    .map_err(|_| {
        anyhow::anyhow!(
            "unknown activation {:?}; known: {}",
            args.activation,
            Activation::NAMES
        )
    })?;
    for &loss in &losses {
        settings(&args, loss, activation)?;
    }
    for set in args.sets.split(',') {
        if set != "digits" {
            set.parse::<Toy2d>()?;
        }
    }
    for set in args.sets.split(',') {
        if set == "digits" {
            digits(&args, &losses, &device)?;
            continue;
        }
        let set: Toy2d = set.parse()?;
        let truth = set.density();
        let cells = 64;
        let masses = true_cell_masses(&truth, cells, &device)?;
        let mut rng = seeded(1_000);
        let test = truth.sample_host(&mut rng, 5_000);
        let reference = sample_metrics(
            &truth,
            &truth.sample_host(&mut rng, args.samples),
            cells,
            &masses,
        )?;
        let true_nll =
            evaluate(&truth, &truth, &test, Grid2d::for_density(&truth), &device)?.true_nll;
        println!(
            "\n## {set}: {} samples, TV on a {cells}x{cells} histogram of [-4, 4]^2; exact samples score modes {}/{}, high-quality {:.3}, TV {:.3} (the finite-sample floor); true density's NLL on the test points {true_nll:.3} nats\n",
            args.samples,
            reference.modes_covered,
            reference.modes,
            reference.high_quality,
            reference.tv
        );
        println!(
            "| game | sampler | modes (of {}) | high-quality | TV (samples) | energy NLL (nats) | train s | ms / 1000 samples | MALA acc. |",
            truth.modes()
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        let data_panel = Scatter {
            title: "data".into(),
            bounds: truth.bounds(),
            points: truth.sample_host(&mut rng, 4_000),
        };
        let mut panels = Vec::new();
        for &loss in &losses {
            let (mut plain, mut ddls) = (Row::default(), Row::default());
            for seed in 0..args.seeds {
                let mut rng = seeded(seed);
                let data = truth.sample_host(&mut rng, 20_000);
                let data = from_host2(data, [20_000, 2], &device);
                let (cfg, train) = settings(&args, loss, activation)?;
                let mut gan = cfg.init(&mut rng, &device.clone().autodiff())?;
                let report = fit(&mut rng, &mut gan, &data, &train, true)?;
                if let (Some(sigma), Some(eta)) = (
                    gan.generator.valid().sigma(),
                    report.posterior_scales.last(),
                ) {
                    eprintln!(
                        "{} seed {seed}: generator noise sigma {:.3}, proposal eta {eta:.3}",
                        loss.name(),
                        sigma.into_scalar::<f32>()
                    );
                }
                let nll = evaluate(
                    &*gan.energy(),
                    &truth,
                    &test,
                    Grid2d::for_density(&truth),
                    &device,
                )?
                .nll;
                let t = Instant::now();
                let x = to_host2(&sample(&mut rng, &gan, args.samples, &device));
                let ms = t.elapsed().as_secs_f64() * 1e6 / args.samples as f64;
                let t = Instant::now();
                let (xl, info) = latent_langevin(&mut rng, &gan, args.samples, &latent, &device)?;
                let xl = to_host2(&xl);
                let ms_l = t.elapsed().as_secs_f64() * 1e6 / args.samples as f64;
                for (row, points, ms, acc) in [
                    (&mut plain, &x, ms, f64::NAN),
                    (&mut ddls, &xl, ms_l, info.acceptance),
                ] {
                    let m = sample_metrics(&truth, points, cells, &masses)?;
                    row.modes.push(m.modes_covered as f64);
                    row.high_quality.push(m.high_quality);
                    row.tv.push(m.tv);
                    row.nll.push(nll);
                    row.train_s.push(report.seconds);
                    row.ms_per_1000.push(ms);
                    row.acceptance.push(acc);
                }
                if seed == 0 {
                    panels.push(data_panel.clone());
                    for (name, points) in [
                        (loss.name().to_string(), &x),
                        (format!("{} + latent MALA", loss.name()), &xl),
                    ] {
                        panels.push(Scatter {
                            title: name,
                            bounds: truth.bounds(),
                            points: points[..4_000.min(points.len())].to_vec(),
                        });
                    }
                }
            }
            for (sampler, row) in [("generator", &plain), ("latent MALA", &ddls)] {
                println!(
                    "| {} | {sampler} | {} | {} | {} | {} | {} | {} | {} |",
                    loss.name(),
                    mean_sd(&row.modes, 1),
                    mean_sd(&row.high_quality, 3),
                    mean_sd(&row.tv, 3),
                    mean_sd(&row.nll, 2),
                    mean_sd(&row.train_s, 1),
                    mean_sd(&row.ms_per_1000, 2),
                    if row.acceptance[0].is_nan() {
                        "–".into()
                    } else {
                        mean_sd(&row.acceptance, 2)
                    },
                );
            }
        }
        let path = args.out.join(format!("{set}_samples.png"));
        // One row per game: data | generator | latent MALA.
        scatter_grid(&path, &panels, Some(3))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// GANs on the 8x8 digits (scaled to [0, 1]; sigmoid generator output): sample grids and the
/// kernel MMD^2 of 1000 samples to the test split (median-heuristic bandwidth), against the MMD^2
/// of as many training images (the floor).
fn digits(args: &Args, losses: &[GanLoss], device: &Device) -> anyhow::Result<()> {
    let train = Digits::load(Split::Train)?;
    let test = Digits::load(Split::Test)?.scaled();
    let n = train.len();
    let pixels = train.scaled();
    let m = 1000.min(n).min(test.len() / 64);
    let (floor, h) = mmd2_rbf(&pixels[..m * 64], &test[..m * 64], 64, None)?;
    println!(
        "\n## digits: MMD^2 to {m} test images (Gaussian kernel, h = {h:.3}); {m} training images: {floor:.5}\n"
    );
    println!("| game | MMD^2 | train s |");
    println!("|---|---|---|");
    let data = from_host2(pixels, [n, 64], device);
    for &loss in losses {
        let mut rng = seeded(0);
        let cfg = GanConfig {
            data_dim: 64,
            latent_dim: 16,
            generator_hidden: vec![256, 256],
            discriminator_hidden: vec![256, 256],
            output: Output::Sigmoid,
            loss,
            ..GanConfig::default()
        };
        let mut gan = cfg.init(&mut rng, &device.clone().autodiff())?;
        let train_cfg = GanTrainConfig {
            iterations: args.iterations,
            batch_size: 128,
            generator_learning_rate: 2e-4,
            discriminator_learning_rate: 2e-4,
            gradient_penalty: 10.0,
            ..GanTrainConfig::default()
        };
        let report = fit(&mut rng, &mut gan, &data, &train_cfg, true)?;
        let x = to_host2(&sample(&mut rng, &gan, m, device));
        let (mmd, _) = mmd2_rbf(&x, &test[..m * 64], 64, Some(h))?;
        let images: Vec<Vec<f32>> = x.chunks(64).take(64).map(|c| c.to_vec()).collect();
        let path = args.out.join(format!("digits_{}.png", loss.name()));
        image_grid(&path, &images, 8, 8)?;
        println!("| {} | {mmd:.5} | {:.1} |", loss.name(), report.seconds);
    }
    println!(
        "\nwrote the sample grids to {}/digits_*.png",
        args.out.display()
    );
    Ok(())
}
