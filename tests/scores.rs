//! Every hand-written score against burn's autodiff and against central finite differences,
//! relative error below 1e-3 in float32 (norm over a batch of points); the fused MLP kernel
//! against the tensor MLP; and every closed-form log Z in 2-D against quadrature on a grid.

use crate::common;

use common::{cpu_device, rows};
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{
    AutodiffEnergy, Banana, Covariance, DoubleWell, Energy, Funnel, Gaussian, GaussianMixture,
    autodiff_score,
};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{from_host2, to_host1, to_host2};
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergyConfig;
use ebm_zoo::runner::spec::EnergySpec;

use common::{finite_difference_score, rel_err};

/// Score against autodiff (when the energy is a tensor expression) and finite differences.
fn check(name: &str, energy: &dyn Energy, x: Tensor<2>, eps: f32, with_autodiff: bool) {
    let (e, s) = energy.energy_and_score(x.clone());
    let s = to_host2(&s);
    assert_eq!(
        to_host1(&e),
        to_host1(&energy.energy(x.clone())),
        "{name}: energy_and_score vs energy"
    );
    if with_autodiff {
        let ad = to_host2(&autodiff_score(|t| energy.energy(t), x.clone()));
        let ea = rel_err(&s, &ad);
        println!("{name}: relative error vs autodiff {ea:.2e}");
        assert!(ea < 1e-3, "{name}: score vs autodiff relative error {ea}");
    }
    let ef = rel_err(&s, &finite_difference_score(energy, &x, eps));
    println!("{name}: relative error vs finite differences {ef:.2e}");
    assert!(
        ef < 1e-3,
        "{name}: score vs finite differences relative error {ef}"
    );
}

fn points(d: usize, n: usize, scale: f32, seed: u64, device: &Device) -> Tensor<2> {
    normal(&mut seeded(seed), [n, d], device).mul_scalar(scale)
}

#[test]
fn analytic_scores_match_autodiff_and_finite_differences() {
    let dev = cpu_device();
    let full = vec![
        vec![2.0, 0.3, -0.4],
        vec![0.3, 1.0, 0.2],
        vec![-0.4, 0.2, 0.5],
    ];
    let cases: Vec<(&str, Box<dyn Energy>, usize, f32)> = vec![
        (
            "gaussian isotropic",
            Box::new(Gaussian::new(vec![0.5, -1.0], Covariance::Isotropic(0.7), &dev).unwrap()),
            2,
            1.0,
        ),
        (
            "gaussian diagonal",
            Box::new(
                Gaussian::new(
                    vec![0.0, 1.0, 2.0],
                    Covariance::Diagonal(vec![0.5, 1.0, 3.0]),
                    &dev,
                )
                .unwrap(),
            ),
            3,
            1.0,
        ),
        (
            "gaussian full",
            Box::new(Gaussian::new(vec![1.0, 0.0, -1.0], Covariance::Full(full), &dev).unwrap()),
            3,
            1.0,
        ),
        (
            "mixture 2-D",
            EnergySpec::preset("mixture").unwrap().build(&dev).unwrap(),
            2,
            2.0,
        ),
        (
            "mixture 5-D",
            Box::new(
                GaussianMixture::from_parts(
                    vec![0.2, 0.5, 0.3],
                    vec![vec![1.0; 5], vec![-1.0; 5], vec![0.0, 2.0, 0.0, -2.0, 0.0]],
                    vec![
                        Covariance::Isotropic(0.5),
                        Covariance::Diagonal(vec![1.0, 0.5, 2.0, 1.0, 0.3]),
                        Covariance::Isotropic(1.5),
                    ],
                    &dev,
                )
                .unwrap(),
            ),
            5,
            1.0,
        ),
        ("funnel", Box::new(Funnel::new(5, 3.0).unwrap()), 5, 1.0),
        ("banana", Box::new(Banana::new(1.0, 1.0).unwrap()), 2, 1.0),
        (
            "double well 1-D",
            Box::new(DoubleWell::new(1, 2.0).unwrap()),
            1,
            1.0,
        ),
        (
            "double well 3-D",
            Box::new(DoubleWell::new(3, 5.0).unwrap()),
            3,
            1.0,
        ),
    ];
    for (i, (name, energy, d, scale)) in cases.iter().enumerate() {
        check(
            name,
            energy.as_ref(),
            points(*d, 64, *scale, 10 + i as u64, &dev),
            2e-3,
            true,
        );
    }
}

