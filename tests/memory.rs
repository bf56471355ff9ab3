//! No autodiff graph or buffer grows across steps: resident memory stays flat over 10^5 steps.
//! (Its own test binary, so that no other test allocates in the same process meanwhile.)

mod common;

use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::mcmc::sampler::{Mala, Sampler};
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergyConfig;

fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

#[test]
fn memory_stays_flat_over_100k_steps() {
    let dev = common::cpu_device();
    let mlp = MlpEnergyConfig::new(vec![2, 16, 16, 1], Activation::Silu)
        .init(&mut seeded(1), &dev)
        .unwrap();
    let sampler = Mala::new(0.01).unwrap();
    let mut rng = seeded(2);
    let mut state = sampler.init(&mlp, normal(&mut rng, [8, 2], &dev)).unwrap();
    let mut after_10k = None;
    for t in 1..=100_000 {
        state = sampler.step(&mut rng, &mlp, state).unwrap().0;
        if t == 10_000 {
            after_10k = resident_kib();
        }
    }
    let (Some(a), Some(b)) = (after_10k, resident_kib()) else {
        // Linux always has /proc: there a missing file is a failure, not a pass.
        assert!(
            !cfg!(target_os = "linux"),
            "/proc/self/statm is unreadable on Linux: memory not measured"
        );
        eprintln!("skipped: no /proc/self/statm on this OS, memory not measured");
        return;
    };
    println!("resident memory after 1e4 steps: {a} KiB, after 1e5 steps: {b} KiB");
    // A graph kept across steps would grow by kilobytes per step (hundreds of MB here).
    assert!(
        b < a + 8 * 1024,
        "memory grew from {a} KiB to {b} KiB over 9e4 steps"
    );
}
