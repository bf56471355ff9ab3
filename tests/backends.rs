//! The same sampling test on every backend compiled into this build (flex, ndarray, wgpu; wgpu
//! runs on Mesa's software Vulkan where there is no GPU), and the backend-name errors.

use crate::common;

use common::assert_within;
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::energy::Energy;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{to_host1, to_host2};
use ebm_zoo::mcmc::diagnostics::Summary;
use ebm_zoo::mcmc::run::{RunConfig, run};
use ebm_zoo::mcmc::sampler::Mala;
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergyConfig;
use ebm_zoo::runner::spec::EnergySpec;

/// MALA on the 2-D mixture with unequal weights: mean and variance within 4 SE of the exact values.
fn mixture_test(backend: BackendKind) {
    let dev = backend.device().unwrap();
    let spec = EnergySpec::preset("mixture").unwrap();
    let energy = spec.build(&dev).unwrap();
    let EnergySpec::Mixture {
        weights,
        means,
        stds,
        ..
    } = spec
    else {
        unreachable!()
    };
    let w: f64 = weights.iter().sum();
    let mut rng = seeded(3);
    let x0 = normal(&mut rng, [64, 2], &dev).mul_scalar(3.0);
    let cfg = RunConfig {
        warmup: 300,
        steps: 1500,
        thin: 1,
        target_acceptance: Some(0.574),
        check_every: 1,
        keep_draws: true,
    };
    let out = run(
        &mut rng,
        &mut Mala::new(0.3).unwrap(),
        energy.as_ref(),
        x0,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let draws = out.draws.unwrap();
    for i in 0..2 {
        let mean: f64 = weights.iter().zip(&means).map(|(p, m)| p / w * m[i]).sum();
        let second: f64 = weights
            .iter()
            .zip(&means)
            .zip(&stds)
            .map(|((p, m), s)| p / w * (s * s + m[i] * m[i]))
            .sum();
        let s = Summary::of(&draws.coordinate(i));
        println!(
            "{backend}: mean[{i}] {:.4} (exact {mean:.4}, mcse {:.4}), R-hat {:.3}",
            s.mean, s.mcse, s.rhat
        );
        assert!(s.rhat < 1.05, "{backend}: R-hat {}", s.rhat);
        assert_within(&format!("{backend} mean[{i}]"), s.mean, mean, s.mcse, 4.0);
        let sq = Summary::of(&draws.map(|x| (x[i] as f64).powi(2)));
        assert_within(
            &format!("{backend} E[x{i}^2]"),
            sq.mean,
            second,
            sq.mcse,
            4.0,
        );
    }
}

/// The backends a test compares, saying which are skipped: "skipped: backend X not compiled" for
/// each missing one, and that the agreement is not checked when fewer than two are compiled.
/// `ZOO_REQUIRE_BACKENDS` (comma separated; `scripts/test.sh` sets all three) turns a missing
/// backend into a failure, so that the test command never passes on fewer backends silently.
fn backends(test: &str) -> Vec<BackendKind> {
    let required = std::env::var("ZOO_REQUIRE_BACKENDS").unwrap_or_default();
    for b in BackendKind::ALL.into_iter().filter(|b| !b.is_compiled()) {
        assert!(
            !required.split(',').any(|r| r.trim() == b.name()),
            "{test}: backend {b} is required (ZOO_REQUIRE_BACKENDS={required}) but not compiled"
        );
        eprintln!("{test}: skipped: backend {b} not compiled");
    }
    let compiled = BackendKind::compiled();
    if compiled.len() < 2 {
        eprintln!("{test}: skipped: agreement across backends not checked (only {compiled:?})");
    }
    compiled
}

fn sampling_test_passes_on_every_compiled_backend() {
    for backend in backends("sampling") {
        mixture_test(backend);
    }
}

fn the_mlp_score_agrees_across_backends() {
    // The same weights on every backend give the same energy and score (float32 tolerance).
    let mut reference: Option<(Vec<f32>, Vec<f32>)> = None;
    for backend in backends("mlp score") {
        let dev = backend.device().unwrap();
        let mlp = MlpEnergyConfig::new(vec![2, 32, 32, 1], Activation::Silu)
            .init(&mut seeded(4), &dev)
            .unwrap();
        let x = normal(&mut seeded(5), [128, 2], &dev);
        let (e, s) = mlp.energy_and_score(x);
        let (e, s) = (to_host1(&e), to_host2(&s));
        match &reference {
            None => reference = Some((e, s)),
            Some((e0, s0)) => {
                let err = e
                    .iter()
                    .zip(e0)
                    .chain(s.iter().zip(s0))
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-4, "{backend}: max difference {err}");
            }
        }
    }
}

