//! Parallel tempering against exact references: the weights of a mixture whose modes MALA alone
//! never crosses between, the ladder's validation and adaptation, and the exchanges' bookkeeping.

use crate::common;

use common::cpu_device;
use ebm_zoo::energy::burn::prelude::*;
use ebm_zoo::energy::energy::{Covariance, Gaussian, GaussianMixture};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::to_host2;
use ebm_zoo::mcmc::run::{RunConfig, TemperingRunConfig, run, run_tempering};
use ebm_zoo::mcmc::sampler::{Ladder, Mala, ParallelTempering, Sampler, adapt_ladder};

/// 0.2 N(-4, 0.5^2) + 0.8 N(4, 0.5^2): 32 nats of barrier between the modes.
fn separated_mixture(device: &Device) -> GaussianMixture {
    let component = |m: f64| Gaussian::new(vec![m], Covariance::Isotropic(0.25), device).unwrap();
    GaussianMixture::new(vec![0.2, 0.8], vec![component(-4.0), component(4.0)]).unwrap()
}

/// The share of values above 0 and its standard error from the spread of the per-chain shares
/// (chains are independent).
fn right_share(per_chain: &[Vec<f64>]) -> (f64, f64) {
    let shares: Vec<f64> = per_chain
        .iter()
        .map(|c| c.iter().filter(|&&x| x > 0.0).count() as f64 / c.len() as f64)
        .collect();
    ebm_zoo::data::grid::mean_and_se(&shares)
}

#[test]
fn tempering_finds_the_weights_that_mala_alone_keeps_from_its_start() {
    let device = cpu_device();
    let target = separated_mixture(&device);
    let (chains, sweeps, replicas) = (64, 20_000, 10);
    let start = normal(&mut seeded(1), [chains, 1], &device).mul_scalar(3.0);
    let mut pt = ParallelTempering::new(
        Mala::new(0.1).unwrap(),
        Ladder::geometric(replicas, 0.02).unwrap(),
    );
    let config = TemperingRunConfig {
        warmup: 2000,
        steps: sweeps,
        thin: 1,
        adapt_ladder: true,
        target_acceptance: None,
        check_every: 100,
        keep_draws: true,
    };
    let out = run_tempering(
        &mut seeded(2),
        &mut pt,
        &target,
        start.clone(),
        &config,
        &mut |_| {},
    )
    .unwrap();
    let draws = out.draws.unwrap();
    let (share, se) = right_share(&draws.coordinate(0));
    println!(
        "PT, {replicas} replicas x {chains} chains, {sweeps} sweeps: right-mode mass {share:.4} ± {se:.4} (exact 0.8); swap rates {:?}; ladder {:?}; MALA acceptance per replica {:?}",
        out.swap_rates
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>(),
        out.betas
            .iter()
            .map(|b| format!("{b:.4}"))
            .collect::<Vec<_>>(),
        out.acceptance
            .iter()
            .map(|a| format!("{a:.3}"))
            .collect::<Vec<_>>(),
    );
    assert!(
        (share - 0.8).abs() <= 0.02,
        "right-mode mass {share} ± {se}"
    );
    assert!(
        se < 0.01,
        "the error bar {se} should be well inside the tolerance"
    );
    for (k, r) in out.swap_rates.iter().enumerate() {
        assert!((0.2..=0.95).contains(r), "pair {k}: swap rate {r}");
    }
    // MALA alone at the same cost: as many energy evaluations (replicas x chains chains for as
    // many steps), started from the same points.
    let copies = Tensor::cat(vec![start; replicas], 0);
    let mut mala = Mala::new(0.1).unwrap();
    let plain = run(
        &mut seeded(2),
        &mut mala,
        &target,
        copies.clone(),
        &RunConfig {
            warmup: 2000,
            steps: sweeps,
            thin: 10,
            check_every: 100,
            ..RunConfig::default()
        },
        &mut |_| {},
    )
    .unwrap();
    let (mala_share, mala_se) = right_share(&plain.draws.unwrap().coordinate(0));
    let initial =
        to_host2(&copies).iter().filter(|&&x| x > 0.0).count() as f64 / (replicas * chains) as f64;
    println!(
        "MALA alone, {} chains x {sweeps} steps: right-mode mass {mala_share:.4} ± {mala_se:.4}; share of starts on the right {initial:.4}",
        replicas * chains
    );
    assert!(
        (mala_share - initial).abs() < 0.02,
        "MALA should keep its initial split {initial}, got {mala_share}"
    );
    // Within the right mode, the cold replica has the component's moments.
    let right: Vec<f64> = draws
        .coordinate(0)
        .concat()
        .into_iter()
        .filter(|&x| x > 0.0)
        .collect();
    let mean = right.iter().sum::<f64>() / right.len() as f64;
    let var = right.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / right.len() as f64;
    assert!(
        (mean - 4.0).abs() < 0.02 && (var - 0.25).abs() < 0.01,
        "right mode: mean {mean}, var {var}"
    );
}

