//! Core-EBM training: losses and hand-written gradients against float64 references, NCE's log Z,
//! a trainer that provably improves, stabilisers, divergence handling, checkpoints and bad input.

use crate::common;
use common::cpu_device;
use ebm_zoo::data::grid::evaluate;
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::ebm::model::{GaussianModel, MixtureModel, spectral_norm};
use ebm_zoo::ebm::objective::score::{dsm_loss, fd_ssm_loss};
use ebm_zoo::ebm::objective::{ChainStart, MaximumLikelihood, Nce};
use ebm_zoo::ebm::{Dataset, EbmTrainConfig, EnergyModel, Trainer};
use ebm_zoo::energy::Energy;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{to_host1, to_host2};
use ebm_zoo::mcmc::sampler::{AnySampler, InitDistribution, ReplayBuffer, SamplerKind};
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergy;
use ebm_zoo::neural::MlpEnergyConfig;

/// A float64 MLP with the same weights, for references.
struct Mlp64 {
    layers: Vec<(Vec<f64>, Vec<f64>, usize, usize)>,
}

impl Mlp64 {
    fn from(model: &MlpEnergy) -> Self {
        let layers = model
            .host_weights()
            .into_iter()
            .map(|(w, b)| {
                let (i, o) = (w.len() / b.len(), b.len());
                (
                    w.iter().map(|&v| v as f64).collect(),
                    b.iter().map(|&v| v as f64).collect(),
                    i,
                    o,
                )
            })
            .collect();
        Self { layers }
    }
    fn params(&self) -> usize {
        self.layers
            .iter()
            .map(|(w, b, _, _)| w.len() + b.len())
            .sum()
    }
    fn param_mut(&mut self, mut k: usize) -> &mut f64 {
        for (w, b, _, _) in &mut self.layers {
            if k < w.len() {
                return &mut w[k];
            }
            k -= w.len();
            if k < b.len() {
                return &mut b[k];
            }
            k -= b.len();
        }
        unreachable!()
    }
    fn energy(&self, x: &[f64]) -> f64 {
        let mut h = x.to_vec();
        let last = self.layers.len() - 1;
        for (l, (w, b, i, o)) in self.layers.iter().enumerate() {
            let mut z = b.clone();
            for r in 0..*i {
                for c in 0..*o {
                    z[c] += h[r] * w[r * o + c];
                }
            }
            h = if l == last {
                z
            } else {
                z.iter().map(|v| v / (1.0 + (-v).exp())).collect()
            };
        }
        h[0]
    }
    fn grad(&self, x: &[f64]) -> Vec<f64> {
        let h = 1e-5;
        (0..x.len())
            .map(|k| {
                let (mut a, mut b) = (x.to_vec(), x.to_vec());
                a[k] += h;
                b[k] -= h;
                (self.energy(&a) - self.energy(&b)) / (2.0 * h)
            })
            .collect()
    }
}

fn rows64(x: &Tensor<2>) -> Vec<Vec<f64>> {
    common::rows(x)
}

/// Gradient of `loss` in every parameter by burn autodiff, flattened in `host_weights` order.
fn burn_param_grads(model: &MlpEnergy, loss: Tensor<1>) -> Vec<f64> {
    let grads = loss.backward();
    let mut out = Vec::new();
    for layer in &model.layers {
        let gw = layer.weight.val().grad(&grads).expect("weight grad");
        out.extend(to_host2(&gw).into_iter().map(f64::from));
        // The output bias does not reach a score-based loss: no gradient is a zero gradient.
        let bias = layer.bias.as_ref().unwrap().val();
        match bias.grad(&grads) {
            Some(gb) => out.extend(to_host1(&gb).into_iter().map(f64::from)),
            None => out.extend(std::iter::repeat_n(0.0, bias.dims()[0])),
        }
    }
    out
}

fn tiny_mlp(seed: u64) -> (MlpEnergy, Device) {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let model = MlpEnergyConfig::new(vec![2, 6, 5, 1], Activation::Silu)
        .init(&mut seeded(seed), &ad)
        .unwrap();
    (model, device)
}

fn close(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * (1.0 + want.abs()),
        "{what}: got {got:.7}, float64 reference {want:.7}"
    );
}

