//! Criterion benches of the standard workloads (see `docs/performance.md`).
//! Run: `cargo bench --bench bench_main` (add `-- langevin/fused` to filter).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ebm_zoo::energy::BackendKind;
use ebm_zoo::energy::energy::{Activation, Energy, MlpEnergyConfig};
use ebm_zoo::energy::rng::{normal, seeded};
use ebm_zoo::energy::sampler::{Sampler, Ula};
use ebm_zoo::energy::tensor::to_host1;
use std::time::Duration;

/// ULA, 200 steps of h = 0.01, on the MLP energy 2 -> 128 -> 128 -> 1 (SiLU), N particles.
fn langevin(c: &mut Criterion) {
    let device = BackendKind::Flex.device().expect("benches use flex");
    let mlp = MlpEnergyConfig::new(vec![2, 128, 128, 1], Activation::Silu)
        .init(&device, &mut seeded(1))
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

criterion_group!(benches, langevin);
criterion_main!(benches);
