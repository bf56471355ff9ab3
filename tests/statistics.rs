//! Statistical tests of the samplers with fixed seeds and tolerances from theory:
//! moments within 4 Monte Carlo standard errors (SE from the measured ESS), ULA's closed-form
//! stationary bias, and ESS / R-hat against an AR(1) process whose values are known exactly.

use crate::common;

use common::{assert_within, cpu_device};
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, Energy, Gaussian, GaussianMixture};
use ebm_zoo::energy::linalg::{Matrix, ar1_correlation};
use ebm_zoo::energy::rng::{normal, normal_vec, seeded};
use ebm_zoo::mcmc::diagnostics::{Draws, Summary, effective_sample_size, split_rhat};
use ebm_zoo::mcmc::run::{RunConfig, run};
use ebm_zoo::mcmc::sampler::{Hmc, Mala, Sampler, Ula};

/// Checks every mean and covariance entry within 4 SE; the SE of a covariance entry comes from
/// the ESS of the product series (x_i - m_i)(x_j - m_j).
fn check_moments(what: &str, draws: &Draws, mean: &[f64], cov: &Matrix) {
    let d = draws.dim();
    for i in 0..d {
        let s = Summary::of(&draws.coordinate(i));
        assert!(
            s.rhat < 1.05,
            "{what}: R-hat of coordinate {i} is {}",
            s.rhat
        );
        assert_within(&format!("{what}: mean[{i}]"), s.mean, mean[i], s.mcse, 4.0);
        for j in 0..=i {
            let (mi, mj) = (mean[i], mean[j]);
            let prod = draws.map(|x| (x[i] as f64 - mi) * (x[j] as f64 - mj));
            let s = Summary::of(&prod);
            assert_within(
                &format!("{what}: cov[{i}][{j}]"),
                s.mean,
                cov[i][j],
                s.mcse,
                4.0,
            );
        }
    }
}

fn sample(
    sampler: &mut dyn ebm_zoo::mcmc::sampler::ChainKernel,
    energy: &dyn Energy,
    chains: usize,
    init_std: f32,
    config: RunConfig,
    seed: u64,
) -> (Draws, f64, f64) {
    let dev = cpu_device();
    let mut rng = seeded(seed);
    let x0 = normal(&mut rng, [chains, energy.dim()], &dev).mul_scalar(init_std);
    let out = run(&mut rng, sampler, energy, x0, &config, &mut |_| {}).expect("no divergence");
    (out.draws.unwrap(), out.acceptance_rate, out.step_size)
}

fn correlated_10d() -> (Gaussian, Vec<f64>, Matrix) {
    let mean: Vec<f64> = (0..10).map(|i| 0.5 * i as f64 - 2.0).collect();
    let mut cov = ar1_correlation(10, 0.6);
    for (i, row) in cov.iter_mut().enumerate() {
        for (j, c) in row.iter_mut().enumerate() {
            *c *= (1.0 + 0.1 * i as f64).sqrt() * (1.0 + 0.1 * j as f64).sqrt();
        }
    }
    let g = Gaussian::new(mean.clone(), Covariance::Full(cov.clone()), &cpu_device()).unwrap();
    (g, mean, cov)
}

fn mixture() -> GaussianMixture {
    common::mixture_preset()
}

fn config(warmup: usize, steps: usize, target: f64) -> RunConfig {
    RunConfig {
        warmup,
        steps,
        thin: 1,
        target_acceptance: Some(target),
        check_every: 1,
        keep_draws: true,
    }
}

#[test]
fn mala_reproduces_a_correlated_10d_gaussian() {
    let (g, mean, cov) = correlated_10d();
    let (draws, acc, h) = sample(
        &mut Mala::new(0.1).unwrap(),
        &g,
        32,
        1.0,
        config(1000, 4000, 0.574),
        11,
    );
    println!("MALA 10-D: acceptance {acc:.3}, adapted h {h:.4}");
    assert!(
        (acc - 0.574).abs() < 0.1,
        "dual averaging missed its target: {acc}"
    );
    check_moments("MALA 10-D gaussian", &draws, &mean, &cov);
}

#[test]
fn hmc_reproduces_a_correlated_10d_gaussian() {
    let (g, mean, cov) = correlated_10d();
    let (draws, acc, h) = sample(
        &mut Hmc::new(0.2, 10).unwrap(),
        &g,
        16,
        1.0,
        config(300, 1500, 0.8),
        12,
    );
    println!("HMC 10-D: acceptance {acc:.3}, adapted h {h:.4}");
    assert!((acc - 0.8).abs() < 0.1);
    check_moments("HMC 10-D gaussian", &draws, &mean, &cov);
}

