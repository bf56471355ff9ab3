//! Criterion benches of the standard workloads (see `docs/performance.md`).
//! Run: `cargo bench --bench bench_main` (add `-- langevin/fused` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::energy::Energy;
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::tensor::to_host1;
use ebm_zoo::mcmc::sampler::{Sampler, Ula};
use ebm_zoo::neural::Activation;
use ebm_zoo::neural::MlpEnergyConfig;
use std::time::Duration;

/// ULA, 200 steps of h = 0.01, on the MLP energy 2 -> 128 -> 128 -> 1 (SiLU), N particles.
fn langevin(c: &mut Criterion) {
    let device = BackendKind::Flex.device().expect("benches use flex");
    let mlp = MlpEnergyConfig::new(vec![2, 128, 128, 1], Activation::Silu)
        .init(&mut seeded(1), &device)
        .unwrap();
    let fused = mlp.fused();
    let ula = Ula::new(0.01).unwrap();
    let steps = 200;
    let mut group = c.benchmark_group("langevin");
    for n in [256usize, 4096, 65536] {
        group.throughput(Throughput::Elements((n * steps) as u64));
        if n == 65536 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(30));
        } else {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        for (name, energy) in [
            ("fused", &fused as &dyn Energy),
            ("tensor", &mlp as &dyn Energy),
        ] {
            if name == "tensor" && n == 65536 {
                continue; // ~1 minute per iteration: measured once through `zoo bench sample` instead
            }
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| {
                    let mut rng = seeded(1);
                    let mut s = ula.init(energy, normal(&mut rng, [n, 2], &device)).unwrap();
                    for _ in 0..steps {
                        s = ula.step(&mut rng, energy, s).unwrap().0;
                    }
                    to_host1(&s.energy)
                })
            });
        }
    }
    group.finish();
}

/// The peers' RealNVP workload: 50 Adam steps of maximum likelihood, batch 512, 8 affine
/// couplings with conditioners 1 -> 128 -> 128 -> 2 (SiLU), on two moons; the fused CPU trainer
/// and burn's autodiff path (what runs on a GPU).
fn realnvp(c: &mut Criterion) {
    use ebm_zoo::flow::{FlowConfig, FlowKind, FlowTrainConfig, fit_max_likelihood};
    let device = BackendKind::Flex.device().expect("benches use flex");
    let ad = device.clone().autodiff();
    let steps = 50;
    let data = ebm_zoo::data::toy2d::noisy_moons(&mut seeded(0), 512 * steps, 0.05);
    let data = ebm_zoo::energy::tensor::from_host2(data, [512 * steps, 2], &device);
    let config = FlowConfig {
        layers: 8,
        hidden: vec![128, 128],
        max_log_scale: 1.0,
        zero_init: false,
        ..FlowConfig::new(FlowKind::RealNvp, 2)
    };
    let mut group = c.benchmark_group("realnvp");
    group.throughput(Throughput::Elements(steps as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for fused in [true, false] {
        let name = if fused { "fused" } else { "autodiff" };
        group.bench_function(BenchmarkId::new(name, steps), |b| {
            b.iter(|| {
                let mut rng = seeded(1);
                let mut flow = config.init(&mut rng, &ad).unwrap();
                let fit = FlowTrainConfig {
                    iterations: steps,
                    batch_size: 512,
                    data_init: false,
                    fused,
                    ..FlowTrainConfig::default()
                };
                fit_max_likelihood(&mut rng, &mut flow, &data, None, &fit)
                    .unwrap()
                    .final_loss(1)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, langevin, realnvp);
criterion_main!(benches);
