//! Partition-function estimators against exact log Z: five replicas each of AIS, SMC and
//! Jarzynski-weighted ULA must land within their own standard errors, those errors are bounded
//! from above by the spread of the replicas around the exact value, and they shrink like
//! 1/sqrt(N).

use crate::common;

use common::cpu_device;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, Energy, Gaussian, GaussianMixture};
use ebm_zoo::energy::linalg::ar1_correlation;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::mcmc::estimate::{AnnealConfig, JarzynskiConfig, LogZEstimate, anneal, jarzynski};
use ebm_zoo::mcmc::sampler::{AnySampler, SamplerKind, geometric_schedule};

fn report(what: &str, est: &LogZEstimate, exact: f64) {
    println!(
        "{what}: log Z {:.4} ± {:.4} (exact {exact:.4}, {:.2} SE), ESS {:.0} of {}, resamplings {}",
        est.log_z,
        est.std_err,
        (est.log_z - exact) / est.std_err,
        est.ess,
        est.particles,
        est.resamplings
    );
}

/// Five independent replicas of an estimator, checked against the exact value from both sides
/// ([`common::assert_se_bounded_by_replicas`]).
fn replicas(what: &str, exact: f64, run: impl Fn(u64) -> LogZEstimate) -> Vec<LogZEstimate> {
    let runs: Vec<LogZEstimate> = (0..5).map(run).collect();
    for est in &runs {
        report(what, est, exact);
    }
    let pairs: Vec<(f64, f64)> = runs.iter().map(|e| (e.log_z, e.std_err)).collect();
    common::assert_se_bounded_by_replicas(what, &pairs, exact);
    runs
}

struct Case {
    name: &'static str,
    target: Box<dyn Energy>,
    exact: f64,
    base: Gaussian,
    step: f64,
}

fn cases(dev: &Device) -> Vec<Case> {
    let mix20 = GaussianMixture::from_parts(
        vec![0.7, 0.3],
        vec![vec![0.5; 20], vec![-0.5; 20]],
        vec![Covariance::Isotropic(0.5), Covariance::Isotropic(0.8)],
        dev,
    )
    .unwrap();
    let corr = Gaussian::new(
        vec![1.0; 10],
        Covariance::Full(ar1_correlation(10, 0.6)),
        dev,
    )
    .unwrap();
    let corr_log_z = corr.log_normalizer().unwrap();
    vec![
        Case {
            name: "2-D mixture",
            target: Box::new(common::mixture_preset()),
            exact: 0.0,
            base: Gaussian::new(vec![0.0; 2], Covariance::Isotropic(9.0), dev).unwrap(),
            step: 0.1,
        },
        Case {
            name: "20-D mixture",
            target: Box::new(mix20),
            exact: 0.0,
            base: Gaussian::new(vec![0.0; 20], Covariance::Isotropic(2.0), dev).unwrap(),
            step: 0.05,
        },
        Case {
            name: "correlated 10-D gaussian",
            target: Box::new(corr),
            exact: corr_log_z,
            base: Gaussian::new(vec![0.0; 10], Covariance::Isotropic(4.0), dev).unwrap(),
            step: 0.05,
        },
    ]
}

#[test]
fn ais_and_smc_match_exact_log_z() {
    let dev = cpu_device();
    let mut smc_resamplings = 0;
    for (i, c) in cases(&dev).into_iter().enumerate() {
        for (label, threshold) in [("AIS", None), ("SMC", Some(0.5))] {
            let config = AnnealConfig {
                betas: geometric_schedule(1e-3, 300).unwrap(),
                steps_per_level: 3,
                resample_threshold: threshold,
                groups: 16,
            };
            let runs = replicas(&format!("{label} {}", c.name), c.exact, |r| {
                let mut kernel = AnySampler::new(SamplerKind::Mala, c.step, 1).unwrap();
                anneal(
                    &mut seeded(70 + i as u64 + 100 * r),
                    &c.base,
                    c.target.as_ref(),
                    &mut kernel,
                    2048,
                    &config,
                    &dev,
                )
                .unwrap()
            });
            if threshold.is_some() {
                smc_resamplings += runs.iter().map(|e| e.resamplings).sum::<usize>();
            }
        }
    }
    assert!(
        smc_resamplings > 0,
        "SMC never resampled: the test would not exercise it"
    );
}

#[test]
fn jarzynski_matches_exact_log_z() {
    let dev = cpu_device();
    for (i, c) in cases(&dev).into_iter().enumerate() {
        let config = JarzynskiConfig {
            betas: geometric_schedule(1e-3, 2000).unwrap(),
            step_size: c.step * 0.2,
            groups: 16,
            resample_threshold: None,
        };
        replicas(&format!("Jarzynski {}", c.name), c.exact, |r| {
            jarzynski(
                &mut seeded(80 + i as u64 + 100 * r),
                &c.base,
                c.target.as_ref(),
                2048,
                &config,
                &dev,
            )
            .unwrap()
        });
    }
}

