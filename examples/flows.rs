//! A tour of the flow crate in under a minute: RealNVP, MAF and a neural spline flow fitted to two
//! moons by maximum likelihood (exact held-out NLL against the true density's, and the grid
//! integral of each learned density), then a Boltzmann generator: a flow fitted to a double-well
//! energy with no data, its importance-weighted log Z against the exact value, and the same flow
//! as the proposal of independent Metropolis-Hastings.
//!
//! Run: `cargo run --release --example flows` (about 15 s on 2 cores). The full experiments:
//! `flow_2d` (the NLL table), `flow_boltzmann`, `flow_mcmc`.

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::grid::{GridDensity, mean_and_se};
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::energy::energy::DoubleWell;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{from_host2, to_host1};
use ebm_zoo::energy::{BackendKind, Energy};
use ebm_zoo::flow::{
    FlowConfig, FlowEnergy, FlowKind, FlowTrainConfig, IndependentMh, ReverseKlTrainConfig,
    fit_max_likelihood, fit_reverse_kl, importance_weights,
};
use ebm_zoo::mcmc::sampler::Sampler;
use ebm_zoo::plot::{HeatMap, heat_maps};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Adam steps per flow.
    #[arg(long, default_value_t = 1500)]
    iterations: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Folder for the PNG.
    #[arg(long, default_value = "results/flows")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    let ad = device.clone().autodiff();
    let mut rng = seeded(args.seed);

    // 1. Maximum likelihood on two moons.
    let truth = Toy2d::TwoMoons.density();
    let data = from_host2(truth.sample_host(&mut rng, 20_000), [20_000, 2], &device);
    let test = from_host2(truth.sample_host(&mut rng, 5_000), [5_000, 2], &device);
    let exact = mean_and_se(
        &to_host1(&truth.energy(test.clone()))
            .iter()
            .map(|v| f64::from(*v))
            .collect::<Vec<_>>(),
    )
    .0;
    let fit = FlowTrainConfig {
        iterations: args.iterations,
        batch_size: 256,
        learning_rate: 2e-3,
        ..FlowTrainConfig::default()
    };
    let grid = Grid2d::for_density(&truth);
    let mut panels = Vec::new();
    println!(
        "two moons, {} Adam steps each; exact NLL of the held-out points under the true density: {exact:.3}",
        args.iterations
    );
    for kind in [FlowKind::RealNvp, FlowKind::Maf, FlowKind::Nsf] {
        let cfg = FlowConfig {
            layers: 4,
            hidden: vec![32, 32],
            actnorm: true,
            ..FlowConfig::new(kind, 2)
        };
        let mut flow = cfg.init(&mut rng, &ad)?;
        let report = fit_max_likelihood(&mut rng, &mut flow, &data, None, &fit)?;
        let energy = FlowEnergy::new(&flow)?;
        let nll = -f64::from(
            energy
                .flow()
                .log_prob(test.clone(), None)?
                .mean()
                .into_scalar::<f32>(),
        );
        let q = GridDensity::from_energy(&energy, grid, &device)?;
        println!(
            "  {:8} {:6} parameters  held-out NLL {nll:.3}  density integral on [-4, 4]^2 {:.4}  ({:.1} s)",
            kind.label(),
            flow.num_params(),
            q.log_z.exp(),
            report.seconds
        );
        panels.push(HeatMap {
            title: kind.label().into(),
            n: grid.n,
            bounds: truth.bounds(),
            values: q.densities(),
        });
    }
    heat_maps(&args.out.join("moons.png"), &panels)?;

    // 2. A Boltzmann generator for a double well, E = 3 (x1^2 - 1)^2 + x2^2 / 2.
    let well = DoubleWell::new(2, 3.0)?;
    let mut flow = FlowConfig {
        layers: 6,
        hidden: vec![32, 32],
        lu: true,
        ..FlowConfig::new(FlowKind::RealNvp, 2)
    }
    .init(&mut rng, &ad)?;
    let cfg = ReverseKlTrainConfig {
        fit: FlowTrainConfig {
            iterations: 2 * args.iterations,
            batch_size: 256,
            learning_rate: 2e-3,
            grad_clip: Some(10.0),
            data_init: false,
            ..FlowTrainConfig::default()
        },
        forward_weight: 0.0,
    };
    let report = fit_reverse_kl(&mut rng, &mut flow, &well, None, &cfg, &device)?;
    let (_, is) = importance_weights(&mut rng, &flow, &well, 50_000, 8192, &device)?;
    println!(
        "double well: reverse KL {:.1} s; log Z from importance weights {:.4} ± {:.4} (exact {:.4}); ESS {:.0} of {}",
        report.seconds,
        is.log_z,
        is.log_z_se,
        well.log_normalizer().expect("exact"),
        is.ess,
        is.n
    );

    // 3. The same flow as an independent Metropolis-Hastings proposal.
    let imh = IndependentMh::new(&flow)?;
    let mut state = imh.init(&well, normal(&mut rng, [1000, 2], &device))?;
    let mut acceptance = 0.0;
    for _ in 0..50 {
        let (next, info) = imh.step(&mut rng, &well, state)?;
        state = next;
        acceptance += f64::from(
            info.acceptance_probability
                .expect("MH")
                .mean()
                .into_scalar::<f32>(),
        ) / 50.0;
    }
    let right = to_host1(&state.position.slice([0..1000, 0..1]).reshape([1000]))
        .iter()
        .filter(|v| **v > 0.0)
        .count();
    println!(
        "independent MH with the flow proposal: acceptance {acceptance:.3}; {right} of 1000 chains in the right well (exact: half)"
    );
    println!("density plots: {}", args.out.join("moons.png").display());
    Ok(())
}
