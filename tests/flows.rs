//! Normalizing flows (issue 5): invertibility and log|det J| of every layer against autodiff and
//! finite differences, normalisation on a grid, maximum likelihood against exact entropies, the
//! flow as an energy (samplers, AIS, NCE), Boltzmann generators, flow MCMC, bad input.

use crate::common;

use common::{assert_within, cpu_device, rows};
use ebm_zoo::energy::burn::module::Param;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, ExactSample, Gaussian};
use ebm_zoo::energy::rng::normal;
use ebm_zoo::energy::tensor::to_host1;
use ebm_zoo::energy::{Energy, seeded};
use ebm_zoo::flow::layers::{
    ActNorm, Autoregressive, Conditioner, Coupling, LuLinear, MaskedMlp, Permutation,
};
use ebm_zoo::flow::{
    Elementwise, Flow, FlowConfig, FlowEnergy, FlowKind, FlowTrainConfig, Layer, fit_max_likelihood,
};
use ebm_zoo::neural::Activation;

const DIM: usize = 5;
const CONTEXT: usize = 2;

fn maps() -> Vec<Elementwise> {
    vec![
        Elementwise::Additive,
        Elementwise::Affine { max_log_scale: 2.0 },
        Elementwise::Spline {
            bins: 6,
            bound: 2.0,
        },
    ]
}

/// Every layer type with non-trivial parameters (random conditioner outputs, actnorm and LU away
/// from the identity), with its context width.
fn all_layers(device: &Device) -> Vec<(String, Layer, usize)> {
    let mut rng = seeded(7);
    let mut out = Vec::new();
    for map in maps() {
        for first in [true, false] {
            let net = Conditioner {
                hidden: &[16, 16],
                activation: Activation::Silu,
                zero_init: false,
            };
            let c = Coupling::new(&mut rng, DIM, CONTEXT, first, map, &net, device).unwrap();
            out.push((
                format!("coupling {map:?} first={first}"),
                Layer::Coupling(c),
                CONTEXT,
            ));
        }
        for inverted in [false, true] {
            let conditioner = Conditioner {
                hidden: &[20, 20],
                activation: Activation::Tanh,
                zero_init: false,
            };
            let net = MaskedMlp::new(&mut rng, DIM, CONTEXT, map.per_dim(), &conditioner, device)
                .unwrap();
            let name = if inverted { "IAF" } else { "MAF" };
            out.push((
                format!("{name} {map:?}"),
                Layer::Autoregressive(Autoregressive { net, map, inverted }),
                CONTEXT,
            ));
        }
    }
    let mut act = ActNorm::new(DIM, device);
    let shifted = normal(&mut rng, [64, DIM], device)
        .mul_scalar(2.5)
        .add_scalar(0.7);
    act.initialize(&shifted);
    out.push(("actnorm".into(), Layer::ActNorm(act), 0));
    let mut lu = LuLinear::new(&mut rng, DIM, device);
    lu.lower = Param::from_tensor(normal(&mut rng, [DIM, DIM], device).mul_scalar(0.5));
    lu.upper = Param::from_tensor(normal(&mut rng, [DIM, DIM], device).mul_scalar(0.5));
    lu.log_diag = Param::from_tensor(
        normal(&mut rng, [1, DIM], device)
            .mul_scalar(0.3)
            .reshape([DIM]),
    );
    out.push(("LU linear".into(), Layer::LuLinear(lu), 0));
    out.push((
        "permutation".into(),
        Layer::Permutation(Permutation {
            perm: vec![3, 0, 4, 1, 2],
        }),
        0,
    ));
    out
}

/// log|det| of a row-major `d x d` matrix by Gaussian elimination with partial pivoting (f64).
fn log_abs_det(mut m: Vec<f64>, d: usize) -> f64 {
    let mut total = 0.0;
    for c in 0..d {
        let p = (c..d)
            .max_by(|&a, &b| m[a * d + c].abs().total_cmp(&m[b * d + c].abs()))
            .unwrap();
        if p != c {
            for k in 0..d {
                m.swap(c * d + k, p * d + k);
            }
        }
        let pivot = m[c * d + c];
        total += pivot.abs().ln();
        for r in c + 1..d {
            let f = m[r * d + c] / pivot;
            for k in c..d {
                m[r * d + k] -= f * m[c * d + k];
            }
        }
    }
    total
}

