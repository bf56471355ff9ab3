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
use ebm_zoo::data::{Grid2d, GridDensity, Toy2d};
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

/// What both parts share: the set, its exact cell masses, training and held-out points.
struct Setting {
    device: burn::prelude::Device,
    truth: ebm_zoo::data::ToyDensity,
    masses: Vec<f64>,
    data: burn::prelude::Tensor<2>,
    test: burn::prelude::Tensor<2>,
    train: DsmTrainConfig,
    samples: usize,
}

impl Setting {
    /// TV, histogram KL, modes and high-quality share of samples `x`.
    fn score(&self, x: &burn::prelude::Tensor<2>) -> anyhow::Result<String> {
        let host = to_host2(x);
        let m = sample_metrics(&self.truth, &host, CELLS, &self.masses)?;
        let kl = histogram_kl(&self.truth, &host, &self.masses);
        Ok(format!(
            "TV {:.3}  KL {:.3}  modes {}/{}  HQ {:.2}",
            m.tv, kl, m.modes_covered, m.modes, m.high_quality
        ))
    }

    /// The held-out NLL of the true density.
    fn true_nll(&self) -> f64 {
        let host = to_host2(&self.test);
        let log_p = |p: &[f32]| {
            let x = [f64::from(p[0]), f64::from(p[1])];
            self.truth.log_density_and_score(x).0
        };
        -host.chunks(2).map(log_p).sum::<f64>() / (host.len() / 2) as f64
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let device = args.backend.device()?;
    let truth = args.set.density();
    let mut rng = seeded(args.seed);
    let points = |rng: &mut _, n: usize| from_host2(truth.sample_host(rng, n), [n, 2], &device);
    let setting = Setting {
        masses: true_cell_masses(&truth, CELLS, &device)?,
        data: points(&mut rng, 20_000),
        test: points(&mut rng, args.test_points),
        train: DsmTrainConfig {
            iterations: args.iterations,
            ..DsmTrainConfig::default()
        },
        samples: args.samples,
        device: device.clone(),
        truth: truth.clone(),
    };
    println!(
        "# {} — flow matching ({} steps)",
        args.set.name(),
        args.iterations
    );
    flow_matching(&setting, &mut rng, args.seed)?;
    println!(
        "\n# energy-parameterised VP diffusion ({} DSM steps)",
        args.iterations
    );
    reweighted_energy_model(&setting, &mut rng, args.seed)
}

/// Part 1: a velocity MLP, its likelihood, ODE and SDE samples.
fn flow_matching(s: &Setting, rng: &mut ebm_zoo::energy::ZooRng, seed: u64) -> anyhow::Result<()> {
    let ad = s.device.clone().autodiff();
    let mut net = VelocityNet::new(&mut seeded(seed + 1), &ScoreNetConfig::default(), &ad)?;
    fit_flow_matching(rng, &mut net, &s.data, &s.train, true)?;
    let model = FlowMatchingModel::new(&net);
    let lik = flow_log_likelihood(rng, &model, s.test.clone(), 50, Divergence::Exact)?;
    let host = to_host1(&lik);
    let nll = -host.iter().map(|v| f64::from(*v)).sum::<f64>() / host.len() as f64;
    println!(
        "held-out NLL {nll:.3} nats (true density {:.3})",
        s.true_nll()
    );
    for (name, solver, steps) in [
        ("ODE, Heun", FlowSolver::Heun, 50),
        ("ODE, RK4", FlowSolver::Rk4, 25),
        ("SDE, eps 0.5", FlowSolver::Sde { epsilon: 0.5 }, 200),
    ] {
        let (x, nfe) = sample_flow(rng, &model, solver, steps, s.samples, &s.device)?;
        println!("{name:<14} NFE {nfe:>4}  {}", s.score(&x)?);
    }
    Ok(())
}

/// Part 2: an energy-parameterised VP model, the mode masses of its own levels (what the
/// reweighting targets) and its reverse SDE at few steps, plain and reweighted.
fn reweighted_energy_model(
    s: &Setting,
    rng: &mut ebm_zoo::energy::ZooRng,
    seed: u64,
) -> anyhow::Result<()> {
    let sde = Sde::vp();
    let ad = s.device.clone().autodiff();
    let mut energy = ScoreNetConfig::default().energy(&mut seeded(seed + 2), &ad)?;
    fit_dsm(rng, &mut energy, &sde, &s.data, &s.train, true)?;
    for t in [sde.t_min(), 0.05, 0.2] {
        let level = energy.valid().energy_at(&sde, t);
        let grid = GridDensity::from_energy(&level, Grid2d::for_density(&s.truth), &s.device)?;
        let w: Vec<String> = grid
            .mode_masses(&s.truth)
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect();
        println!("model density at t = {t}: mode masses {w:?}");
    }
    let levels = NetScore::new(&energy, sde);
    for steps in [10, 20] {
        let plain = SampleConfig {
            solver: Solver::EulerMaruyama,
            steps,
            t_min: sde.t_min(),
        };
        let (x, _) = sample(rng, &levels, &sde, &plain, s.samples, &s.device)?;
        println!("{steps:>2} steps, plain SDE       {}", s.score(&x)?);
        let smc = ReweightedSampling {
            steps,
            groups: 4,
            threshold: 0.5,
        };
        let (x, r) = smc.sample(rng, &levels, &sde, s.samples, &s.device)?;
        println!(
            "{steps:>2} steps, reweighted SDE  {}  ({} distinct of {} draws, {} resamplings)",
            s.score(&x)?,
            r.distinct,
            s.samples,
            r.resamplings
        );
    }
    Ok(())
}
