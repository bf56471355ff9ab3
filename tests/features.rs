//! The digit sample-quality metric: the Fréchet distance against closed forms, k-NN precision and
//! recall on samples whose fidelity and coverage are known, and the digit classifier behind both.

use ebm_zoo::data::digits::{Digits, Split, dequantise};
use ebm_zoo::data::features::{ClassifierConfig, DigitClassifier};
use ebm_zoo::energy::rng::{normal_vec, seeded};
use ebm_zoo::mcmc::diagnostics::{frechet_distance, knn_precision_recall, mean_and_covariance};

/// tr sqrt(A) of a 2 x 2 positive semi-definite matrix with eigenvalues l1, l2:
/// sqrt(l1) + sqrt(l2) = sqrt(tr A + 2 sqrt(det A)).
fn trace_sqrt_2x2(tr: f64, det: f64) -> f64 {
    (tr + 2.0 * det.sqrt()).sqrt()
}

#[test]
fn frechet_distance_matches_the_closed_form_of_two_gaussians() {
    // Two non-commuting 2 x 2 covariances: the eigenvalues of c1^{1/2} c2 c1^{1/2} are those of
    // c1 c2, so the cross term is 2 sqrt(tr(c1 c2) + 2 sqrt(det c1 det c2)).
    let (m1, m2) = (vec![0.5, -1.0], vec![-0.25, 2.0]);
    let c1 = vec![vec![2.0, 0.8], vec![0.8, 1.0]];
    let c2 = vec![vec![0.5, -0.3], vec![-0.3, 1.5]];
    let det = |c: &Vec<Vec<f64>>| c[0][0] * c[1][1] - c[0][1] * c[1][0];
    let tr12 = (0..2)
        .flat_map(|i| (0..2).map(move |k| (i, k)))
        .map(|(i, k)| c1[i][k] * c2[k][i])
        .sum::<f64>();
    let exact = 0.75f64.powi(2) + 3.0f64.powi(2) + 3.0 + 2.0
        - 2.0 * trace_sqrt_2x2(tr12, det(&c1) * det(&c2));
    let fd = frechet_distance(&m1, &c1, &m2, &c2).unwrap();
    println!("FD {fd:.12} closed form {exact:.12}");
    assert!((fd - exact).abs() < 1e-10, "{fd} vs {exact}");
    assert!(frechet_distance(&m1, &c1, &m1, &c1).unwrap() < 1e-10);
    // From 20 000 draws of N(0, I) and N(mu, diag(s^2)) in 8-D: |mu|^2 + sum (1 - s_i)^2. The
    // plug-in estimate is biased up by about tr of the estimation noise, O(d^2 / n) = 0.003 here.
    let (n, d) = (20_000, 8);
    let mu: Vec<f64> = (0..d).map(|i| 0.1 * i as f64).collect();
    let s: Vec<f64> = (0..d).map(|i| 0.5 + 0.1 * i as f64).collect();
    let a = normal_vec(&mut seeded(1), n * d);
    let mut b = normal_vec(&mut seeded(2), n * d);
    for (j, v) in b.iter_mut().enumerate() {
        *v = (mu[j % d] + s[j % d] * f64::from(*v)) as f32;
    }
    let exact =
        mu.iter().map(|m| m * m).sum::<f64>() + s.iter().map(|s| (1.0 - s).powi(2)).sum::<f64>();
    let (ma, ca) = mean_and_covariance(&a, d).unwrap();
    let (mb, cb) = mean_and_covariance(&b, d).unwrap();
    let fd = frechet_distance(&ma, &ca, &mb, &cb).unwrap();
    // The estimate's standard deviation to first order (delta method): the mean term varies as
    // 2 mu . (mean_b - mean_a), the variance term as 2 (s_i - 1)(sd_b,i - sd_a,i), with
    // var(mean) = s^2 / n and var(sample sd) = s^2 / (2n); the O(d^2 / n) bias is below 0.01.
    let nf = n as f64;
    let var: f64 = (0..d)
        .map(|i| {
            4.0 * mu[i] * mu[i] * (1.0 + s[i] * s[i]) / nf
                + 4.0 * (s[i] - 1.0).powi(2) * (1.0 + s[i] * s[i]) / (2.0 * nf)
        })
        .sum();
    let sd = var.sqrt();
    println!("8-D from samples: FD {fd:.4}, closed form {exact:.4} (sd {sd:.4})");
    assert!(
        (fd - exact).abs() < 4.0 * sd + 0.01,
        "{fd} vs {exact} (sd {sd})"
    );
    // Mismatched sizes are errors, not silent answers.
    assert!(frechet_distance(&m1, &c1, &[0.0; 3], &c2).is_err());
    assert!(mean_and_covariance(&a[..5], d).is_err());
}