/// Per-row Jacobians d out / d x of a row-wise map, by autodiff (one backward per output).
fn autodiff_jacobians(f: &dyn Fn(Tensor<2>) -> Tensor<2>, x: &Tensor<2>) -> Vec<Vec<f64>> {
    let [n, d] = x.dims();
    let mut jac = vec![vec![0.0; d * d]; n];
    for i in 0..d {
        let leaf = x.clone().autodiff().detach().require_grad();
        let grads = f(leaf.clone()).slice([0..n, i..i + 1]).sum().backward();
        let g = rows(&leaf.grad(&grads).unwrap().without_autodiff());
        for r in 0..n {
            for j in 0..d {
                jac[r][i * d + j] = g[r][j];
            }
        }
    }
    jac
}

/// Per-row Jacobians by central finite differences (step h).
fn fd_jacobians(f: &dyn Fn(Tensor<2>) -> Tensor<2>, x: &Tensor<2>, h: f64) -> Vec<Vec<f64>> {
    let [n, d] = x.dims();
    let mut jac = vec![vec![0.0; d * d]; n];
    let base = rows(x);
    let device = x.device();
    for j in 0..d {
        let shifted = |sign: f64| {
            let v: Vec<f32> = base
                .iter()
                .flat_map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(k, &v)| (v + if k == j { sign * h } else { 0.0 }) as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            rows(&f(Tensor::from_data(TensorData::new(v, [n, d]), &device)))
        };
        let (plus, minus) = (shifted(1.0), shifted(-1.0));
        for r in 0..n {
            for i in 0..d {
                jac[r][i * d + j] = (plus[r][i] - minus[r][i]) / (2.0 * h);
            }
        }
    }
    jac
}

#[test]
fn every_layer_inverts_and_its_log_det_matches_autodiff_and_finite_differences() {
    let device = cpu_device();
    let mut rng = seeded(1);
    let n = 64;
    // N(0, 1.5^2): a fifth of the coordinates lie outside the splines' [-2, 2].
    let x = normal(&mut rng, [n, DIM], &device).mul_scalar(1.5);
    let ctx_full = normal(&mut rng, [n, CONTEXT], &device);
    for (name, layer, context) in all_layers(&device) {
        let ctx = (context > 0).then(|| ctx_full.clone());
        let (z, ld) = layer.forward(x.clone(), ctx.as_ref());
        let (back, ld_inv) = layer.inverse(z.clone(), ctx.as_ref());
        let (xs, zs, bs) = (rows(&x), rows(&z), rows(&back));
        let scale = xs.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
        let err = xs
            .iter()
            .flatten()
            .zip(bs.iter().flatten())
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-5 * scale,
            "{name}: inverse(forward(x)) off by {err:.2e} (scale {scale:.2})"
        );
        // The other order: forward(inverse(z)) = z.
        let (again, _) = layer.forward(back.clone(), ctx.as_ref());
        let err_z = zs
            .iter()
            .flatten()
            .zip(rows(&again).iter().flatten())
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        let scale_z = zs.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
        assert!(
            err_z <= 1e-5 * scale_z.max(1.0),
            "{name}: forward(inverse(z)) off by {err_z:.2e}"
        );
        let (ld, ld_inv) = (to_host1(&ld), to_host1(&ld_inv));
        let f = |t: Tensor<2>| layer.forward(t, ctx.as_ref()).0;
        let ad = autodiff_jacobians(&f, &x);
        let fd = fd_jacobians(&f, &x, 1e-2);
        let mut worst = (0f64, 0f64, 0f64);
        for r in 0..n {
            let exact = log_abs_det(ad[r].clone(), DIM);
            let by_fd = log_abs_det(fd[r].clone(), DIM);
            let tol = 1e-3 * exact.abs().max(1.0);
            assert!(
                (f64::from(ld[r]) - exact).abs() <= tol,
                "{name}, row {r}: log|det| {} vs autodiff {exact}",
                ld[r]
            );
            assert!(
                (f64::from(ld_inv[r]) + exact).abs() <= tol,
                "{name}, row {r}: inverse log|det| {} vs {}",
                ld_inv[r],
                -exact
            );
            // f32 central differences: a looser bound (truncation O(h^2) plus rounding / h); skip the
            // rows a spline knot or the [-2, 2] boundary sits within h of (a kink in the derivative).
            let kink = rows(&x)[r].iter().any(|v| (v.abs() - 2.0).abs() < 2e-2);
            if !kink {
                worst.0 = worst.0.max((by_fd - exact).abs());
            }
            worst.1 = worst.1.max((f64::from(ld[r]) - exact).abs());
            worst.2 = worst.2.max(exact.abs());
        }
        println!(
            "{name:40} max |log det - autodiff| {:.2e}, max |fd - autodiff| {:.2e} (|log det| up to {:.2})",
            worst.1, worst.0, worst.2
        );
        assert!(
            worst.0 <= 2e-2 * worst.2.max(1.0),
            "{name}: finite differences disagree by {:.3e}",
            worst.0
        );
    }
}