#[test]
fn mala_reproduces_a_2d_mixture_with_unequal_weights() {
    let m = mixture();
    let (draws, acc, _) = sample(
        &mut Mala::new(0.3).unwrap(),
        &m,
        128,
        3.0,
        config(1000, 6000, 0.574),
        13,
    );
    println!("MALA mixture: acceptance {acc:.3}");
    check_moments("MALA 2-D mixture", &draws, &m.mean(), &m.covariance());
}

#[test]
fn hmc_reproduces_a_2d_mixture_with_unequal_weights() {
    let m = mixture();
    let (draws, acc, _) = sample(
        &mut Hmc::new(0.3, 10).unwrap(),
        &m,
        64,
        3.0,
        config(300, 2500, 0.8),
        14,
    );
    println!("HMC mixture: acceptance {acc:.3}");
    check_moments("HMC 2-D mixture", &draws, &m.mean(), &m.covariance());
}

/// For E(x) = x^2 / (2 s^2), ULA is the AR(1) map x' = (1 - h/s^2) x + sqrt(2h) xi, whose
/// stationary variance is s^2 / (1 - h / (2 s^2)) exactly: the bias is O(h) and vanishes as h -> 0.
#[test]
fn ula_bias_matches_theory_and_shrinks_with_the_step_size() {
    let dev = cpu_device();
    let s2 = 1.0;
    let g = Gaussian::new(vec![0.0; 4], Covariance::Isotropic(s2), &dev).unwrap();
    let mut last_bias = f64::INFINITY;
    for h in [0.4, 0.2, 0.1, 0.05] {
        let cfg = RunConfig {
            warmup: 200,
            steps: 6000,
            thin: 1,
            target_acceptance: None,
            check_every: 10,
            keep_draws: true,
        };
        let (draws, _, _) = sample(&mut Ula::new(h).unwrap(), &g, 64, 1.0, cfg, 20);
        let theory = s2 / (1.0 - h / (2.0 * s2));
        // Pool the 4 independent coordinates: the variance estimate is the mean of x^2.
        let sq: Vec<Vec<f64>> = (0..4)
            .flat_map(|i| draws.coordinate(i))
            .map(|c| c.iter().map(|x| x * x).collect())
            .collect();
        let s = Summary::of(&sq);
        println!(
            "ULA h = {h}: variance {:.4} (theory {theory:.4}, exact target {s2}), se {:.4}",
            s.mean, s.mcse
        );
        assert_within(
            &format!("ULA stationary variance at h = {h}"),
            s.mean,
            theory,
            s.mcse,
            4.0,
        );
        let bias = s.mean - s2;
        assert!(
            bias > 4.0 * s.mcse,
            "h = {h}: the O(h) bias must be visible"
        );
        assert!(bias < last_bias, "bias must shrink with h");
        last_bias = bias;
    }
}

/// AR(1): x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t has unit variance and integrated
/// autocorrelation time tau = (1 + phi) / (1 - phi), so ESS = m n / tau. Sokal's bound on the
/// estimator: var(tau_hat) / tau^2 ~ 2 (2M + 1) / (m n) with window M (~ 5 tau here).
#[test]
fn ess_and_rhat_match_an_ar1_process() {
    let mut rng = seeded(30);
    let (m, n, phi) = (4usize, 200_000usize, 0.9f64);
    let chain = |rng: &mut _, offset: f64| -> Vec<f64> {
        let e = normal_vec(rng, n);
        let mut x = e[0] as f64;
        let c = (1.0 - phi * phi).sqrt();
        (0..n)
            .map(|t| {
                if t > 0 {
                    x = phi * x + c * e[t] as f64;
                }
                x + offset
            })
            .collect()
    };
    let chains: Vec<Vec<f64>> = (0..m).map(|_| chain(&mut rng, 0.0)).collect();
    let tau = (1.0 + phi) / (1.0 - phi);
    let expected = (m * n) as f64 / tau;
    let ess = effective_sample_size(&chains);
    let rel_sd = (2.0 * (2.0 * 5.0 * tau + 1.0) / (m * n) as f64).sqrt();
    println!("AR(1) phi = {phi}: ESS {ess:.0}, exact {expected:.0} (relative sd {rel_sd:.3})");
    assert!(
        (ess / expected - 1.0).abs() < 4.0 * rel_sd,
        "ESS {ess} vs {expected}"
    );

    // Stationary chains: R-hat = 1 + O(tau / n).
    let r = split_rhat(&chains);
    assert!(
        (r - 1.0).abs() < 5.0 * tau / n as f64 + 1e-3,
        "R-hat of stationary chains {r}"
    );

    // Chains shifted by ±delta: 2m halves of length h whose means differ by 2 delta, so with the
    // (2m - 1) denominator B/n = delta^2 2m / (2m - 1) + O(tau / h), and R-hat^2 = 1 + B/(nW).
    // The noise of each half-mean (variance tau / h) moves B/n by sd 2 delta sqrt(2m tau / h) /
    // (2m - 1), hence R-hat by that over 2 R-hat: the tolerance is 4 such sd.
    let delta = 0.5;
    let shifted: Vec<Vec<f64>> = (0..m)
        .map(|j| chain(&mut rng, if j % 2 == 0 { delta } else { -delta }))
        .collect();
    let k = 2.0 * m as f64;
    let h = (n / 2) as f64;
    let predicted = (1.0 + delta * delta * k / (k - 1.0)).sqrt();
    let sd = 2.0 * delta * (k * tau / h).sqrt() / (k - 1.0) / (2.0 * predicted);
    let r = split_rhat(&shifted);
    println!("split R-hat of shifted chains {r:.4}, predicted {predicted:.4} (sd {sd:.4})");
    assert!(
        (r - predicted).abs() < 4.0 * sd + tau / h,
        "R-hat {r} vs {predicted}"
    );
}

