//! How close maximum likelihood gets an MLP energy to the true density when training is cheap:
//! the fused PCD trainer (`zoo_ebm::fused`) on a 2-D set, then the exact held-out NLL, KL and TV by
//! quadrature on a 256^2 grid (the comparison table's metrics), against the true density.
//!
//! Run: `cargo run --release --example ebm_fused_pcd -- --set 8gaussians --iterations 20000`

use clap::Parser;
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::ebm::Dataset;
use ebm_zoo::ebm::fused::{FusedPcdConfig, fit_pcd_fused};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::mcmc::sampler::InitDistribution;
use ebm_zoo::neural::{Activation, MlpEnergyConfig};

#[derive(Parser)]
struct Args {
    /// 8gaussians, checkerboard, ...
    #[arg(long, default_value = "8gaussians")]
    set: String,
    /// Adam steps.
    #[arg(long, default_value_t = 20_000)]
    iterations: usize,
    /// ULA steps per update.
    #[arg(long, default_value_t = 20)]
    mcmc_steps: usize,
    /// ULA step size.
    #[arg(long, default_value_t = 0.01)]
    step_size: f64,
    /// Persistent chains.
    #[arg(long, default_value_t = 1024)]
    chains: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Energy-magnitude penalty.
    #[arg(long, default_value_t = 0.01)]
    alpha: f64,
    /// Hidden width (two hidden layers).
    #[arg(long, default_value_t = 128)]
    width: usize,
    /// MALA negatives (Metropolis test on each ULA move).
    #[arg(long)]
    mala: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = BackendKind::Flex.device()?;
    let set: Toy2d = args.set.parse()?;
    let truth = set.density();
    let mut rng = seeded(args.seed);
    let data = Dataset::new(truth.sample_host(&mut rng, 20_000), 2)?;
    let test = truth.sample_host(&mut rng, 5_000);
    let mut model = MlpEnergyConfig::new(vec![2, args.width, args.width, 1], Activation::Silu)
        .init(&mut rng, &device)?;
    let (lo, hi) = truth.bounds();
    let cfg = FusedPcdConfig {
        iterations: args.iterations,
        chains: args.chains,
        mcmc_steps: args.mcmc_steps,
        step_size: args.step_size,
        metropolis: args.mala,
        learning_rate: args.lr,
        energy_penalty: args.alpha,
        init: InitDistribution::Uniform { low: lo, high: hi },
        ..FusedPcdConfig::default()
    };
    let report = fit_pcd_fused(&mut rng, &mut model, &data, &cfg, true)?;
    let grid = Grid2d::new(lo, hi, 256)?;
    let m = ebm_zoo::data::grid::evaluate(&model, &truth, &test, grid, &device)?;
    println!(
        "{} fused PCD{}, {} iterations in {:.1} s: NLL {:.4} ± {:.4} (true {:.4}), KL {:.4}, TV {:.4}",
        args.set,
        if args.mala { " (MALA)" } else { "" },
        args.iterations,
        report.seconds,
        m.nll,
        m.nll_se,
        m.true_nll,
        m.kl,
        m.tv
    );
    Ok(())
}
