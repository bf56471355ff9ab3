//! Diffusion samplers and the probability-flow likelihood against exact references: with the exact
//! score of Gaussian data, every sampler reproduces the data's mean and covariance within 4
//! standard errors, and the PF-ODE log-likelihood equals the exact log-density to 1e-2 nats; bad
//! schedules are clear errors.

use crate::common;

use common::{assert_within, cpu_device, rows};
use ebm_zoo::diffusion::{
    AnnealedLangevinConfig, Divergence, GaussianDataScore, NoiseLadder, SampleConfig, Sde, Solver,
    annealed_langevin, pf_ode_log_likelihood, sample,
};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::to_host1;

const MEAN: [f64; 2] = [1.0, -0.5];
const COV: [[f64; 2]; 2] = [[1.0, 0.6], [0.6, 0.8]];

fn gaussian_score(sde: Sde) -> GaussianDataScore {
    gaussian_with_mean(sde, MEAN)
}

fn gaussian_with_mean(sde: Sde, mean: [f64; 2]) -> GaussianDataScore {
    let cov = COV.iter().map(|r| r.to_vec()).collect();
    GaussianDataScore::new(sde, mean.to_vec(), cov, &cpu_device()).unwrap()
}

/// Mean and covariance of `x` against the data's, each entry within 4 standard errors.
fn assert_moments(what: &str, x: &burn::prelude::Tensor<2>) {
    assert_moments_of(what, x, MEAN, COV, 4.0);
}

/// The largest deviation, in standard errors, of the sample mean and covariance of `x` from
/// `mean` and `cov`.
fn moment_z(x: &burn::prelude::Tensor<2>, mean: [f64; 2], cov: [[f64; 2]; 2]) -> (f64, String) {
    let xs = rows(x);
    let mut worst = (0.0, String::new());
    let mut see = |name: String, est: f64, truth: f64, se: f64| {
        let z = (est - truth).abs() / se;
        if z.is_nan() || z > worst.0 {
            worst = (z, format!("{name}: {est:.4} vs {truth:.4} (se {se:.1e})"));
        }
    };
    for j in 0..2 {
        let v: Vec<f64> = xs.iter().map(|r| r[j]).collect();
        let (m, se) = ebm_zoo::data::grid::mean_and_se(&v);
        see(format!("mean {j}"), m, mean[j], se);
        for k in j..2 {
            let p: Vec<f64> = xs
                .iter()
                .map(|r| (r[j] - mean[j]) * (r[k] - mean[k]))
                .collect();
            let (c, se) = ebm_zoo::data::grid::mean_and_se(&p);
            see(format!("covariance {j}{k}"), c, cov[j][k], se);
        }
    }
    worst
}

/// Mean and covariance of `x` against `mean` and `cov`, each entry within `k` standard errors.
fn assert_moments_of(
    what: &str,
    x: &burn::prelude::Tensor<2>,
    mean: [f64; 2],
    cov: [[f64; 2]; 2],
    k: f64,
) {
    let (z, worst) = moment_z(x, mean, cov);
    assert!(z <= k, "{what}: {worst} is {z:.1} standard errors off");
}

#[test]
fn every_sampler_reproduces_gaussian_data_with_the_exact_score() {
    let device = cpu_device();
    let n = 4000;
    // Both priors are centred: the VE prior N(0, sigma_max^2 I) misses the marginal's mean mu by
    // |mu|, which the flow maps to a bias of about |mu| sqrt(lambda_max(Sigma)) / sigma_max in the
    // samples: 0.013 for sigma_max = 100, under one standard error (0.016) at n = 4000. (With
    // Song et al.'s sigma_max = 10 for these data it is 0.1, six standard errors: the VE SDE wants
    // centred data or a larger sigma_max.)
    for sde in [Sde::vp(), Sde::ve(100.0)] {
        let model = gaussian_score(sde);
        for (solver, steps) in [
            (Solver::EulerMaruyama, 1000),
            (Solver::Ancestral, 1000),
            (
                Solver::PredictorCorrector {
                    snr: 0.16,
                    corrector_steps: 1,
                },
                500,
            ),
            (Solver::Heun, 100),
            (Solver::Rk4, 50),
            (Solver::Ddim, 200),
        ] {
            let (x, report) = sample(
                &mut seeded(1),
                &model,
                &sde,
                &SampleConfig {
                    solver,
                    steps,
                    t_min: sde.t_min(),
                },
                n,
                &device,
            )
            .unwrap();
            assert_eq!(report.nfe, solver.nfe(steps));
            assert_moments(&format!("{sde:?} {}", solver.name()), &x);
        }
        if let Sde::Ve {
            sigma_min,
            sigma_max,
        } = sde
        {
            let ladder = NoiseLadder::geometric(sigma_max, sigma_min, 50).unwrap();
            let (x, report) = annealed_langevin(
                &mut seeded(2),
                &model,
                &sde,
                &AnnealedLangevinConfig {
                    ladder: ladder.clone(),
                    steps_per_level: 40,
                    epsilon: 2e-5,
                },
                n,
                &device,
            )
            .unwrap();
            assert_eq!(report.nfe, 2000);
            assert_moments("annealed Langevin", &x);
        }
    }
}