#[test]
fn same_seed_gives_the_same_samples_even_with_parallel_tests() {
    // Several threads sample at once while another hammers burn's process-wide generator; each
    // seeded run must still be bit-for-bit the same.
    let run_once = |seed: u64| -> Vec<f32> {
        let m = mixture();
        let dev = cpu_device();
        let mut rng = seeded(seed);
        let x0 = normal(&mut rng, [16, 2], &dev);
        let mut s = Mala::new(0.2).unwrap();
        let cfg = RunConfig {
            warmup: 0,
            steps: 200,
            thin: 1,
            target_acceptance: None,
            check_every: 50,
            keep_draws: false,
        };
        let out = run(&mut rng, &mut s, &m, x0, &cfg, &mut |_| {}).unwrap();
        ebm_zoo::energy::tensor::to_host2(&out.state.position)
    };
    let reference = run_once(7);
    std::thread::scope(|scope| {
        let noise = scope.spawn(|| {
            let dev = cpu_device();
            for _ in 0..200 {
                let _ = Tensor::<2>::random(
                    [64, 2],
                    ebm_zoo::energy::burn::tensor::Distribution::Default,
                    &dev,
                )
                .sum()
                .into_scalar::<f32>();
            }
        });
        let runs: Vec<_> = (0..4).map(|_| scope.spawn(|| run_once(7))).collect();
        for r in runs {
            assert_eq!(r.join().unwrap(), reference, "same seed, different samples");
        }
        noise.join().unwrap();
    });
    assert_ne!(
        run_once(8),
        reference,
        "a different seed must give different samples"
    );
}

#[test]
fn a_diverging_sampler_is_stopped_with_the_step_and_chain() {
    let dev = cpu_device();
    let g = Gaussian::standard(2, &dev).unwrap();
    // h = 5: x' = -4 x + noise, |x| grows 4x per step and overflows f32 after ~60 steps.
    let s = Ula::new(5.0).unwrap();
    let cfg = RunConfig {
        warmup: 0,
        steps: 1000,
        thin: 1,
        target_acceptance: None,
        check_every: 1,
        keep_draws: false,
    };
    let diverge = |check_every: usize| {
        let mut rng = seeded(1);
        let x0 = normal(&mut rng, [8, 2], &dev);
        let cfg = RunConfig {
            check_every,
            ..cfg.clone()
        };
        run(&mut rng, &mut s.clone(), &g, x0, &cfg, &mut |_| {}).unwrap_err()
    };
    let err = diverge(1);
    let msg = err.to_string();
    println!("{msg}");
    let (step, chain) = match err {
        ebm_zoo::energy::Error::Divergence { step, chain, .. } => {
            assert!((20..200).contains(&step), "step {step}");
            assert!(chain < 8);
            (step, chain)
        }
        other => panic!("expected a divergence, got {other}"),
    };
    assert!(msg.contains("step") && msg.contains("chain"));
    // Checking every 50 steps costs one host copy per 50 steps, and still names the exact step.
    match diverge(50) {
        ebm_zoo::energy::Error::Divergence {
            step: s50,
            chain: c50,
            ..
        } => {
            assert_eq!((s50, c50), (step, chain));
        }
        other => panic!("expected a divergence, got {other}"),
    }
}

