//! `zoo bench sample`: the standard ULA workload of `docs/performance.md` (the same as the JAX /
//! PyTorch peers: MLP energy 2 -> 128 -> 128 -> 1 with SiLU, x <- x + h s(x) + sqrt(2h) xi,
//! h = 0.01, 200 steps, particles from N(0, I)). Prints one JSON line in the peers' shape.

use anyhow::{Result, bail};
use burn::module::Module;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::time::Instant;
use zoo_energy::energy::Energy;
use zoo_energy::{BackendKind, rng, tensor};
use zoo_mcmc::ChainState;
use zoo_mcmc::sampler::{Sampler, Ula};
use zoo_neural::Activation;
use zoo_neural::MlpEnergyConfig;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// ULA on the MLP energy: particle-steps per second.
    Sample(SampleBench),
    /// RealNVP maximum-likelihood training on two moons: steps per second (the peers' workload 3).
    Realnvp(RealNvpBench),
    /// Denoising score matching on 8 Gaussians: steps per second (the peers' workload 4).
    Dsm(DsmBench),
    /// Persistent contrastive divergence on 8 Gaussians, fused CPU trainer: iterations per
    /// second (the peers' workload 2, `cd_train`).
    Pcd(PcdBench),
}

/// How the energy is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnergyPath {
    /// The fused, cache-blocked CPU kernel (CPU backends).
    Fused,
    /// burn tensor operations (any backend).
    Tensor,
}

#[derive(Debug, Args)]
pub struct SampleBench {
    /// Number of particles N.
    #[arg(long, default_value_t = 4096)]
    particles: usize,
    /// ULA steps per run.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// fused (default on CPU backends) or tensor (default on wgpu).
    #[arg(long, value_enum)]
    path: Option<EnergyPath>,
    /// Timed repeats after one untimed warm-up run; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Step size h.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    step_size: f64,
    /// Particles per block of the fused kernel (tuning).
    #[arg(long)]
    block: Option<usize>,
    /// Seed of the weights, the initial particles and the noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Sample(args) => run_sample(args),
        BenchCommand::Realnvp(args) => run_realnvp(args),
        BenchCommand::Dsm(args) => run_dsm(args),
        BenchCommand::Pcd(args) => run_pcd(args),
    }
}

fn run_sample(args: SampleBench) -> Result<()> {
    if args.particles == 0 || args.steps == 0 || args.repeats == 0 {
        bail!("invalid bench size: particles, steps and repeats must be >= 1");
    }
    // Positions, scores and the hidden activations of the 128-wide layers.
    zoo_energy::memory::check_elements(
        "the bench particles (particles x 128 hidden units, ~8 buffers)",
        args.particles as u128 * 128,
        32,
    )?;
    if args.block == Some(0) {
        bail!("invalid block: must be >= 1");
    }
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;
    let path = args.path.unwrap_or(if backend.is_cpu() {
        EnergyPath::Fused
    } else {
        EnergyPath::Tensor
    });
    let widths = vec![2, 128, 128, 1];
    let mlp = MlpEnergyConfig::new(widths.clone(), Activation::Silu)
        .init(&mut rng::seeded(args.seed), &device)?;
    let fused;
    let energy: &dyn Energy = match path {
        EnergyPath::Fused => {
            fused = match args.block {
                Some(b) => mlp.fused().with_block(b),
                None => mlp.fused(),
            };
            &fused
        }
        EnergyPath::Tensor => &mlp,
    };
    let sampler = Ula::new(args.step_size)?;
    let once = || -> Result<(f64, f64)> {
        let mut r = rng::seeded(args.seed);
        let x0 = rng::normal(&mut r, [args.particles, 2], &device);
        let start = Instant::now();
        let mut state: ChainState = sampler.init(energy, x0)?;
        for _ in 0..args.steps {
            state = sampler.step(&mut r, energy, state)?.0;
        }
        // Reading the result forces the device to finish: part of the timed region.
        let e = tensor::to_host1(&state.energy);
        let secs = start.elapsed().as_secs_f64();
        Ok((
            secs,
            e.iter().map(|&v| v as f64).sum::<f64>() / e.len() as f64,
        ))
    };
    let result = timed(args.repeats, once)?;
    let flops_per_particle_step: usize =
        2 * 2 * widths.windows(2).map(|w| w[0] * w[1]).sum::<usize>();
    let path = match path {
        EnergyPath::Fused => "fused",
        EnergyPath::Tensor => "tensor",
    };
    let framework = format!("burn-{}-{path}", backend.name());
    println!(
        "{}",
        sample_line(&args, &framework, flops_per_particle_step, result)
    );
    Ok(())
}

