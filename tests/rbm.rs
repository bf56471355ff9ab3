//! RBMs: the hidden-sum log Z equals brute force over the visible states, AIS lands within its error
//! bar of the exact value, and CD training raises the exact test log-likelihood.

use ebm_zoo::data::{Digits, Split};
use ebm_zoo::ebm::rbm::{Rbm, RbmTraining, base_rate_bias};
use ebm_zoo::energy::rng::{normal_vec, seeded};

#[test]
fn hidden_sum_matches_brute_force_over_visible_states() {
    let mut rng = seeded(1);
    let mut rbm = Rbm::new(&mut rng, 7, 5, None).unwrap();
    let z = normal_vec(&mut rng, 7 * 5 + 12);
    for (w, v) in rbm.weights.iter_mut().zip(&z) {
        *w = *v as f64;
    }
    for (i, b) in rbm.visible_bias.iter_mut().enumerate() {
        *b = 0.5 * z[35 + i] as f64;
    }
    for (j, c) in rbm.hidden_bias.iter_mut().enumerate() {
        *c = 0.5 * z[42 + j] as f64;
    }
    let terms: Vec<f64> = (0..1u32 << 7)
        .map(|code| {
            let v: Vec<f64> = (0..7).map(|i| ((code >> i) & 1) as f64).collect();
            -rbm.free_energy(&v)
        })
        .collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let brute = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    let exact = rbm.log_z_exact().unwrap();
    assert!((brute - exact).abs() < 1e-10, "{brute} vs {exact}");
}

#[test]
fn cd_training_raises_the_exact_test_likelihood_and_ais_agrees_with_it() {
    let train = Digits::load(Split::Train).unwrap();
    let test = Digits::load(Split::Test).unwrap();
    let x: Vec<f64> = train.binarized().iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = test.binarized().iter().map(|&v| v as f64).collect();
    let mut rng = seeded(2);
    let mut rbm = Rbm::new(&mut rng, 64, 12, Some(&x)).unwrap();
    let before = rbm
        .mean_log_likelihood(&y, rbm.log_z_exact().unwrap())
        .unwrap();
    let mut method = RbmTraining::Cd(1);
    for _ in 0..10 {
        rbm.train_epoch(&mut rng, &x, &mut method, 0.1, 10).unwrap();
    }
    let exact = rbm.log_z_exact().unwrap();
    let after = rbm.mean_log_likelihood(&y, exact).unwrap();
    println!("test log-likelihood {before:.3} -> {after:.3} nats");
    assert!(after > before + 5.0, "{before} -> {after}");
    let base = base_rate_bias(&x, 64).unwrap();
    let ais = rbm.ais_log_z(&mut rng, &base, 1000, 400, 10).unwrap();
    println!(
        "AIS log Z {:.4} ± {:.4}, exact {exact:.4}",
        ais.log_z, ais.std_err
    );
    assert!(
        (ais.log_z - exact).abs() <= 4.0 * ais.std_err && ais.std_err < 0.5,
        "AIS {} ± {} vs {exact}",
        ais.log_z,
        ais.std_err
    );
}

#[test]
fn rbm_bad_input_is_rejected() {
    let mut rng = seeded(3);
    let mut rbm = Rbm::new(&mut rng, 4, 3, None).unwrap();
    let e = rbm
        .train_epoch(
            &mut rng,
            &[0.0, 1.0, 0.5, 1.0],
            &mut RbmTraining::Cd(1),
            0.1,
            1,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be 0/1") && e.contains("column 2"), "{e}");
    let e = rbm
        .train_epoch(&mut rng, &[0.0, 1.0, 1.0], &mut RbmTraining::Cd(1), 0.1, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong shape"), "{e}");
    assert!(
        rbm.train_epoch(&mut rng, &[0.0; 4], &mut RbmTraining::Cd(1), 0.1, 0)
            .is_err()
    );
    assert!(Rbm::new(&mut rng, 4, 0, None).is_err());
    let mut pcd = RbmTraining::Pcd {
        sweeps: 1,
        count: 0,
        chains: Vec::new(),
    };
    assert!(
        rbm.train_epoch(&mut rng, &[0.0; 4], &mut pcd, 0.1, 1)
            .unwrap_err()
            .to_string()
            .contains("chain")
    );
    let big = Rbm::new(&mut rng, 4, 30, None).unwrap();
    assert!(
        big.log_z_exact()
            .unwrap_err()
            .to_string()
            .contains("ais_log_z")
    );
}
