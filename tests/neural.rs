//! The differentiable input gradient of the shared MLP energy (`MlpEnergy::score`, written out as
//! g_L = w, g_{l-1} = W_l (φ'(z_l) ⊙ g_l) on the tracked weights): against burn's autodiff input
//! gradient, and the θ-gradient of the R1 penalty mean |∇ₓE|² through it against central
//! differences of an f64 reference implementation of the same network.

use crate::common::{cpu_device, rel_err};
use ebm_zoo::energy::Energy;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::{to_host1, to_host2};
use ebm_zoo::neural::{Activation, MlpEnergy, MlpEnergyConfig};

/// One layer in f64: `(W [fan_in x fan_out] row-major, b)`.
type Layer = (Vec<f64>, Vec<f64>);

fn silu(z: f64) -> (f64, f64) {
    let s = 1.0 / (1.0 + (-z).exp());
    (z * s, s * (1.0 + z * (1.0 - s)))
}

/// E(x) and ∇ₓE(x) of a silu MLP energy for one point, in f64.
fn energy_and_gradient(layers: &[Layer], x: &[f64]) -> (f64, Vec<f64>) {
    let (last, hidden) = layers.split_last().unwrap();
    let mut h = x.to_vec();
    let mut derivs = Vec::new();
    for (w, b) in hidden {
        let out = b.len();
        let z: Vec<f64> = (0..out)
            .map(|j| {
                b[j] + h
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * w[i * out + j])
                    .sum::<f64>()
            })
            .collect();
        let (a, d): (Vec<f64>, Vec<f64>) = z.into_iter().map(silu).unzip();
        derivs.push(d);
        h = a;
    }
    let e = last.1[0] + h.iter().zip(&last.0).map(|(a, w)| a * w).sum::<f64>();
    let mut g = last.0.clone();
    for ((w, b), d) in hidden.iter().zip(&derivs).rev() {
        let out = b.len();
        let fan_in = w.len() / out;
        g = (0..fan_in)
            .map(|i| (0..out).map(|j| w[i * out + j] * d[j] * g[j]).sum())
            .collect();
    }
    (e, g)
}

/// The R1 penalty mean over points of |∇ₓE|², in f64.
fn r1(layers: &[Layer], points: &[Vec<f64>]) -> f64 {
    points
        .iter()
        .map(|x| {
            energy_and_gradient(layers, x)
                .1
                .iter()
                .map(|g| g * g)
                .sum::<f64>()
        })
        .sum::<f64>()
        / points.len() as f64
}

/// R1 with ∇ₓE by central differences of E (step `h`): the finite-difference R1.
fn r1_by_input_differences(layers: &[Layer], points: &[Vec<f64>], h: f64) -> f64 {
    let e = |q: &[f64]| energy_and_gradient(layers, q).0;
    let squared_gradient = |p: &Vec<f64>| {
        (0..p.len())
            .map(|i| {
                let (mut up, mut dn) = (p.clone(), p.clone());
                up[i] += h;
                dn[i] -= h;
                ((e(&up) - e(&dn)) / (2.0 * h)).powi(2)
            })
            .sum::<f64>()
    };
    points.iter().map(squared_gradient).sum::<f64>() / points.len() as f64
}

/// dR1/dθ for the parameter `(layer, part (0 weight, 1 bias), entry)` by central differences
/// (δ = 1e-6); the parameter is restored.
fn r1_derivative(
    layers: &mut [Layer],
    (l, part, k): (usize, usize, usize),
    points: &[Vec<f64>],
) -> f64 {
    let delta = 1e-6;
    let shift = |layers: &mut [Layer], by: f64| {
        let v = if part == 0 {
            &mut layers[l].0
        } else {
            &mut layers[l].1
        };
        v[k] += by;
    };
    shift(layers, delta);
    let up = r1(layers, points);
    shift(layers, -2.0 * delta);
    let dn = r1(layers, points);
    shift(layers, delta);
    (up - dn) / (2.0 * delta)
}

