//! Energy-based uncertainty on a graph: GEBM (Fuchsgruber et al. 2024) and its baselines on a
//! contextual stochastic block model (1200 nodes, 5 blocks, 16 features), under a left-out class,
//! far feature noise and a homophily shift. One seed; prints the AUROC table.
//!
//! Run: `cargo run --release --example uncertainty_graph` (about 10 s on 2 cores).
//! The full tables on Cora and CiteSeer: `zoo uncertainty graph --graph cora` (docs/uncertainty.md).

use ebm_zoo::energy::{BackendKind, Result, seeded};
use ebm_zoo::uncertainty::experiment::{self, GraphExperimentConfig};
use ebm_zoo::uncertainty::{CsbmConfig, Shift};

fn main() -> Result<()> {
    let device = BackendKind::Flex.device()?;
    let graph = CsbmConfig::default().sample(&mut seeded(0))?;
    let shifts = vec![Shift::LeaveOutClass, Shift::FeatureFar, Shift::Homophily];
    let config = GraphExperimentConfig::new(vec![0], shifts, vec![4]);
    let results = experiment::run(&graph, &config, &device, &mut |line| eprintln!("{line}"))?;
    print!("{}", experiment::markdown("CSBM", &results));
    Ok(())
}
