//! VAEs with a Gaussian prior and with the latent EBM prior of Pang et al. (2020), on the 8×8
//! digits (Bernoulli decoder, test split) and on 8 Gaussians embedded in R^16 (Gaussian decoder,
//! 2-D latent, exact NLL known). Reports the test ELBO and the importance-weighted NLL (IWAE bound,
//! K samples; for the EBM prior with log Z from AIS), mean and spread over seeds; writes sample
//! grids and the aggregate posterior against each prior.
//!
//! Run: `cargo run --release --example vae` (1 seed, 1500 steps, under a minute on 2 cores);
//! the table of `docs/vae.md`: `-- --seeds 3 --iterations 4000`.

use burn::prelude::*;
use clap::Parser;
use ebm_zoo::data::{Digits, Embedded, Split, Toy2d};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::rng::seeded;
use ebm_zoo::energy::tensor::{from_host2, to_host2};
use ebm_zoo::plot::{HeatMap, Scatter, heat_maps, image_grid, scatters};
use ebm_zoo::vae::{
    DecoderKind, PriorKind, Vae, VaeConfig, VaeTrainConfig, aggregate_posterior_log_z, evaluate,
    fit, prior_log_normalizer, sample_prior,
};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Seeds per configuration.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Adam steps per model.
    #[arg(long, default_value_t = 1500)]
    iterations: usize,
    /// Importance samples per test example.
    #[arg(long, default_value_t = 1000)]
    k: usize,
    /// Adam learning rate of the EBM prior.
    #[arg(long, default_value_t = 1e-4)]
    prior_lr: f64,
    /// Energy penalty of the EBM prior.
    #[arg(long, default_value_t = 0.01)]
    prior_penalty: f64,
    /// Annealing levels of the SMC estimate of the EBM prior's log Z.
    #[arg(long, default_value_t = 300)]
    ais_levels: usize,
    /// Short-run negative chains from N(0, I) for the EBM prior (Pang et al.) instead of
    /// persistent ones (PCD, the default).
    #[arg(long)]
    short_run: bool,
    /// Data sets: digits, embedded (comma separated).
    #[arg(long, default_value = "digits,embedded")]
    sets: String,
    /// Latent dimension for the digits.
    #[arg(long, default_value_t = 8)]
    digits_latent: usize,
    /// Backend.
    #[arg(long, default_value = "flex")]
    backend: BackendKind,
    /// Folder for the PNGs.
    #[arg(long, default_value = "results/vae")]
    out: PathBuf,
}

