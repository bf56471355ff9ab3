//! The 2-D data sets and the exact grid metrics: every closed-form density integrates to 1, its
//! score matches finite differences, sampling matches the density, and scoring the truth against
//! itself gives KL = TV = 0.

use crate::common;
use common::cpu_device;
use ebm_zoo::data::grid::{GridDensity, evaluate, mean_and_se};
use ebm_zoo::data::{Grid2d, Toy2d};
use ebm_zoo::energy::rng::seeded;

#[test]
fn every_density_integrates_to_one_on_its_box() {
    let device = cpu_device();
    for set in Toy2d::ALL {
        let truth = set.density();
        let g = GridDensity::from_energy(&truth, Grid2d::for_density(&truth), &device).unwrap();
        // log Z in float32 energies: the quadrature of a normalised density is 1 to ~1e-4.
        assert!(
            g.log_z.abs() < 2e-3,
            "{set}: log Z on the box = {}",
            g.log_z
        );
        let masses = g.mode_masses(&truth);
        for (m, t) in masses.iter().zip(truth.mode_weights()) {
            assert!((m - t).abs() < 5e-3, "{set}: mode mass {m} vs {t}");
        }
    }
}

#[test]
fn scores_match_finite_differences_of_the_log_density() {
    let mut rng = seeded(5);
    for set in Toy2d::ALL {
        let truth = set.density();
        let pts = truth.sample_host(&mut rng, 50);
        for p in pts.chunks(2) {
            let x = [p[0] as f64 + 0.03, p[1] as f64 - 0.02];
            let (_, s) = truth.log_density_and_score(x);
            let h = 1e-5;
            for k in 0..2 {
                let mut a = x;
                let mut b = x;
                a[k] += h;
                b[k] -= h;
                let fd = (truth.log_density_and_score(a).0 - truth.log_density_and_score(b).0)
                    / (2.0 * h);
                assert!(
                    (fd - s[k]).abs() <= 1e-4 * (1.0 + s[k].abs()),
                    "{set} at {x:?}: score {} vs fd {fd}",
                    s[k]
                );
            }
        }
    }
}

#[test]
fn samples_follow_the_mode_weights() {
    let mut rng = seeded(6);
    let n = 40_000;
    for set in Toy2d::ALL {
        let truth = set.density();
        let x = truth.sample_host(&mut rng, n);
        let mut counts = vec![0usize; truth.modes()];
        for p in x.chunks(2) {
            counts[truth.mode_of([p[0] as f64, p[1] as f64])] += 1;
        }
        for (c, w) in counts.iter().zip(truth.mode_weights()) {
            // Assignment by nearest centre misclassifies a sliver of the tails (< 1e-3 here).
            let f = *c as f64 / n as f64;
            let se = (w * (1.0 - w) / n as f64).sqrt();
            assert!(
                (f - w).abs() <= 4.0 * se + 2e-3,
                "{set}: fraction {f} vs weight {w}"
            );
        }
        // The sample mean against the density's mean (by quadrature).
        let g =
            GridDensity::from_energy(&truth, Grid2d::for_density(&truth), &cpu_device()).unwrap();
        for k in 0..2 {
            let exact: f64 = g
                .log_density
                .iter()
                .enumerate()
                .map(|(i, l)| l.exp() * g.grid.cell_area() * g.grid.centre(i)[k])
                .sum();
            let coord: Vec<f64> = x.chunks(2).map(|p| p[k] as f64).collect();
            let (m, se) = mean_and_se(&coord);
            assert!(
                (m - exact).abs() <= 4.0 * se,
                "{set}: mean[{k}] {m} vs {exact} (se {se})"
            );
        }
    }
}

#[test]
fn the_truth_scored_against_itself_is_perfect() {
    let device = cpu_device();
    let mut rng = seeded(7);
    for set in [Toy2d::TwoMoons, Toy2d::Checkerboard] {
        let truth = set.density();
        let test = truth.sample_host(&mut rng, 2000);
        let m = evaluate(&truth, &truth, &test, Grid2d::for_density(&truth), &device).unwrap();
        assert!(
            m.kl.abs() < 1e-6 && m.tv < 1e-6,
            "{set}: KL {} TV {}",
            m.kl,
            m.tv
        );
        assert!(
            (m.nll - m.true_nll).abs() < 2e-3,
            "{set}: NLL {} vs {}",
            m.nll,
            m.true_nll
        );
        assert_eq!(m.modes_covered, truth.modes());
        assert!(m.mode_weight_error < 5e-3);
    }
}

