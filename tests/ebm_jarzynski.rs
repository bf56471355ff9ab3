//! Jarzynski-weighted walkers along a prescribed parameter path: the weighted walkers must represent
//! the moving model exactly (mode weights within 4 standard errors) and log Z (constant for a
//! normalised mixture) must stay at its exact value, however fast the parameters move.

use crate::common;
use common::cpu_device;
use ebm_zoo::ebm::model::MixtureModel;
use ebm_zoo::ebm::objective::{JarzynskiPcd, Objective};
use ebm_zoo::energy::Energy;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::to_host2;

fn student(t: f64, d: usize, device: &ebm_zoo::energy::burn::prelude::Device) -> MixtureModel {
    let mut a = vec![0.0; d];
    let mut b = vec![0.0; d];
    a[0] = -0.5 - 9.5 * t;
    b[0] = 0.5 + 5.5 * t;
    let w = 0.5 - 0.25 * t;
    MixtureModel::new(&[a, b], &[w, 1.0 - w], device).unwrap()
}

#[test]
fn walkers_follow_a_prescribed_protocol_exactly() {
    let device = cpu_device();
    for d in [2usize, 10] {
        let steps = 400;
        let walkers = 4000;
        let mut rng = seeded(3);
        let m0 = student(0.0, d, &device);
        let start = m0.sample(&mut rng, walkers, &device);
        let log_z = m0.log_normalizer().unwrap();
        let mut o = JarzynskiPcd::new(walkers, 0.1, 0.5, vec![0.0; d], 1.0)
            .unwrap()
            .with_exact_start(start, log_z)
            .unwrap();
        Objective::<MixtureModel>::start(&mut o, &mut rng, &m0, &device).unwrap();
        for k in 1..=steps {
            let m = student(k as f64 / steps as f64, d, &device);
            Objective::<MixtureModel>::after_step(&mut o, &mut rng, &m, &device).unwrap();
        }
        let (x, w) = Objective::<MixtureModel>::negatives(&o).unwrap();
        let w = w.unwrap();
        let left: f64 = to_host2(&x)
            .chunks(d)
            .zip(&w)
            .filter(|(r, _)| r[0] < -2.0)
            .map(|(_, w)| w)
            .sum();
        let ess = 1.0 / w.iter().map(|v| v * v).sum::<f64>();
        let se = (0.25f64 * 0.75 / ess).sqrt();
        println!(
            "d {d}: left weight {left:.4} (exact 0.25, se {se:.4}), log Z {:.4} (exact {log_z:.4}), resamplings {}",
            o.log_z().unwrap(),
            o.resamplings
        );
        assert!((left - 0.25).abs() < 4.0 * se, "d {d}: left weight {left}");
        assert!(
            (o.log_z().unwrap() - log_z).abs() < 0.1,
            "d {d}: log Z {}",
            o.log_z().unwrap()
        );
    }
}