/// Training runs on every backend (the GPU code path: autodiff device, samplers on the plain device,
/// Adam): a few iterations of CD, Jarzynski-weighted PCD and DSM from the same weights and the same
/// seed give the same losses on every backend (float32 tolerance).
fn training_runs_and_agrees_on_every_compiled_backend() {
    use ebm_zoo::data::Toy2d;
    use ebm_zoo::ebm::objective::{
        ChainStart, DenoisingScoreMatching, JarzynskiPcd, MaximumLikelihood, Objective,
    };
    use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
    use ebm_zoo::mcmc::sampler::{AnySampler, SamplerKind};
    use ebm_zoo::neural::MlpEnergy;
    let data = Dataset::new(
        Toy2d::EightGaussians
            .density()
            .sample_host(&mut seeded(1), 512),
        2,
    )
    .unwrap();
    let mut reference: Option<Vec<f64>> = None;
    for backend in backends("training") {
        let dev = backend.device().unwrap();
        let mut losses = Vec::new();
        for k in 0..3 {
            let model = MlpEnergyConfig::new(vec![2, 16, 16, 1], Activation::Silu)
                .init(&mut seeded(2), &dev.clone().autodiff())
                .unwrap();
            let config = EbmTrainConfig {
                iterations: 3,
                batch_size: 64,
                ..EbmTrainConfig::default()
            };
            let mut trainer = Trainer::new(model, config).unwrap();
            let ula = AnySampler::new(SamplerKind::Ula, 0.01, 1).unwrap();
            let mut objective: Box<dyn Objective<MlpEnergy>> = match k {
                0 => Box::new(MaximumLikelihood::new(ChainStart::Data, ula, 3).unwrap()),
                1 => Box::new(JarzynskiPcd::new(64, 0.01, 0.5, vec![0.0, 0.0], 2.0).unwrap()),
                _ => Box::new(DenoisingScoreMatching::new(0.1).unwrap()),
            };
            trainer
                .fit(&mut seeded(3), objective.as_mut(), &data, &dev)
                .unwrap();
            losses.extend(trainer.history.iter().map(|r| r.loss));
        }
        agrees_with_first_backend(&mut reference, losses, backend);
    }
}

#[test]
fn backend_names_are_checked() {
    let err = "cuda".parse::<BackendKind>().unwrap_err().to_string();
    assert!(
        err.contains("unknown backend 'cuda'") && err.contains("flex, ndarray, wgpu"),
        "{err}"
    );
    for b in BackendKind::ALL {
        match b.device() {
            Ok(_) => assert!(b.is_compiled()),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("not compiled") && msg.contains("compiled backends:"),
                    "{msg}"
                );
            }
        }
    }
}