#[test]
fn probability_flow_likelihood_is_the_exact_gaussian_log_density() {
    let device = cpu_device();
    let x = normal(&mut seeded(3), [16, 2], &device).mul_scalar(1.5);
    for sde in [Sde::vp(), Sde::ve(10.0)] {
        let model = gaussian_score(sde);
        let t_min = sde.t_min();
        let r = pf_ode_log_likelihood(
            &mut seeded(0),
            &model,
            &sde,
            x.clone(),
            200,
            t_min,
            Divergence::Exact,
        )
        .unwrap();
        // The data density itself (t = 0): what a user compares with.
        let exact = to_host1(&model.log_density(x.clone(), 0.0).unwrap());
        // 1. The ODE and its divergence integral: with the true marginal p_1 as the prior, the
        //    log-likelihood is the exact log-density to 1e-2 nats.
        let true_prior = to_host1(&model.log_density(r.latent.clone(), 1.0).unwrap());
        let integral = to_host1(&r.divergence_integral);
        for i in 0..16 {
            let ll = f64::from(true_prior[i] + integral[i]);
            let e = f64::from(exact[i]);
            assert!(
                (ll - e).abs() < 1e-2,
                "{sde:?} point {i}: PF-ODE {ll} vs exact {e}"
            );
        }
        // 2. With the SDE's own prior the only further error is the prior's mismatch at x_1.
        let ll = to_host1(&r.log_likelihood);
        let prior = to_host1(&r.log_prior);
        for i in 0..16 {
            let mismatch = f64::from((prior[i] - true_prior[i]).abs());
            let err = f64::from((ll[i] - exact[i]).abs());
            assert!(
                err <= mismatch + 1e-2,
                "{sde:?} point {i}: error {err} beyond the prior mismatch {mismatch}"
            );
        }
    }
}

