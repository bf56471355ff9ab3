//! Diffusion models as families of EBMs (review §7). On 2-D sets with exact densities: a
//! noise-predicting MLP and an energy-parameterised model (every level an EBM) trained by
//! denoising score matching under the VP SDE, and an NCSN (VE SDE, annealed Langevin), each
//! sampled by every sampler: histogram TV to the true density, modes, PF-ODE held-out NLL (exact
//! divergence), score evaluations per sample, time per 1000 samples; the energy model with and
//! without MALA at the last levels. On digits: a convolutional score network, a sample grid and
//! bits per dimension on the test split.
//!
//! Run: `cargo run --release --example diffusion` (8 Gaussians, under a minute on 2 cores); the
//! table of `docs/diffusion.md`: `-- --sets 8gaussians,moons,rings,checkerboard,digits --iterations 20000
//! --samples 4000 --test-points 1000`;
//! digits: `-- --sets digits`. A custom NCSN ladder: `--sigmas 3,1,0.3,0.1,0.03`.

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::grid::{mean_and_se, sample_metrics, true_cell_masses};
use ebm_zoo::data::{Digits, Grid2d, Split, Toy2d, evaluate};
use ebm_zoo::diffusion::{
    AnnealedLangevinConfig, ConvScore, Divergence, DsmTrainConfig, MalaCorrection, NetScore,
    NoiseLadder, SampleConfig, ScoreModel, ScoreNetConfig, Sde, Solver, annealed_langevin, fit_dsm,
    fit_dsm_fused, pf_ode_log_likelihood, sample, sample_corrected,
};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::{from_host2, to_host1, to_host2};
use ebm_zoo::neural::Activation;
use ebm_zoo::plot::{Scatter, image_grid, scatter_grid};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Data sets: 2-D set names or digits, comma separated.
    #[arg(long, default_value = "8gaussians")]
    sets: String,
    /// DSM steps per model.
    #[arg(long, default_value_t = 1500)]
    iterations: usize,
    /// DSM steps of the digits model.
    #[arg(long, default_value_t = 3000)]
    digits_iterations: usize,
    /// Samples scored per sampler.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Held-out points for the PF-ODE NLL.
    #[arg(long, default_value_t = 500)]
    test_points: usize,
    /// The NCSN ladder (comma separated, decreasing); default: 50 levels geometric from 4 to 0.01.
    #[arg(long)]
    sigmas: Option<String>,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Folder for the PNGs.
    #[arg(long, default_value = "results/diffusion")]
    out: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("diffusion: {e:#}");
        std::process::exit(1);
    }
}

/// The samplers of the table with their steps (NFE = the solver's count for these steps).
fn solvers() -> Vec<(Solver, usize)> {
    vec![
        (Solver::EulerMaruyama, 500),
        (Solver::Ancestral, 500),
        (
            Solver::PredictorCorrector {
                snr: 0.16,
                corrector_steps: 1,
            },
            250,
        ),
        (Solver::Heun, 100),
        (Solver::Rk4, 50),
        (Solver::Ddim, 100),
    ]
}

fn run(args: Args) -> anyhow::Result<()> {
    let device = args.backend.device()?;
    let ladder = match &args.sigmas {
        Some(list) if list.trim().is_empty() => NoiseLadder::new(Vec::new())?,
        Some(list) => {
            let sigmas = list
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| anyhow::anyhow!("--sigmas: {s:?} is not a number"))
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            NoiseLadder::new(sigmas)?
        }
        None => NoiseLadder::geometric(4.0, 0.01, 50)?,
    };
    let dsm = DsmTrainConfig {
        iterations: args.iterations,
        ..DsmTrainConfig::default()
    };
    dsm.check()?;
    for set in args.sets.split(',') {
        if set == "digits" {
            digits(&args, &device)?;
        } else {
            let set: Toy2d = set.parse()?;
            two_d(&args, set, &ladder, &dsm, &device)?;
        }
    }
    Ok(())
}