#[test]
fn dsm_loss_and_its_gradient_match_a_float64_reference() {
    let (model, device) = tiny_mlp(1);
    let mut rng = seeded(2);
    let x = normal(&mut rng, [16, 2], &device);
    let eps = normal(&mut rng, [16, 2], &device);
    let sigma = 0.3;
    let (loss, _) = dsm_loss(&model, x.clone(), eps.clone(), sigma);
    let value = to_host1(&loss)[0] as f64;
    let grads = burn_param_grads(&model, loss);
    let (xs, es) = (rows64(&x), rows64(&eps));
    let reference = |m: &Mlp64| -> f64 {
        xs.iter()
            .zip(&es)
            .map(|(x, e)| {
                let noisy: Vec<f64> = x.iter().zip(e).map(|(a, b)| a + sigma * b).collect();
                let g = m.grad(&noisy);
                g.iter()
                    .zip(e)
                    .map(|(g, e)| (-sigma * g + e).powi(2))
                    .sum::<f64>()
                    / 2.0
            })
            .sum::<f64>()
            / xs.len() as f64
    };
    let mut m64 = Mlp64::from(&model);
    close("DSM loss", value, reference(&m64), 1e-4);
    let h = 1e-4;
    for k in 0..m64.params() {
        let base = *m64.param_mut(k);
        *m64.param_mut(k) = base + h;
        let up = reference(&m64);
        *m64.param_mut(k) = base - h;
        let down = reference(&m64);
        *m64.param_mut(k) = base;
        close(
            &format!("dDSM/dtheta[{k}]"),
            grads[k],
            (up - down) / (2.0 * h),
            2e-3,
        );
    }
}

#[test]
fn sliced_score_matching_by_finite_differences_matches_float64() {
    let (model, device) = tiny_mlp(3);
    let mut rng = seeded(4);
    let x = normal(&mut rng, [16, 2], &device);
    let v = normal(&mut rng, [16, 2], &device);
    let epsilon = 0.05;
    let (loss, _) = fd_ssm_loss(&model, x.clone(), v.clone(), epsilon);
    let value = to_host1(&loss)[0] as f64;
    let grads = burn_param_grads(&model, loss);
    let (xs, vs) = (rows64(&x), rows64(&v));
    let fd_reference = |m: &Mlp64, eps: f64| -> f64 {
        xs.iter()
            .zip(&vs)
            .map(|(x, v)| {
                let p: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + eps * b).collect();
                let q: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - eps * b).collect();
                let (ep, em, e0) = (m.energy(&p), m.energy(&q), m.energy(x));
                0.5 * ((ep - em) / (2.0 * eps)).powi(2) - (ep + em - 2.0 * e0) / (eps * eps)
            })
            .sum::<f64>()
            / xs.len() as f64
    };
    // The exact sliced objective: (v·grad E)^2 / 2 - v^T H v, H v by differences of the gradient.
    let exact = |m: &Mlp64| -> f64 {
        xs.iter()
            .zip(&vs)
            .map(|(x, v)| {
                let g = m.grad(x);
                let t = 1e-4;
                let p: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + t * b).collect();
                let q: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - t * b).collect();
                let (gp, gq) = (m.grad(&p), m.grad(&q));
                let vhv: f64 = (0..2).map(|k| v[k] * (gp[k] - gq[k]) / (2.0 * t)).sum();
                let vg: f64 = (0..2).map(|k| v[k] * g[k]).sum();
                0.5 * vg * vg - vhv
            })
            .sum::<f64>()
            / xs.len() as f64
    };
    let mut m64 = Mlp64::from(&model);
    // float32 second differences lose ~1e-7 |E| / eps^2 = 4e-5 |E|.
    close(
        "FD-SSM loss (float32 vs float64)",
        value,
        fd_reference(&m64, epsilon),
        2e-3,
    );
    // The finite-difference objective converges to the exact one as O(eps^2).
    close(
        "FD-SSM vs exact sliced SM",
        fd_reference(&m64, epsilon),
        exact(&m64),
        1e-2,
    );
    let h = 1e-4;
    for k in 0..m64.params() {
        let base = *m64.param_mut(k);
        *m64.param_mut(k) = base + h;
        let up = fd_reference(&m64, epsilon);
        *m64.param_mut(k) = base - h;
        let down = fd_reference(&m64, epsilon);
        *m64.param_mut(k) = base;
        close(
            &format!("dFDSSM/dtheta[{k}]"),
            grads[k],
            (up - down) / (2.0 * h),
            1e-2,
        );
    }
}