#[test]
fn the_written_out_input_gradient_matches_autodiff_for_every_smooth_activation() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    for activation in [Activation::Silu, Activation::Softplus, Activation::Tanh] {
        let energy = MlpEnergyConfig::new(vec![3, 32, 32, 1], activation)
            .init(&mut seeded(1), &ad)
            .unwrap();
        let x = normal(&mut seeded(2), [16, 3], &device);
        let written = to_host2(&energy.score(x.clone().autodiff()).inner());
        let leaf = x.autodiff().require_grad();
        let grads = energy.energy(leaf.clone()).sum().backward();
        let autodiff: Vec<f32> = to_host2(&leaf.grad(&grads).unwrap())
            .iter()
            .map(|g| -g)
            .collect();
        let err = rel_err(&written, &autodiff);
        eprintln!("{activation:?}: written-out score vs autodiff, relative error {err:.1e}");
        assert!(err < 1e-5, "{activation:?}: {err}");
    }
}

/// d/dθ of mean |∇ₓE|² by burn's first-order autodiff through the written-out gradient, at
/// every weight and bias entry of a 2-16-16-1 silu network (337 parameters), against central
/// differences (δ = 1e-6) of the f64 reference: relative error < 1e-3. The f64 R1 itself, and a
/// finite-difference R1 (input gradient by central differences of E), agree with burn's value.
#[test]
fn r1_weight_gradient_through_the_written_out_input_gradient_matches_f64_finite_differences() {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let energy: MlpEnergy = MlpEnergyConfig::new(vec![2, 16, 16, 1], Activation::Silu)
        .init(&mut seeded(3), &ad)
        .unwrap();
    let x = normal(&mut seeded(4), [12, 2], &device);
    let s = energy.score(x.clone().autodiff());
    let penalty = s.square().sum_dim(1).squeeze_dim::<1>(1).mean();
    let value = f64::from(to_host1(&penalty.clone().inner())[0]);
    let grads = penalty.backward();
    let mut layers: Vec<Layer> = energy
        .host_weights()
        .into_iter()
        .map(|(w, b)| {
            let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
            (f(w), f(b))
        })
        .collect();
    let points: Vec<Vec<f64>> = to_host2(&x)
        .chunks(2)
        .map(|p| p.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let reference = r1(&layers, &points);
    let fd_r1 = r1_by_input_differences(&layers, &points, 1e-5);
    eprintln!("R1: burn {value:.7}, f64 {reference:.7}, finite-difference {fd_r1:.7}");
    assert!((value - reference).abs() < 1e-5 * reference.max(1.0));
    assert!((fd_r1 - reference).abs() < 1e-6 * reference.max(1.0));
    let (mut worst, mut checked) = (0.0f64, 0);
    for (l, layer) in energy.layers.iter().enumerate() {
        // The output bias does not enter ∇ₓE: autodiff has no gradient for it (zero).
        let bias = layer.bias.as_ref().unwrap();
        let analytic = [
            to_host2(&layer.weight.grad(&grads).unwrap()),
            bias.grad(&grads)
                .map_or_else(|| vec![0.0; bias.dims()[0]], |g| to_host1(&g)),
        ];
        for (part, a) in analytic.iter().enumerate() {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            for (k, &g) in a.iter().enumerate() {
                let fd = r1_derivative(&mut layers, (l, part, k), &points);
                let err = (f64::from(g) - fd).abs() / (fd.abs() + 1e-3 * scale + 1e-12);
                worst = worst.max(err);
                checked += 1;
                assert!(
                    err < 1e-3,
                    "layer {l} part {part} entry {k}: burn {g} vs fd {fd}"
                );
            }
        }
    }
    eprintln!("R1 θ-gradient: {checked} entries, worst relative error {worst:.1e}");
}