#[test]
fn splines_and_couplings_never_produce_nan_for_extreme_inputs() {
    let device = cpu_device();
    let mut rng = seeded(3);
    for kind in [FlowKind::Nsf, FlowKind::RealNvp, FlowKind::Maf] {
        let cfg = FlowConfig {
            zero_init: false,
            layers: 4,
            bound: 3.0,
            ..FlowConfig::new(kind, 2)
        };
        let flow = cfg.init(&mut rng, &device).unwrap();
        let bound = 3.0f32;
        let values: Vec<f32> = vec![
            0.0,
            0.0,
            bound,
            -bound,
            -bound,
            bound,
            bound * (1.0 + 1e-7),
            0.5,
            1e3,
            -1e3,
            -1e6,
            2.0,
            1e-30,
            -1e-30,
            2.9999,
            3.0001,
        ];
        let x = Tensor::<2>::from_data(TensorData::new(values, [8, 2]), &device);
        let lp = to_host1(&flow.log_prob(x.clone(), None).unwrap());
        assert!(
            lp.iter().all(|v| !v.is_nan()),
            "{kind:?}: NaN log density {lp:?}"
        );
        let (z, _) = flow.forward(x.clone(), None);
        let (back, _) = flow.inverse(z, None);
        // Round trip where f32 can resolve it: a conditioner fed 1e6 drives the spline's knot
        // derivatives to ~1e6 and the inverse then loses digits (finite, but not exact).
        for (r, (a, b)) in rows(&x).iter().zip(rows(&back)).enumerate() {
            if a.iter().all(|v| v.abs() <= 1e3) {
                for (u, v) in a.iter().zip(&b) {
                    assert!(
                        (u - v).abs() <= 1e-4 * u.abs().max(1.0),
                        "{kind:?}, row {r}: {u} came back as {v}"
                    );
                }
            }
            assert!(
                b.iter().all(|v| v.is_finite()),
                "{kind:?}: row {r} came back as {b:?}"
            );
        }
        // Gradients (input and parameters) stay finite too.
        let ad = device.clone().autodiff();
        let leaf = x.clone().autodiff().detach().require_grad();
        let trained = cfg.init(&mut seeded(3), &ad).unwrap();
        let grads = trained
            .log_prob_unchecked(leaf.clone(), None)
            .sum()
            .backward();
        let g = rows(&leaf.grad(&grads).unwrap().without_autodiff());
        assert!(
            g.iter().flatten().all(|v| v.is_finite()),
            "{kind:?}: input gradient {g:?}"
        );
        if kind == FlowKind::Nsf {
            // The first layer transforms coordinate 1; outside [-3, 3] it is exactly the identity.
            let spline_only = Flow::from_layers(vec![flow.layers[0].clone()], 2, 0);
            let out = Tensor::<2>::from_data(
                TensorData::new(vec![0.3f32, 10.0, 0.3, -50.0, -1e3, 1e6], [3, 2]),
                &device,
            );
            let (z, ld) = spline_only.forward(out.clone(), None);
            for (a, b) in rows(&out).iter().zip(rows(&z)) {
                assert_eq!(
                    a[1], b[1],
                    "outside the bound the spline must be the identity"
                );
            }
            assert!(
                to_host1(&ld).iter().all(|v| *v == 0.0),
                "log|det| of the linear tails is 0"
            );
        }
    }
}

#[test]
fn lu_linear_matrix_and_log_det_agree() {
    let device = cpu_device();
    let layers = all_layers(&device);
    let Layer::LuLinear(lu) = &layers.iter().find(|l| l.0 == "LU linear").unwrap().1 else {
        unreachable!()
    };
    let w = rows(&lu.matrix());
    let flat: Vec<f64> = w.iter().flatten().copied().collect();
    let ld = to_host1(&lu.log_diag.val())
        .iter()
        .map(|v| f64::from(*v))
        .sum::<f64>();
    assert!(
        (log_abs_det(flat, DIM) - ld).abs() < 1e-4,
        "det(P L U) vs sum(log_diag)"
    );
}