/// Hand-written scores of the trainable energies against autodiff and finite differences.
#[test]
fn trainable_energy_scores_match_autodiff_and_finite_differences() {
    let device = cpu_device();
    let mixture = MixtureModel::new(
        &[vec![-1.0, 0.5, 0.0], vec![1.5, -0.5, 0.3]],
        &[0.3, 0.7],
        &device,
    )
    .unwrap();
    let gaussian = GaussianModel::new(&[0.5, -1.0, 2.0], 1.7, &device).unwrap();
    let energies: [&dyn Energy; 2] = [&mixture, &gaussian];
    let mut rng = seeded(8);
    let x = normal(&mut rng, [10, 3], &device);
    for e in energies {
        let (_, s) = e.energy_and_score(x.clone());
        let auto = ebm_zoo::energy::energy::autodiff_score(|t| e.energy(t), x.clone());
        let s = to_host2(&s);
        for (a, b) in s.iter().zip(to_host2(&auto)) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{}: {a} vs autodiff {b}",
                e.describe()
            );
        }
        let h = 1e-2f32;
        let xs = to_host2(&x);
        for k in 0..3 {
            let shift = |d: f32| {
                let mut v = xs.clone();
                for r in 0..10 {
                    v[r * 3 + k] += d;
                }
                to_host1(&e.energy(ebm_zoo::energy::tensor::from_host2(v, [10, 3], &device)))
            };
            let (up, down) = (shift(h), shift(-h));
            for r in 0..10 {
                let fd = -(up[r] - down[r]) / (2.0 * h);
                assert!(
                    (fd - s[r * 3 + k]).abs() < 2e-3 * (1.0 + fd.abs()),
                    "{}: fd {fd} vs {}",
                    e.describe(),
                    s[r * 3 + k]
                );
            }
        }
    }
    // The mixture's energy is normalised: log Z = (d/2) log 2 pi.
    assert!(
        (mixture.log_normalizer().unwrap() - 1.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12
    );
}

#[test]
fn nce_recovers_log_z_of_a_gaussian_within_its_standard_error() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let (mean, std) = ([1.0f32, -0.5], 0.7f32);
    let mut errors = Vec::new();
    for seed in 0..6u64 {
        let mut rng = seeded(100 + seed);
        let values = common::gaussian_points(&mut rng, 20_000, mean, std);
        let data = Dataset::new(values, 2).unwrap();
        let model = GaussianModel::new(&[0.0, 0.0], 1.0, &ad).unwrap();
        let mut objective = Nce::fitted(&data, 4, 1.5, &device).unwrap();
        let config = EbmTrainConfig {
            iterations: 1500,
            batch_size: 512,
            learning_rate: 0.01,
            ..EbmTrainConfig::default()
        };
        let mut trainer = Trainer::new(model, config).unwrap();
        trainer
            .fit(&mut rng, &mut objective, &data, &device)
            .unwrap();
        let exact = trainer.model().log_normalizer().unwrap();
        errors.push(objective.log_z() - exact);
        // The model itself is learned too.
        assert!(
            (trainer.model().std() - f64::from(std)).abs() < 0.05,
            "sigma {}",
            trainer.model().std()
        );
    }
    let (m, se) = ebm_zoo::data::grid::mean_and_se(&errors);
    println!("NCE log Z error: {m:.4} ± {se:.4} over 6 seeds: {errors:?}");
    assert!(
        m.abs() <= 4.0 * se && se < 0.05,
        "NCE log Z error {m} ± {se}"
    );
}

fn mlp_on(ad: &Device, seed: u64) -> MlpEnergy {
    MlpEnergyConfig::new(vec![2, 32, 32, 1], Activation::Silu)
        .init(&mut seeded(seed), ad)
        .unwrap()
}