#[test]
fn knn_precision_and_recall_measure_fidelity_and_coverage() {
    // Real: two unit Gaussians at -4 e1 and +4 e1 (1000 points each, 2-D).
    let d = 2;
    let blob = |seed: u64, n: usize, centre: f32| -> Vec<f32> {
        let mut z = normal_vec(&mut seeded(seed), n * d);
        z.iter_mut().step_by(d).for_each(|v| *v += centre);
        z
    };
    let real = [blob(1, 1000, -4.0), blob(2, 1000, 4.0)].concat();
    let same = [blob(3, 1000, -4.0), blob(4, 1000, 4.0)].concat();
    let half = blob(5, 2000, 4.0);
    let far = blob(6, 2000, 40.0);
    let (p_same, r_same) = knn_precision_recall(&real, &same, d, 5).unwrap();
    let (p_half, r_half) = knn_precision_recall(&real, &half, d, 5).unwrap();
    let (p_far, r_far) = knn_precision_recall(&real, &far, d, 5).unwrap();
    println!(
        "same law: P {p_same:.3} R {r_same:.3}; one mode: P {p_half:.3} R {r_half:.3}; far: P {p_far:.3} R {r_far:.3}"
    );
    // Same law: both near 1 (a fresh point falls outside the k-NN balls only in the tails).
    assert!(p_same > 0.9 && r_same > 0.9);
    // One mode of two: every sample is faithful, half the real points are not covered.
    assert!(p_half > 0.9 && (r_half - 0.5).abs() < 0.05);
    assert!(p_far == 0.0 && r_far == 0.0);
    assert!(knn_precision_recall(&real, &same, d, 0).is_err());
    assert!(knn_precision_recall(&real[..10], &same, d, 5).is_err());
}

#[test]
fn the_digit_classifier_is_accurate_and_its_features_rank_samples() {
    let clock = std::time::Instant::now();
    let classifier = DigitClassifier::shared().unwrap();
    let trained = clock.elapsed().as_secs_f64();
    let test = Digits::load(Split::Test).unwrap();
    let y_test = dequantise(&test.scaled(), &mut seeded(999));
    let accuracy = classifier.accuracy(&y_test, &test.labels).unwrap();
    // Deterministic: a second training gives the same classifier.
    let again = DigitClassifier::train(&ClassifierConfig::default()).unwrap();
    assert_eq!(
        again.accuracy(&y_test, &test.labels).unwrap(),
        accuracy,
        "training is not deterministic"
    );
    println!("classifier: test accuracy {accuracy:.4} ({trained:.2} s to train)");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    // The floor: 299 training images against the 299 test images.
    let train = Digits::load(Split::Train).unwrap();
    let y_train = dequantise(&train.scaled(), &mut seeded(1));
    let n = test.len();
    let floor = classifier.scores(&y_test, &y_train[..n * 64]).unwrap();
    // Mode dropping: 299 training images of the digits 0-4 only.
    let low: Vec<f32> = (0..train.len())
        .filter(|&i| train.labels[i] < 5)
        .take(n)
        .flat_map(|i| y_train[i * 64..(i + 1) * 64].iter().copied())
        .collect();
    let dropped = classifier.scores(&y_test, &low).unwrap();
    // Blur: every image averaged with the mean image (fidelity lost, classes kept).
    let mean: Vec<f32> = (0..64)
        .map(|p| (0..n).map(|i| y_train[i * 64 + p]).sum::<f32>() / n as f32)
        .collect();
    let blurred: Vec<f32> = y_train[..n * 64]
        .iter()
        .enumerate()
        .map(|(j, v)| 0.4 * v + 0.6 * mean[j % 64])
        .collect();
    let blur = classifier.scores(&y_test, &blurred).unwrap();
    let noise: Vec<f32> = normal_vec(&mut seeded(3), n * 64)
        .iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect();
    let noisy = classifier.scores(&y_test, &noise).unwrap();
    println!(
        "real vs real {floor:?}\ndigits 0-4 only {dropped:?}\nblurred {blur:?}\nnoise {noisy:?}"
    );
    // Real images: recall and precision high; dropping half the classes costs recall, not
    // precision; pulling every image towards the mean image collapses the spread (recall), and
    // noise leaves the digit manifold (precision); each moves FD well above the floor.
    assert!(floor.precision > 0.8 && floor.recall > 0.8);
    assert!(dropped.recall < floor.recall - 0.2 && dropped.precision > floor.precision - 0.1);
    assert!(blur.recall < 0.2);
    for other in [dropped, blur, noisy] {
        assert!(other.fd > 3.0 * floor.fd, "{other:?} vs floor {floor:?}");
    }
    assert!(noisy.precision < 0.05 && noisy.fd > dropped.fd);
    assert!(classifier.scores(&y_test, &y_test[..100]).is_err());
    assert!(
        DigitClassifier::train(&ClassifierConfig {
            hidden: vec![0],
            ..ClassifierConfig::default()
        })
        .is_err()
    );
}
