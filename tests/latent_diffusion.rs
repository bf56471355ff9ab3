//! The hierarchical generator's whitened latent and the latent EBM diffusion prior (Cui & Han
//! 2024): the recovery EBM of one step against its Gaussian closed form, the pulled-back score
//! against autodiff and finite differences, and the 25-Gaussian latent against the single-stage
//! prior.

use crate::common;
use common::{cpu_device, rel_err};
use ebm_zoo::data::grid::true_cell_masses;
use ebm_zoo::data::{Toy2d, sample_metrics};
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, Energy, ExactSample, Gaussian};
use ebm_zoo::energy::rng::normal;
use ebm_zoo::energy::seeded;
use ebm_zoo::energy::tensor::{to_host1, to_host2};
use ebm_zoo::mcmc::sampler::{Mala, Sampler};
use ebm_zoo::neural::{Activation, MlpEnergyConfig};
use ebm_zoo::vae::{
    HierVaeConfig, IdentityMap, LatentDiffusionConfig, LatentMap, LatentPriorKind,
    LatentPriorTrainConfig, LevelEnergy, fit_latent_prior,
};

/// -log p(u_t | u_{t+1}) with per-layer Gaussian tilts E_i(z) = |z|^2 / (2 c_i) (+ const) is
/// Gaussian per layer: precision lambda_i = 1/c_i + 1 + a^2/sigma^2, mean (a/sigma^2) u_{t+1} /
/// lambda_i. Energy differences and the score are checked against it exactly, and MALA on the
/// level's energy (exact in law) against its mean and variance.
#[test]
fn the_recovery_ebm_of_one_step_matches_its_gaussian_closed_form() {
    let device = cpu_device();
    let (a, s2) = (0.8f64.sqrt(), 0.2);
    let (c, widths) = ([0.5, 2.0], [2usize, 1]);
    let map = IdentityMap {
        widths: widths.to_vec(),
    };
    let layers: Vec<Box<dyn Energy>> = (0..2)
        .map(|i| {
            let g = Gaussian::new(vec![0.0; widths[i]], Covariance::Isotropic(c[i]), &device);
            Box::new(g.unwrap()) as Box<dyn Energy>
        })
        .collect();
    let n = 4000;
    let w_row = [0.7f32, -1.2, 0.4];
    let above = Tensor::<2>::from_data(TensorData::new(w_row.repeat(n), [n, 3]), &device);
    let level = LevelEnergy::new(&map, layers, Some((above, a, s2))).unwrap();
    let lambda: Vec<f64> = [0, 0, 1]
        .iter()
        .map(|&i| 1.0 / c[i] + 1.0 + a * a / s2)
        .collect();
    let mean: Vec<f64> = (0..3)
        .map(|j| a / s2 * f64::from(w_row[j]) / lambda[j])
        .collect();
    // Energy differences and the score at random points against the closed form.
    let u = normal(&mut seeded(3), [n, 3], &device);
    let (e, s) = level.energy_and_score(u.clone());
    let m = Tensor::<2>::from_data(
        TensorData::new(
            mean.iter().map(|&v| v as f32).collect::<Vec<_>>().repeat(n),
            [n, 3],
        ),
        &device,
    );
    let e_mean = to_host1(&level.energy(m));
    let (uh, eh, sh) = (to_host2(&u), to_host1(&e), to_host2(&s));
    let mut exact_e = Vec::with_capacity(n);
    let mut exact_s = Vec::with_capacity(3 * n);
    for (r, row) in uh.chunks(3).enumerate() {
        let quad: f64 = (0..3)
            .map(|j| 0.5 * lambda[j] * (f64::from(row[j]) - mean[j]).powi(2))
            .sum();
        exact_e.push((quad + f64::from(e_mean[r])) as f32);
        exact_s.extend((0..3).map(|j| (-lambda[j] * (f64::from(row[j]) - mean[j])) as f32));
    }
    let (de, ds) = (rel_err(&eh, &exact_e), rel_err(&sh, &exact_s));
    println!("energy rel. error {de:.2e}, score rel. error {ds:.2e}");
    assert!(de < 1e-5 && ds < 1e-5, "energy {de:.2e}, score {ds:.2e}");
    // MALA (exact in law) from u_{t+1} on the level's energy: mean and variance per coordinate.
    let mala = Mala::new(0.02).unwrap();
    let mut rng = seeded(11);
    let mut state = mala.init(&level, u).unwrap();
    for _ in 0..300 {
        state = mala.step(&mut rng, &level, state).unwrap().0;
    }
    let x = to_host2(&state.position);
    for j in 0..3 {
        let col: Vec<f64> = x.chunks(3).map(|r| f64::from(r[j])).collect();
        let mu = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n - 1) as f64;
        let (sd_mu, exact_var) = ((1.0 / lambda[j] / n as f64).sqrt(), 1.0 / lambda[j]);
        println!(
            "coordinate {j}: mean {mu:.4} vs {:.4}, variance {var:.4} vs {exact_var:.4}",
            mean[j]
        );
        assert!(
            (mu - mean[j]).abs() < 4.0 * sd_mu,
            "mean {mu} vs {}",
            mean[j]
        );
        // Var of a sample variance of n normals: 2 v^2 / (n - 1).
        let sd_var = exact_var * (2.0 / (n - 1) as f64).sqrt();
        assert!(
            (var - exact_var).abs() < 4.0 * sd_var,
            "variance {var} vs {exact_var}"
        );
    }
}

