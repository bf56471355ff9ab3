//! Every core-EBM trainer on the 2-D sets with exact densities: CD, PCD, short-run MCMC, Jarzynski-
//! weighted PCD, NCE, denoising and sliced (finite-difference) score matching, each training the same
//! MLP energy 2-64-64-1 (SiLU). Scores are exact (grid quadrature): held-out NLL, KL(data || model),
//! total variation, mode-weight error; plus training time. Writes density and sample PNGs.
//!
//! Run: `cargo run --release --example ebm_2d` (8 Gaussians, about 30 s on 2 cores), or
//! `cargo run --release --example ebm_2d -- --set all --out results/ebm_2d` for the full table.

use anyhow::Context;
use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::grid::{GridDensity, evaluate};
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::ebm::objective::{
    ChainStart, DenoisingScoreMatching, JarzynskiPcd, MaximumLikelihood, Nce, Objective,
    SlicedScoreMatching,
};
use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::mcmc::Sampler;
use ebm_zoo::mcmc::sampler::{AnySampler, InitDistribution, ReplayBuffer, SamplerKind};
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergy;
use ebm_zoo::neural::MlpEnergyConfig;
use ebm_zoo::plot::{HeatMap, Scatter, heat_maps, scatters};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Data set (8gaussians, 25gaussians, moons, rings, checkerboard, unequal) or `all`.
    #[arg(long, default_value = "8gaussians")]
    set: String,
    /// Trainers to run (comma separated) or `all`.
    #[arg(long, default_value = "all")]
    methods: String,
    /// Optimiser steps per trainer.
    #[arg(long, default_value_t = 1500)]
    iterations: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Folder for the PNGs.
    #[arg(long, default_value = "results/ebm_2d")]
    out: PathBuf,
}

const METHODS: [&str; 7] = [
    "cd",
    "pcd",
    "short-run",
    "jarzynski",
    "nce",
    "dsm",
    "ssm-fd",
];

fn train<O: Objective<MlpEnergy>>(
    objective: &mut O,
    model: MlpEnergy,
    data: &Dataset,
    config: &EbmTrainConfig,
    seed: u64,
    device: &Device,
) -> anyhow::Result<(MlpEnergy, f64)> {
    let mut trainer = Trainer::new(model, config.clone())?;
    let mut rng = seeded(seed);
    trainer.fit(&mut rng, objective, data, device)?;
    Ok((trainer.model().clone(), trainer.seconds))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sets: Vec<Toy2d> = if args.set == "all" {
        Toy2d::ALL.to_vec()
    } else {
        vec![args.set.parse()?]
    };
    let methods: Vec<&str> = if args.methods == "all" {
        METHODS.to_vec()
    } else {
        let asked: Vec<&str> = args.methods.split(',').collect();
        if let Some(bad) = asked.iter().find(|m| !METHODS.contains(m)) {
            anyhow::bail!("unknown method '{bad}'; known: {}", METHODS.join(", "));
        }
        asked
    };
    let device = args.backend.device()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    println!(
        "| data | method | NLL (nats) | data entropy | KL | TV | mode-weight error | modes | train s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for set in sets {
        let truth = set.density();
        let mut rng = seeded(args.seed);
        let train_set = Dataset::new(truth.sample_host(&mut rng, 20_000), 2)?;
        let test = truth.sample_host(&mut rng, 5_000);
        let grid = Grid2d::for_density(&truth);
        let bounds = truth.bounds();
        let init = InitDistribution::Uniform {
            low: bounds.0,
            high: bounds.1,
        };
        let config = EbmTrainConfig {
            iterations: args.iterations,
            batch_size: 256,
            learning_rate: 1e-3,
            grad_clip: Some(10.0),
            ..EbmTrainConfig::default()
        };
        let ula = |h: f64| AnySampler::new(SamplerKind::Ula, h, 1);
        let mut heat = vec![HeatMap {
            title: format!("{set}: true density"),
            n: grid.n,
            bounds,
            values: GridDensity::from_energy(&truth, grid, &device)?.densities(),
        }];
        let mut dots = vec![Scatter {
            title: format!("{set}: data"),
            bounds,
            points: test[..4000].to_vec(),
        }];
        for (k, method) in methods.iter().enumerate() {
            let ad = device.clone().autodiff();
            let mut model_rng = seeded(args.seed + 1);
            let model = MlpEnergyConfig::new(vec![2, 64, 64, 1], Activation::Silu)
                .init(&mut model_rng, &ad)?;
            let seed = args.seed + 100 + k as u64;
            let (model, seconds) = match *method {
                "cd" => {
                    let mut o = MaximumLikelihood::new(ChainStart::Data, ula(0.005)?, 10)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "pcd" => {
                    let buffer = ReplayBuffer::new(2, 10_000, 0.05, init)?;
                    let mut o =
                        MaximumLikelihood::new(ChainStart::Persistent(buffer), ula(0.005)?, 20)?
                            .with_energy_penalty(0.01)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "short-run" => {
                    let mut o = MaximumLikelihood::new(ChainStart::Noise(init), ula(0.005)?, 60)?
                        .with_energy_penalty(0.01)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "jarzynski" => {
                    let mut o = JarzynskiPcd::new(2048, 0.005, 0.5, vec![0.0, 0.0], 2.0)?
                        .with_steps_per_update(2)?
                        .with_energy_penalty(0.01)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "nce" => {
                    let mut o = Nce::fitted(&train_set, 4, 1.2, &device)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "dsm" => {
                    let mut o = DenoisingScoreMatching::new(0.05)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                "ssm-fd" => {
                    let mut o = SlicedScoreMatching::new(0.05)?;
                    train(&mut o, model, &train_set, &config, seed, &device)?
                }
                _ => unreachable!("checked above"),
            };
            let energy = model.sampling_energy();
            let m = evaluate(&*energy, &truth, &test, grid, &device)?;
            println!(
                "| {set} | {method} | {:.3} ± {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {}/{} | {:.1} |",
                m.nll,
                m.nll_se,
                m.true_nll,
                m.kl,
                m.tv,
                m.mode_weight_error,
                m.modes_covered,
                m.true_mode_weights.len(),
                seconds
            );
            let q = GridDensity::from_energy(&*energy, grid, &device)?;
            heat.push(HeatMap {
                title: method.to_string(),
                n: grid.n,
                bounds,
                values: q.densities(),
            });
            // Samples: 500 ULA steps from uniform noise on the trained energy.
            let mut srng = seeded(args.seed + 7);
            let start =
                ebm_zoo::energy::tensor::from_host2(init.draw(&mut srng, 4000), [2000, 2], &device);
            let sampler = ula(0.002)?;
            let mut state = sampler.init(&*energy, start)?;
            for _ in 0..500 {
                state = sampler.step(&mut srng, &*energy, state)?.0;
            }
            dots.push(Scatter {
                title: format!("{method}: ULA samples"),
                bounds,
                points: ebm_zoo::energy::tensor::to_host2(&state.position),
            });
        }
        heat_maps(&args.out.join(format!("{set}_density.png")), &heat)?;
        scatters(&args.out.join(format!("{set}_samples.png")), &dots)?;
    }
    println!(
        "\nNLL: mean E(x) + log Z_box over 5000 held-out points (± s.e.), log Z by quadrature on 256² cells of [-4, 4]²; \
         KL(data || model) and TV by the same quadrature; plots in {}",
        args.out.display()
    );
    Ok(())
}
