//! Flow-assisted MCMC against plain HMC on Neal's funnel and a banana: a flow is first trained by
//! reverse KL to the target (a Boltzmann generator), then used (a) as the proposal of independent
//! Metropolis-Hastings and (b) as the transport of neural-transport HMC (NeuTra: HMC on the target
//! pulled back to the flow's latent space). Same target, same chains, same number of transitions,
//! same leapfrog steps for both HMCs (step sizes each tuned by dual averaging to acceptance 0.65
//! during the same warm-up). Reports ESS (min over coordinates, and of the funnel's log-scale v),
//! split R-hat, the mean and variance of x_0 against the exact values, and ESS per second of
//! sampling (and including the flow's training).
//!
//! Run: `cargo run --release --example flow_mcmc` (about 2 min on 2 cores).

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::energy::energy::{Banana, Funnel};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{to_host1, to_host2};
use ebm_zoo::energy::{BackendKind, Energy, ZooRng};
use ebm_zoo::flow::{
    Flow, FlowConfig, FlowKind, FlowTrainConfig, IndependentMh, NeuTraEnergy, ReverseKlTrainConfig,
    fit_reverse_kl, importance_weights,
};
use ebm_zoo::mcmc::diagnostics::{Draws, Summary};
use ebm_zoo::mcmc::sampler::{DualAveraging, Hmc, Sampler, StepInfo, StepSize};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Funnel dimension (Neal used 10).
    #[arg(long, default_value_t = 10)]
    funnel_dim: usize,
    /// Chains.
    #[arg(long, default_value_t = 32)]
    chains: usize,
    /// Warm-up transitions (adaptation; discarded).
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Kept transitions per chain.
    #[arg(long, default_value_t = 1000)]
    transitions: usize,
    /// Leapfrog steps per HMC transition (both HMCs).
    #[arg(long, default_value_t = 10)]
    leapfrog: usize,
    /// Reverse-KL steps for the flow.
    #[arg(long, default_value_t = 2000)]
    flow_iterations: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
}

/// One sampler's run: kept target-space draws, mean acceptance, sampling seconds.
struct Outcome {
    draws: Draws,
    step_size: Option<f64>,
    acceptance: f64,
    seconds: f64,
}

fn mean_of(a: &Tensor<1>) -> f64 {
    let v = to_host1(a);
    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64
}

