//! The unequal-weight mixture experiment of Carbone, Hua, Coste & Vanden-Eijnden (2023, §4.1): data
//! from 1/4 N(-10 e1, I) + 3/4 N(6 e1, I) in dimension d; a student of the same form (two unit-
//! variance Gaussians, learnable means and weights) started with equal weights and means near the
//! origin, trained by CD, PCD, Jarzynski-weighted PCD and PT-CD (persistent parallel tempering).
//! Prints the learned weight of the -10 mode
//! and KL(data || student) per method, mean ± sd over seeds.
//!
//! KL is exact by quadrature on a grid in d = 2, and a Monte Carlo average over 200 000 data draws
//! (its standard error printed) in d = 50.
//!
//! Run: `cargo run --release --example ebm_mixture_weights` (d = 2, 3 seeds; about 50 s on 2 cores);
//! the table of the docs: `... -- --dims 2,50 --seeds 5` (7.5 minutes).
//!
//! Training: SGD (learning rate 0.02, per-tensor gradient-norm clip 1), 3000 iterations, batch 256;
//! ULA step 0.1; CD-10 from the data; PCD with a replay buffer of 8192 chain states (256 drawn
//! per iteration, no reinitialisation) and Jarzynski with 8192 walkers, both moved 5 ULA steps per
//! update. Why SGD: Adam rescales the gradient noise of the walkers into steps of size lr, and each
//! walker's own noise then feeds back into its weight (a bias that grows with lr and shrinks with
//! the number of walkers); see docs/ebm.md.
//!
//! PT-CD: `--replicas` (8) replicas of 256 persistent chains on a geometric ladder down to
//! `--beta-min` (0.02), `--steps-per-update` MALA steps (step 0.1 in each replica's scaled
//! coordinate) and one exchange round per update, negatives from beta = 1. `pcd_equal` is PCD
//! with the same energy evaluations per update (256 chains x replicas x steps-per-update steps).

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::Grid2d;
use ebm_zoo::data::grid::{GridDensity, mean_and_se};
use ebm_zoo::ebm::model::MixtureModel;
use ebm_zoo::ebm::objective::{ChainStart, JarzynskiPcd, MaximumLikelihood, TemperedPcd};
use ebm_zoo::ebm::train::OptimizerKind;
use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
use ebm_zoo::energy::rng::{normal_vec, seeded};
use ebm_zoo::energy::tensor::to_host2;
use ebm_zoo::energy::{BackendKind, Energy};
use ebm_zoo::mcmc::sampler::{AnySampler, InitDistribution, Ladder, ReplayBuffer, SamplerKind};

#[derive(Parser)]
struct Args {
    /// Dimensions to run.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    dims: Vec<usize>,
    /// Seeds per method.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000)]
    iterations: usize,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Optimiser (sgd or adam).
    #[arg(long, default_value = "sgd", value_parser = parse_optimizer)]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.02)]
    lr: f64,
    /// Gradient norm clip per parameter tensor.
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// ULA steps per parameter update (Jarzynski and PCD).
    #[arg(long, default_value_t = 5)]
    steps_per_update: usize,
    /// PCD chains and Jarzynski walkers.
    #[arg(long, default_value_t = 8192)]
    walkers: usize,
    /// Methods: cd, pcd, pcd_equal, jarzynski, pt_cd.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cd,pcd,jarzynski,pcd_equal,pt_cd"
    )]
    methods: Vec<String>,
    /// PT-CD replicas.
    #[arg(long, default_value_t = 8)]
    replicas: usize,
    /// PT-CD: the hottest replica's inverse temperature.
    #[arg(long, default_value_t = 0.02)]
    beta_min: f64,
    /// Print training traces.
    #[arg(long)]
    verbose: bool,
}

fn parse_optimizer(s: &str) -> Result<OptimizerKind, String> {
    match s {
        "sgd" => Ok(OptimizerKind::Sgd),
        "adam" => Ok(OptimizerKind::Adam),
        other => Err(format!("unknown optimizer '{other}'; known: sgd, adam")),
    }
}

