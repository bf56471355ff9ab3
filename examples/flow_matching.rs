//! Flow matching and Jarzynski-reweighted sampling (Carbone et al. 2023; Carbone 2025) on a 2-D
//! set with an exact density.
//!
//! 1. A velocity MLP trained by flow matching on the linear interpolant from N(0, I): its ODE
//!    (Heun, RK4) and the interpolant SDE, each scored by histogram TV and KL to the true cell
//!    masses, modes and NFE, and the held-out NLL by the change of variables along the ODE.
//! 2. An energy-parameterised diffusion model (every VP level an EBM, trained by DSM): its reverse
//!    SDE at few steps, plain against reweighted by Jarzynski/SMC on the model's own energies.
//!
//! Run: `cargo run --release --example flow_matching` (8 Gaussians, under a minute on 2 cores);
//! `-- --set checkerboard --iterations 6000` for another set or a longer run.

use burn::module::Module;
use clap::Parser;
use ebm_zoo::data::grid::{sample_metrics, true_cell_masses};
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::diffusion::{
    Divergence, DsmTrainConfig, FlowMatchingModel, FlowSolver, NetScore, ReweightedSampling,
    SampleConfig, ScoreNetConfig, Sde, Solver, VelocityNet, fit_dsm, fit_flow_matching,
    flow_log_likelihood, sample, sample_flow,
};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::{from_host2, to_host1, to_host2};

#[derive(Parser)]
struct Args {
    /// The 2-D set.
    #[arg(long, default_value = "8gaussians")]
    set: Toy2d,
    /// Adam steps of each model.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Samples scored per sampler.
    #[arg(long, default_value_t = 4000)]
    samples: usize,
    /// Held-out points for the NLL.
    #[arg(long, default_value_t = 1000)]
    test_points: usize,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("flow_matching: {e:#}");
        std::process::exit(1);
    }
}

/// Histogram cells per side for TV and KL.
const CELLS: usize = 32;

/// KL(samples' histogram ‖ true cell masses), the true masses floored at 1e-12 (samples outside
/// the box are left out of the histogram; TV counts them).
fn histogram_kl(truth: &ebm_zoo::data::ToyDensity, samples: &[f32], masses: &[f64]) -> f64 {
    let (lo, hi) = truth.bounds();
    let h = (hi - lo) / CELLS as f64;
    let mut counts = vec![0f64; CELLS * CELLS];
    for p in samples.chunks(2) {
        let (ix, iy) = ((f64::from(p[0]) - lo) / h, (f64::from(p[1]) - lo) / h);
        if ix >= 0.0 && iy >= 0.0 && ix < CELLS as f64 && iy < CELLS as f64 {
            counts[iy as usize * CELLS + ix as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .zip(masses)
        .filter(|(c, _)| **c > 0.0)
        .map(|(c, p)| (c / total) * ((c / total) / p.max(1e-12)).ln())
        .sum()
}

fn run(args: Args) -> anyhow::Result<()> {
    let device = args.backend.device()?;
    let ad = device.clone().autodiff();
    let truth = args.set.density();
    let masses = true_cell_masses(&truth, CELLS, &device)?;
    let mut rng = seeded(args.seed);
    let data = from_host2(truth.sample_host(&mut rng, 20_000), [20_000, 2], &device);
    let test = from_host2(
        truth.sample_host(&mut rng, args.test_points),
        [args.test_points, 2],
        &device,
    );
    let true_nll = -to_host2(&test)
        .chunks(2)
        .map(|p| {
            truth
                .log_density_and_score([f64::from(p[0]), f64::from(p[1])])
                .0
        })
        .sum::<f64>()
        / args.test_points as f64;
    let score = |x: &burn::prelude::Tensor<2>| -> anyhow::Result<String> {
        let host = to_host2(x);
        let m = sample_metrics(&truth, &host, CELLS, &masses)?;
        let kl = histogram_kl(&truth, &host, &masses);
        Ok(format!(
            "TV {:.3}  KL {:.3}  modes {}/{}  HQ {:.2}",
            m.tv, kl, m.modes_covered, m.modes, m.high_quality
        ))
    };
    let train = DsmTrainConfig {
        iterations: args.iterations,
        ..DsmTrainConfig::default()
    };
    let net_cfg = ScoreNetConfig::default();

    println!(
        "# {} — flow matching ({} steps)",
        args.set.name(),
        args.iterations
    );
    let mut net = VelocityNet::new(&mut seeded(args.seed + 1), &net_cfg, &ad)?;
    fit_flow_matching(&mut rng, &mut net, &data, &train, true)?;
    let model = FlowMatchingModel::new(&net);
    let lik = flow_log_likelihood(&mut rng, &model, test.clone(), 50, Divergence::Exact)?;
    let nll = -to_host1(&lik).iter().map(|v| f64::from(*v)).sum::<f64>() / args.test_points as f64;
    println!("held-out NLL {nll:.3} nats (true density {true_nll:.3})");
    for (name, solver, steps) in [
        ("ODE, Heun", FlowSolver::Heun, 50),
        ("ODE, RK4", FlowSolver::Rk4, 25),
        ("SDE, eps 0.5", FlowSolver::Sde { epsilon: 0.5 }, 200),
    ] {
        let (x, nfe) = sample_flow(&mut rng, &model, solver, steps, args.samples, &device)?;
        println!("{name:<14} NFE {nfe:>4}  {}", score(&x)?);
    }

    println!(
        "\n# energy-parameterised VP diffusion ({} DSM steps)",
        args.iterations
    );
    let sde = Sde::vp();
    let mut energy = net_cfg.energy(&mut seeded(args.seed + 2), &ad)?;
    fit_dsm(&mut rng, &mut energy, &sde, &data, &train, true)?;
    let levels = NetScore::new(&energy, sde);
    // What the reweighting targets: the model's own density exp(-E) at t_min, by quadrature.
    for t in [sde.t_min(), 0.05, 0.2] {
        let level = energy.valid().energy_at(&sde, t);
        let grid =
            ebm_zoo::data::GridDensity::from_energy(&level, Grid2d::for_density(&truth), &device)?;
        let w = grid.mode_masses(&truth);
        println!(
            "model density at t = {t}: mode masses {:?}",
            w.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>()
        );
    }
    for steps in [10, 20] {
        let plain = SampleConfig {
            solver: Solver::EulerMaruyama,
            steps,
            t_min: sde.t_min(),
        };
        let (x, _) = sample(&mut rng, &levels, &sde, &plain, args.samples, &device)?;
        println!("{steps:>2} steps, plain SDE       {}", score(&x)?);
        let smc = ReweightedSampling {
            steps,
            groups: 4,
            threshold: 0.5,
        };
        let (x, r) = smc.sample(&mut rng, &levels, &sde, args.samples, &device)?;
        println!(
            "{steps:>2} steps, reweighted SDE  {}  ({} distinct of {} draws, {} resamplings)",
            score(&x)?,
            r.distinct,
            args.samples,
            r.resamplings
        );
    }
    Ok(())
}