fn two_d(
    args: &Args,
    set: Toy2d,
    ladder: &NoiseLadder,
    dsm: &DsmTrainConfig,
    device: &Device,
) -> anyhow::Result<()> {
    let truth = set.density();
    let cells = 64;
    let masses = true_cell_masses(&truth, cells, device)?;
    let mut rng = seeded(1000 + args.seed);
    let data = from_host2(truth.sample_host(&mut rng, 20_000), [20_000, 2], device);
    let test = truth.sample_host(&mut rng, args.test_points);
    let test_t = from_host2(test.clone(), [args.test_points, 2], device);
    let true_nll = evaluate(&truth, &truth, &test, Grid2d::for_density(&truth), device)?.true_nll;
    let floor = sample_metrics(
        &truth,
        &truth.sample_host(&mut rng, args.samples),
        cells,
        &masses,
    )?;
    println!(
        "\n## {set}: {} samples, TV on a {cells}x{cells} histogram of [-4, 4]^2 (exact samples: {:.3}); held-out NLL of the true density {true_nll:.3} nats\n",
        args.samples, floor.tv
    );
    println!(
        "| model | sampler | NFE | TV | modes (of {}) | PF-ODE NLL (nats) | train s | ms / 1000 samples |",
        truth.modes()
    );
    println!("|---|---|---|---|---|---|---|---|");
    let ad = device.clone().autodiff();
    let net_cfg = ScoreNetConfig::default();
    let vp = Sde::vp();
    let ve = Sde::Ve {
        sigma_min: ladder.sigmas()[ladder.sigmas().len() - 1],
        sigma_max: ladder.sigmas()[0],
    };
    let mut panels = Vec::new();
    let data_panel = Scatter {
        title: "data".into(),
        bounds: truth.bounds(),
        points: truth.sample_host(&mut rng, 3000),
    };
    let nll_of = |model: &dyn ScoreModel, sde: &Sde| -> anyhow::Result<(f64, f64)> {
        let r = pf_ode_log_likelihood(
            &mut seeded(0),
            model,
            sde,
            test_t.clone(),
            100,
            sde.t_min(),
            Divergence::Exact,
        )?;
        let v: Vec<f64> = to_host1(&r.log_likelihood)
            .iter()
            .map(|l| -f64::from(*l))
            .collect();
        Ok(mean_and_se(&v))
    };
    let row = |model: &str,
               sampler: &str,
               nfe: usize,
               x: &Tensor<2>,
               nll: (f64, f64),
               train_s: f64,
               secs: f64,
               panels: &mut Vec<Scatter>|
     -> anyhow::Result<()> {
        let pts = to_host2(x);
        let m = sample_metrics(&truth, &pts, cells, &masses)?;
        println!(
            "| {model} | {sampler} | {nfe} | {:.3} | {} | {:.3} ± {:.3} | {train_s:.1} | {:.1} |",
            m.tv,
            m.modes_covered,
            nll.0,
            nll.1,
            secs * 1e6 / args.samples as f64
        );
        panels.push(Scatter {
            title: format!("{model}, {sampler}"),
            bounds: truth.bounds(),
            points: pts[..3000.min(pts.len())].to_vec(),
        });
        Ok(())
    };
    // Every sampler on one model: a row each, a panel each after the data panel.
    let all_solvers = |label: &str,
                       model: &dyn ScoreModel,
                       sde: &Sde,
                       train_s: f64,
                       panels: &mut Vec<Scatter>|
     -> anyhow::Result<(f64, f64)> {
        let nll = nll_of(model, sde)?;
        panels.push(data_panel.clone());
        for (solver, steps) in solvers() {
            let (x, r) = sample(
                &mut seeded(args.seed + 2),
                model,
                sde,
                &SampleConfig {
                    solver,
                    steps,
                    t_min: sde.t_min(),
                },
                args.samples,
                device,
            )?;
            row(
                label,
                solver.name(),
                r.nfe,
                &x,
                nll,
                train_s,
                r.seconds,
                panels,
            )?;
        }
        Ok(nll)
    };
    // The noise-predicting MLP (VP SDE), trained by the fused DSM trainer.
    let mut mlp = net_cfg.mlp(&mut seeded(args.seed), &ad)?;
    let report = fit_dsm_fused(&mut seeded(args.seed + 1), &mut mlp, &vp, &data, dsm)?;
    all_solvers(
        "mlp (VP)",
        &NetScore::new(&mlp, vp),
        &vp,
        report.seconds,
        &mut panels,
    )?;
    // The energy-parameterised model (VP SDE), trained through its written-out score.
    let mut energy = net_cfg.energy(&mut seeded(args.seed), &ad)?;
    let report = fit_dsm(
        &mut seeded(args.seed + 1),
        &mut energy,
        &vp,
        &data,
        dsm,
        true,
    )?;
    let energy = NetScore::new(&energy, vp);
    let nll = all_solvers("energy (VP)", &energy, &vp, report.seconds, &mut panels)?;
    // The same energy model, MALA-corrected at the last levels of the two cheapest samplers.
    let correction = MalaCorrection::default();
    for (solver, steps) in [(Solver::EulerMaruyama, 500), (Solver::Ddim, 100)] {
        let (x, r) = sample_corrected(
            &mut seeded(args.seed + 2),
            &energy,
            &vp,
            &SampleConfig {
                solver,
                steps,
                t_min: vp.t_min(),
            },
            &correction,
            args.samples,
            device,
        )?;
        let name = format!("{} + MALA (acc. {:.2})", solver.name(), r.acceptance);
        row(
            "energy (VP)",
            &name,
            r.sampling.nfe,
            &x,
            nll,
            report.seconds,
            r.sampling.seconds,
            &mut panels,
        )?;
    }
    // NCSN: the noise-predicting MLP under the VE SDE of the ladder, annealed Langevin.
    let mut ncsn = net_cfg.mlp(&mut seeded(args.seed), &ad)?;
    let report = fit_dsm_fused(&mut seeded(args.seed + 1), &mut ncsn, &ve, &data, dsm)?;
    let ncsn = NetScore::new(&ncsn, ve);
    let nll = nll_of(&ncsn, &ve)?;
    panels.push(data_panel.clone());
    let mut rng = seeded(args.seed + 2);
    let (xa, ra) = annealed_langevin(
        &mut rng,
        &ncsn,
        &ve,
        &AnnealedLangevinConfig {
            ladder: ladder.clone(),
            steps_per_level: 20,
            epsilon: 2e-5,
        },
        args.samples,
        device,
    )?;
    let mut rng = seeded(args.seed + 2);
    let (xo, ro) = sample(
        &mut rng,
        &ncsn,
        &ve,
        &SampleConfig {
            solver: Solver::Rk4,
            steps: 50,
            t_min: ve.t_min(),
        },
        args.samples,
        device,
    )?;
    for (name, x, r) in [("annealed_langevin", xa, ra), ("pf_ode_rk4", xo, ro)] {
        row(
            "ncsn (VE)",
            name,
            r.nfe,
            &x,
            nll,
            report.seconds,
            r.seconds,
            &mut panels,
        )?;
    }
    // One picture per model: data, then its samplers.
    for (name, range) in [("mlp", 0..7), ("energy", 7..16), ("ncsn", 16..19)] {
        let path = args.out.join(format!("{set}_{name}.png"));
        scatter_grid(&path, &panels[range], Some(5))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Digits: pixels p in {0..16} dequantised as y = 2 (p + u) / 17 - 1, u ~ U(0, 1); a
/// convolutional noise predictor under the VP SDE; bits per dimension on the test split from the
/// PF-ODE (Hutchinson, one probe) with the change of variables p -> y:
/// bpd = -(log p_y(y) + 64 log(2 / 17)) / (64 log 2), an upper bound on the discrete model's bpd.
fn digits(args: &Args, device: &Device) -> anyhow::Result<()> {
    use rand::RngExt;
    let mut rng = seeded(args.seed + 7);
    let deq = |pixels: &[f32], copies: usize, rng: &mut ebm_zoo::energy::ZooRng| -> Vec<f32> {
        (0..copies)
            .flat_map(|_| {
                pixels
                    .iter()
                    .map(|p| 2.0 * (p * 16.0 + rng.random::<f32>()) / 17.0 - 1.0)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let train = Digits::load(Split::Train)?;
    let test = Digits::load(Split::Test)?;
    let copies = 8;
    let data = deq(&train.scaled(), copies, &mut rng);
    let n = data.len() / 64;
    let data = from_host2(data, [n, 64], device);
    let ad = device.clone().autodiff();
    let vp = Sde::vp();
    let mut net = ConvScore::new(&mut seeded(args.seed), 8, 64, Activation::Silu, &ad)?;
    let cfg = DsmTrainConfig {
        iterations: args.digits_iterations,
        batch_size: 128,
        learning_rate: 2e-3,
        ..DsmTrainConfig::default()
    };
    let report = fit_dsm(&mut seeded(args.seed + 1), &mut net, &vp, &data, &cfg, true)?;
    let model = NetScore::new(&net, vp);
    let (x, r) = sample(
        &mut seeded(args.seed + 2),
        &model,
        &vp,
        &SampleConfig {
            solver: Solver::Ancestral,
            steps: 500,
            t_min: vp.t_min(),
        },
        64,
        device,
    )?;
    let images: Vec<Vec<f32>> = to_host2(&x)
        .chunks(64)
        .map(|c| c.iter().map(|v| (v + 1.0) / 2.0).collect())
        .collect();
    let path = args.out.join("digits_samples.png");
    image_grid(&path, &images, 8, 8)?;
    let m = test.len();
    let y = from_host2(deq(&test.scaled(), 1, &mut rng), [m, 64], device);
    let lik = pf_ode_log_likelihood(
        &mut seeded(args.seed + 3),
        &model,
        &vp,
        y,
        100,
        vp.t_min(),
        Divergence::Hutchinson { probes: 1 },
    )?;
    let jac = 64.0 * (2.0f64 / 17.0).ln();
    let bpd: Vec<f64> = to_host1(&lik.log_likelihood)
        .iter()
        .map(|l| -(f64::from(*l) + jac) / (64.0 * std::f64::consts::LN_2))
        .collect();
    let (b, se) = mean_and_se(&bpd);
    println!(
        "\n## digits: conv score network ({} parameters), {} DSM steps in {:.1} s; {m} test images: {b:.3} ± {se:.3} bits/dim (uniform dequantisation, PF-ODE with Hutchinson's estimator, 100 RK4 steps); samples: ancestral, {} NFE, {}",
        net.num_params(),
        cfg.iterations,
        report.seconds,
        r.nfe,
        path.display()
    );
    Ok(())
}