/// Flows on every backend: the same weights give the same log density and the same round trip,
/// and a few maximum-likelihood and reverse-KL steps (burn's autodiff path, which is what runs on
/// a GPU) give the same losses.
fn flows_agree_on_every_compiled_backend() {
    use ebm_zoo::energy::energy::DoubleWell;
    use ebm_zoo::flow::{
        FlowConfig, FlowKind, FlowTrainConfig, ReverseKlTrainConfig, fit_max_likelihood,
        fit_reverse_kl,
    };
    let points = ebm_zoo::data::Toy2d::TwoMoons
        .density()
        .sample_host(&mut seeded(1), 256);
    let mut reference: Option<Vec<f64>> = None;
    for backend in backends("flows") {
        let dev = backend.device().unwrap();
        let x = ebm_zoo::energy::tensor::from_host2(points.clone(), [256, 2], &dev);
        let mut values = Vec::new();
        for kind in [FlowKind::RealNvp, FlowKind::Maf, FlowKind::Nsf] {
            let cfg = FlowConfig {
                layers: 2,
                hidden: vec![16],
                zero_init: false,
                lu: true,
                ..FlowConfig::new(kind, 2)
            };
            let flow = cfg.init(&mut seeded(2), &dev).unwrap();
            let lp = flow.log_prob(x.clone(), None).unwrap();
            values.extend(
                ebm_zoo::energy::tensor::to_host1(&lp)
                    .iter()
                    .map(|v| f64::from(*v)),
            );
            let (z, _) = flow.forward(x.clone(), None);
            let (back, _) = flow.inverse(z, None);
            let err = ebm_zoo::energy::tensor::to_host2(&(back - x.clone()).abs())
                .into_iter()
                .fold(0f32, f32::max);
            assert!(err < 1e-4, "{backend} {kind:?}: round trip off by {err}");
            let mut trained = cfg.init(&mut seeded(2), &dev.clone().autodiff()).unwrap();
            let fit = FlowTrainConfig {
                iterations: 3,
                batch_size: 64,
                fused: false,
                ..FlowTrainConfig::default()
            };
            let r = fit_max_likelihood(&mut seeded(3), &mut trained, &x, None, &fit).unwrap();
            values.extend(r.losses);
            let rk = ReverseKlTrainConfig {
                fit: FlowTrainConfig {
                    iterations: 3,
                    batch_size: 64,
                    data_init: false,
                    ..FlowTrainConfig::default()
                },
                forward_weight: 0.0,
            };
            let well = DoubleWell::new(2, 2.0).unwrap();
            let r = fit_reverse_kl(&mut seeded(4), &mut trained, &well, None, &rk, &dev).unwrap();
            values.extend(r.losses);
        }
        agrees_with_first_backend(&mut reference, values, backend);
    }
}

/// The first backend's numbers become the reference; every later backend's must be finite and
/// agree with them to 1e-3 relative.
fn agrees_with_first_backend(
    reference: &mut Option<Vec<f64>>,
    values: Vec<f64>,
    backend: BackendKind,
) {
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{backend}: {values:?}"
    );
    match reference {
        None => *reference = Some(values),
        Some(v0) => {
            for (a, b) in values.iter().zip(v0.iter()) {
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "{backend}: {a} vs {b}"
                );
            }
        }
    }
}

fn gans_agree_on_every_compiled_backend() {
    // Three updates of every game (and the latent energy of the result) from the same seeds:
    // the losses and the latent energies agree across flex, ndarray and wgpu.
    use ebm_zoo::gan::{GanConfig, GanLoss, GanTrainConfig, LatentEnergy, fit};
    let points = ebm_zoo::data::Toy2d::EightGaussians
        .density()
        .sample_host(&mut seeded(5), 256);
    let mut reference: Option<Vec<f64>> = None;
    for backend in backends("gans") {
        let dev = backend.device().unwrap();
        let x = ebm_zoo::energy::tensor::from_host2(points.clone(), [256, 2], &dev);
        let mut values = Vec::new();
        for loss in GanLoss::ALL {
            let cfg = GanConfig {
                generator_hidden: vec![16],
                discriminator_hidden: vec![16],
                loss,
                ..GanConfig::default()
            };
            let mut gan = cfg.init(&mut seeded(6), &dev.clone().autodiff()).unwrap();
            let train = GanTrainConfig {
                iterations: 3,
                batch_size: 64,
                posterior_samples: 4,
                ..GanTrainConfig::default()
            };
            let r = fit(&mut seeded(7), &mut gan, &x, &train, false).unwrap();
            values.extend(r.discriminator_losses);
            values.extend(r.generator_losses);
            let z = ebm_zoo::energy::rng::normal(&mut seeded(8), [8, 2], &dev);
            let e = LatentEnergy::new(&gan).energy(z);
            values.extend(
                ebm_zoo::energy::tensor::to_host1(&e)
                    .iter()
                    .map(|v| f64::from(*v)),
            );
        }
        agrees_with_first_backend(&mut reference, values, backend);
    }
}