#[test]
fn persistent_training_improves_the_exact_kl_and_respects_the_spectral_bound() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    // Two moons: connected modes PCD can fit (it loses the small mode of `unequal`, see docs/ebm.md).
    let truth = Toy2d::TwoMoons.density();
    let mut rng = seeded(11);
    let data = Dataset::new(truth.sample_host(&mut rng, 5000), 2).unwrap();
    let test = truth.sample_host(&mut rng, 1000);
    let grid = Grid2d::new(-4.0, 4.0, 128).unwrap();
    let model = mlp_on(&ad, 12);
    let before = evaluate(&*model.sampling_energy(), &truth, &test, grid, &device).unwrap();
    let buffer = ReplayBuffer::new(
        2,
        5000,
        0.05,
        InitDistribution::Uniform {
            low: -4.0,
            high: 4.0,
        },
    )
    .unwrap();
    // The settings of `examples/ebm_2d.rs` (PCD row of docs/ebm.md), with a smaller net.
    let sampler = AnySampler::new(SamplerKind::Ula, 0.005, 1).unwrap();
    let mut objective = MaximumLikelihood::new(ChainStart::Persistent(buffer), sampler, 20)
        .unwrap()
        .with_energy_penalty(0.01)
        .unwrap();
    let config = EbmTrainConfig {
        iterations: 2000,
        grad_clip: Some(10.0),
        spectral_bound: Some(8.0),
        ..EbmTrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    trainer
        .fit(&mut rng, &mut objective, &data, &device)
        .unwrap();
    let after = evaluate(
        &*trainer.model().sampling_energy(),
        &truth,
        &test,
        grid,
        &device,
    )
    .unwrap();
    println!(
        "KL {:.3} -> {:.3}, TV {:.3} -> {:.3}",
        before.kl, after.kl, before.tv, after.tv
    );
    assert!(after.kl < 0.25 * before.kl && after.tv < 0.5 * before.tv);
    for layer in &trainer.model().layers {
        let [r, c] = layer.weight.dims();
        let s = spectral_norm(&to_host2(&layer.weight.val()), r, c);
        println!("layer spectral norm {s:.4} (bound 8)");
        assert!(s <= 8.0 * (1.0 + 1e-3), "spectral norm {s} above the bound");
    }
    let last = trainer.history.last().unwrap();
    assert!(
        last.report.acceptance.is_none()
            && last.report.chain_ess.unwrap() > 0.0
            && last.energy_gap().is_some()
    );
}

// Divergence and restore: tests/training.rs (every family, checked against an independent run).

#[test]
fn bad_input_gives_clear_errors() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let nan = Dataset::new(vec![0.0, 1.0, f32::NAN, 2.0], 2)
        .unwrap_err()
        .to_string();
    assert!(
        nan.contains("non-finite") && nan.contains("row 1") && nan.contains("column 0"),
        "{nan}"
    );
    let empty = Dataset::new(vec![], 2).unwrap_err().to_string();
    assert!(empty.contains("empty"), "{empty}");
    let ragged = Dataset::new(vec![1.0; 5], 2).unwrap_err().to_string();
    assert!(ragged.contains("wrong shape"), "{ragged}");
    let buffer = ReplayBuffer::new(
        2,
        0,
        0.05,
        InitDistribution::Normal {
            mean: 0.0,
            std: 1.0,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(buffer.contains("capacity"), "{buffer}");
    // Data of the wrong dimension for the model.
    let data = Dataset::new(vec![0.0; 30], 3).unwrap();
    let sampler = AnySampler::new(SamplerKind::Ula, 0.01, 1).unwrap();
    let mut objective = MaximumLikelihood::new(ChainStart::Data, sampler, 1).unwrap();
    let mut trainer = Trainer::new(mlp_on(&ad, 1), EbmTrainConfig::default()).unwrap();
    let dim = trainer
        .fit(&mut seeded(0), &mut objective, &data, &device)
        .unwrap_err()
        .to_string();
    assert!(
        dim.contains("expected [n, 2]") && dim.contains("[10, 3]"),
        "{dim}"
    );
    // Configs.
    let zero = EbmTrainConfig {
        iterations: 0,
        ..EbmTrainConfig::default()
    };
    assert!(
        Trainer::new(mlp_on(&ad, 1), zero)
            .unwrap_err()
            .to_string()
            .contains("iterations")
    );
    let lr = EbmTrainConfig {
        learning_rate: -1.0,
        ..EbmTrainConfig::default()
    };
    assert!(
        Trainer::new(mlp_on(&ad, 1), lr)
            .unwrap_err()
            .to_string()
            .contains("learning_rate")
    );
    let sampler = AnySampler::new(SamplerKind::Ula, 0.01, 1).unwrap();
    assert!(MaximumLikelihood::new(ChainStart::Data, sampler, 0).is_err());
    let unknown: Result<EbmTrainConfig, _> = toml::from_str("iterations = 10\nlearning_rat = 0.1");
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `learning_rat`")
    );
}