#[test]
fn mlp_scores_match_autodiff_and_finite_differences() {
    let dev = cpu_device();
    for (widths, act) in [
        (vec![2, 128, 128, 1], Activation::Silu),
        (vec![3, 32, 1], Activation::Softplus),
        (vec![4, 16, 16, 16, 1], Activation::Tanh),
        (vec![2, 1], Activation::Silu),
        (vec![8, 64, 32, 1], Activation::Silu),
    ] {
        let mlp = MlpEnergyConfig::new(widths.clone(), act)
            .init(&mut seeded(3), &dev)
            .unwrap();
        let d = widths[0];
        let x = points(d, 64, 1.5, 4, &dev);
        check(
            &format!("mlp {widths:?} {act:?}"),
            &mlp,
            x.clone(),
            2e-3,
            true,
        );
        let fused = mlp.fused();
        // The fused kernel runs on the host, outside any autodiff graph: finite differences, and
        // equality with the tensor path below (which autodiff checked).
        check(
            &format!("fused mlp {widths:?} {act:?}"),
            &fused,
            x.clone(),
            2e-3,
            false,
        );
        // The fused kernel computes the same function as the tensor path.
        let (e1, s1) = mlp.energy_and_score(x.clone());
        let (e2, s2) = fused.energy_and_score(x);
        assert!(rel_err(&to_host1(&e2), &to_host1(&e1)) < 1e-5);
        assert!(rel_err(&to_host2(&s2), &to_host2(&s1)) < 1e-5);
    }
}

#[test]
fn conv_energy_score_matches_autodiff_and_finite_differences() {
    use ebm_zoo::neural::ConvEnergyConfig;
    let dev = cpu_device();
    for act in [Activation::Silu, Activation::Tanh] {
        let config = ConvEnergyConfig {
            activation: act,
            channels: [4, 6],
            hidden: 16,
            ..ConvEnergyConfig::default()
        };
        let conv = config.init(&mut seeded(5), &dev).unwrap();
        let x = points(64, 6, 0.5, 6, &dev);
        check(&format!("conv energy 8x8 {act:?}"), &conv, x, 2e-3, true);
    }
    let bad = ConvEnergyConfig {
        side: 7,
        ..ConvEnergyConfig::default()
    };
    assert!(
        bad.init(&mut seeded(1), &dev)
            .unwrap_err()
            .to_string()
            .contains("even side")
    );
}

#[test]
fn fused_kernel_handles_ragged_batches() {
    let dev = cpu_device();
    let mlp = MlpEnergyConfig::new(vec![2, 128, 128, 1], Activation::Silu)
        .init(&mut seeded(5), &dev)
        .unwrap();
    for n in [1, 7, 127, 129, 1000] {
        let x = points(2, n, 1.0, n as u64, &dev);
        let fused = mlp.fused().with_block(64);
        let (e1, s1) = mlp.energy_and_score(x.clone());
        let (e2, s2) = fused.energy_and_score(x);
        assert!(rel_err(&to_host1(&e2), &to_host1(&e1)) < 1e-5, "n = {n}");
        assert!(rel_err(&to_host2(&s2), &to_host2(&s1)) < 1e-5, "n = {n}");
    }
}

#[test]
fn autodiff_fallback_equals_the_hand_written_gaussian() {
    let dev = cpu_device();
    let g = Gaussian::new(vec![1.0, -1.0], Covariance::Diagonal(vec![0.5, 2.0]), &dev).unwrap();
    let ad = AutodiffEnergy::new("gaussian by autodiff", 2, |x: Tensor<2>| g.energy(x));
    let x = points(2, 32, 1.0, 9, &dev);
    assert!(rel_err(&to_host2(&ad.score(x.clone())), &to_host2(&g.score(x))) < 1e-6);
}

/// log ∫ exp(-E) over a 2-D grid (midpoint rule), for energies whose mass lies inside the box.
fn grid_log_z(energy: &dyn Energy, lo: [f64; 2], hi: [f64; 2], m: usize, dev: &Device) -> f64 {
    let (hx, hy) = ((hi[0] - lo[0]) / m as f64, (hi[1] - lo[1]) / m as f64);
    let mut pts = Vec::with_capacity(m * m * 2);
    for i in 0..m {
        for j in 0..m {
            pts.push((lo[0] + (i as f64 + 0.5) * hx) as f32);
            pts.push((lo[1] + (j as f64 + 0.5) * hy) as f32);
        }
    }
    let e = to_host1(&energy.energy(from_host2(pts, [m * m, 2], dev)));
    let min = e.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
    let sum: f64 = e.iter().map(|&v| (-(v as f64 - min)).exp()).sum();
    (sum * hx * hy).ln() - min
}