#[test]
fn ladders_are_validated_and_adaptation_keeps_the_ends() {
    let bad = [
        (vec![1.0], "at least 2"),
        (vec![1.0, 0.0], "(0, 1]"),
        (vec![1.0, 1.5], "(0, 1]"),
        (vec![1.0, 0.5, 0.7], "strictly decreasing"),
        (vec![0.9, 0.5], "first rung"),
        (vec![1.0, f64::NAN], "(0, 1]"),
    ];
    for (betas, why) in bad {
        let err = Ladder::new(betas.clone()).unwrap_err().to_string();
        assert!(err.contains(why), "{betas:?}: {err}");
    }
    assert!(Ladder::geometric(1, 0.1).is_err());
    assert!(Ladder::geometric(4, 1.0).is_err());
    assert!(Ladder::geometric(4, 0.0).is_err());
    let ladder = Ladder::geometric(4, 0.001).unwrap();
    let b = ladder.betas();
    assert_eq!(b[0], 1.0);
    assert!((b[3] - 0.001).abs() < 1e-15 && (b[1] - 0.1).abs() < 1e-12);
    // The pair that swaps least gets its rungs closer, the others share the span.
    let adapted = adapt_ladder(&ladder, &[0.9, 0.1, 0.5], 1.0).unwrap();
    let a = adapted.betas();
    assert_eq!((a[0], a[3]), (1.0, 0.001));
    let gap = |b: &[f64], k: usize| b[k].ln() - b[k + 1].ln();
    assert!(gap(a, 1) < gap(b, 1) && gap(a, 0) > gap(b, 0), "{a:?}");
    assert!(adapt_ladder(&ladder, &[0.5, 0.5], 1.0).is_err());
}

#[test]
fn exchanges_and_ladder_changes_keep_positions_and_caches_consistent() {
    let device = cpu_device();
    let target = Gaussian::new(
        vec![1.0, -1.0],
        Covariance::Diagonal(vec![1.0, 4.0]),
        &device,
    )
    .unwrap();
    let mut pt =
        ParallelTempering::new(Mala::new(0.3).unwrap(), Ladder::geometric(3, 0.1).unwrap());
    let mut state = pt
        .init(&target, normal(&mut seeded(5), [8, 2], &device))
        .unwrap();
    let mut rng = seeded(6);
    let mut swapped = 0;
    for _ in 0..20 {
        let (next, info) = pt.step(&mut rng, &target, state).unwrap();
        state = next;
        swapped += info.swap_probability.iter().flatten().count();
    }
    assert_eq!(swapped, 20, "one pair per sweep with 3 replicas");
    // The cached energies and scores are those of the scaled tempered target at the positions.
    let check = |pt: &ParallelTempering<Mala>, state: &ebm_zoo::mcmc::sampler::TemperingState| {
        let x = pt.positions(state);
        let fresh = pt.init_replicas(&target, x).unwrap();
        let e = common::rel_err(
            &ebm_zoo::energy::tensor::to_host1(&fresh.stacked.energy),
            &ebm_zoo::energy::tensor::to_host1(&state.stacked.energy),
        );
        let s = common::rel_err(
            &to_host2(&fresh.stacked.score),
            &to_host2(&state.stacked.score),
        );
        assert!(e < 1e-5 && s < 1e-5, "caches off: energy {e}, score {s}");
    };
    check(&pt, &state);
    let before = to_host2(&pt.positions(&state));
    let state = pt
        .set_ladder(state, Ladder::new(vec![1.0, 0.5, 0.2]).unwrap())
        .unwrap();
    let after = to_host2(&pt.positions(&state));
    assert!(common::rel_err(&before, &after) < 1e-6);
    check(&pt, &state);
}