/// The generator's map z = T(u) and its written-out pull-back: whitening inverts it, and the
/// score in u equals burn autodiff's gradient of -sum_i E_i(T(u)_i) and central differences.
#[test]
fn the_whitened_latent_pulls_energies_back_with_the_exact_gradient() {
    let device = cpu_device();
    let cfg = HierVaeConfig {
        data_dim: 6,
        latent: vec![3, 2],
        hidden: vec![8],
        layer_hidden: vec![16],
        ..HierVaeConfig::default()
    };
    let mut rng = seeded(5);
    let vae = cfg.init(&mut rng, &device).unwrap();
    let energies: Vec<_> = [3usize, 2]
        .iter()
        .map(|&w| {
            MlpEnergyConfig::new(vec![w, 16, 1], Activation::Silu)
                .init(&mut rng, &device)
                .unwrap()
        })
        .collect();
    let refs: Vec<&dyn Energy> = energies.iter().map(|e| e as &dyn Energy).collect();
    let n = 7;
    let u = normal(&mut rng, [n, 5], &device).mul_scalar(1.5);
    let back = vae.whiten(&vae.layers(u.clone()));
    let inv = rel_err(&to_host2(&back), &to_host2(&u));
    assert!(inv < 1e-5, "whiten(T(u)) differs from u by {inv:.2e}");
    let (e, s) = vae.pull_back(u.clone(), &refs);
    // Autodiff through the same map and energies.
    let ua = u.clone().autodiff().require_grad();
    let zs = vae.layers(ua.clone());
    let total = zs
        .into_iter()
        .zip(&energies)
        .map(|(z, en)| en.energy(z))
        .reduce(|a, b| a + b)
        .unwrap();
    let grads = total.clone().sum().backward();
    let g = ua.grad(&grads).unwrap().neg();
    let (ea, sa) = (to_host1(&total.without_autodiff()), to_host2(&g));
    let (de, ds) = (rel_err(&to_host1(&e), &ea), rel_err(&to_host2(&s), &sa));
    println!("pull-back vs autodiff: energy {de:.2e}, score {ds:.2e}");
    assert!(de < 1e-5 && ds < 1e-4, "energy {de:.2e}, score {ds:.2e}");
    // Central differences in f32 (h = 1e-2: O(h^2) truncation and rounding both below 1e-4).
    let (uh, sh) = (to_host2(&u), to_host2(&s));
    let h = 1e-2f32;
    let mut fd = vec![0f32; n * 5];
    for j in 0..5 {
        let shifted = |sign: f32| {
            let mut v = uh.clone();
            v.chunks_mut(5).for_each(|r| r[j] += sign * h);
            let t = Tensor::<2>::from_data(TensorData::new(v, [n, 5]), &device);
            to_host1(&vae.pull_back(t, &refs).0)
        };
        let (plus, minus) = (shifted(1.0), shifted(-1.0));
        for r in 0..n {
            fd[r * 5 + j] = -(plus[r] - minus[r]) / (2.0 * h);
        }
    }
    let dfd = rel_err(&sh, &fd);
    println!("pull-back score vs central differences: {dfd:.2e}");
    assert!(dfd < 5e-4, "score vs finite differences {dfd:.2e}");
}

/// Cui & Han's 2-D claim at our scale: with the 25-Gaussian grid as the latent's aggregate
/// posterior (exact draws; T the identity), the diffusion prior (T = 3) covers >= 23 modes with
/// a mode-histogram KL <= 0.1, and the single-stage prior at the same Langevin budget (60 steps
/// per sample) does worse.
#[test]
fn the_diffusion_prior_learns_25_gaussians_better_than_a_single_stage_prior() {
    let device = cpu_device();
    let truth = Toy2d::Grid25.density();
    let masses = true_cell_masses(&truth, 64, &device).unwrap();
    let map = IdentityMap { widths: vec![2] };
    let source =
        |rng: &mut ebm_zoo::energy::ZooRng, n: usize| Ok(truth.sample_exact(rng, n, &device));
    // Smaller than the defaults (128-128 energies, batch 128) to keep the test short.
    let train = LatentPriorTrainConfig {
        batch_size: 64,
        ..LatentPriorTrainConfig::default()
    };
    let mut scores = Vec::new();
    for kind in [LatentPriorKind::SingleStage, LatentPriorKind::Diffusion] {
        let mut rng = seeded(0);
        let ad = device.clone().autodiff();
        let cfg = LatentDiffusionConfig {
            hidden: vec![64, 64],
            ..LatentDiffusionConfig::default()
        };
        let mut prior = cfg
            .init(kind, map.widths(), &mut rng, &ad)
            .unwrap()
            .unwrap();
        fit_latent_prior(&mut rng, &mut prior, &map, &source, &train).unwrap();
        let u = prior
            .valid()
            .sample(&mut seeded(100), &map, 4000, train.chain(), &device)
            .unwrap();
        let m = sample_metrics(&truth, &to_host2(&u), 64, &masses).unwrap();
        println!(
            "{kind:?}: modes {}/25, mode KL {:.4}, high quality {:.3}, TV {:.3}",
            m.modes_covered, m.mode_kl, m.high_quality, m.tv
        );
        scores.push(m);
    }
    let (single, diffusion) = (&scores[0], &scores[1]);
    assert!(diffusion.modes_covered >= 23 && diffusion.mode_kl <= 0.1);
    assert!(
        single.mode_kl > diffusion.mode_kl || single.modes_covered < diffusion.modes_covered,
        "the single-stage prior is not worse"
    );
}