/// HMC on `energy` with dual-averaged step size; `to_target` maps kept states to the target.
fn hmc_run(
    energy: &dyn Energy,
    to_target: &dyn Fn(Tensor<2>) -> Tensor<2>,
    start: Tensor<2>,
    args: &Args,
    rng: &mut ZooRng,
) -> anyhow::Result<Outcome> {
    let [chains, dim] = start.dims();
    let mut hmc = Hmc::new(0.1, args.leapfrog)?;
    let mut adapt = DualAveraging::new(0.1, 0.65)?;
    let started = Instant::now();
    let mut state = hmc.init(energy, start)?;
    let mut draws = Draws::new(chains, dim);
    let mut acc = 0.0;
    for t in 0..args.warmup + args.transitions {
        let (next, info): (_, StepInfo) = hmc.step(rng, energy, state)?;
        state = next;
        let a = mean_of(
            info.acceptance_probability
                .as_ref()
                .expect("HMC has a test"),
        );
        if t < args.warmup {
            hmc.set_step_size(adapt.update(a))?;
            if t + 1 == args.warmup {
                hmc.set_step_size(adapt.final_step_size())?;
            }
        } else {
            acc += a;
            draws.push(&to_host2(&to_target(state.position.clone())))?;
        }
    }
    Ok(Outcome {
        draws,
        step_size: Some(hmc.step_size()),
        acceptance: acc / args.transitions as f64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn imh_run(
    flow: &Flow,
    target: &dyn Energy,
    start: Tensor<2>,
    args: &Args,
    rng: &mut ZooRng,
) -> anyhow::Result<Outcome> {
    let [chains, dim] = start.dims();
    let imh = IndependentMh::new(flow)?;
    let started = Instant::now();
    let mut state = imh.init(target, start)?;
    let mut draws = Draws::new(chains, dim);
    let mut acc = 0.0;
    for t in 0..args.warmup + args.transitions {
        let (next, info) = imh.step(rng, target, state)?;
        state = next;
        if t >= args.warmup {
            acc += mean_of(
                info.acceptance_probability
                    .as_ref()
                    .expect("IMH has a test"),
            );
            draws.push(&to_host2(&state.position))?;
        }
    }
    Ok(Outcome {
        draws,
        step_size: None,
        acceptance: acc / args.transitions as f64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    let funnel = Funnel::new(args.funnel_dim, 3.0)?;
    let banana = Banana::new(1.0, 1.0)?;
    // Exact mean and variance of x_0: v ~ N(0, 9) for the funnel, x1 ~ N(0, 1) for the banana.
    let targets: Vec<(String, &dyn Energy, f64)> = vec![
        (format!("funnel (d = {})", args.funnel_dim), &funnel, 9.0),
        ("banana".to_string(), &banana, 1.0),
    ];
    println!(
        "| target | sampler | step size | acceptance | min ESS | ESS of x_0 | max R-hat | mean x_0 (exact 0) | var x_0 (exact) | sampling s | min ESS / s | min ESS / s incl. flow training |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, target, var0) in targets {
        let dim = target.dim();
        let mut rng = seeded(args.seed);
        let ad = device.clone().autodiff();
        let mut flow = FlowConfig {
            layers: 8,
            hidden: vec![64, 64],
            lu: true,
            ..FlowConfig::new(FlowKind::RealNvp, dim)
        }
        .init(&mut rng, &ad)?;
        let cfg = ReverseKlTrainConfig {
            fit: FlowTrainConfig {
                iterations: args.flow_iterations,
                batch_size: 256,
                learning_rate: 1e-3,
                grad_clip: Some(10.0),
                data_init: false,
                progress: true,
                ..FlowTrainConfig::default()
            },
            forward_weight: 0.0,
        };
        let report = fit_reverse_kl(&mut rng, &mut flow, target, None, &cfg, &device)?;
        let (_, is) = importance_weights(&mut rng, &flow, target, 20_000, 4096, &device)?;
        println!(
            "<!-- {name}: flow trained in {:.1} s; reverse-KL bound {:.3}, IS log Z {:.3} ± {:.3} (exact {:.3}), ESS/N {:.3} -->",
            report.seconds,
            is.elbo,
            is.log_z,
            is.log_z_se,
            target.log_normalizer().unwrap_or(f64::NAN),
            is.ess / is.n as f64
        );
        let start = normal(&mut rng, [args.chains, dim], &device);
        let identity = |x: Tensor<2>| x;
        let neutra = NeuTraEnergy::new(&flow, target)?;
        let to_target = |z: Tensor<2>| neutra.to_target(z);
        let runs = [
            (
                "HMC",
                hmc_run(
                    target,
                    &identity,
                    start.clone(),
                    &args,
                    &mut seeded(args.seed + 1),
                )?,
                0.0,
            ),
            (
                "flow independent MH",
                imh_run(
                    &flow,
                    target,
                    start.clone(),
                    &args,
                    &mut seeded(args.seed + 2),
                )?,
                report.seconds,
            ),
            (
                "NeuTra HMC",
                hmc_run(
                    &neutra,
                    &to_target,
                    start.clone(),
                    &args,
                    &mut seeded(args.seed + 3),
                )?,
                report.seconds,
            ),
        ];
        for (label, out, training) in runs {
            let summary: Vec<Summary> = out.draws.summary();
            let min_ess = summary.iter().map(|s| s.ess).fold(f64::INFINITY, f64::min);
            let max_rhat = summary.iter().map(|s| s.rhat).fold(0.0, f64::max);
            let s0 = summary[0];
            println!(
                "| {name} | {label} | {} | {:.3} | {:.0} | {:.0} | {:.3} | {:.3} ± {:.3} | {:.2} ({var0}) | {:.1} | {:.1} | {:.1} |",
                out.step_size.map_or("-".to_string(), |h| format!("{h:.3}")),
                out.acceptance,
                min_ess,
                s0.ess,
                max_rhat,
                s0.mean,
                s0.mcse,
                s0.variance,
                out.seconds,
                min_ess / out.seconds,
                min_ess / (out.seconds + training)
            );
        }
    }
    println!(
        "\n{} chains x {} kept transitions after {} warm-up transitions, started from N(0, I); HMC with {} leapfrog \
         steps (NeuTra: in the latent space). Flow: RealNVP, 8 affine couplings (MLP 64-64) with LU layers, reverse KL, \
         Adam lr 1e-3, batch 256. ESS: multi-chain (Geyer's initial monotone sequence); mean ± MCSE.",
        args.chains, args.transitions, args.warmup, args.leapfrog
    );
    Ok(())
}