#[test]
fn unknown_data_set_names_are_clear_errors() {
    let e = "spiral".parse::<Toy2d>().unwrap_err().to_string();
    assert!(
        e.contains("unknown data set 'spiral'") && e.contains("moons"),
        "{e}"
    );
    assert!(Grid2d::new(1.0, -1.0, 10).is_err() && Grid2d::new(-1.0, 1.0, 1).is_err());
}

#[test]
fn digits_load_with_the_documented_split() {
    use ebm_zoo::data::{Digits, Split};
    let train = Digits::load(Split::Train).unwrap();
    let test = Digits::load(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (1498, 299));
    assert_eq!(train.pixels.len(), 1498 * 64);
    let b = test.binarized();
    assert!(b.iter().all(|&v| v == 0.0 || v == 1.0));
    let mean_on = b.iter().sum::<f32>() / b.len() as f32;
    assert!(
        (0.2..0.5).contains(&mean_on),
        "fraction of on pixels {mean_on}"
    );
}

#[test]
fn sample_metrics_score_exact_samples_and_a_collapsed_sample_as_theory_says() {
    use ebm_zoo::data::grid::{sample_metrics, true_cell_masses};
    let device = cpu_device();
    let truth = Toy2d::EightGaussians.density();
    let masses = true_cell_masses(&truth, 32, &device).unwrap();
    assert!((masses.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let mut rng = seeded(31);
    let n = 20_000;
    let exact = truth.sample_host(&mut rng, n);
    let m = sample_metrics(&truth, &exact, 32, &masses).unwrap();
    assert_eq!((m.modes_covered, m.modes), (8, 8));
    // Within 3 sigma of its own centre (the modes are 1.5 apart, so the nearest centre is its
    // own): P(|N(0, I_2)| <= 3) = 1 - exp(-9/2).
    let p = 1.0 - (-4.5f64).exp();
    common::assert_within(
        "high-quality share",
        m.high_quality,
        p,
        (p * (1.0 - p) / n as f64).sqrt(),
        4.0,
    );
    // Mode shares: multinomial, TV to the weights of order sqrt(8 / (2 pi n)).
    assert!(
        m.mode_weight_error < 4.0 * (8.0 / n as f64).sqrt(),
        "{}",
        m.mode_weight_error
    );
    // Histogram TV of exact samples: E|c/n - p| <= sqrt(p / n) per cell, summed.
    let bound: f64 = masses.iter().map(|p| (p / n as f64).sqrt()).sum::<f64>() * 0.5;
    assert!(
        m.tv <= bound,
        "exact-sample TV {} above its bound {bound}",
        m.tv
    );
    // Every sample on one mode centre: one mode covered, mode-weight error 7/8, TV = 1 - the
    // true mass of that cell.
    let centre = [2.0f32, 0.0];
    let collapsed: Vec<f32> = (0..1000).flat_map(|_| centre).collect();
    let c = sample_metrics(&truth, &collapsed, 32, &masses).unwrap();
    assert_eq!(c.modes_covered, 1);
    assert!((c.high_quality - 1.0).abs() < 1e-12);
    assert!((c.mode_weight_error - 7.0 / 8.0).abs() < 1e-9);
    let cell = (((0.0f64 + 4.0) / 0.25) as usize) * 32 + ((2.0f64 + 4.0) / 0.25) as usize;
    assert!(
        (c.tv - (1.0 - masses[cell])).abs() < 1e-9,
        "TV {} vs {}",
        c.tv,
        1.0 - masses[cell]
    );
    // Bad input.
    assert!(sample_metrics(&truth, &[1.0, f32::NAN], 32, &masses).is_err());
    assert!(sample_metrics(&truth, &[1.0, 2.0, 3.0], 32, &masses).is_err());
    assert!(sample_metrics(&truth, &exact, 16, &masses).is_err());
}
