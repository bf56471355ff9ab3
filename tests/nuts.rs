//! NUTS against exact references: one transition keeps exact draws of a correlated Gaussian
//! exact; Neal's 100-D Gaussian with scales 0.01..1 after Stan's warm-up; Neal's funnel in its
//! non-centred form (exact) and in its centred form (divergences reported); ESS per gradient
//! evaluation against HMC with its best fixed trajectory length.

use crate::common;

use common::cpu_device;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, Energy, Funnel, Gaussian};
use ebm_zoo::energy::linalg::Matrix;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::mcmc::diagnostics::Summary;
use ebm_zoo::mcmc::run::{RunConfig, RunOutput, nuts_warmup, run};
use ebm_zoo::mcmc::sampler::{ChainKernel, Hmc, Nuts, Sampler, StepSize};
use std::cell::Cell;

/// Counts the rows it evaluates (gradient evaluations, lockstep chains included).
struct Counted<'a> {
    inner: &'a dyn Energy,
    rows: Cell<u64>,
}

impl Energy for Counted<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn energy_and_score(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        self.rows.set(self.rows.get() + x.dims()[0] as u64);
        self.inner.energy_and_score(x)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn one_transition_keeps_exact_draws_of_a_correlated_gaussian() {
    let device = cpu_device();
    let cov: Matrix = vec![vec![1.0, 0.95], vec![0.95, 1.0]];
    let target = Gaussian::new(vec![0.0, 0.0], Covariance::Full(cov), &device).unwrap();
    let n = 20_000;
    for step in [0.3, 1.0] {
        let x = target.sample(&mut seeded(1), n, &device);
        let nuts = Nuts::new(step, 10).unwrap();
        let state = nuts.init(&target, x).unwrap();
        let (next, info) = nuts.step(&mut seeded(2), &target, state).unwrap();
        let rows = common::rows(&next.position);
        let mean = |j: usize| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64;
        let (m0, m1) = (mean(0), mean(1));
        let var =
            |j: usize, m: f64| rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n as f64;
        let (v0, v1) = (var(0, m0), var(1, m1));
        let c = rows.iter().map(|r| (r[0] - m0) * (r[1] - m1)).sum::<f64>() / n as f64;
        let corr = c / (v0 * v1).sqrt();
        let depth = ebm_zoo::energy::tensor::to_host1(&info.tree_depth.unwrap());
        let mean_depth = depth.iter().map(|&d| f64::from(d)).sum::<f64>() / n as f64;
        println!(
            "step {step}: mean ({m0:.4}, {m1:.4}), var ({v0:.4}, {v1:.4}), corr {corr:.4}; mean tree depth {mean_depth:.2}"
        );
        assert!(m0.abs() <= 0.03 && m1.abs() <= 0.03, "step {step}: mean");
        assert!(
            (v0 - 1.0).abs() <= 0.05 && (v1 - 1.0).abs() <= 0.05,
            "step {step}: var"
        );
        assert!((corr - 0.95).abs() <= 0.01, "step {step}: corr {corr}");
        // The chains moved at step 0.3 (a transition that kept every point would pass the checks
        // above); at 1.0 the leapfrog is unstable along the narrow direction (sd 0.22), most
        // trajectories diverge at once and keep their point, which is still exact.
        let moved = common::rows(&target.sample(&mut seeded(1), n, &device))
            .iter()
            .zip(&rows)
            .filter(|(a, b)| a != b)
            .count();
        let divergent = ebm_zoo::energy::tensor::to_host1(&info.divergent.unwrap())
            .iter()
            .filter(|&&v| v > 0.5)
            .count();
        println!("step {step}: {moved} of {n} chains moved, {divergent} trajectories diverged");
        if step < 0.5 {
            assert!(moved > n / 2, "step {step}: only {moved} chains moved");
        }
    }
}

/// NUTS after Stan's warm-up, then `steps` draws from `chains` chains.
fn nuts_run(
    target: &dyn Energy,
    chains: usize,
    warmup: usize,
    steps: usize,
    seed: u64,
) -> (RunOutput, Nuts) {
    let device = cpu_device();
    let d = target.dim();
    let start = normal(&mut seeded(seed), [chains, d], &device);
    let mut nuts = Nuts::new(0.1, 10).unwrap();
    let mut rng = seeded(seed + 1);
    let warm = nuts_warmup(&mut rng, &mut nuts, target, start, warmup, 0.8).unwrap();
    let config = RunConfig {
        steps,
        ..RunConfig::default()
    };
    let out = run(
        &mut rng,
        &mut nuts,
        target,
        warm.position,
        &config,
        &mut |_| {},
    )
    .unwrap();
    (out, nuts)
}

fn neal_gaussian(device: &Device) -> (Gaussian, Vec<f64>) {
    let sd: Vec<f64> = (0..100).map(|i| 0.01 + 0.99 * i as f64 / 99.0).collect();
    let var = sd.iter().map(|s| s * s).collect();
    (
        Gaussian::new(vec![0.0; 100], Covariance::Diagonal(var), device).unwrap(),
        sd,
    )
}

#[test]
fn neals_100d_gaussian_after_warmup() {
    let device = cpu_device();
    let (target, sd) = neal_gaussian(&device);
    let (out, nuts) = nuts_run(&target, 8, 1000, 2000, 10);
    let draws = out.draws.unwrap();
    let summary = draws.summary();
    let worst_mean = summary
        .iter()
        .map(|s| s.mean.abs() / s.mcse)
        .fold(0.0, f64::max);
    let worst_var = summary
        .iter()
        .zip(&sd)
        .map(|(s, sd)| (s.variance / (sd * sd) - 1.0).abs())
        .fold(0.0, f64::max);
    let min_ess = summary.iter().map(|s| s.ess).fold(f64::INFINITY, f64::min);
    println!(
        "NUTS on Neal's 100-D Gaussian: step {:.4}, mean tree depth {:.2}, acceptance {:.3}, divergences {}; worst |mean| / MCSE {worst_mean:.2}, worst relative variance error {worst_var:.3}, min ESS {min_ess:.0} of 16000",
        nuts.step_size(),
        out.mean_tree_depth.unwrap(),
        out.acceptance_rate,
        out.divergences
    );
    assert!(worst_mean < 4.0, "a mean is {worst_mean} MCSE off");
    assert!(worst_var < 0.10, "a variance is {worst_var} off");
    assert_eq!(out.divergences, 0);
}

#[test]
fn funnel_non_centred_is_exact_and_centred_reports_divergences() {
    let device = cpu_device();
    // Non-centred: z ~ N(0, I_10), v = 3 z_0, x_i = exp(v / 2) z_i.
    let standard = Gaussian::new(vec![0.0; 10], Covariance::Isotropic(1.0), &device).unwrap();
    let (out, _) = nuts_run(&standard, 4, 500, 2000, 20);
    let v: Vec<Vec<f64>> = out
        .draws
        .unwrap()
        .coordinate(0)
        .iter()
        .map(|c| c.iter().map(|z| 3.0 * z).collect())
        .collect();
    let s = Summary::of(&v);
    println!(
        "non-centred funnel: mean v {:.3} ± {:.3}, sd v {:.3}",
        s.mean,
        s.mcse,
        s.variance.sqrt()
    );
    assert!(s.mean.abs() <= 0.15 && (s.variance.sqrt() - 3.0).abs() <= 0.15);
    // Centred: the neck defeats any one step size. 16 chains: how many divergences a run meets is
    // a matter of where its chains enter the neck, which depends on the CPU's floating-point
    // paths (4 chains of seed 30 met 0 on an AVX2 EPYC and several elsewhere; 4 chains of seeds
    // 31-33 met 17, 8, 5 there, 16 chains of seeds 30 and 31 met 12 and 31). The bias of v that
    // comes with it (the chains do not reach the neck's share of mass) is checked too.
    let funnel = Funnel::new(10, 3.0).unwrap();
    let (out, _) = nuts_run(&funnel, 16, 500, 1000, 30);
    let v = Summary::of(&out.draws.unwrap().coordinate(0));
    println!(
        "centred funnel: {} divergences after warm-up, mean v {:.3}, sd v {:.3}",
        out.divergences,
        v.mean,
        v.variance.sqrt()
    );
    assert!(out.divergences > 0, "the centred funnel should diverge");
    assert!(
        v.mean > 0.5 || v.variance.sqrt() < 2.7,
        "the centred funnel's v should be biased"
    );
}

/// ESS per gradient evaluation on Neal's 100-D Gaussian (identity metric for both: the
/// comparison is of trajectory lengths, not of mass matrices), min over coordinates.
#[test]
fn nuts_against_hmc_with_its_best_fixed_length() {
    let device = cpu_device();
    let (target, _) = neal_gaussian(&device);
    let chains = 4;
    let per_gradient = |kernel: &mut dyn ChainKernel, tune: bool| -> f64 {
        let counted = Counted {
            inner: &target,
            rows: Cell::new(0),
        };
        let start = normal(&mut seeded(40), [chains, 100], &device);
        let config = RunConfig {
            warmup: 500,
            steps: 1000,
            target_acceptance: tune.then_some(0.8),
            ..RunConfig::default()
        };
        let out = run(
            &mut seeded(41),
            kernel,
            &counted,
            start,
            &config,
            &mut |_| {},
        )
        .unwrap();
        let ess = out
            .draws
            .unwrap()
            .summary()
            .iter()
            .map(|s| s.ess)
            .fold(f64::INFINITY, f64::min);
        ess / (counted.rows.get() as f64 / chains as f64)
    };
    let mut nuts = Nuts::new(0.01, 10).unwrap();
    let nuts_rate = per_gradient(&mut nuts, true);
    let mut best = (0usize, 0.0f64);
    for l in [16, 32, 64, 128, 256] {
        let mut hmc = Hmc::new(0.01, l).unwrap().with_jitter(false);
        let rate = per_gradient(&mut hmc, true);
        println!("HMC L = {l}: min ESS per gradient evaluation {rate:.2e}");
        if rate > best.1 {
            best = (l, rate);
        }
    }
    println!(
        "NUTS: min ESS per gradient evaluation {nuts_rate:.2e}; HMC's best fixed L = {}: {:.2e} (ratio {:.2})",
        best.0,
        best.1,
        nuts_rate / best.1
    );
    // Measured 3.9x; NUTS adapts its length per transition, so on coordinates whose scales span
    // a factor 100 it must at least match the best single fixed length.
    assert!(
        nuts_rate > best.1,
        "NUTS {nuts_rate:.2e} below HMC's best fixed length {:.2e}",
        best.1
    );
}