fn diffusion_agrees_on_every_compiled_backend() {
    // Three DSM steps of both parameterisations, a few sampler steps and the PF-ODE likelihood
    // (exact divergence) from the same seeds agree across flex, ndarray and wgpu.
    use ebm_zoo::diffusion::{
        Divergence, DsmTrainConfig, NetScore, SampleConfig, ScoreNetConfig, Sde, Solver, fit_dsm,
        pf_ode_log_likelihood, sample,
    };
    let points = ebm_zoo::data::Toy2d::TwoMoons
        .density()
        .sample_host(&mut seeded(9), 256);
    let mut reference: Option<Vec<f64>> = None;
    for backend in backends("diffusion") {
        let dev = backend.device().unwrap();
        let ad = dev.clone().autodiff();
        let x = ebm_zoo::energy::tensor::from_host2(points.clone(), [256, 2], &dev);
        let sde = Sde::vp();
        let cfg = ScoreNetConfig {
            hidden: vec![16, 16],
            ..ScoreNetConfig::default()
        };
        let dsm = DsmTrainConfig {
            iterations: 3,
            batch_size: 64,
            ..DsmTrainConfig::default()
        };
        let mut values = Vec::new();
        let mut mlp = cfg.mlp(&mut seeded(10), &ad).unwrap();
        values.extend(
            fit_dsm(&mut seeded(11), &mut mlp, &sde, &x, &dsm, false)
                .unwrap()
                .losses,
        );
        let mut energy = cfg.energy(&mut seeded(12), &ad).unwrap();
        values.extend(
            fit_dsm(&mut seeded(13), &mut energy, &sde, &x, &dsm, false)
                .unwrap()
                .losses,
        );
        let model = NetScore::new(&energy, sde);
        let (s, _) = sample(
            &mut seeded(14),
            &model,
            &sde,
            &SampleConfig {
                solver: Solver::Heun,
                steps: 5,
                t_min: sde.t_min(),
            },
            8,
            &dev,
        )
        .unwrap();
        values.extend(
            ebm_zoo::energy::tensor::to_host2(&s)
                .iter()
                .map(|v| f64::from(*v)),
        );
        let probe = x.clone().slice([0..8, 0..2]);
        let ll = pf_ode_log_likelihood(
            &mut seeded(15),
            &model,
            &sde,
            probe,
            3,
            sde.t_min(),
            Divergence::Exact,
        )
        .unwrap();
        values.extend(
            ebm_zoo::energy::tensor::to_host1(&ll.log_likelihood)
                .iter()
                .map(|v| f64::from(*v)),
        );
        agrees_with_first_backend(&mut reference, values, backend);
    }
}

fn vaes_agree_on_every_compiled_backend() {
    // Three steps of the Energy-Calibrated VAE (losses, lambda), of the hierarchical generator
    // and of its latent EBM diffusion prior over it, then 8 decoded prior draws: from the same
    // seeds they agree across flex, ndarray and wgpu.
    let points = ebm_zoo::data::Toy2d::EightGaussians
        .density()
        .sample_host(&mut seeded(16), 256);
    let mut reference: Option<Vec<f64>> = None;
    for backend in backends("vaes") {
        let dev = backend.device().unwrap();
        let x = ebm_zoo::energy::tensor::from_host2(points.clone(), [256, 2], &dev);
        let mut values = ec_vae_steps(&x);
        values.extend(hierarchical_steps(&x));
        agrees_with_first_backend(&mut reference, values, backend);
    }
}