#[test]
fn tempered_annealing_reaches_the_target() {
    use ebm_zoo::mcmc::sampler::{AnnealedLangevin, geometric_schedule};
    let dev = cpu_device();
    let target = Gaussian::new(vec![2.0, -1.0], Covariance::Isotropic(0.25), &dev).unwrap();
    let base = Gaussian::new(vec![0.0, 0.0], Covariance::Isotropic(9.0), &dev).unwrap();
    let betas = geometric_schedule(0.01, 20).unwrap();
    let n = 4000;
    let mut rng = seeded(40);
    let x0 = base.sample(&mut rng, n, &dev);
    let (state, levels) = AnnealedLangevin::new(30, true)
        .unwrap()
        .run_tempered(&mut rng, Some(&base), &target, &betas, 0.05, x0)
        .unwrap();
    assert_eq!(levels.len(), 20);
    // Chains are independent: the SE of the mean is sd / sqrt(n) (sd 0.5 at the target).
    let x = common::rows(&state.position);
    for (i, m) in [2.0, -1.0].iter().enumerate() {
        let mean = x.iter().map(|r| r[i]).sum::<f64>() / n as f64;
        assert_within("annealed mean", mean, *m, 0.5 / (n as f64).sqrt(), 4.0);
    }
}

#[test]
fn schedules_and_parameters_are_validated() {
    use ebm_zoo::mcmc::sampler::{AnnealedLangevin, check_schedule};
    assert!(
        check_schedule(&[0.1, 0.5, 0.4, 1.0])
            .unwrap_err()
            .to_string()
            .contains("strictly increasing")
    );
    assert!(check_schedule(&[0.0, 1.0]).is_err());
    assert!(AnnealedLangevin::new(0, false).is_err());
    assert!(Mala::new(-0.1).is_err());
    assert!(Mala::new(0.0).is_err());
    assert!(Ula::new(f64::NAN).is_err());
    assert!(Hmc::new(0.1, 0).is_err());
    let dev = cpu_device();
    let g = Gaussian::standard(2, &dev).unwrap();
    // Wrong dimension and NaN positions are errors, not panics.
    let bad = Tensor::<2>::zeros([4, 3], &dev);
    assert!(
        Mala::new(0.1)
            .unwrap()
            .init(&g, bad)
            .unwrap_err()
            .to_string()
            .contains("wrong shape")
    );
    let nan = ebm_zoo::energy::tensor::from_host2(vec![0.0, f32::NAN], [1, 2], &dev);
    let msg = Mala::new(0.1)
        .unwrap()
        .init(&g, nan)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("non-finite") && msg.contains("row 0, column 1"),
        "{msg}"
    );
    // Adapting ULA makes no sense.
    let cfg = RunConfig {
        target_acceptance: Some(0.5),
        ..RunConfig::default()
    };
    let x0 = Tensor::<2>::zeros([2, 2], &dev);
    assert!(
        run(
            &mut seeded(0),
            &mut Ula::new(0.1).unwrap(),
            &g,
            x0,
            &cfg,
            &mut |_| {}
        )
        .is_err()
    );
}

#[test]
fn replay_buffer_reinitialises_at_the_requested_rate() {
    use ebm_zoo::mcmc::sampler::{InitDistribution, ReplayBuffer};
    let dev = cpu_device();
    let init = InitDistribution::Uniform {
        low: -1.0,
        high: 1.0,
    };
    let mut buf = ReplayBuffer::new(2, 100, 0.05, init).unwrap();
    let mut rng = seeded(50);
    let (x, fresh) = buf.sample(&mut rng, 10, &dev);
    assert!(
        fresh.iter().all(|f| *f),
        "an empty buffer gives fresh chains"
    );
    buf.push(&x.add_scalar(10.0)).unwrap();
    for _ in 0..20 {
        buf.push(&Tensor::<2>::ones([10, 2], &dev).mul_scalar(10.0))
            .unwrap();
    }
    assert_eq!(buf.len(), 100, "capacity is respected");
    let n = 20_000;
    let (x, fresh) = buf.sample(&mut rng, n, &dev);
    let k = fresh.iter().filter(|f| **f).count() as f64;
    let se = (0.05 * 0.95 / n as f64).sqrt();
    assert_within("reinitialisation rate", k / n as f64, 0.05, se, 4.0);
    // Fresh rows come from U(-1, 1); stored rows are all 10 (the ring overwrote the old ones).
    for (r, f) in common::rows(&x).iter().zip(&fresh) {
        if *f {
            assert!(r.iter().all(|v| v.abs() <= 1.0));
        } else {
            assert!(r.iter().all(|v| (*v - 10.0).abs() < 1e-6));
        }
    }
    assert!(ReplayBuffer::new(2, 10, 1.5, init).is_err());
}

