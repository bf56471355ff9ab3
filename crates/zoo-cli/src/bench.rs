//! `zoo bench sample`: the standard ULA workload of `docs/performance.md` (the same as the JAX /
//! PyTorch peers: MLP energy 2 -> 128 -> 128 -> 1 with SiLU, x <- x + h s(x) + sqrt(2h) xi,
//! h = 0.01, 200 steps, particles from N(0, I)). Prints one JSON line in the peers' shape.

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::time::Instant;
use zoo_energy::energy::{Activation, Energy, MlpEnergyConfig};
use zoo_energy::sampler::{Sampler, Ula};
use zoo_energy::{BackendKind, ChainState, rng, tensor};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// ULA on the MLP energy: particle-steps per second.
    Sample(SampleBench),
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
    let BenchCommand::Sample(args) = command;
    if args.particles == 0 || args.steps == 0 || args.repeats == 0 {
        bail!("invalid bench size: particles, steps and repeats must be >= 1");
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
        .init(&device, &mut rng::seeded(args.seed))?;
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
    let (first_s, _) = once()?;
    let mut times = Vec::with_capacity(args.repeats);
    let mut final_mean_energy = f64::NAN;
    for _ in 0..args.repeats {
        let (t, e) = once()?;
        times.push(t);
        final_mean_energy = e;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let flops_per_particle_step: usize =
        2 * 2 * widths.windows(2).map(|w| w[0] * w[1]).sum::<usize>();
    let rate = (args.particles * args.steps) as f64 / median;
    let framework = format!(
        "burn-{}-{}",
        backend.name(),
        match path {
            EnergyPath::Fused => "fused",
            EnergyPath::Tensor => "tensor",
        }
    );
    let line = json!({
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
    });
    println!("{line}");
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
