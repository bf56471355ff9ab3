//! Sample a 2-D mixture with unequal weights by MALA with dual-averaging step-size adaptation,
//! and compare the sample moments with the exact ones.
//!
//! Run: `cargo run --release --example sample_energy`
//! Expected: acceptance near 0.55, means and variances within a few MCSE of the exact values,
//! R-hat below 1.05.

use ebm_zoo::energy::energy::{Covariance, Energy, GaussianMixture};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::{BackendKind, Result};
use ebm_zoo::mcmc::run::{RunConfig, run};
use ebm_zoo::mcmc::sampler::Mala;

fn main() -> Result<()> {
    let device = BackendKind::Flex.device()?;
    let target = GaussianMixture::from_parts(
        vec![0.7, 0.3],
        vec![vec![-1.5, 0.0], vec![1.5, 0.5]],
        vec![Covariance::Isotropic(0.49), Covariance::Isotropic(0.81)],
        &device,
    )?;
    let mut rng = seeded(0);
    let start = normal(&mut rng, [64, target.dim()], &device).mul_scalar(3.0);
    let config = RunConfig {
        warmup: 500,
        steps: 2000,
        target_acceptance: Some(0.574),
        ..RunConfig::default()
    };
    let out = run(
        &mut rng,
        &mut Mala::new(0.3)?,
        &target,
        start,
        &config,
        &mut |_| {},
    )?;
    println!(
        "acceptance {:.3}, adapted step size {:.3}",
        out.acceptance_rate, out.step_size
    );
    let (mean, cov) = (target.mean(), target.covariance());
    for (i, s) in out.draws.expect("kept").summary().iter().enumerate() {
        println!(
            "x{i}: mean {:+.3} ± {:.3} (exact {:+.3}), variance {:.3} (exact {:.3}), ESS {:.0}, R-hat {:.3}",
            s.mean, s.mcse, mean[i], s.variance, cov[i][i], s.ess, s.rhat
        );
    }
    Ok(())
}
