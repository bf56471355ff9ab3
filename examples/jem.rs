//! A classifier is an energy-based model: E(x) = -logsumexp f(x). Train the same MLP on 8
//! Gaussians (8 classes) as a plain classifier and as JEM (Grathwohl et al. 2020: cross-entropy
//! plus the maximum-likelihood term with persistent SGLD negatives), then compare how well each
//! one's energy flags far-away points (uniform on the ring 3 <= r <= 4; the data sit at r = 2).
//!
//! Run: `cargo run --release --example jem` (under a minute on 2 cores).
//! Digits: `zoo uncertainty jem --data digits` (docs/uncertainty.md).

use ebm_zoo::data::Toy2d;
use ebm_zoo::energy::tensor::from_host2;
use ebm_zoo::energy::{BackendKind, Result, seeded};
use ebm_zoo::neural::Activation;
use ebm_zoo::uncertainty::classifier::{Labelled, evaluate, fit};
use ebm_zoo::uncertainty::{Classifier, JemConfig};

fn main() -> Result<()> {
    let device = BackendKind::Flex.device()?;
    let density = Toy2d::EightGaussians.density();
    let mut rng = seeded(0);
    let mut labelled = |n: usize| {
        let x = density.sample_host(&mut rng, n);
        let y = x
            .chunks(2)
            .map(|p| density.mode_of([p[0] as f64, p[1] as f64]))
            .collect();
        Labelled {
            x: from_host2(x, [n, 2], &device),
            y,
        }
    };
    let (train, test) = (labelled(4000), labelled(2000));
    let ring: Vec<f32> = (0..2000)
        .flat_map(|k| {
            let (r, a) = (3.0 + (k % 7) as f64 / 6.0, k as f64 * 2.399);
            [(r * a.cos()) as f32, (r * a.sin()) as f32]
        })
        .collect();
    let ood = vec![(
        "ring 3 <= r <= 4".to_string(),
        from_host2(ring, [2000, 2], &device),
    )];
    for generative in [false, true] {
        let cfg = JemConfig {
            iterations: 1000,
            generative,
            sgld_step: 0.003,
            init_low: -4.0,
            init_high: 4.0,
            ..JemConfig::default()
        };
        let mut model = Classifier::new(
            &mut seeded(1),
            &[2, 128, 128, 8],
            Activation::Silu,
            &device.clone().autodiff(),
        )?;
        fit(&mut seeded(2), &mut model, &train.x, &train.y, &cfg)?;
        let r = evaluate(&model, &train, &test, &ood, 1.0)?;
        let o = &r.ood[0];
        let (energy, softmax, maha) = (o.energy, o.max_softmax, o.mahalanobis);
        println!(
            "{:>16}: accuracy {:.3}, far-OOD AUROC: energy {energy:.3}, max-softmax {softmax:.3}, Mahalanobis {maha:.3}",
            if generative {
                "JEM"
            } else {
                "plain classifier"
            },
            r.accuracy
        );
    }
    Ok(())
}