/// The peers' JSON line of the Langevin workload.
fn sample_line(
    args: &SampleBench,
    framework: &str,
    flops_per_particle_step: usize,
    result: Timed<f64>,
) -> serde_json::Value {
    let Timed {
        first_s,
        times,
        median,
        last: final_mean_energy,
    } = result;
    let rate = (args.particles * args.steps) as f64 / median;
    json!({
        "workload": "langevin",
        "threads": rayon_threads(),
        "results": [{
            "framework": framework,
            "n": args.particles,
            "steps": args.steps,
            "particle_steps_per_s": rate.round(),
            "gflops": (rate * flops_per_particle_step as f64 / 1e9 * 100.0).round() / 100.0,
            "median_s": median,
            "min_s": times[0],
            "max_s": times[times.len() - 1],
            "first_s": first_s,
            "repeats": args.repeats,
            "final_mean_energy": (final_mean_energy * 1e4).round() / 1e4,
        }],
        "versions": {"ebm-zoo": env!("CARGO_PKG_VERSION"), "burn": "0.22.0"},
        "flops_per_particle_step": flops_per_particle_step,
        "eta": args.step_size,
        "seed": args.seed,
    })
}

/// One untimed run, then `repeats` timed ones.
struct Timed<T> {
    /// Seconds of the first (warm-up) run.
    first_s: f64,
    /// The timed runs' seconds, sorted.
    times: Vec<f64>,
    /// Their median.
    median: f64,
    /// What the last run returned.
    last: T,
}