#[test]
fn bad_schedules_are_clear_errors() {
    let err = NoiseLadder::new(vec![1.0, -0.5]).unwrap_err().to_string();
    assert!(err.contains("sigma") && err.contains("-0.5"), "{err}");
    let err = NoiseLadder::new(vec![]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let err = NoiseLadder::new(vec![1.0, 0.5, 0.7])
        .unwrap_err()
        .to_string();
    assert!(err.contains("decrease"), "{err}");
    assert!(
        NoiseLadder::geometric(1.0, 0.01, 0)
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    assert!(NoiseLadder::geometric(-1.0, 0.01, 5).is_err());
    let err = Sde::Ve {
        sigma_min: -0.1,
        sigma_max: 5.0,
    }
    .check()
    .unwrap_err()
    .to_string();
    assert!(err.contains("sigma_min"), "{err}");
    let err = Sde::Vp {
        beta_min: 20.0,
        beta_max: 0.1,
    }
    .check()
    .unwrap_err()
    .to_string();
    assert!(err.contains("beta_max"), "{err}");
    let model = gaussian_score(Sde::vp());
    let device = cpu_device();
    let err = sample(
        &mut seeded(0),
        &model,
        &Sde::vp(),
        &SampleConfig {
            solver: Solver::Heun,
            steps: 0,
            t_min: 1e-3,
        },
        10,
        &device,
    )
    .unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
    let toml_err = toml::from_str::<Sde>("kind = \"ve\"\nsigma_min = 0.01\nsigma_mx = 5.0\n")
        .unwrap_err()
        .to_string();
    assert!(toml_err.contains("sigma_mx"), "{toml_err}");
}

mod networks {
    use super::*;
    use ebm_zoo::diffusion::{DsmTrainConfig, NetScore, ScoreModel, ScoreNetConfig, fit_dsm};
    use ebm_zoo::energy::energy::Energy;
    use ebm_zoo::energy::tensor::{from_host2, to_host2};

    /// The mean PF-ODE NLL of `test` (`steps` RK4 steps down to t_min, exact divergence).
    fn pf_ode_nll(
        model: &dyn ScoreModel,
        sde: Sde,
        test: &burn::prelude::Tensor<2>,
        steps: usize,
    ) -> f64 {
        let r = pf_ode_log_likelihood(
            &mut seeded(0),
            model,
            &sde,
            test.clone(),
            steps,
            sde.t_min(),
            Divergence::Exact,
        )
        .unwrap();
        let ll = to_host1(&r.log_likelihood);
        -ll.iter().map(|v| f64::from(*v)).sum::<f64>() / ll.len() as f64
    }

    fn fd_divergence(model: &dyn ScoreModel, x: &burn::prelude::Tensor<2>, t: f64) -> Vec<f64> {
        let [n, d] = x.dims();
        let host = to_host2(x);
        let device = x.device();
        let eps = 1e-2f32;
        let mut div = vec![0.0; n];
        for i in 0..d {
            let (mut up, mut dn) = (host.clone(), host.clone());
            for r in 0..n {
                up[r * d + i] += eps;
                dn[r * d + i] -= eps;
            }
            let su = to_host2(&model.score(from_host2(up, [n, d], &device), t));
            let sd = to_host2(&model.score(from_host2(dn, [n, d], &device), t));
            for r in 0..n {
                div[r] += f64::from(su[r * d + i] - sd[r * d + i]) / (2.0 * f64::from(eps));
            }
        }
        div
    }

    #[test]
    fn network_divergences_match_finite_differences_and_hutchinson_is_unbiased() {
        let device = cpu_device();
        let ad = device.clone().autodiff();
        let sde = Sde::vp();
        let cfg = ScoreNetConfig {
            data_dim: 3,
            hidden: vec![16, 16],
            ..ScoreNetConfig::default()
        };
        let x = normal(&mut seeded(20), [5, 3], &device);
        let mlp = NetScore::new(&cfg.mlp(&mut seeded(21), &ad).unwrap(), sde);
        let energy = NetScore::new(&cfg.energy(&mut seeded(22), &ad).unwrap(), sde);
        for (name, model) in [
            ("mlp", &mlp as &dyn ScoreModel),
            ("energy", &energy as &dyn ScoreModel),
        ] {
            for t in [0.05, 0.5] {
                let exact = to_host1(&model.divergence(x.clone(), t).unwrap());
                let fd = fd_divergence(model, &x, t);
                for (a, b) in exact.iter().zip(&fd) {
                    assert!(
                        (f64::from(*a) - b).abs() < 1e-2 * (1.0 + b.abs()),
                        "{name} t = {t}: {a} vs {b}"
                    );
                }
            }
        }
        // Hutchinson: mean of 400 probes within 4 standard errors of the exact divergence.
        let t = 0.3;
        let exact = to_host1(&energy.divergence(x.clone(), t).unwrap());
        let mut rng = seeded(23);
        let draws: Vec<Vec<f32>> = (0..400)
            .map(|_| to_host1(&energy.hutchinson(&mut rng, x.clone(), t, 1)))
            .collect();
        for r in 0..5 {
            let v: Vec<f64> = draws.iter().map(|d| f64::from(d[r])).collect();
            let (m, se) = ebm_zoo::data::grid::mean_and_se(&v);
            assert_within(
                &format!("Hutchinson divergence, row {r}"),
                m,
                f64::from(exact[r]),
                se,
                4.0,
            );
        }
        // Every level of the energy parameterisation is an energy whose score is the model's.
        let level = energy.net().energy_at(&sde, t);
        common::assert_score_matches_fd("level energy", &level, &x, 1e-2, 2e-3);
        let s_model = to_host2(&energy.score(x.clone(), t));
        assert!(common::rel_err(&to_host2(&level.score(x.clone())), &s_model) < 1e-5);
    }

    /// The convolutional noise predictor trained end to end: 4x4 images with independent
    /// N(0.3, 0.5^2) pixels (the exact score is per pixel and the same at every pixel, which a
    /// 3x3 convolution can represent); its PF-ODE NLL of held-out images comes within 0.02 nats
    /// per pixel of the exact NLL (measured: 0.017 above it after 1500 steps; 20 RK4 steps give
    /// 0.7130, 40 and 100 give 0.7129), from 5.3 nats per pixel above it before training.
    #[test]
    fn a_trained_conv_score_gives_the_likelihood_of_gaussian_images() {
        use ebm_zoo::diffusion::ConvScore;
        use ebm_zoo::energy::energy::ExactSample;
        use ebm_zoo::neural::Activation;
        let device = cpu_device();
        let ad = device.clone().autodiff();
        let sde = Sde::vp();
        let d = 16;
        let cov = (0..d)
            .map(|i| (0..d).map(|j| if i == j { 0.25 } else { 0.0 }).collect())
            .collect();
        let exact = GaussianDataScore::new(sde, vec![0.3; d], cov, &device).unwrap();
        let p0 = exact.marginal(0.0).unwrap();
        let data = p0.sample_exact(&mut seeded(70), 20_000, &device);
        let test = p0.sample_exact(&mut seeded(71), 200, &device);
        let per_pixel_nll =
            |model: &dyn ScoreModel, steps| pf_ode_nll(model, sde, &test, steps) / d as f64;
        let exact_nll = -to_host1(&exact.log_density(test.clone(), 0.0).unwrap())
            .iter()
            .map(|v| f64::from(*v))
            .sum::<f64>()
            / (200 * d) as f64;
        let mut net = ConvScore::new(&mut seeded(72), 4, 16, Activation::Silu, &ad).unwrap();
        let clock = std::time::Instant::now();
        // Untrained, the NLL is several nats per pixel off: 3 steps tell that much.
        let before = per_pixel_nll(&NetScore::new(&net, sde), 3);
        let t_nll = clock.elapsed().as_secs_f64();
        let dsm = DsmTrainConfig {
            iterations: 1500,
            batch_size: 256,
            learning_rate: 2e-3,
            ..DsmTrainConfig::default()
        };
        fit_dsm(&mut seeded(73), &mut net, &sde, &data, &dsm, false).unwrap();
        let t_train = clock.elapsed().as_secs_f64() - t_nll;
        let after = per_pixel_nll(&NetScore::new(&net, sde), 20);
        println!(
            "conv score: PF-ODE NLL per pixel {before:.4} before, {after:.4} after training; exact {exact_nll:.4} (one NLL {t_nll:.1} s, training {t_train:.1} s)"
        );
        assert!(
            (after - exact_nll).abs() < 0.02,
            "trained: {after} vs exact {exact_nll} per pixel"
        );
        assert!(
            before - exact_nll > 1.0,
            "untrained: {before} vs {exact_nll}"
        );
    }

    #[test]
    fn dsm_trained_models_give_the_gaussian_likelihood() {
        // Gaussian data: after training, the PF-ODE NLL of held-out points (exact divergence)
        // is close to the exact NLL, for the noise-predicting and the energy-parameterised model.
        let device = cpu_device();
        let ad = device.clone().autodiff();
        let sde = Sde::vp();
        let exact_model = gaussian_score(sde);
        let train = exact_model.marginal(0.0).unwrap();
        use ebm_zoo::energy::energy::ExactSample;
        let data = train.sample_exact(&mut seeded(30), 20_000, &device);
        let test = train.sample_exact(&mut seeded(31), 200, &device);
        let exact_nll = -to_host1(&exact_model.log_density(test.clone(), 0.0).unwrap())
            .iter()
            .map(|v| f64::from(*v))
            .sum::<f64>()
            / 200.0;
        let cfg = ScoreNetConfig {
            hidden: vec![64, 64],
            ..ScoreNetConfig::default()
        };
        let dsm = DsmTrainConfig {
            iterations: 1500,
            batch_size: 256,
            ..DsmTrainConfig::default()
        };
        let mut mlp = cfg.mlp(&mut seeded(32), &ad).unwrap();
        fit_dsm(&mut seeded(33), &mut mlp, &sde, &data, &dsm, false).unwrap();
        let mut en = cfg.energy(&mut seeded(34), &ad).unwrap();
        fit_dsm(&mut seeded(35), &mut en, &sde, &data, &dsm, false).unwrap();
        let mut lik = cfg.mlp(&mut seeded(36), &ad).unwrap();
        let dsm_lik = DsmTrainConfig {
            weighting: ebm_zoo::diffusion::DsmWeighting::Likelihood,
            ..dsm.clone()
        };
        fit_dsm(&mut seeded(37), &mut lik, &sde, &data, &dsm_lik, false).unwrap();
        for (name, model) in [
            ("mlp", &NetScore::new(&mlp, sde) as &dyn ScoreModel),
            ("energy", &NetScore::new(&en, sde) as &dyn ScoreModel),
            (
                "mlp, likelihood weighting",
                &NetScore::new(&lik, sde) as &dyn ScoreModel,
            ),
        ] {
            let nll = pf_ode_nll(model, sde, &test, 100);
            println!("{name}: PF-ODE NLL {nll:.4} vs exact {exact_nll:.4}");
            // Measured: 0.006 (mlp), 0.014 (energy) and 0.0045 (likelihood weighting) nats above
            // the exact NLL.
            assert!(
                (nll - exact_nll).abs() < 0.05,
                "{name}: PF-ODE NLL {nll} vs exact {exact_nll}"
            );
        }
    }
}

#[test]
fn fused_dsm_trainer_agrees_with_autodiff() {
    // The same initial network, minibatches, times and noise: the losses of the first steps and
    // the trained score agree to float rounding.
    use ebm_zoo::diffusion::{
        DsmTrainConfig, DsmWeighting, NetScore, ScoreModel, ScoreNetConfig, fit_dsm, fit_dsm_fused,
    };
    use ebm_zoo::energy::tensor::to_host2;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let sde = Sde::vp();
    let data = normal(&mut seeded(40), [1000, 2], &device);
    for weighting in [DsmWeighting::NoiseVariance, DsmWeighting::Likelihood] {
        let cfg = DsmTrainConfig {
            iterations: 20,
            batch_size: 64,
            weighting,
            ..DsmTrainConfig::default()
        };
        let net_cfg = ScoreNetConfig {
            hidden: vec![32, 32],
            ..ScoreNetConfig::default()
        };
        let mut a = net_cfg.mlp(&mut seeded(41), &ad).unwrap();
        let mut b = net_cfg.mlp(&mut seeded(41), &ad).unwrap();
        let ra = fit_dsm(&mut seeded(42), &mut a, &sde, &data, &cfg, false).unwrap();
        let rb = fit_dsm_fused(&mut seeded(42), &mut b, &sde, &data, &cfg).unwrap();
        for (i, (x, y)) in ra.losses.iter().zip(&rb.losses).enumerate() {
            assert!(
                (x - y).abs() < 1e-4 * (1.0 + x.abs()),
                "{weighting:?} step {i}: autodiff {x} vs fused {y}"
            );
        }
        let x = normal(&mut seeded(43), [10, 2], &device);
        let sa = to_host2(&NetScore::new(&a, sde).score(x.clone(), 0.3));
        let sb = to_host2(&NetScore::new(&b, sde).score(x, 0.3));
        let err = common::rel_err(&sa, &sb);
        assert!(err < 1e-3, "{weighting:?}: trained scores differ: {err}");
    }
}

#[test]
fn mala_correction_of_the_energy_model_is_accounted_and_zero_levels_change_nothing() {
    use ebm_zoo::diffusion::{MalaCorrection, NetScore, ScoreNetConfig, sample_corrected};
    use ebm_zoo::energy::tensor::to_host2;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let sde = Sde::vp();
    let net = ScoreNetConfig {
        hidden: vec![16],
        ..ScoreNetConfig::default()
    }
    .energy(&mut seeded(50), &ad)
    .unwrap();
    let model = NetScore::new(&net, sde);
    let none = MalaCorrection {
        levels: 0,
        ..MalaCorrection::default()
    };
    let (a, ra) = sample_corrected(
        &mut seeded(51),
        &model,
        &sde,
        &SampleConfig {
            solver: Solver::Ddim,
            steps: 20,
            t_min: sde.t_min(),
        },
        &none,
        50,
        &device,
    )
    .unwrap();
    let (b, rb) = sample(
        &mut seeded(51),
        &model,
        &sde,
        &SampleConfig {
            solver: Solver::Ddim,
            steps: 20,
            t_min: sde.t_min(),
        },
        50,
        &device,
    )
    .unwrap();
    assert_eq!(to_host2(&a), to_host2(&b));
    assert_eq!(ra.sampling.nfe, rb.nfe);
    assert!(ra.acceptance.is_nan());
    let some = MalaCorrection {
        levels: 3,
        steps_per_level: 4,
        relative_step: 1.0,
    };
    let (c, rc) = sample_corrected(
        &mut seeded(51),
        &model,
        &sde,
        &SampleConfig {
            solver: Solver::Ddim,
            steps: 20,
            t_min: sde.t_min(),
        },
        &some,
        50,
        &device,
    )
    .unwrap();
    assert_eq!(rc.sampling.nfe, 20 + 12);
    assert!(
        rc.acceptance > 0.0 && rc.acceptance <= 1.0,
        "{}",
        rc.acceptance
    );
    assert!(to_host2(&c).iter().all(|v| v.is_finite()));
    let bad = MalaCorrection {
        relative_step: -1.0,
        ..MalaCorrection::default()
    };
    assert!(
        sample_corrected(
            &mut seeded(0),
            &model,
            &sde,
            &SampleConfig {
                solver: Solver::Ddim,
                steps: 5,
                t_min: sde.t_min()
            },
            &bad,
            5,
            &device
        )
        .is_err()
    );
}

/// The MALA correction on the exact energies of Gaussian data: five Euler-Maruyama steps from
/// t = 1 to t = 0.2 leave a bias of many standard errors in the moments of p_0.2; 20 MALA steps
/// per level on E_t (exact) remove it, and the corrected draws follow p_0.2 = N(alpha mu,
/// alpha^2 Sigma + sigma^2 I) in their moments and in the chi^2_2 law of their Mahalanobis
/// distance (quartiles within 4 standard errors).
#[test]
fn mala_correction_draws_the_exact_marginal_of_gaussian_data() {
    use ebm_zoo::diffusion::{MalaCorrection, sample_corrected};
    let device = cpu_device();
    let sde = Sde::vp();
    let model = gaussian_score(sde);
    let t_min = 0.2;
    let (alpha, sigma) = sde.marginal(t_min);
    let mean = MEAN.map(|m| alpha * m);
    let mut cov = COV.map(|r| r.map(|c| alpha * alpha * c));
    for (i, row) in cov.iter_mut().enumerate() {
        row[i] += sigma * sigma;
    }
    let config = SampleConfig {
        solver: Solver::EulerMaruyama,
        steps: 5,
        t_min,
    };
    let n = 20_000;
    let (plain, _) = sample(&mut seeded(60), &model, &sde, &config, n, &device).unwrap();
    let (z_plain, worst) = moment_z(&plain, mean, cov);
    println!("uncorrected: {worst}, {z_plain:.1} standard errors");
    assert!(z_plain > 8.0, "the coarse solver should be biased: {worst}");
    let correction = MalaCorrection {
        levels: 5,
        steps_per_level: 20,
        relative_step: 1.0,
    };
    let (x, report) = sample_corrected(
        &mut seeded(61),
        &model,
        &sde,
        &config,
        &correction,
        n,
        &device,
    )
    .unwrap();
    println!(
        "corrected: {}, acceptance {:.3}",
        moment_z(&x, mean, cov).1,
        report.acceptance
    );
    assert_eq!(report.sampling.nfe, 5 + 5 * 20);
    assert_moments_of("MALA-corrected", &x, mean, cov, 4.0);
    // d^2 = (x - m)^T C^-1 (x - m) is chi^2_2: P(d^2 <= -2 ln(1 - p)) = p.
    let det = cov[0][0] * cov[1][1] - cov[0][1] * cov[0][1];
    let inv = [
        [cov[1][1] / det, -cov[0][1] / det],
        [-cov[0][1] / det, cov[0][0] / det],
    ];
    let d2: Vec<f64> = rows(&x)
        .iter()
        .map(|r| {
            let u = [r[0] - mean[0], r[1] - mean[1]];
            u[0] * (inv[0][0] * u[0] + inv[0][1] * u[1])
                + u[1] * (inv[1][0] * u[0] + inv[1][1] * u[1])
        })
        .collect();
    for p in [0.25, 0.5, 0.75] {
        let q = -2.0 * (1.0f64 - p).ln();
        let share = d2.iter().filter(|&&v| v <= q).count() as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert_within(&format!("P(d^2 <= chi2 quantile {p})"), share, p, se, 4.0);
    }
}

/// The 8 Gaussians' centres: radius 2, every 45 degrees.
fn ring_means() -> Vec<Vec<f64>> {
    (0..8)
        .map(|k| {
            let a = k as f64 * std::f64::consts::FRAC_PI_4;
            vec![2.0 * a.cos(), 2.0 * a.sin()]
        })
        .collect()
}

/// The (weighted, when `log_w` is given) share of the points nearest to each centre.
fn nearest_mode_weights(
    means: &[Vec<f64>],
    x: &burn::prelude::Tensor<2>,
    log_w: Option<&[f64]>,
) -> Vec<f64> {
    let top = log_w.map_or(0.0, |w| w.iter().copied().fold(f64::MIN, f64::max));
    let mut mass = vec![0.0; means.len()];
    for (i, p) in ebm_zoo::energy::tensor::to_host2(x).chunks(2).enumerate() {
        let d = |k: usize| {
            (f64::from(p[0]) - means[k][0]).powi(2) + (f64::from(p[1]) - means[k][1]).powi(2)
        };
        let nearest = (0..means.len())
            .min_by(|&a, &b| d(a).total_cmp(&d(b)))
            .unwrap();
        mass[nearest] += log_w.map_or(1.0, |w| (w[i] - top).exp());
    }
    let total: f64 = mass.iter().sum();
    mass.iter().map(|m| m / total).collect()
}

/// Carbone et al. (2023): an SDE whose drift is built from the wrong (equal) weights of 8
/// Gaussians lands on equal mode weights; the Jarzynski/SMC weights against the true path
/// (weights k/36) recover the true mode weights at 20 Euler–Maruyama steps, ε = 0.5,
/// 20 000 walkers. Mode-weight TV: uncorrected ≈ 0.222 (the distance between the two weight
/// vectors), corrected ≤ 0.03.
#[test]
fn jarzynski_reweighting_corrects_an_sde_built_from_the_wrong_mixture_weights() {
    use ebm_zoo::diffusion::MixtureInterpolant;
    use ebm_zoo::mcmc::estimate::{SdeSmcConfig, plain_sde, reweighted_sde};
    let device = cpu_device();
    let means = ring_means();
    let truth: Vec<f64> = (1..=8).map(|k| k as f64 / 36.0).collect();
    let path = MixtureInterpolant {
        means: means.clone(),
        sigma: 0.2,
        weights: truth.clone(),
        model_weights: vec![1.0; 8],
        epsilon: 0.5,
    };
    path.check().unwrap();
    let config = SdeSmcConfig {
        times: (1..=20).map(|k| k as f64 / 20.0).collect(),
        epsilon: 0.5,
        groups: 16,
        resample_threshold: None,
    };
    let n = 20_000;
    let mode_weights = |x: &burn::prelude::Tensor<2>, log_w: Option<&[f64]>| {
        nearest_mode_weights(&means, x, log_w)
    };
    let tv = |w: &[f64]| {
        0.5 * w
            .iter()
            .zip(&truth)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
    };
    let plain = plain_sde(
        &mut seeded(1),
        &path,
        normal(&mut seeded(0), [n, 2], &device),
        &config,
    )
    .unwrap();
    let tv_plain = tv(&mode_weights(&plain, None));
    let (estimate, x, log_w) = reweighted_sde(
        &mut seeded(1),
        &path,
        normal(&mut seeded(0), [n, 2], &device),
        &config,
    )
    .unwrap();
    let tv_weighted = tv(&mode_weights(&x, Some(&log_w)));
    eprintln!(
        "mode-weight TV: plain SDE {tv_plain:.4}, reweighted {tv_weighted:.4}; ESS {:.0} of {n}; log Z1/Z0 {:.4} ± {:.4}",
        estimate.ess, estimate.log_z, estimate.std_err
    );
    assert!((tv_plain - 0.222).abs() < 0.03, "plain SDE TV {tv_plain}");
    assert!(tv_weighted <= 0.03, "reweighted TV {tv_weighted}");
    // Both paths are normalised densities: log Z1/Z0 = 0 within its error bar, and the bar is
    // small (the weights only fix the mode masses).
    assert!(
        estimate.std_err < 0.05 && estimate.log_z.abs() < 4.0 * estimate.std_err + 1e-3,
        "log Z {} ± {}",
        estimate.log_z,
        estimate.std_err
    );
    // Bad settings are errors naming the key.
    for (bad, key) in [
        (
            SdeSmcConfig {
                resample_threshold: Some(1.5),
                ..config.clone()
            },
            "resample_threshold",
        ),
        (
            SdeSmcConfig {
                resample_threshold: Some(0.0),
                ..config.clone()
            },
            "resample_threshold",
        ),
        (
            SdeSmcConfig {
                epsilon: -0.5,
                ..config.clone()
            },
            "epsilon",
        ),
        (
            SdeSmcConfig {
                times: vec![0.5, 0.25, 1.0],
                ..config.clone()
            },
            "schedule",
        ),
    ] {
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

/// log N(x; mean, diag(std²)) per row.
fn diagonal_gaussian_log_density(
    x: &burn::prelude::Tensor<2>,
    mean: &[f64],
    std: &[f64],
) -> Vec<f64> {
    rows(x)
        .iter()
        .map(|r| {
            r.iter()
                .zip(mean.iter().zip(std))
                .map(|(v, (m, s))| {
                    -0.5 * ((v - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
                })
                .sum()
        })
        .collect()
}

/// `n` draws of N((1, −0.5), diag(0.5², 1.5²)), the Gaussian of the flow-matching tests.
fn flow_gaussian_draws(seed: u64, n: usize) -> burn::prelude::Tensor<2> {
    use ebm_zoo::energy::tensor::from_host2;
    let device = cpu_device();
    normal(&mut seeded(seed), [n, 2], &device)
        .mul(from_host2(vec![0.5, 1.5], [1, 2], &device))
        .add(from_host2(vec![1.0, -0.5], [1, 2], &device))
}

/// Flow matching's ODE, SDE and likelihood with the exact interpolant velocity of Gaussian
/// data N((1, −0.5), diag(0.5², 1.5²)): the likelihood equals the log-density to 1e-3 nats
/// (RK4, 50 steps); Heun's ODE samples have the data's moments within 4 standard errors; the
/// interpolant SDE (ε = 0.5, 400 steps) within 4 standard errors plus its O(h) bias.
#[test]
fn flow_matching_ode_sde_and_likelihood_are_exact_on_the_gaussian_interpolant() {
    use ebm_zoo::diffusion::{FlowSolver, GaussianVelocity, flow_log_likelihood, sample_flow};
    let device = cpu_device();
    let (mean, std) = ([1.0, -0.5], [0.5, 1.5]);
    let field = GaussianVelocity {
        mean: mean.to_vec(),
        std: std.to_vec(),
    };
    let cov = [[0.25, 0.0], [0.0, 2.25]];
    let x = flow_gaussian_draws(4, 500);
    let lik =
        flow_log_likelihood(&mut seeded(5), &field, x.clone(), 50, Divergence::Exact).unwrap();
    let exact = diagonal_gaussian_log_density(&x, &mean, &std);
    let worst = to_host1(&lik)
        .iter()
        .zip(&exact)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    eprintln!("flow-matching likelihood: worst |error| {worst:.2e} nats");
    assert!(worst < 1e-3, "likelihood error {worst}");
    let n = 20_000;
    let (heun, nfe) =
        sample_flow(&mut seeded(6), &field, FlowSolver::Heun, 50, n, &device).unwrap();
    assert_eq!(nfe, 100);
    let (z_heun, worst_heun) = moment_z(&heun, mean, cov);
    eprintln!("Heun ODE: worst {worst_heun} ({z_heun:.1} s.e.)");
    assert!(z_heun <= 4.0, "Heun: {worst_heun}");
    let sde = FlowSolver::Sde { epsilon: 0.5 };
    let (x_sde, _) = sample_flow(&mut seeded(7), &field, sde, 400, n, &device).unwrap();
    let (z_sde, worst_sde) = moment_z(&x_sde, mean, cov);
    eprintln!("interpolant SDE: worst {worst_sde} ({z_sde:.1} s.e.)");
    assert!(z_sde <= 4.0, "SDE: {worst_sde}");
    // Bad settings are errors naming the key.
    let bad = FlowSolver::Sde { epsilon: -0.5 };
    let e = sample_flow(&mut seeded(8), &field, bad, 10, 10, &device).unwrap_err();
    assert!(e.to_string().contains("epsilon"), "{e}");
    let e = sample_flow(&mut seeded(8), &field, FlowSolver::Heun, 0, 10, &device).unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
}

/// A velocity MLP trained by flow matching on Gaussian data (2000 Adam steps) gives the data's
/// likelihood by its ODE within 0.03 nats of the exact NLL (bound set before the run).
#[test]
fn flow_matching_learns_a_gaussian_to_its_likelihood() {
    use ebm_zoo::diffusion::{
        DsmTrainConfig, FlowMatchingModel, ScoreNetConfig, VelocityNet, fit_flow_matching,
        flow_log_likelihood,
    };
    let device = cpu_device();
    let (mean, std) = ([1.0, -0.5], [0.5, 1.5]);
    let data = flow_gaussian_draws(10, 20_000);
    let test = flow_gaussian_draws(11, 2000);
    let cfg = ScoreNetConfig {
        data_dim: 2,
        hidden: vec![64, 64],
        ..ScoreNetConfig::default()
    };
    let mut net = VelocityNet::new(&mut seeded(12), &cfg, &device.autodiff()).unwrap();
    let train = DsmTrainConfig {
        iterations: 2000,
        batch_size: 256,
        learning_rate: 2e-3,
        ..DsmTrainConfig::default()
    };
    let report = fit_flow_matching(&mut seeded(13), &mut net, &data, &train, false).unwrap();
    let model = FlowMatchingModel::new(&net);
    let lik =
        flow_log_likelihood(&mut seeded(14), &model, test.clone(), 50, Divergence::Exact).unwrap();
    let nll = -to_host1(&lik).iter().map(|v| f64::from(*v)).sum::<f64>() / 2000.0;
    let exact = -diagonal_gaussian_log_density(&test, &mean, &std)
        .iter()
        .sum::<f64>()
        / 2000.0;
    eprintln!(
        "flow matching: NLL {nll:.4} vs exact {exact:.4}; loss {:.3} -> {:.3}",
        report.losses[0],
        report.losses.last().unwrap()
    );
    assert!((nll - exact).abs() < 0.03, "NLL {nll} vs {exact}");
    let weighted = DsmTrainConfig {
        weighting: ebm_zoo::diffusion::DsmWeighting::Likelihood,
        ..train
    };
    let e = fit_flow_matching(&mut seeded(13), &mut net, &data, &weighted, false).unwrap_err();
    assert!(e.to_string().contains("weighting"), "{e}");
}

/// The reverse SDE of the exact Gaussian-data energies under VP, 10 Euler–Maruyama steps: plain,
/// the discretisation leaves the covariance far off; reweighted by Jarzynski/SMC on the model's
/// own energies, every moment is within 4 standard errors (inflated by n / ESS for the
/// resampling), and log(Z_{t_min} / Z_prior) matches the exact ratio within 4 of its errors.
#[test]
fn reweighted_reverse_sde_corrects_ten_steps_of_the_exact_gaussian_energies() {
    use ebm_zoo::diffusion::ReweightedSampling;
    let device = cpu_device();
    let sde = Sde::vp();
    let model = gaussian_score(sde);
    let n = 20_000;
    let plain = SampleConfig {
        solver: Solver::EulerMaruyama,
        steps: 10,
        t_min: sde.t_min(),
    };
    let (x_plain, _) = sample(&mut seeded(20), &model, &sde, &plain, n, &device).unwrap();
    let (z_plain, worst_plain) = moment_z(&x_plain, MEAN, COV);
    let smc = ReweightedSampling {
        steps: 10,
        groups: 8,
        threshold: 0.5,
    };
    let (x, report) = smc
        .sample(&mut seeded(20), &model, &sde, n, &device)
        .unwrap();
    let (z_smc, worst_smc) = moment_z(&x, MEAN, COV);
    let inflation = (n as f64 / report.ess.max(1.0)).sqrt();
    // Z_prior = (2π)^{d/2} (the unnormalised prior), Z_{t_min} = exp(log Z of E_{t_min}).
    let level = model.marginal(sde.t_min()).unwrap();
    use ebm_zoo::energy::Energy;
    let exact_log_z = level.log_normalizer().unwrap() - (2.0 * std::f64::consts::PI).ln();
    eprintln!(
        "10 reverse-SDE steps: plain worst {worst_plain} ({z_plain:.1} s.e.); reweighted worst {worst_smc} ({z_smc:.1} s.e.), ESS {:.0} of {n}, {} resamplings; log Z {:.4} ± {:.4} vs {exact_log_z:.4}",
        report.ess, report.resamplings, report.log_z, report.log_z_std_err
    );
    assert!(
        z_plain > 10.0,
        "the plain SDE should be visibly biased at 10 steps"
    );
    assert!(
        z_smc <= 4.0 * inflation,
        "reweighted: {worst_smc} (inflation {inflation:.2})"
    );
    assert!(
        (report.log_z - exact_log_z).abs() <= 4.0 * report.log_z_std_err + 1e-3
            && report.log_z_std_err < 0.05,
        "log Z {} ± {} vs {exact_log_z}",
        report.log_z,
        report.log_z_std_err
    );
}