/// Grid quadrature of a trained 2-D flow's density: its integral is 1 within 1 %.
#[test]
fn trained_2d_flows_integrate_to_one_on_a_grid() {
    use ebm_zoo::data::grid::{Grid2d, GridDensity};
    use ebm_zoo::data::toy2d::Toy2d;
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let truth = Toy2d::TwoMoons.density();
    let mut rng = seeded(11);
    let data = truth.sample_exact(&mut rng, 8192, &device);
    for kind in [FlowKind::RealNvp, FlowKind::Maf, FlowKind::Nsf] {
        let cfg = FlowConfig {
            layers: 4,
            hidden: vec![32, 32],
            actnorm: true,
            ..FlowConfig::new(kind, 2)
        };
        let mut flow = cfg.init(&mut rng, &ad).unwrap();
        let fit = FlowTrainConfig {
            iterations: 300,
            batch_size: 256,
            learning_rate: 3e-3,
            ..FlowTrainConfig::default()
        };
        let report = fit_max_likelihood(&mut rng, &mut flow, &data, None, &fit).unwrap();
        let energy = FlowEnergy::new(&flow).unwrap();
        let grid = GridDensity::from_energy(&energy, Grid2d::new(-6.0, 6.0, 300).unwrap(), &device)
            .unwrap();
        println!(
            "{kind:?}: final loss {:.3}, integral on [-6, 6]^2 = {:.5}",
            report.final_loss(20),
            grid.log_z.exp()
        );
        assert!(
            (grid.log_z.exp() - 1.0).abs() < 0.01,
            "{kind:?}: the density integrates to {}",
            grid.log_z.exp()
        );
        // It learned (the exact NLL of the set is 1.83; 300 steps get most of the way).
        let first = report.losses[..20].iter().sum::<f64>() / 20.0;
        assert!(
            report.final_loss(20) < first - 0.25,
            "{kind:?} did not learn: {first} -> {}",
            report.final_loss(20)
        );
    }
}

/// Maximum likelihood reaches the exact entropy of a correlated Gaussian, and a conditional flow
/// the exact conditional entropy of x | c ~ N(A c, S).
#[test]
fn maximum_likelihood_reaches_the_exact_entropy_unconditional_and_conditional() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let mut rng = seeded(21);
    // x | c = (2 c_0 - c_1, 0.5 c_0) + N(0, diag(0.3^2, 0.6^2)), c ~ N(0, I).
    let n = 20_000;
    let c = normal(&mut rng, [n, 2], &device);
    let eps = normal(&mut rng, [n, 2], &device);
    let cr = rows(&c);
    let er = rows(&eps);
    let xv: Vec<f32> = (0..n)
        .flat_map(|i| {
            [
                (2.0 * cr[i][0] - cr[i][1] + 0.3 * er[i][0]) as f32,
                (0.5 * cr[i][0] + 0.6 * er[i][1]) as f32,
            ]
        })
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(xv, [n, 2]), &device);
    let exact_conditional =
        0.5 * 2.0 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + (0.3f64 * 0.6).ln();
    let cfg = FlowConfig {
        context: 2,
        layers: 4,
        hidden: vec![32, 32],
        ..FlowConfig::new(FlowKind::RealNvp, 2)
    };
    let mut flow = cfg.init(&mut rng, &ad).unwrap();
    let fit = FlowTrainConfig {
        iterations: 1500,
        batch_size: 512,
        learning_rate: 3e-3,
        ..FlowTrainConfig::default()
    };
    fit_max_likelihood(&mut rng, &mut flow, &x, Some(&c), &fit).unwrap();
    // Held-out: fresh draws.
    let c2 = normal(&mut rng, [4000, 2], &device);
    let e2 = normal(&mut rng, [4000, 2], &device);
    let (cr, er) = (rows(&c2), rows(&e2));
    let xv: Vec<f32> = (0..4000)
        .flat_map(|i| {
            [
                (2.0 * cr[i][0] - cr[i][1] + 0.3 * er[i][0]) as f32,
                (0.5 * cr[i][0] + 0.6 * er[i][1]) as f32,
            ]
        })
        .collect();
    let x2 = Tensor::<2>::from_data(TensorData::new(xv, [4000, 2]), &device);
    let nll: Vec<f64> = to_host1(&flow.valid().log_prob(x2, Some(&c2)).unwrap())
        .iter()
        .map(|v| -f64::from(*v))
        .collect();
    let (m, se) = ebm_zoo::data::grid::mean_and_se(&nll);
    println!(
        "conditional NLL {m:.4} ± {se:.4} vs exact conditional entropy {exact_conditional:.4}"
    );
    // KL(p || q) = NLL - H >= 0: within 4 se plus a 0.03-nat approximation allowance.
    assert!(
        m - exact_conditional < 4.0 * se + 0.03,
        "conditional NLL {m} vs {exact_conditional}"
    );
    assert!(
        m - exact_conditional > -4.0 * se,
        "an NLL below the entropy is impossible: {m}"
    );
}