#[test]
fn sgd_with_dsm_learns_a_gaussian_to_its_noise_convolved_optimum() {
    // SGD with momentum, end to end: DSM at noise sigma_n is minimised by the data convolved with
    // N(0, sigma_n^2 I), so the learned Gaussian has the data's mean and std sqrt(s^2 + sigma_n^2).
    use ebm_zoo::ebm::objective::DenoisingScoreMatching;
    use ebm_zoo::ebm::train::OptimizerKind;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let (mean, std, noise) = ([1.0f32, -0.5], 0.7f32, 0.1);
    let mut rng = seeded(7);
    let data = Dataset::new(common::gaussian_points(&mut rng, 20_000, mean, std), 2).unwrap();
    let model = GaussianModel::new(&[0.0, 0.0], 1.0, &ad).unwrap();
    let mut objective = DenoisingScoreMatching::new(noise).unwrap();
    let config = EbmTrainConfig {
        iterations: 4000,
        batch_size: 512,
        optimizer: OptimizerKind::Sgd,
        learning_rate: 0.01,
        beta1: 0.9,
        ..EbmTrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    trainer
        .fit(&mut rng, &mut objective, &data, &device)
        .unwrap();
    let (m, s) = (trainer.model().mean(), trainer.model().std());
    let target = (f64::from(std).powi(2) + noise * noise).sqrt();
    println!("SGD + DSM: mean {m:?} (data {mean:?}), std {s:.4} (optimum {target:.4})");
    // 20 000 points: the sample mean and std are within ~0.005 of the truth; SGD's own noise at
    // lr 0.01 adds less than that.
    for (a, b) in m.iter().zip(mean) {
        assert!((a - f64::from(b)).abs() < 0.02, "mean {m:?}");
    }
    assert!((s - target).abs() < 0.02, "std {s} vs {target}");
}

/// The unequal-weight mixture of Carbone et al. (2023, §4.1) in d = 2: data 1/4 N(-10 e1, I) +
/// 3/4 N(6 e1, I), a student of the same form from equal weights near the origin, SGD as in
/// `examples/ebm_mixture_weights.rs`. PT-CD (8 replicas x 256 chains down to beta = 0.02, 5 MALA
/// steps and one exchange round per update) learns the -10 mode's weight within 0.03; PCD with as
/// many energy evaluations (256 chains x 40 ULA steps) collapses onto one mode (measured: 0.250
/// against 1.000).
#[test]
fn pt_cd_learns_the_mode_weights_where_pcd_collapses_at_equal_cost() {
    use ebm_zoo::ebm::objective::TemperedPcd;
    use ebm_zoo::ebm::train::OptimizerKind;
    use ebm_zoo::mcmc::sampler::Ladder;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let means = [vec![-10.0, 0.0], vec![6.0, 0.0]];
    let truth = MixtureModel::new(&means, &[0.25, 0.75], &device).unwrap();
    let data = Dataset::new(to_host2(&truth.sample(&mut seeded(1), 20_000, &device)), 2).unwrap();
    let normal01 = InitDistribution::Normal {
        mean: 0.0,
        std: 1.0,
    };
    let train = |pt: bool| -> f64 {
        let student =
            MixtureModel::new(&[vec![-0.5, 0.05], vec![0.5, -0.05]], &[0.5, 0.5], &ad).unwrap();
        let config = EbmTrainConfig {
            iterations: 3000,
            batch_size: 256,
            optimizer: OptimizerKind::Sgd,
            learning_rate: 0.02,
            grad_clip: Some(1.0),
            ..EbmTrainConfig::default()
        };
        let mut trainer = Trainer::new(student, config).unwrap();
        let mut rng = seeded(2);
        if pt {
            let mala = AnySampler::new(SamplerKind::Mala, 0.1, 1).unwrap();
            let ladder = Ladder::geometric(8, 0.02).unwrap();
            let mut o = TemperedPcd::new(mala, ladder, 256, 1, normal01)
                .unwrap()
                .with_kernel_steps(5)
                .unwrap();
            trainer.fit(&mut rng, &mut o, &data, &device).unwrap();
        } else {
            let ula = AnySampler::new(SamplerKind::Ula, 0.1, 1).unwrap();
            let buffer = ReplayBuffer::new(2, 8192, 0.0, normal01).unwrap();
            let start = ChainStart::Persistent(buffer);
            let mut o = MaximumLikelihood::new(start, ula, 40).unwrap();
            trainer.fit(&mut rng, &mut o, &data, &device).unwrap();
        }
        let m = trainer.model().valid();
        let (mu, w) = (m.means(), m.weights());
        if mu[0][0] < mu[1][0] { w[0] } else { w[1] }
    };
    let (pt, pcd) = (train(true), train(false));
    println!("weight of the -10 mode (exact 0.25): PT-CD {pt:.4}, PCD at equal cost {pcd:.4}");
    assert!((pt - 0.25).abs() <= 0.03, "PT-CD weight {pt}");
    assert!(
        (pcd - 0.25).abs() > 0.2,
        "PCD was expected to collapse: {pcd}"
    );
}

/// The fused PCD trainer's written-out θ-gradient of mean E(data) - mean E(chains) +
/// alpha (mean E(data)^2 + mean E(chains)^2) equals burn autodiff's on the same points (relative
/// 1e-4), for the peers' 2 -> 128 -> 128 -> 1 SiLU network; and a short fused run lowers the
/// energy of the data against the chains' start (8 Gaussians).
#[test]
fn fused_pcd_gradients_match_autodiff_and_training_runs() {
    use ebm_zoo::ebm::fused::{FusedPcdConfig, fit_pcd_fused, host_mlp, pcd_gradients};
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let model = MlpEnergyConfig::new(vec![2, 128, 128, 1], Activation::Silu)
        .init(&mut seeded(5), &ad)
        .unwrap();
    let data = normal(&mut seeded(6), [256, 2], &ad).mul_scalar(2.0);
    let chains = normal(&mut seeded(7), [200, 2], &ad).mul_scalar(3.0);
    let alpha = 0.1;
    let (ed, en) = (model.energy(data.clone()), model.energy(chains.clone()));
    let loss = ed.clone().mean() - en.clone().mean()
        + (ed.square().mean() + en.square().mean()).mul_scalar(alpha);
    let want = burn_param_grads(&model, loss.clone());
    let host = host_mlp(&model.valid());
    let (l, _, grads) = pcd_gradients(
        &host,
        &to_host2(&data.inner()),
        &to_host2(&chains.inner()),
        2,
        alpha,
    );
    let got: Vec<f64> = grads.iter().flatten().map(|&g| f64::from(g)).collect();
    let err = relative_l2(&got, &want);
    println!("fused PCD θ-gradient vs autodiff: relative error {err:.2e}");
    assert_eq!(got.len(), want.len());
    assert!(err < 1e-4, "relative error {err}");
    close("loss", l, f64::from(loss.into_scalar::<f32>()), 1e-5);
    // A short run on 8 Gaussians: the data's energy ends below the chains' initial region.
    let eight = Toy2d::EightGaussians
        .density()
        .sample_host(&mut seeded(8), 4096);
    let set = Dataset::new(eight, 2).unwrap();
    let mut trained = MlpEnergyConfig::new(vec![2, 64, 64, 1], Activation::Silu)
        .init(&mut seeded(9), &device)
        .unwrap();
    let cfg = FusedPcdConfig {
        iterations: 200,
        ..FusedPcdConfig::default()
    };
    let report = fit_pcd_fused(&mut seeded(10), &mut trained, &set, &cfg, false).unwrap();
    let last: f64 = report.history[150..].iter().map(|r| r.gap).sum::<f64>() / 50.0;
    let far = trained.energy(normal(&mut seeded(11), [512, 2], &device).mul_scalar(6.0));
    let near = trained.energy(from_host2_device(set.values(), &device));
    let (far, near) = (mean1(&far), mean1(&near));
    println!(
        "fused PCD, 200 iterations: gap over the last 50 {last:.3}; mean E far {far:.3}, at the data {near:.3}"
    );
    assert!(
        near < far - 1.0,
        "the data should sit lower than the far field: {near} vs {far}"
    );
    // The Metropolis-adjusted chains (MALA moves) train too.
    let mut mala = MlpEnergyConfig::new(vec![2, 64, 64, 1], Activation::Silu)
        .init(&mut seeded(9), &device)
        .unwrap();
    let cfg = FusedPcdConfig {
        iterations: 200,
        metropolis: true,
        ..FusedPcdConfig::default()
    };
    let report = fit_pcd_fused(&mut seeded(10), &mut mala, &set, &cfg, false).unwrap();
    assert!(report.chains.iter().all(|x| x.is_finite()));
    let far = mean1(&mala.energy(normal(&mut seeded(11), [512, 2], &device).mul_scalar(6.0)));
    let near = mean1(&mala.energy(from_host2_device(set.values(), &device)));
    println!(
        "fused PCD with MALA chains, 200 iterations: mean E far {far:.3}, at the data {near:.3}"
    );
    assert!(near < far - 1.0, "MALA chains: {near} vs {far}");
}

fn mean1(e: &Tensor<1>) -> f64 {
    let v = to_host1(e);
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

fn from_host2_device(values: &[f32], device: &Device) -> Tensor<2> {
    ebm_zoo::energy::tensor::from_host2(values.to_vec(), [values.len() / 2, 2], device)
}

/// |got - want| / |want| (Euclidean norms over every entry).
fn relative_l2(got: &[f64], want: &[f64]) -> f64 {
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>();
    (diff / want.iter().map(|g| g * g).sum::<f64>()).sqrt()
}

/// The flattened gradients of a [`ContrastStep`], weight then bias of every layer.
fn step_grads(model: &MlpEnergy, step: &ebm_zoo::ebm::objective::ContrastStep) -> Vec<f64> {
    let mut out = Vec::new();
    for layer in &model.layers {
        let w = step
            .gradients
            .get::<2>(layer.weight.id)
            .expect("weight grad");
        out.extend(to_host2(&w).into_iter().map(f64::from));
        let b = layer.bias.as_ref().unwrap();
        let b = step.gradients.get::<1>(b.id).expect("bias grad");
        out.extend(to_host1(&b).into_iter().map(f64::from));
    }
    out
}

/// The written-out host θ-gradient of the maximum-likelihood contrast (every ML objective's
/// loss: plain or weighted negatives, with and without the energy penalty) equals burn autodiff's
/// to 1e-4 relative, with the same loss and mean energies.
#[test]
fn contrast_host_gradients_match_autodiff() {
    use ebm_zoo::ebm::objective::Contrast;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let model = MlpEnergyConfig::new(vec![2, 32, 32, 1], Activation::Silu)
        .init(&mut seeded(21), &ad)
        .unwrap();
    let data = normal(&mut seeded(22), [128, 2], &device).mul_scalar(2.0);
    let negatives = normal(&mut seeded(23), [96, 2], &device).mul_scalar(3.0);
    let raw: Vec<f32> = (0..96).map(|i| 1.0 + (i % 7) as f32).collect();
    let total: f32 = raw.iter().sum();
    let weights: Vec<f32> = raw.iter().map(|w| w / total).collect();
    for (weights, alpha) in [
        (None, 0.0),
        (None, 0.1),
        (Some(weights.clone()), 0.0),
        (Some(weights), 0.1),
    ] {
        let label = format!("weights {}, alpha {alpha}", weights.is_some());
        let contrast = Contrast {
            data: data.clone(),
            negatives: negatives.clone(),
            weights,
            alpha,
        };
        contrast.check().unwrap();
        let host = model
            .contrast_gradients(&contrast)
            .expect("an MLP on a CPU device");
        let auto = contrast.autodiff(&model);
        let (got, want) = (step_grads(&model, &host), step_grads(&model, &auto));
        let err = relative_l2(&got, &want);
        println!("{label}: host θ-gradient vs autodiff, relative error {err:.2e}");
        assert_eq!(got.len(), want.len());
        assert!(err < 1e-4, "{label}: relative error {err}");
        close(&format!("{label}: loss"), host.loss, auto.loss, 1e-5);
        close(
            &format!("{label}: E(data)"),
            host.energy_data,
            auto.energy_data,
            1e-5,
        );
        close(
            &format!("{label}: E(neg)"),
            host.energy_negative,
            auto.energy_negative,
            1e-5,
        );
    }
}

/// A contrast whose weights are not one per negative, or whose negatives have another width, is
/// a typed error before anything is differentiated.
#[test]
fn contrast_shapes_are_checked() {
    use ebm_zoo::ebm::objective::Contrast;
    let device = cpu_device();
    let contrast = Contrast {
        data: normal(&mut seeded(27), [8, 2], &device),
        negatives: normal(&mut seeded(28), [6, 2], &device),
        weights: Some(vec![1.0 / 6.0; 6]),
        alpha: 0.0,
    };
    contrast.check().unwrap();
    let short = Contrast {
        weights: Some(vec![0.5; 2]),
        ..contrast.clone()
    };
    let wide = Contrast {
        negatives: normal(&mut seeded(29), [6, 3], &device),
        ..contrast
    };
    for (what, bad) in [("negative weights", short), ("negatives", wide)] {
        let err = bad.check().expect_err(what).to_string();
        assert!(err.contains(what), "{what}: {err}");
    }
}

/// The five maximum-likelihood objectives, small, as fresh objects.
type MlObjective = Box<dyn Fn() -> Box<dyn ebm_zoo::ebm::objective::Objective<MlpEnergy>>>;

fn ml_objectives() -> Vec<(&'static str, MlObjective)> {
    use ebm_zoo::ebm::objective::{JarzynskiPcd, TemperedPcd};
    use ebm_zoo::mcmc::sampler::Ladder;
    let init = InitDistribution::Uniform {
        low: -4.0,
        high: 4.0,
    };
    let ula = || AnySampler::new(SamplerKind::Ula, 0.01, 1).unwrap();
    let ml = move |start, steps, alpha| {
        MaximumLikelihood::new(start, ula(), steps)
            .unwrap()
            .with_energy_penalty(alpha)
            .unwrap()
    };
    vec![
        (
            "cd",
            Box::new(move || Box::new(ml(ChainStart::Data, 5, 0.0))),
        ),
        (
            "pcd",
            Box::new(move || {
                let buffer = ReplayBuffer::new(2, 1000, 0.05, init).unwrap();
                Box::new(ml(ChainStart::Persistent(buffer), 5, 0.1))
            }),
        ),
        (
            "short-run",
            Box::new(move || Box::new(ml(ChainStart::Noise(init), 10, 0.0))),
        ),
        (
            "jarzynski",
            Box::new(|| Box::new(JarzynskiPcd::new(128, 0.01, 0.5, vec![0.0, 0.0], 2.0).unwrap())),
        ),
        (
            "pt-cd",
            Box::new(move || {
                let ladder = Ladder::geometric(4, 0.1).unwrap();
                let pt = TemperedPcd::new(ula(), ladder, 64, 1, init).unwrap();
                Box::new(pt.with_kernel_steps(3).unwrap())
            }),
        ),
    ]
}

/// Every maximum-likelihood objective trains the same with the host gradient as with autodiff:
/// 25 iterations from one seed, each iteration's loss within 1e-3 (the paths differ by float
/// rounding only, which the chains carry forward), and not bit for bit (identical histories would
/// mean the trainer never took the host path).
#[test]
fn every_ml_objective_trains_alike_with_host_and_autodiff_gradients() {
    let device = cpu_device();
    let eight = Toy2d::EightGaussians
        .density()
        .sample_host(&mut seeded(24), 2048);
    let set = Dataset::new(eight, 2).unwrap();
    for (name, objective) in ml_objectives() {
        let losses = |host_gradients: bool| {
            let model = MlpEnergyConfig::new(vec![2, 32, 32, 1], Activation::Silu)
                .init(&mut seeded(25), &device.clone().autodiff())
                .unwrap();
            let config = EbmTrainConfig {
                iterations: 25,
                batch_size: 64,
                host_gradients,
                ..EbmTrainConfig::default()
            };
            let mut trainer = Trainer::new(model, config).unwrap();
            let mut o = objective();
            trainer
                .fit(&mut seeded(26), o.as_mut(), &set, &device)
                .unwrap();
            trainer.history.iter().map(|r| r.loss).collect::<Vec<f64>>()
        };
        let (host, auto) = (losses(true), losses(false));
        let worst = host
            .iter()
            .zip(&auto)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("{name}: 25 iterations, largest loss difference host vs autodiff {worst:.2e}");
        assert_eq!(host.len(), 25);
        assert!(worst < 1e-3, "{name}: losses differ by {worst}");
        assert!(
            worst > 0.0,
            "{name}: bit-identical: the host path was not taken"
        );
    }
}