/// Runs `once` (returning seconds and a result) once untimed and `repeats` times timed.
fn timed<T>(repeats: usize, once: impl Fn() -> Result<(f64, T)>) -> Result<Timed<T>> {
    let (first_s, mut last) = once()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let (t, v) = once()?;
        times.push(t);
        last = v;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(Timed {
        first_s,
        times,
        median,
        last,
    })
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug, Args)]
pub struct RealNvpBench {
    /// Adam steps per run.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Timed repeats after one untimed warm-up run; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seed of the weights and the data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The peers' RealNVP workload: 8 affine couplings alternating the conditioning coordinate,
/// conditioner 1 -> 128 -> 128 -> 2 (SiLU), s = tanh(s_raw), base N(0, I), batch 512, Adam
/// lr 1e-3, PyTorch-default initialisation, two moons with noise 0.05 (a fresh batch per step).
fn run_realnvp(args: RealNvpBench) -> Result<()> {
    use zoo_flow::{FlowConfig, FlowKind, FlowTrainConfig, fit_max_likelihood};
    const LAYERS: usize = 8;
    const BATCH: usize = 512;
    if args.steps == 0 || args.repeats == 0 {
        bail!("invalid bench size: steps and repeats must be >= 1");
    }
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;
    let ad = device.clone().autodiff();
    let config = FlowConfig {
        dim: 2,
        kind: FlowKind::RealNvp,
        layers: LAYERS,
        hidden: vec![128, 128],
        max_log_scale: 1.0,
        zero_init: false,
        actnorm: false,
        lu: false,
        ..FlowConfig::default()
    };
    let mut r = rng::seeded(args.seed);
    let data = zoo_data::toy2d::noisy_moons(&mut r, args.steps * BATCH, 0.05);
    let data = tensor::from_host2(data, [args.steps * BATCH, 2], &device);
    let eval = zoo_data::toy2d::noisy_moons(&mut r, 8192, 0.05);
    let eval = tensor::from_host2(eval, [8192, 2], &device);
    let fit = FlowTrainConfig {
        iterations: args.steps,
        batch_size: BATCH,
        learning_rate: 1e-3,
        data_init: false,
        ..FlowTrainConfig::default()
    };
    let once = || -> Result<(f64, f64, f64)> {
        let mut r = rng::seeded(args.seed + 1);
        let mut flow = config.init(&mut r, &ad)?;
        let start = Instant::now();
        let report = fit_max_likelihood(&mut r, &mut flow, &data, None, &fit)?;
        let secs = start.elapsed().as_secs_f64();
        let nll = flow
            .valid()
            .log_prob(eval.clone(), None)?
            .mean()
            .neg()
            .into_scalar::<f32>();
        Ok((secs, report.final_loss(50), f64::from(nll)))
    };
    let Timed {
        first_s,
        times,
        median,
        last: (last50, final_nll),
    } = timed(args.repeats, || once().map(|(t, l, n)| (t, (l, n))))?;
    let flops_per_step = 3 * BATCH * LAYERS * 2 * (128 + 128 * 128 + 128 * 2);
    let sps = args.steps as f64 / median;
    let line = json!({
        "workload": "realnvp",
        "threads": rayon_threads(),
        "results": [{
            "framework": format!("burn-{}", backend.name()),
            "steps": args.steps,
            "steps_per_s": (sps * 100.0).round() / 100.0,
            "gflops": (sps * flops_per_step as f64 / 1e9 * 100.0).round() / 100.0,
            "median_s": median,
            "min_s": times[0],
            "max_s": times[times.len() - 1],
            "first_s": first_s,
            "train_nll_last50": (last50 * 1e4).round() / 1e4,
            "nll_8192": (final_nll * 1e4).round() / 1e4,
        }],
        "versions": {"ebm-zoo": env!("CARGO_PKG_VERSION"), "burn": "0.22.0"},
        "flops_per_step": flops_per_step,
        "batch": BATCH,
        "layers": LAYERS,
    });
    println!("{line}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct DsmBench {
    /// Adam steps per run.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// fused (default on CPU backends) or tensor (burn autodiff; default on wgpu).
    #[arg(long, value_enum)]
    path: Option<EnergyPath>,
    /// Timed repeats after one untimed warm-up run; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Seed of the weights and the data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The peers' DSM workload: score net 3 -> 128 -> 128 -> 2 (SiLU) on [x~, noise level], sigma
/// log-uniform on [0.01, 2] per sample (our VE SDE with sigma_min 0.01, sigma_max 2 and t
/// uniform), x~ = x + sigma z, loss mean |sigma s + z|^2 / 2, batch 512, Adam lr 1e-3, 8
/// Gaussians. Ours conditions on log sigma and predicts the noise (s = -net / sigma), so the
/// loss is |z - net|^2 / 2: the same network, batch and FLOPs.
fn run_dsm(args: DsmBench) -> Result<()> {
    use zoo_diffusion::{DsmTrainConfig, ScoreNetConfig, Sde, fit_dsm, fit_dsm_fused};
    const BATCH: usize = 512;
    if args.steps == 0 || args.repeats == 0 {
        bail!("invalid bench size: steps and repeats must be >= 1");
    }
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;
    let path = args.path.unwrap_or(if backend == BackendKind::Wgpu {
        EnergyPath::Tensor
    } else {
        EnergyPath::Fused
    });
    if path == EnergyPath::Fused && backend == BackendKind::Wgpu {
        bail!("the fused trainer runs on CPU backends only; use --path tensor on wgpu");
    }
    let ad = device.clone().autodiff();
    let sde = Sde::Ve {
        sigma_min: 0.01,
        sigma_max: 2.0,
    };
    let mut r = rng::seeded(args.seed);
    let truth = zoo_data::Toy2d::EightGaussians.density();
    let n = args.steps * BATCH;
    let data = tensor::from_host2(truth.sample_host(&mut r, n), [n, 2], &device);
    let cfg = DsmTrainConfig {
        iterations: args.steps,
        batch_size: BATCH,
        learning_rate: 1e-3,
        grad_clip: None,
        ..DsmTrainConfig::default()
    };
    let net_cfg = ScoreNetConfig::default();
    let once = || -> Result<(f64, f64)> {
        let mut r = rng::seeded(args.seed + 1);
        let mut net = net_cfg.mlp(&mut r, &ad)?;
        let start = Instant::now();
        let report = match path {
            EnergyPath::Fused => fit_dsm_fused(&mut r, &mut net, &sde, &data, &cfg)?,
            EnergyPath::Tensor => fit_dsm(&mut r, &mut net, &sde, &data, &cfg, false)?,
        };
        let secs = start.elapsed().as_secs_f64();
        let tail = &report.losses[report.losses.len().saturating_sub(50)..];
        Ok((secs, tail.iter().sum::<f64>() / tail.len() as f64))
    };
    let Timed {
        first_s,
        times,
        median,
        last: last50,
    } = timed(args.repeats, once)?;
    let flops_per_step = 3 * BATCH * 2 * (3 * 128 + 128 * 128 + 128 * 2);
    let sps = args.steps as f64 / median;
    let framework = match path {
        EnergyPath::Fused => format!("burn-{}-fused", backend.name()),
        EnergyPath::Tensor => format!("burn-{}", backend.name()),
    };
    let line = json!({
        "workload": "dsm",
        "threads": rayon_threads(),
        "results": [{
            "framework": framework,
            "steps": args.steps,
            "steps_per_s": (sps * 100.0).round() / 100.0,
            "gflops": (sps * flops_per_step as f64 / 1e9 * 100.0).round() / 100.0,
            "median_s": median,
            "min_s": times[0],
            "max_s": times[times.len() - 1],
            "first_s": first_s,
            "loss_last50": (last50 * 1e4).round() / 1e4,
        }],
        "versions": {"ebm-zoo": env!("CARGO_PKG_VERSION"), "burn": "0.22.0"},
        "flops_per_step": flops_per_step,
        "batch": BATCH,
    });
    println!("{line}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct PcdBench {
    /// Iterations (Adam steps) per run.
    #[arg(long, default_value_t = 500)]
    iterations: usize,
    /// flex or ndarray (the fused trainer runs on the host).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Timed repeats after one untimed warm-up run; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seed of the weights, the data, the chains and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The peers' `cd_train`: energy 2 -> 128 -> 128 -> 1 (SiLU), 256 persistent chains from
/// U(-3, 3)^2, 20 ULA steps of 0.01, then one Adam step (lr 1e-3) on mean E(data) - mean
/// E(chains) + 0.1 (mean E(data)^2 + mean E(chains)^2), data batch 256 from 8 Gaussians; quality:
/// the energy gap over the last 50 iterations and the chains' mean distance to the nearest mode.
fn run_pcd(args: PcdBench) -> Result<()> {
    use zoo_ebm::Dataset;
    use zoo_ebm::fused::{FusedPcdConfig, fit_pcd_fused};
    const BATCH: usize = 256;
    if args.iterations == 0 || args.repeats == 0 {
        bail!("invalid bench size: iterations and repeats must be >= 1");
    }
    let backend: BackendKind = args.backend.parse()?;
    if backend == BackendKind::Wgpu {
        bail!(
            "invalid backend: the fused PCD trainer runs on the host (flex or ndarray); on wgpu train with `zoo run` (method = \"pcd\")"
        );
    }
    let device = backend.device()?;
    zoo_energy::memory::check_points(
        "the bench data (iterations x batch)",
        args.iterations.saturating_mul(BATCH),
        2,
    )?;
    let mut r = rng::seeded(args.seed);
    let truth = zoo_data::Toy2d::EightGaussians.density();
    let data = Dataset::new(truth.sample_host(&mut r, args.iterations * BATCH), 2)?;
    let cfg = FusedPcdConfig {
        iterations: args.iterations,
        snapshot_every: args.iterations,
        ..FusedPcdConfig::default()
    };
    let once = || -> Result<(f64, (f64, f64))> {
        let mut r = rng::seeded(args.seed + 1);
        let mut model =
            MlpEnergyConfig::new(vec![2, 128, 128, 1], Activation::Silu).init(&mut r, &device)?;
        let start = Instant::now();
        let report = fit_pcd_fused(&mut r, &mut model, &data, &cfg, false)?;
        let secs = start.elapsed().as_secs_f64();
        let tail = &report.history[report.history.len().saturating_sub(50)..];
        let gap = tail.iter().map(|l| l.gap).sum::<f64>() / tail.len() as f64;
        Ok((secs, (gap, mode_distance(&report.chains))))
    };
    let Timed {
        first_s,
        times,
        median,
        last: (gap, distance),
    } = timed(args.repeats, once)?;
    let forward = 2 * (2 * 128 + 128 * 128 + 128);
    let flops_per_iter = 20 * BATCH * 2 * forward + 3 * 2 * BATCH * forward;
    let its = args.iterations as f64 / median;
    let line = json!({
        "workload": "cd_train",
        "threads": rayon_threads(),
        "results": [{
            "framework": format!("burn-{}-fused", backend.name()),
            "iters": args.iterations,
            "iters_per_s": (its * 100.0).round() / 100.0,
            "gflops": (its * flops_per_iter as f64 / 1e9 * 100.0).round() / 100.0,
            "median_s": median,
            "min_s": times[0],
            "max_s": times[times.len() - 1],
            "first_s": first_s,
            "energy_gap_last50": (gap * 1e4).round() / 1e4,
            "chain_mode_distance": (distance * 1e4).round() / 1e4,
        }],
        "versions": {"ebm-zoo": env!("CARGO_PKG_VERSION"), "burn": "0.22.0"},
        "flops_per_iter": flops_per_iter,
        "batch": BATCH,
        "k_steps": 20,
        "alpha": 0.1,
        "lr": 1e-3,
    });
    println!("{line}");
    Ok(())
}

/// Mean distance of `[n, 2]` points to the nearest of the 8 centres on the circle of radius 2.
fn mode_distance(x: &[f32]) -> f64 {
    let centres: Vec<(f64, f64)> = (0..8)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / 8.0;
            (2.0 * a.cos(), 2.0 * a.sin())
        })
        .collect();
    let n = x.len() / 2;
    x.chunks(2)
        .map(|p| {
            centres
                .iter()
                .map(|c| (f64::from(p[0]) - c.0).hypot(f64::from(p[1]) - c.1))
                .fold(f64::INFINITY, f64::min)
        })
        .sum::<f64>()
        / n as f64
}
