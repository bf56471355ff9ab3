//! A Bernoulli-Bernoulli RBM with 16 hidden units on the binarised 8×8 digits, trained by CD-1, CD-10
//! and PCD (100 persistent chains): the exact test log-likelihood (log Z by summing over the 2^16 hidden states) after every
//! epoch, then the AIS estimate of log Z against the exact value. Writes the curves as a PNG.
//!
//! Run: `cargo run --release --example rbm_digits` (about 10 s on 2 cores).

use clap::Parser;
use ebm_zoo::data::{Digits, Split};
use ebm_zoo::ebm::rbm::{Rbm, RbmTraining, base_rate_bias};
use ebm_zoo::energy::rng::seeded;
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Hidden units (at most 24 for the exact likelihood).
    #[arg(long, default_value_t = 16)]
    hidden: usize,
    /// Epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Minibatch size.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG of the curves.
    #[arg(long, default_value = "results/rbm_digits.png")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let to64 = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let train = to64(Digits::load(Split::Train)?.binarized());
    let test = to64(Digits::load(Split::Test)?.binarized());
    let base = base_rate_bias(&train, 64)?;
    let shown: Vec<usize> = (1..=args.epochs)
        .filter(|e| *e == 1 || e % 5 == 0 || *e == args.epochs)
        .collect();
    println!(
        "| method | {} |",
        shown
            .iter()
            .map(|e| format!("epoch {e}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(shown.len()));
    let mut curves = Vec::new();
    let mut last = None;
    for mut method in [
        RbmTraining::Cd(1),
        RbmTraining::Cd(10),
        RbmTraining::Pcd {
            sweeps: 1,
            count: 100,
            chains: Vec::new(),
        },
    ] {
        let mut rng = seeded(args.seed);
        let mut rbm = Rbm::new(&mut rng, 64, args.hidden, Some(&train))?;
        let mut row = Vec::new();
        let start = std::time::Instant::now();
        for epoch in 1..=args.epochs {
            rbm.train_epoch(&mut rng, &train, &mut method, args.lr, args.batch)?;
            let ll = rbm.mean_log_likelihood(&test, rbm.log_z_exact()?)?;
            row.push((epoch as f64, ll));
        }
        println!(
            "| {} ({:.1} s) | {} |",
            method.name(),
            start.elapsed().as_secs_f64(),
            shown
                .iter()
                .map(|e| format!("{:.2}", row[e - 1].1))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        curves.push((method.name(), row));
        last = Some(rbm);
    }
    let rbm = last.expect("three methods ran");
    let exact = rbm.log_z_exact()?;
    let mut rng = seeded(args.seed + 1);
    let ais = rbm.ais_log_z(&mut rng, &base, 2000, 500, 10)?;
    println!(
        "\nPCD model: exact log Z = {exact:.4}; AIS (2000 levels, 500 particles, 10 groups) = {:.4} ± {:.4} \
         ({:.2} standard errors off)",
        ais.log_z,
        ais.std_err,
        (ais.log_z - exact).abs() / ais.std_err
    );
    println!(
        "(test log-likelihood in nats per image, 299 test images, exact by summing over 2^{} hidden states)",
        args.hidden
    );
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    ebm_zoo::plot::curves(
        &args.out,
        "RBM on binarised digits",
        "epoch",
        "test log-likelihood (nats)",
        &curves,
    )?;
    Ok(())
}