#[test]
fn jarzynski_with_resampling_matches_exact_log_z() {
    // The walkers' resampling runs through the annealing engine: with a threshold of 0.9 every
    // group resamples, and log Z stays within the replicas' spread of the exact value.
    let dev = cpu_device();
    let c = cases(&dev).remove(0);
    let config = JarzynskiConfig {
        betas: geometric_schedule(1e-3, 500).unwrap(),
        step_size: c.step * 0.2,
        groups: 16,
        resample_threshold: Some(0.9),
    };
    let runs = replicas(&format!("Jarzynski + SMC {}", c.name), c.exact, |r| {
        jarzynski(
            &mut seeded(90 + r),
            &c.base,
            c.target.as_ref(),
            2048,
            &config,
            &dev,
        )
        .unwrap()
    });
    let resamplings: usize = runs.iter().map(|e| e.resamplings).sum();
    assert!(
        resamplings >= 16,
        "resampled {resamplings} times: the test would not exercise it"
    );
}

#[test]
fn standard_errors_shrink_like_one_over_sqrt_n() {
    let dev = cpu_device();
    let c = cases(&dev).remove(0);
    let config = AnnealConfig {
        betas: geometric_schedule(1e-2, 30).unwrap(),
        steps_per_level: 1,
        resample_threshold: None,
        groups: 16,
    };
    let se = |n: usize, seed: u64| {
        let mut kernel = AnySampler::new(SamplerKind::Mala, c.step, 1).unwrap();
        anneal(
            &mut seeded(seed),
            &c.base,
            c.target.as_ref(),
            &mut kernel,
            n,
            &config,
            &dev,
        )
        .unwrap()
        .std_err
    };
    let (small, large) = (se(1024, 90), se(16384, 91));
    let ratio = small / large;
    println!(
        "AIS standard error: N = 1024 -> {small:.4}, N = 16384 -> {large:.4}, ratio {ratio:.2} (theory 4)"
    );
    // Each SE is estimated from 16 groups (relative sd ~ 1/sqrt(30) = 0.18): the ratio of two such
    // estimates lies within 4 x that spread (about 0.5 relative) of 4.
    assert!((2.0..8.0).contains(&ratio), "ratio {ratio}");
}

#[test]
fn bad_schedules_and_sizes_are_errors() {
    let dev = cpu_device();
    let c = cases(&dev).remove(0);
    let mut kernel = AnySampler::new(SamplerKind::Mala, 0.1, 1).unwrap();
    let mut cfg = AnnealConfig {
        betas: vec![0.5, 0.2, 1.0],
        steps_per_level: 1,
        resample_threshold: None,
        groups: 4,
    };
    let err = anneal(
        &mut seeded(1),
        &c.base,
        c.target.as_ref(),
        &mut kernel,
        64,
        &cfg,
        &dev,
    )
    .unwrap_err();
    assert!(err.to_string().contains("strictly increasing"), "{err}");
    cfg.betas = vec![0.5, 0.9];
    assert!(
        anneal(
            &mut seeded(1),
            &c.base,
            c.target.as_ref(),
            &mut kernel,
            64,
            &cfg,
            &dev
        )
        .unwrap_err()
        .to_string()
        .contains("end at beta = 1")
    );
    cfg.betas = vec![1.0];
    assert!(
        anneal(
            &mut seeded(1),
            &c.base,
            c.target.as_ref(),
            &mut kernel,
            3,
            &cfg,
            &dev
        )
        .is_err()
    );
    let jc = JarzynskiConfig {
        betas: vec![1.0],
        step_size: -1.0,
        groups: 4,
        resample_threshold: None,
    };
    assert!(jarzynski(&mut seeded(1), &c.base, c.target.as_ref(), 64, &jc, &dev).is_err());
}

#[test]
fn jarzynski_weighted_averages_are_exact_for_a_coarse_step() {
    // The 2-D mixture's mean from Jarzynski-weighted ULA walkers, with a step large enough to
    // bias plain ULA: the weighted mean per group, spread over 16 groups for the standard error.
    use ebm_zoo::mcmc::estimate::jarzynski_walkers;
    let dev = cpu_device();
    let target = common::mixture_preset();
    let base = Gaussian::new(vec![0.0; 2], Covariance::Isotropic(9.0), &dev).unwrap();
    let config = JarzynskiConfig {
        betas: geometric_schedule(1e-3, 500).unwrap(),
        step_size: 0.1,
        groups: 16,
        resample_threshold: None,
    };
    let (_, x, log_w) =
        jarzynski_walkers(&mut seeded(95), &base, &target, 4096, &config, &dev).unwrap();
    let rows = common::rows(&x);
    let per = rows.len() / 16;
    for (i, exact) in target.mean().into_iter().enumerate() {
        let groups: Vec<f64> = (0..16)
            .map(|g| {
                let r = g * per..(g + 1) * per;
                let m = log_w[r.clone()]
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = log_w[r.clone()].iter().map(|l| (l - m).exp()).collect();
                w.iter().zip(&rows[r]).map(|(w, x)| w * x[i]).sum::<f64>() / w.iter().sum::<f64>()
            })
            .collect();
        let mean = groups.iter().sum::<f64>() / 16.0;
        let se = (groups.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 15.0 / 16.0).sqrt();
        let plain = rows.iter().map(|x| x[i]).sum::<f64>() / rows.len() as f64;
        println!(
            "Jarzynski weighted mean[{i}] {mean:.4} ± {se:.4} (exact {exact:.4}; unweighted walkers {plain:.4})"
        );
        common::assert_within(&format!("weighted mean[{i}]"), mean, exact, se, 4.0);
    }
}