/// The flow through the shared traits: its score matches finite differences of its energy (on a
/// smooth RealNVP + MAF flow; a spline's score jumps at its knots, where its second derivative
/// does), MALA
/// from the shared crate samples it (moments of exact draws within 4 standard errors), and AIS
/// from a Gaussian finds log Z = 0 within its error bar.
#[test]
fn a_flow_is_a_normalised_energy_for_the_shared_samplers_and_estimators() {
    use ebm_zoo::mcmc::estimate::{AnnealConfig, anneal};
    use ebm_zoo::mcmc::sampler::{AnySampler, Mala, Sampler};
    let device = cpu_device();
    let mut rng = seeded(31);
    let smooth = |kind| FlowConfig {
        zero_init: false,
        layers: 3,
        hidden: vec![16],
        lu: true,
        ..FlowConfig::new(kind, 2)
    };
    let mut layers = smooth(FlowKind::RealNvp)
        .init(&mut rng, &device)
        .unwrap()
        .layers;
    layers.extend(
        smooth(FlowKind::Maf)
            .init(&mut rng, &device)
            .unwrap()
            .layers,
    );
    let energy = FlowEnergy::new(&Flow::from_layers(layers, 2, 0)).unwrap();
    // Score against central differences of the energy.
    let x = normal(&mut rng, [16, 2], &device);
    common::assert_score_matches_fd("flow energy", &energy, &x, 1e-2, 2e-2);
    // MALA on a spline flow's energy against exact flow samples.
    let cfg = FlowConfig {
        zero_init: false,
        layers: 4,
        hidden: vec![16],
        ..FlowConfig::new(FlowKind::Nsf, 2)
    };
    let energy = FlowEnergy::new(&cfg.init(&mut rng, &device).unwrap()).unwrap();
    let exact = rows(&energy.sample_exact(&mut rng, 20_000, &device));
    let mala = Mala::new(0.2).unwrap();
    let mut state = mala
        .init(&energy, energy.sample_exact(&mut rng, 2000, &device))
        .unwrap();
    let start = rows(&state.position);
    for _ in 0..200 {
        state = mala.step(&mut rng, &energy, state).unwrap().0;
    }
    let chains = rows(&state.position);
    for k in 0..2 {
        let (me, se_e) =
            ebm_zoo::data::grid::mean_and_se(&exact.iter().map(|r| r[k]).collect::<Vec<_>>());
        let (mc, se_c) =
            ebm_zoo::data::grid::mean_and_se(&chains.iter().map(|r| r[k]).collect::<Vec<_>>());
        assert_within(
            &format!("MALA mean of coordinate {k}"),
            mc,
            me,
            (se_e * se_e + se_c * se_c).sqrt(),
            4.0,
        );
        // The chains moved (not a test that passes by standing still).
        let moved = start
            .iter()
            .zip(&chains)
            .filter(|(a, b)| a[k] != b[k])
            .count();
        assert!(moved > 1500, "only {moved} chains moved");
    }
    // AIS from N(0, 2^2 I) to the flow: log Z = 0.
    let base = Gaussian::new(vec![0.0, 0.0], Covariance::Isotropic(4.0), &device).unwrap();
    let mut kernel = AnySampler::Mala(Mala::new(0.1).unwrap());
    let betas: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
    let config = AnnealConfig {
        betas,
        steps_per_level: 2,
        resample_threshold: None,
        groups: 8,
    };
    let est = anneal(
        &mut rng,
        &base,
        &energy,
        &mut kernel,
        2048,
        &config,
        &device,
    )
    .unwrap();
    println!(
        "AIS log Z of a flow: {:.4} ± {:.4} (exact 0)",
        est.log_z, est.std_err
    );
    assert_within("AIS log Z of a flow", est.log_z, 0.0, est.std_err, 4.0);
    assert!(est.std_err < 0.05);
}