/// L_vae, L_cal and lambda of three EC-VAE steps on `x`.
fn ec_vae_steps(x: &ebm_zoo::energy::burn::prelude::Tensor<2>) -> Vec<f64> {
    use ebm_zoo::vae::{DecoderKind, EcVaeTrainConfig, VaeConfig, fit_calibrated};
    let ad = x.device().autodiff();
    let ec = EcVaeTrainConfig {
        iterations: 3,
        batch_size: 64,
        energy_hidden: vec![16],
        ..EcVaeTrainConfig::default()
    };
    let flat = VaeConfig {
        data_dim: 2,
        latent_dim: 2,
        hidden: vec![16],
        decoder: DecoderKind::Gaussian,
        ..VaeConfig::default()
    };
    let mut rng = seeded(17);
    let mut vae = flat.init(&mut rng, &ad).unwrap();
    let mut energy = ec.init_energy(&mut rng, 2, &ad).unwrap();
    let r = fit_calibrated(&mut rng, &mut vae, &mut energy, x, &ec).unwrap();
    r.log
        .iter()
        .flat_map(|l| [l.vae_loss, l.calibration_loss, l.lambda])
        .collect()
}

/// Three generator steps on `x`, three diffusion-prior steps over it, 8 decoded prior draws.
fn hierarchical_steps(x: &ebm_zoo::energy::burn::prelude::Tensor<2>) -> Vec<f64> {
    use ebm_zoo::energy::burn::module::Module;
    use ebm_zoo::vae::{
        HierPosterior, HierTrainConfig, HierVaeConfig, LatentDiffusionConfig, LatentPriorKind,
        LatentPriorTrainConfig, fit_hier_vae, fit_latent_prior,
    };
    let (dev, ad) = (x.device(), x.device().autodiff());
    let cfg = HierVaeConfig {
        data_dim: 2,
        latent: vec![2, 2],
        hidden: vec![16],
        layer_hidden: vec![8],
        prior: LatentDiffusionConfig {
            hidden: vec![16],
            ..LatentDiffusionConfig::default()
        },
        ..HierVaeConfig::default()
    };
    let mut rng = seeded(18);
    let mut hier = cfg.init(&mut rng, &ad).unwrap();
    let train = HierTrainConfig {
        iterations: 3,
        batch_size: 64,
        ..HierTrainConfig::default()
    };
    let mut values = fit_hier_vae(&mut rng, &mut hier, x, &train).unwrap().losses;
    let kind = LatentPriorKind::Diffusion;
    let mut prior = cfg
        .prior
        .init(kind, &cfg.latent, &mut rng, &ad)
        .unwrap()
        .unwrap();
    let frozen = hier.valid();
    let source = HierPosterior {
        vae: &frozen,
        data: x,
    };
    let p = LatentPriorTrainConfig {
        iterations: 3,
        batch_size: 32,
        langevin_steps: 8,
        ..LatentPriorTrainConfig::default()
    };
    values.extend(
        fit_latent_prior(&mut rng, &mut prior, &frozen, &source, &p)
            .unwrap()
            .losses,
    );
    let prior = prior.valid();
    let drawn = frozen
        .generate(&mut rng, Some((&prior, p.chain())), 8, &dev)
        .unwrap();
    values.extend(to_host2(&drawn).iter().map(|v| f64::from(*v)));
    values
}

/// Every agreement check above in one test, one after the other. Their wgpu parts serialise on
/// the one device (and lavapipe compiles each new shader on one thread), so two of them running as
/// parallel tests left one of the two cores idle for minutes; as one test they run beside the CPU
/// tests. Longest first: the other test thread works through the CPU tests meanwhile.
#[test]
fn every_family_agrees_on_every_compiled_backend() {
    let checks: [(&str, fn()); 7] = [
        ("flows", flows_agree_on_every_compiled_backend),
        ("diffusion", diffusion_agrees_on_every_compiled_backend),
        ("gans", gans_agree_on_every_compiled_backend),
        ("vaes", vaes_agree_on_every_compiled_backend),
        ("sampling", sampling_test_passes_on_every_compiled_backend),
        ("mlp score", the_mlp_score_agrees_across_backends),
        (
            "training",
            training_runs_and_agrees_on_every_compiled_backend,
        ),
    ];
    for (name, check) in checks {
        let start = std::time::Instant::now();
        check();
        eprintln!(
            "backends: {name} agree ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
}