const TARGET: [f64; 2] = [0.25, 0.75];

/// Where persistent chains start: N(0, I).
const STANDARD: InitDistribution = InitDistribution::Normal {
    mean: 0.0,
    std: 1.0,
};

fn target_means(d: usize) -> Vec<Vec<f64>> {
    let mut a = vec![0.0; d];
    let mut b = vec![0.0; d];
    a[0] = -10.0;
    b[0] = 6.0;
    vec![a, b]
}

/// log sum_k w_k exp(-|x - mu_k|^2 / 2) (the shared constant -d/2 log 2 pi cancels in KL).
fn log_mix(x: &[f64], means: &[Vec<f64>], weights: &[f64]) -> f64 {
    let terms: Vec<f64> = means
        .iter()
        .zip(weights)
        .map(|(m, w)| w.ln() - 0.5 * x.iter().zip(m).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
        .collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// KL(target || student): quadrature in d = 2, Monte Carlo (value, s.e.) otherwise.
fn kl(student: &MixtureModel, d: usize, seed: u64, device: &Device) -> anyhow::Result<(f64, f64)> {
    let (means, weights) = (student.means(), student.weights());
    let truth_means = target_means(d);
    if d == 2 {
        let grid = Grid2d::new(-16.0, 12.0, 560)?;
        let truth = MixtureModel::new(&truth_means, &TARGET, device)?;
        let p = GridDensity::from_energy(&truth, grid, device)?;
        let q = GridDensity::from_energy(student, grid, device)?;
        let area = grid.cell_area();
        let value = p
            .log_density
            .iter()
            .zip(&q.log_density)
            .map(|(lp, lq)| lp.exp() * area * (lp - lq))
            .sum();
        return Ok((value, 0.0));
    }
    let mut rng = seeded(seed);
    let truth = MixtureModel::new(&truth_means, &TARGET, device)?;
    let mut terms = Vec::new();
    for _ in 0..20 {
        let x = to_host2(&truth.sample(&mut rng, 10_000, device));
        for row in x.chunks(d) {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            terms.push(log_mix(&row, &truth_means, &TARGET) - log_mix(&row, &means, &weights));
        }
    }
    Ok(mean_and_se(&terms))
}

fn run(
    method: &str,
    d: usize,
    seed: u64,
    args: &Args,
    device: &Device,
) -> anyhow::Result<(f64, f64, f64)> {
    let ad = device.clone().autodiff();
    let mut rng = seeded(seed);
    let truth = MixtureModel::new(&target_means(d), &TARGET, device)?;
    let data = Dataset::new(to_host2(&truth.sample(&mut rng, 20_000, device)), d)?;
    // Student: equal weights, means at -/+ 0.5 e1 plus N(0, 0.1^2) jitter.
    let jitter = normal_vec(&mut rng, 2 * d);
    let init: Vec<Vec<f64>> = (0..2)
        .map(|k| {
            (0..d)
                .map(|j| {
                    let centre = if j == 0 { k as f64 - 0.5 } else { 0.0 };
                    centre + 0.1 * jitter[k * d + j] as f64
                })
                .collect()
        })
        .collect();
    let student = MixtureModel::new(&init, &[0.5, 0.5], &ad)?;
    let config = EbmTrainConfig {
        iterations: args.iterations,
        batch_size: 256,
        optimizer: args.optimizer,
        learning_rate: args.lr,
        grad_clip: Some(args.grad_clip),
        ..EbmTrainConfig::default()
    };
    let ula = AnySampler::new(SamplerKind::Ula, 0.1, 1)?;
    let walkers = args.walkers;
    let start = student.valid().sample(&mut rng, walkers, device);
    let mut trainer = Trainer::new(student, config)?;
    let mut train_rng = seeded(seed + 1000);
    match method {
        "cd" => {
            let mut o = MaximumLikelihood::new(ChainStart::Data, ula, 10)?;
            trainer.fit(&mut train_rng, &mut o, &data, device)?
        }
        "pcd" | "pcd_equal" => {
            let mut buffer = ReplayBuffer::new(d, walkers, 0.0, STANDARD)?;
            buffer.push(&start)?;
            let steps = args.steps_per_update * if method == "pcd" { 1 } else { args.replicas };
            let mut o = MaximumLikelihood::new(ChainStart::Persistent(buffer), ula, steps)?;
            trainer.fit(&mut train_rng, &mut o, &data, device)?
        }
        "pt_cd" => {
            let ladder = Ladder::geometric(args.replicas, args.beta_min)?;
            let mala = AnySampler::new(SamplerKind::Mala, 0.1, 1)?;
            let mut o = TemperedPcd::new(mala, ladder, 256, 1, STANDARD)?
                .with_kernel_steps(args.steps_per_update)?;
            trainer.fit(&mut train_rng, &mut o, &data, device)?
        }
        "jarzynski" => {
            let log_z = trainer
                .model()
                .log_normalizer()
                .expect("known in closed form");
            let mut o = JarzynskiPcd::new(walkers, 0.1, 0.5, vec![0.0; d], 1.0)?
                .with_exact_start(start, log_z)?
                .with_steps_per_update(args.steps_per_update)?;
            trainer.fit(&mut train_rng, &mut o, &data, device)?
        }
        other => {
            anyhow::bail!("unknown method {other}; known: cd, pcd, pcd_equal, jarzynski, pt_cd")
        }
    }
    if args.verbose {
        for r in trainer.history.iter().filter(|r| r.iteration % 250 == 0) {
            println!("  it {}: {}", r.iteration, r.summary());
        }
        let m = trainer.model();
        println!(
            "  {method} d={d} seed={seed}: means e1 {:.2} {:.2}, weights {:?}",
            m.means()[0][0],
            m.means()[1][0],
            m.weights()
        );
    }
    let student = trainer.into_model().valid();
    // The weight of the component whose mean is nearer -10 e1.
    let (means, weights) = (student.means(), student.weights());
    let w_left = if means[0][0] < means[1][0] {
        weights[0]
    } else {
        weights[1]
    };
    let (kl_value, kl_se) = kl(&student, d, seed + 2000, device)?;
    Ok((w_left, kl_value, kl_se))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    println!("| d | method | weight of the -10 mode (target 0.25) | KL(data ‖ student) | runs |");
    println!("|---|---|---|---|---|");
    for &d in &args.dims {
        for method in args.methods.iter().map(String::as_str) {
            let mut w = Vec::new();
            let mut k = Vec::new();
            let mut k_se = 0.0f64;
            for seed in 0..args.seeds {
                let (wl, kv, ks) = run(method, d, seed, &args, &device)?;
                w.push(wl);
                k.push(kv);
                k_se = k_se.max(ks);
            }
            let sd = |v: &[f64]| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64)
                    .sqrt()
            };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let how = if d == 2 {
                "quadrature".to_string()
            } else {
                format!("MC, s.e. ≤ {k_se:.4}")
            };
            println!(
                "| {d} | {method} | {:.3} ± {:.3} | {:.4} ± {:.4} ({how}) | {} |",
                mean(&w),
                sd(&w),
                mean(&k),
                sd(&k),
                args.seeds
            );
        }
    }
    println!(
        "\n(mean ± sd over seeds; {:?}, lr {}, clip {}, {} iterations; ULA step 0.1; CD: 10 steps from the data; \
         PCD: replay buffer of {} chain states (batch-size draws, no reinitialisation), Jarzynski: {} walkers (resampling at ESS < 0.5 N), {} ULA steps per update; \
         pcd_equal: PCD with {} ULA steps per update; pt_cd: {} replicas x 256 chains, beta_min {}, MALA 0.1)",
        args.optimizer,
        args.lr,
        args.grad_clip,
        args.iterations,
        args.walkers,
        args.walkers,
        args.steps_per_update,
        args.steps_per_update * args.replicas,
        args.replicas,
        args.beta_min
    );
    Ok(())
}