#[test]
fn bad_input_gives_clear_errors() {
    let device = cpu_device();
    let mut rng = seeded(41);
    let flow = FlowConfig::new(FlowKind::RealNvp, 2)
        .init(&mut rng, &device)
        .unwrap();
    let wrong = normal(&mut rng, [4, 3], &device);
    let e = flow.log_prob(wrong, None).unwrap_err().to_string();
    assert!(
        e.contains("wrong shape for flow input") && e.contains("[n >= 1, 2]"),
        "{e}"
    );
    let nan = Tensor::<2>::from_data(
        TensorData::new(vec![0.0f32, 1.0, f32::NAN, 0.0], [2, 2]),
        &device,
    );
    let e = flow.log_prob(nan.clone(), None).unwrap_err().to_string();
    assert!(e.contains("non-finite") && e.contains("row 1"), "{e}");
    let mut ad_flow = FlowConfig::new(FlowKind::RealNvp, 2)
        .init(&mut rng, &device.clone().autodiff())
        .unwrap();
    let e = fit_max_likelihood(
        &mut rng,
        &mut ad_flow,
        &nan,
        None,
        &FlowTrainConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("training data contains a non-finite value"),
        "{e}"
    );
    let zero_bins = FlowConfig {
        bins: 0,
        ..FlowConfig::new(FlowKind::Nsf, 2)
    };
    let e = zero_bins.init(&mut rng, &device).unwrap_err().to_string();
    assert!(e.contains("invalid bins") && e.contains("got 0"), "{e}");
    let e = FlowConfig::new(FlowKind::RealNvp, 1)
        .init(&mut rng, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid dim"), "{e}");
    let cond = FlowConfig {
        context: 3,
        ..FlowConfig::new(FlowKind::Maf, 2)
    }
    .init(&mut rng, &device)
    .unwrap();
    let x = normal(&mut rng, [4, 2], &device);
    let e = cond.log_prob(x.clone(), None).unwrap_err().to_string();
    assert!(e.contains("no context was given"), "{e}");
    let e = cond
        .log_prob(x, Some(&normal(&mut rng, [4, 2], &device)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong shape for context"), "{e}");
    let e = toml::from_str::<FlowConfig>("kind = \"nsf\"\nbinz = 4\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `binz`"), "{e}");
    let e = "glow".parse::<FlowKind>().unwrap_err().to_string();
    assert!(e.contains("unknown flow 'glow'"), "{e}");
    // A target whose energy is NaN: reverse-KL training stops at once and names the step.
    let nan_energy =
        ebm_zoo::energy::energy::AutodiffEnergy::new("nan", 2, |x: Tensor<2>| -> Tensor<1> {
            let n = x.dims()[0];
            x.sum_dim(1).reshape([n]).mul_scalar(f32::NAN)
        });
    let cfg = ebm_zoo::flow::ReverseKlTrainConfig::default();
    let e = ebm_zoo::flow::fit_reverse_kl(&mut rng, &mut ad_flow, &nan_energy, None, &cfg, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("training diverged at iteration 1: target energy of flow sample 0 = NaN")
            && e.contains("restored to iteration 0"),
        "{e}"
    );
    let fit = FlowTrainConfig {
        learning_rate: 0.0,
        ..FlowTrainConfig::default()
    };
    let data = normal(&mut rng, [16, 2], &device);
    let e = fit_max_likelihood(&mut rng, &mut ad_flow, &data, None, &fit)
        .unwrap_err()
        .to_string();
    assert!(e.contains("learning_rate"), "{e}");
}

/// Boltzmann generator on a correlated Gaussian (exact log Z): reverse-KL training, then the
/// importance-weighted log Z agrees with the exact value within 4 of its standard errors and the
/// ESS is high.
#[test]
fn a_boltzmann_generator_estimates_log_z_within_its_error_bar() {
    use ebm_zoo::flow::{ReverseKlTrainConfig, fit_reverse_kl, importance_weights};
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let mut rng = seeded(51);
    let target = Gaussian::new(
        vec![1.0, -2.0],
        Covariance::Full(vec![vec![2.0, 1.2], vec![1.2, 1.0]]),
        &device,
    )
    .unwrap();
    let exact = target.log_normalizer().unwrap();
    let mut flow = FlowConfig {
        layers: 4,
        hidden: vec![32, 32],
        lu: true,
        ..FlowConfig::new(FlowKind::RealNvp, 2)
    }
    .init(&mut rng, &ad)
    .unwrap();
    let cfg = ReverseKlTrainConfig {
        fit: FlowTrainConfig {
            iterations: 800,
            batch_size: 256,
            learning_rate: 3e-3,
            grad_clip: Some(10.0),
            data_init: false,
            ..FlowTrainConfig::default()
        },
        forward_weight: 0.0,
    };
    let report = fit_reverse_kl(&mut rng, &mut flow, &target, None, &cfg, &device).unwrap();
    let (_, is) = importance_weights(&mut rng, &flow, &target, 20_000, 4096, &device).unwrap();
    println!(
        "reverse KL {:.4} (bound on -log Z = {:.4}); IS log Z {:.4} ± {:.4} vs exact {exact:.4}; ESS {:.0} of 20000",
        report.final_loss(50),
        -exact,
        is.log_z,
        is.log_z_se,
        is.ess
    );
    assert_within(
        "importance-sampling log Z",
        is.log_z,
        exact,
        is.log_z_se,
        4.0,
    );
    assert!(is.ess > 0.8 * 20_000.0, "ESS {}", is.ess);
    assert!(
        is.elbo <= is.log_z + 4.0 * is.log_z_se,
        "the ELBO bounds log Z from below"
    );
}

/// Flow MCMC leaves the target invariant: independent MH with a deliberately poor flow proposal,
/// and HMC in the latent space of a flow (neural transport), both reproduce the exact mean and
/// variance of a Gaussian target within 4 standard errors over many independent chains; the
/// pulled-back score matches finite differences.
#[test]
fn flow_mcmc_leaves_the_target_invariant() {
    use ebm_zoo::flow::{IndependentMh, NeuTraEnergy};
    use ebm_zoo::mcmc::sampler::{Hmc, Sampler};
    let device = cpu_device();
    let mut rng = seeded(61);
    let target = Gaussian::new(
        vec![0.5, -1.0],
        Covariance::Full(vec![vec![1.5, 0.6], vec![0.6, 0.8]]),
        &device,
    )
    .unwrap();
    // A poor but covering proposal: mildly random couplings after an actnorm of scale 2.
    let mut flow = FlowConfig {
        zero_init: false,
        layers: 2,
        hidden: vec![16],
        max_log_scale: 0.3,
        actnorm: true,
        ..FlowConfig::new(FlowKind::RealNvp, 2)
    }
    .init(&mut rng, &device)
    .unwrap();
    flow.initialize_actnorm(normal(&mut rng, [4096, 2], &device).mul_scalar(2.0), None);
    let chains = 4000;
    let check = |name: &str, xs: &[Vec<f64>]| {
        let truth = [(0.5, 1.5), (-1.0, 0.8)];
        for (k, (mean, var)) in truth.into_iter().enumerate() {
            let v: Vec<f64> = xs.iter().map(|r| r[k]).collect();
            let (m, se) = ebm_zoo::data::grid::mean_and_se(&v);
            assert_within(&format!("{name}: mean of coordinate {k}"), m, mean, se, 4.0);
            let sq: Vec<f64> = v.iter().map(|x| (x - mean).powi(2)).collect();
            let (s2, se2) = ebm_zoo::data::grid::mean_and_se(&sq);
            assert_within(
                &format!("{name}: variance of coordinate {k}"),
                s2,
                var,
                se2,
                4.0,
            );
        }
    };
    // Independent MH from a far-off start.
    let imh = IndependentMh::new(&flow).unwrap();
    let start = normal(&mut rng, [chains, 2], &device).add_scalar(3.0);
    let mut state = imh.init(&target, start).unwrap();
    let mut acc = 0.0;
    for _ in 0..60 {
        let (next, info) = imh.step(&mut rng, &target, state).unwrap();
        acc = f64::from(
            info.acceptance_probability
                .unwrap()
                .mean()
                .into_scalar::<f32>(),
        );
        state = next;
    }
    println!("independent MH acceptance {acc:.3}");
    check("independent MH", &rows(&state.position));
    // NeuTra HMC.
    let pulled = NeuTraEnergy::new(&flow, target.clone()).unwrap();
    let z = normal(&mut rng, [8, 2], &device);
    common::assert_score_matches_fd("NeuTra energy", &pulled, &z, 1e-2, 1e-2);
    let hmc = Hmc::new(0.3, 5).unwrap();
    let mut state = hmc
        .init(&pulled, normal(&mut rng, [chains, 2], &device))
        .unwrap();
    for _ in 0..60 {
        state = hmc.step(&mut rng, &pulled, state).unwrap().0;
    }
    check("NeuTra HMC", &rows(&pulled.to_target(state.position)));
}

/// The fused CPU trainer and burn's autodiff path train the same flow to the same numbers: same
/// minibatches, same loss, same Adam; for RealNVP, RealNVP with actnorm and MAF with actnorm
/// (MADE masks, permutations).
#[test]
fn fused_and_autodiff_training_agree() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let data = normal(&mut seeded(71), [4096, 2], &device)
        .mul_scalar(0.7)
        .add_scalar(0.3);
    for (kind, actnorm) in [
        (FlowKind::RealNvp, false),
        (FlowKind::RealNvp, true),
        (FlowKind::Maf, true),
    ] {
        let cfg = FlowConfig {
            layers: 4,
            hidden: vec![32, 32],
            zero_init: false,
            max_log_scale: 1.0,
            actnorm,
            ..FlowConfig::new(kind, 2)
        };
        let mut losses = Vec::new();
        for fused in [true, false] {
            let mut flow = cfg.init(&mut seeded(72), &ad).unwrap();
            let fit = FlowTrainConfig {
                iterations: 40,
                batch_size: 512,
                learning_rate: 1e-3,
                grad_clip: Some(5.0),
                fused,
                ..FlowTrainConfig::default()
            };
            let report = fit_max_likelihood(&mut seeded(73), &mut flow, &data, None, &fit).unwrap();
            let test = normal(&mut seeded(74), [256, 2], &device);
            let lp = to_host1(&flow.valid().log_prob(test, None).unwrap());
            losses.push((report.losses, lp));
        }
        let what = format!("{kind:?}, actnorm {actnorm}");
        let ((fl, flp), (bl, blp)) = (&losses[0], &losses[1]);
        assert!(
            (fl[0] - bl[0]).abs() < 1e-5,
            "{what}: first loss {} vs {}",
            fl[0],
            bl[0]
        );
        for (i, (a, b)) in fl.iter().zip(bl).enumerate() {
            assert!(
                (a - b).abs() < 1e-3,
                "{what}: step {i}: fused {a} vs autodiff {b}"
            );
        }
        // It trained (without actnorm: with it the data-dependent start on these Gaussian data
        // is already within the minibatch noise of the entropy, 2.1245).
        if !actnorm {
            assert!(
                fl[39] < fl[0] - 0.05,
                "{what}: it trained: {} -> {}",
                fl[0],
                fl[39]
            );
        }
        for (a, b) in flp.iter().zip(blp) {
            assert!(
                (a - b).abs() < 1e-3,
                "{what}: log q after training: fused {a} vs autodiff {b}"
            );
        }
    }
}

/// NCE from the core-EBM crate takes a trained flow as its noise density through the shared
/// traits, unchanged: the learned log-normaliser of a Gaussian model matches its exact log Z
/// (mean error over 3 seeds within 4 standard errors, each seed within 0.1).
#[test]
fn nce_uses_a_flow_as_its_noise() {
    use ebm_zoo::ebm::model::GaussianModel;
    use ebm_zoo::ebm::objective::Nce;
    use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let (mean, std) = ([1.0f32, -0.5], 0.7f32);
    let mut errors = Vec::new();
    for seed in 0..3u64 {
        let mut rng = seeded(200 + seed);
        let values = common::gaussian_points(&mut rng, 20_000, mean, std);
        let data = Dataset::new(values.clone(), 2).unwrap();
        // The noise: a RealNVP fitted to the data for 300 steps (close to, not equal to, the data).
        let mut flow = FlowConfig {
            layers: 4,
            hidden: vec![32, 32],
            ..FlowConfig::new(FlowKind::RealNvp, 2)
        }
        .init(&mut rng, &ad)
        .unwrap();
        let x = ebm_zoo::energy::tensor::from_host2(values, [20_000, 2], &device);
        let fit = FlowTrainConfig {
            iterations: 300,
            batch_size: 512,
            learning_rate: 3e-3,
            ..FlowTrainConfig::default()
        };
        fit_max_likelihood(&mut rng, &mut flow, &x, None, &fit).unwrap();
        let mut objective = Nce::new(Box::new(FlowEnergy::new(&flow).unwrap()), 4).unwrap();
        let model = GaussianModel::new(&[0.0, 0.0], 1.0, &ad).unwrap();
        let config = EbmTrainConfig {
            iterations: 500,
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
        assert!(
            (trainer.model().std() - f64::from(std)).abs() < 0.05,
            "sigma {}",
            trainer.model().std()
        );
    }
    let (m, se) = ebm_zoo::data::grid::mean_and_se(&errors);
    println!("NCE with flow noise, log Z error {m:.4} ± {se:.4}: {errors:?}");
    assert!(
        m.abs() <= 4.0 * se.max(1e-3) && errors.iter().all(|e| e.abs() < 0.1),
        "{errors:?}"
    );
}
