//! Score matching of an energy without second derivatives: denoising score matching on the
//! hand-written score -grad E (one backward pass), and sliced score matching with finite differences
//! of the energy (Pang et al. 2020), on the checkerboard density, scored exactly.
//!
//! Run: `cargo run --release --example ebm_score_matching` (about 5 s on 2 cores).

use burn::prelude::*;
use ebm_zoo::data::{Grid2d, Toy2d, evaluate};
use ebm_zoo::ebm::objective::{DenoisingScoreMatching, Objective, SlicedScoreMatching};
use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergy;
use ebm_zoo::neural::MlpEnergyConfig;

fn fit(
    objective: &mut dyn Objective<MlpEnergy>,
    data: &Dataset,
    device: &Device,
) -> anyhow::Result<Trainer<MlpEnergy>> {
    let model = MlpEnergyConfig::new(vec![2, 64, 64, 1], Activation::Silu)
        .init(&mut seeded(1), &device.clone().autodiff())?;
    let config = EbmTrainConfig {
        iterations: 3000,
        ..EbmTrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config)?;
    trainer.fit(&mut seeded(2), objective, data, device)?;
    Ok(trainer)
}

fn main() -> anyhow::Result<()> {
    let device = Device::flex();
    let truth = Toy2d::Checkerboard.density();
    let mut rng = seeded(0);
    let data = Dataset::new(truth.sample_host(&mut rng, 20_000), 2)?;
    let test = truth.sample_host(&mut rng, 5_000);
    let mut dsm = DenoisingScoreMatching::new(0.1)?;
    let mut ssm = SlicedScoreMatching::new(0.05)?;
    let objectives: [(&str, &mut dyn Objective<MlpEnergy>); 2] = [
        ("dsm (sigma 0.1)", &mut dsm),
        ("ssm-fd (eps 0.05)", &mut ssm),
    ];
    for (name, objective) in objectives {
        let trainer = fit(objective, &data, &device)?;
        let m = evaluate(
            &*trainer.model().sampling_energy(),
            &truth,
            &test,
            Grid2d::for_density(&truth),
            &device,
        )?;
        println!(
            "{name:>18}: NLL {:.3} (data entropy {:.3}), KL {:.3}, TV {:.3}, {:.1} s",
            m.nll, m.true_nll, m.kl, m.tv, trainer.seconds
        );
    }
    Ok(())
}