#[test]
fn closed_form_log_normalisers_match_grid_quadrature_in_2d() {
    let dev = cpu_device();
    type Case = (&'static str, Box<dyn Energy>, [f64; 2], [f64; 2]);
    let cases: Vec<Case> = vec![
        (
            "gaussian",
            Box::new(
                Gaussian::new(
                    vec![0.5, -0.5],
                    Covariance::Full(vec![vec![1.0, 0.6], vec![0.6, 2.0]]),
                    &dev,
                )
                .unwrap(),
            ),
            [-9.0, -9.0],
            [9.0, 9.0],
        ),
        (
            "mixture",
            EnergySpec::preset("mixture").unwrap().build(&dev).unwrap(),
            [-9.0, -9.0],
            [9.0, 9.0],
        ),
        (
            "banana",
            Box::new(Banana::new(1.0, 0.5).unwrap()),
            [-7.0, -8.0],
            [7.0, 30.0],
        ),
        (
            "double well",
            Box::new(DoubleWell::new(2, 2.0).unwrap()),
            [-4.0, -8.0],
            [4.0, 8.0],
        ),
        (
            "funnel",
            Box::new(Funnel::new(2, 1.0).unwrap()),
            [-8.0, -80.0],
            [8.0, 80.0],
        ),
    ];
    for (name, energy, lo, hi) in cases {
        let quad = grid_log_z(energy.as_ref(), lo, hi, 1500, &dev);
        let exact = energy.log_normalizer().unwrap();
        println!("{name}: log Z closed form {exact:.5}, grid {quad:.5}");
        // float32 energies and a 1500^2 midpoint grid: agreement to 2e-3 in log Z.
        assert!(
            (quad - exact).abs() < 2e-3,
            "{name}: closed form {exact} vs grid {quad}"
        );
    }
}

#[test]
fn exact_samplers_of_the_reference_densities_have_the_right_moments() {
    // Used by other tests as ground truth, so checked here: mean within 4 standard errors.
    let dev = cpu_device();
    let mix = common::mixture_preset();
    let n = 20_000;
    let x = rows(&mix.sample(&mut seeded(1), n, &dev));
    let (mean, cov) = (mix.mean(), mix.covariance());
    for i in 0..2 {
        let m = x.iter().map(|r| r[i]).sum::<f64>() / n as f64;
        common::assert_within(
            "mixture sample mean",
            m,
            mean[i],
            (cov[i][i] / n as f64).sqrt(),
            4.0,
        );
    }
}

/// The MLP energy is a burn `Module` whose hand-written score is itself differentiable in the
/// weights: a loss on the score (as in denoising score matching on an energy) needs one backward
/// pass. Its weight gradient is checked against central finite differences of the loss.
#[test]
fn a_loss_on_the_mlp_score_has_correct_weight_gradients_from_one_backward_pass() {
    use ebm_zoo::neural::MlpEnergy;
    let dev = cpu_device();
    let base = MlpEnergyConfig::new(vec![2, 16, 16, 1], Activation::Softplus)
        .init(&mut seeded(21), &dev)
        .unwrap();
    let weights = base.host_weights();
    let x_host = to_host2(&points(2, 32, 1.0, 22, &dev));
    let target_host = to_host2(&points(2, 32, 1.0, 23, &dev));
    // L(theta) = mean |s_theta(x) - t|^2, in f64 on the host for the finite differences.
    let loss_of = |w: Vec<(Vec<f32>, Vec<f32>)>, device: &Device| -> Tensor<1> {
        let mlp = MlpEnergy::from_weights(w, Activation::Softplus, device).unwrap();
        let x = from_host2(x_host.clone(), [32, 2], device);
        let t = from_host2(target_host.clone(), [32, 2], device);
        (mlp.score(x) - t).square().mean().reshape([1])
    };
    // Autodiff: one backward through the hand-written score.
    let ad_dev = dev.clone().autodiff();
    let mlp = MlpEnergy::from_weights(weights.clone(), Activation::Softplus, &ad_dev).unwrap();
    let x = from_host2(x_host.clone(), [32, 2], &ad_dev);
    let t = from_host2(target_host.clone(), [32, 2], &ad_dev);
    let grads = (mlp.score(x) - t).square().mean().backward();
    let g_first = to_host2(&mlp.layers[0].weight.val().grad(&grads).unwrap());
    let g_mid = to_host2(&mlp.layers[1].weight.val().grad(&grads).unwrap());
    let eps = 1e-2f32;
    for (layer, index, g) in [
        (0usize, 5usize, &g_first),
        (0, 17, &g_first),
        (1, 40, &g_mid),
        (1, 200, &g_mid),
    ] {
        let shifted = |s: f32| {
            let mut w = weights.clone();
            w[layer].0[index] += s;
            to_host1(&loss_of(w, &dev))[0] as f64
        };
        let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
        let ad = g[index] as f64;
        println!("d loss / d W{layer}[{index}]: autodiff {ad:.6}, finite differences {fd:.6}");
        assert!(
            (ad - fd).abs() <= 1e-3 * fd.abs().max(1e-2) + 2e-4,
            "layer {layer} entry {index}: {ad} vs {fd}"
        );
    }
}