/// Annealed Langevin over noise levels (Song & Ermon 2019): the levels are the mixture convolved
/// with N(0, sigma_i^2 I), itself a mixture with the same weights and covariances + sigma_i^2 I, and
/// the step at level i is h sigma_i^2 / sigma_L^2. With a Metropolis correction at every level the
/// final chains are distributed as the last level, whose moments are known exactly.
#[test]
fn annealed_langevin_over_noise_levels_reaches_the_smoothed_target() {
    use ebm_zoo::mcmc::sampler::AnnealedLangevin;
    let dev = cpu_device();
    let weights = vec![0.8, 0.2];
    let means = vec![vec![-2.0, 0.0], vec![2.0, 0.0]];
    let sigmas: Vec<f64> = (0..10)
        .map(|i| 3.0 * (0.05f64 / 3.0).powf(i as f64 / 9.0))
        .collect();
    let levels: Vec<GaussianMixture> = sigmas
        .iter()
        .map(|s| {
            let covs = [0.25, 0.25]
                .iter()
                .map(|v| Covariance::Isotropic(v + s * s))
                .collect();
            GaussianMixture::from_parts(weights.clone(), means.clone(), covs, &dev).unwrap()
        })
        .collect();
    let last = sigmas[sigmas.len() - 1];
    let steps: Vec<f64> = sigmas
        .iter()
        .map(|s| 0.02 * s * s / (last * last) * 0.1)
        .collect();
    let refs: Vec<&dyn Energy> = levels.iter().map(|m| m as &dyn Energy).collect();
    let n = 4000;
    let mut rng = seeded(60);
    let x0 = normal(&mut rng, [n, 2], &dev).mul_scalar(3.0);
    let (state, infos) = AnnealedLangevin::new(40, true)
        .unwrap()
        .run(&mut rng, &refs, &steps, x0)
        .unwrap();
    assert!(infos.iter().all(|i| i.acceptance_rate > 0.3), "{infos:?}");
    let target = &levels[levels.len() - 1];
    let (mean, cov) = (target.mean(), target.covariance());
    let x = common::rows(&state.position);
    for i in 0..2 {
        let m = x.iter().map(|r| r[i]).sum::<f64>() / n as f64;
        assert_within(
            &format!("noise-annealed mean[{i}]"),
            m,
            mean[i],
            (cov[i][i] / n as f64).sqrt(),
            4.0,
        );
    }
    // Share of chains in the right-hand mode: binomial, exact weight 0.2.
    let right = x.iter().filter(|r| r[0] > 0.0).count() as f64 / n as f64;
    assert_within(
        "weight of the right mode",
        right,
        0.2,
        (0.2 * 0.8 / n as f64).sqrt(),
        4.0,
    );
}

#[test]
fn mmd_matches_its_closed_form_for_shifted_gaussians() {
    // N(0, I) against N(mu, I) in d = 2 with the kernel exp(-|x - y|^2 / (2 h^2)):
    // MMD^2 = 2 (h^2 / (h^2 + 2))^{d/2} (1 - exp(-|mu|^2 / (2 (h^2 + 2)))).
    use ebm_zoo::mcmc::diagnostics::mmd2_rbf;
    let mut rng = seeded(41);
    let (n, reps, h) = (400, 12, 1.0f64);
    for mu in [0.0f32, 1.0] {
        let exact = 2.0
            * (h * h / (h * h + 2.0))
            * (1.0 - (-(mu * mu) as f64 / (2.0 * (h * h + 2.0))).exp());
        let values: Vec<f64> = (0..reps)
            .map(|_| {
                let a = normal_vec(&mut rng, 2 * n);
                let mut b = normal_vec(&mut rng, 2 * n);
                b.iter_mut().step_by(2).for_each(|v| *v += mu);
                mmd2_rbf(&a, &b, 2, Some(h)).unwrap().0
            })
            .collect();
        let mean = values.iter().sum::<f64>() / reps as f64;
        let se = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / ((reps - 1) * reps) as f64)
            .sqrt();
        assert_within(&format!("MMD^2 at shift {mu}"), mean, exact, se, 4.0);
    }
}