fn mean_sd(v: &[f64]) -> String {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() < 2 {
        return format!("{m:.3}");
    }
    let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    format!("{m:.3} ± {sd:.3}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.backend.device()?;
    let train_cfg = VaeTrainConfig {
        iterations: args.iterations,
        prior_learning_rate: args.prior_lr,
        prior_energy_penalty: args.prior_penalty,
        persistent: !args.short_run,
        ..VaeTrainConfig::default()
    };
    train_cfg.check()?;
    ebm_zoo::energy::check_count("k", args.k)?;
    ebm_zoo::energy::check_count("seeds", args.seeds as usize)?;
    // Data.
    let digits_train = Digits::load(Split::Train)?;
    let digits_test = Digits::load(Split::Test)?;
    let embedded = Embedded::new(Toy2d::EightGaussians, 16, 0.05, 7)?;
    let mut drng = seeded(1000);
    let emb_train = embedded.sample_host(&mut drng, 20_000);
    let emb_test = embedded.sample_host(&mut drng, 1000);
    let emb_exact = {
        let lp = embedded.log_density(&emb_test, &device)?;
        -lp.iter().sum::<f64>() / lp.len() as f64
    };
    struct Set {
        name: &'static str,
        train: Tensor<2>,
        test: Tensor<2>,
        config: VaeConfig,
        exact: Option<f64>,
    }
    let sets = [
        Set {
            name: "digits 8×8 (binarised)",
            train: from_host2(digits_train.binarized(), [digits_train.len(), 64], &device),
            test: from_host2(digits_test.binarized(), [digits_test.len(), 64], &device),
            config: VaeConfig {
                data_dim: 64,
                latent_dim: args.digits_latent,
                decoder: DecoderKind::Bernoulli,
                ..VaeConfig::default()
            },
            exact: None,
        },
        Set {
            name: "8 Gaussians in R^16",
            train: from_host2(emb_train, [20_000, 16], &device),
            test: from_host2(emb_test.clone(), [1000, 16], &device),
            config: VaeConfig {
                data_dim: 16,
                latent_dim: 2,
                decoder: DecoderKind::Gaussian,
                ..VaeConfig::default()
            },
            exact: Some(emb_exact),
        },
    ];
    println!(
        "| data | prior | test ELBO | IWAE NLL (K = {}) | exact NLL | prior log Z: SMC (IS from the aggregate posterior) | train s |",
        args.k
    );
    println!("|---|---|---|---|---|---|---|");
    let wanted: Vec<&str> = args.sets.split(',').collect();
    for w in &wanted {
        anyhow::ensure!(
            ["digits", "embedded"].contains(w),
            "unknown data set '{w}'; known: digits, embedded"
        );
    }
    for (si, set) in sets.iter().enumerate() {
        if !wanted.contains(&["digits", "embedded"][si]) {
            continue;
        }
        let mut grids: Vec<Vec<f32>> = Vec::new();
        let originals: Vec<Vec<f32>> =
            to_host2(&set.test.clone().slice([0..16, 0..set.config.data_dim]))
                .chunks(set.config.data_dim)
                .map(|c| c.to_vec())
                .collect();
        let mut recon: Vec<Vec<f32>> = originals.clone();
        let mut latent_panels = Vec::new();
        for prior in [PriorKind::Gaussian, PriorKind::Ebm] {
            let (mut elbos, mut nlls, mut secs, mut log_zs) = (vec![], vec![], vec![], vec![]);
            let mut last: Option<Vae> = None;
            for seed in 0..args.seeds {
                let mut rng = seeded(100 * si as u64 + seed);
                let cfg = VaeConfig {
                    prior,
                    ..set.config.clone()
                };
                let mut vae = cfg.init(&mut rng, &device.clone().autodiff())?;
                let report = fit(&mut rng, &mut vae, &set.train, &train_cfg)?;
                let vae = vae.valid();
                let (log_z, log_z_se) =
                    prior_log_normalizer(&mut rng, &vae, 4096, args.ais_levels, &device)?;
                let (is_z, is_se) = aggregate_posterior_log_z(&mut rng, &vae, &set.train, 4096)?;
                // The NLL uses the importance-sampling log Z (precise; SMC is the cross-check):
                // both are biased low in expectation, so the larger is the conservative choice.
                let e = evaluate(&mut rng, &vae, &set.test, args.k, is_z.max(log_z))?;
                elbos.push(e.elbo);
                nlls.push(e.iwae_nll);
                secs.push(report.seconds);
                if prior == PriorKind::Ebm {
                    log_zs.push(format!(
                        "{log_z:.3} ± {log_z_se:.3} (IS: {is_z:.3} ± {is_se:.3})"
                    ));
                }
                last = Some(vae);
            }
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.1} |",
                set.name,
                match (prior, args.short_run) {
                    (PriorKind::Gaussian, _) => "N(0, I)",
                    (PriorKind::Ebm, false) => "EBM (PCD)",
                    (PriorKind::Ebm, true) => "EBM (short-run)",
                },
                mean_sd(&elbos),
                mean_sd(&nlls),
                set.exact.map_or("–".into(), |v| format!("{v:.3}")),
                if log_zs.is_empty() {
                    "exact".to_string()
                } else {
                    log_zs.join(", ")
                },
                secs.iter().sum::<f64>() / secs.len() as f64
            );
            let vae = last.expect("at least one seed");
            let mut rng = seeded(99);
            let z = sample_prior(
                &mut rng,
                &vae,
                64,
                train_cfg.langevin_steps,
                train_cfg.langevin_step_size,
                &device,
            )?;
            let x = to_host2(&vae.decode_mean(z));
            if set.config.decoder == DecoderKind::Bernoulli {
                grids.extend(x.chunks(64).map(|c| c.to_vec()));
                let (mean, _) = vae.posterior(set.test.clone().slice([0..16, 0..64]));
                recon.extend(
                    to_host2(&vae.decode_mean(mean))
                        .chunks(64)
                        .map(|c| c.to_vec()),
                );
            }
            if set.config.latent_dim == 2 {
                let (mean, log_var) = vae.posterior(set.test.clone());
                let eps = ebm_zoo::energy::rng::normal(&mut rng, [1000, 2], &device);
                let zq = to_host2(&(mean + log_var.mul_scalar(0.5).exp() * eps));
                let label = if prior == PriorKind::Ebm {
                    "EBM prior"
                } else {
                    "Gaussian prior"
                };
                latent_panels.push((label, zq, prior_density(&vae, &device)));
            }
        }
        if !grids.is_empty() {
            image_grid(&args.out.join("digits_samples.png"), &grids, 8, 16)?;
            image_grid(&args.out.join("digits_reconstructions.png"), &recon, 8, 16)?;
            println!(
                "<!-- digits: {} has prior samples (decoder means; top 4 rows Gaussian prior, bottom 4 EBM prior); \
                 {} has 16 test images, then their reconstructions (Gaussian prior, EBM prior) -->",
                args.out.join("digits_samples.png").display(),
                args.out.join("digits_reconstructions.png").display()
            );
        }
        if !latent_panels.is_empty() {
            let n = 200;
            let mut heat = Vec::new();
            let mut dots = Vec::new();
            for (label, zq, density) in latent_panels {
                heat.push(HeatMap {
                    title: format!("{label}: density"),
                    n,
                    bounds: (-4.0, 4.0),
                    values: density,
                });
                dots.push(Scatter {
                    title: format!("{label}: aggregate posterior"),
                    bounds: (-4.0, 4.0),
                    points: zq,
                });
            }
            heat_maps(&args.out.join("latent_priors.png"), &heat)?;
            scatters(&args.out.join("latent_posteriors.png"), &dots)?;
        }
    }
    println!(
        "\nNats per example on the test split (digits: the 299 test images; 8 Gaussians: 1000 fresh points), \
         mean ± sd over {} seed(s); ELBO and IWAE from the same K draws of q(z|x); for the EBM prior log p(z) uses \
         log Z from SMC (4096 particles, {} levels, 2 MALA steps each, resampling at ESS < 1/2), and from importance sampling with the aggregate posterior (4096 draws); the NLL uses the larger of the two (both are biased low in expectation), so for the EBM prior it is an estimate, not a bound. Plots in {}",
        args.seeds,
        args.ais_levels,
        args.out.display()
    );
    Ok(())
}

/// exp(-U(z)) on a 200² grid of [-4, 4]² (unnormalised; the plot scales each panel).
fn prior_density(vae: &Vae, device: &Device) -> Vec<f64> {
    let n = 200;
    let h = 8.0 / n as f64;
    let pts: Vec<f32> = (0..n * n)
        .flat_map(|i| {
            [
                (-4.0 + (i % n) as f64 * h + h / 2.0) as f32,
                (-4.0 + (i / n) as f64 * h + h / 2.0) as f32,
            ]
        })
        .collect();
    let u =
        ebm_zoo::energy::tensor::to_host1(&vae.prior_energy(from_host2(pts, [n * n, 2], device)));
    u.iter().map(|v| (-f64::from(*v)).exp()).collect()
}
