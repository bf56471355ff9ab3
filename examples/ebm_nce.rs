//! Noise-contrastive estimation with a learned log-normaliser c: against a Gaussian fitted to the
//! data, an MLP energy learns the rings density, and c estimates log Z; the exact log Z by grid
//! quadrature checks it.
//!
//! Run: `cargo run --release --example ebm_nce` (about 10 s on 2 cores).

use burn::prelude::*;
use ebm_zoo::data::{Grid2d, Toy2d, evaluate};
use ebm_zoo::ebm::objective::Nce;
use ebm_zoo::ebm::{Dataset, EbmTrainConfig, Trainer};
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergyConfig;

fn main() -> anyhow::Result<()> {
    let device = Device::flex();
    let truth = Toy2d::Rings.density();
    let mut rng = seeded(0);
    let data = Dataset::new(truth.sample_host(&mut rng, 20_000), 2)?;
    let test = truth.sample_host(&mut rng, 5_000);
    let model = MlpEnergyConfig::new(vec![2, 64, 64, 1], Activation::Silu)
        .init(&mut seeded(1), &device.clone().autodiff())?;
    // Noise: N(data mean, (1.2^2) data covariance), 4 noise points per data point.
    let mut objective = Nce::fitted(&data, 4, 1.2, &device)?;
    let config = EbmTrainConfig {
        iterations: 3000,
        ..EbmTrainConfig::default()
    };
    let mut trainer = Trainer::new(model, config)?;
    trainer.fit(&mut seeded(2), &mut objective, &data, &device)?;
    let m = evaluate(
        &*trainer.model().sampling_energy(),
        &truth,
        &test,
        Grid2d::for_density(&truth),
        &device,
    )?;
    println!(
        "NCE on rings: NLL {:.3} (data entropy {:.3}), KL {:.3}, TV {:.3}, {:.1} s",
        m.nll, m.true_nll, m.kl, m.tv, trainer.seconds
    );
    println!(
        "learned log-normaliser c = {:.4}; log Z of the learned energy on [-4, 4]^2 by quadrature = {:.4}",
        objective.log_z(),
        m.log_z
    );
    Ok(())
}
