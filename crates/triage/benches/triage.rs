//! All four models on one request (text in, answers out, featurisation included), and per
//! request in batches of 8 to 128, through the sequential runner. Run: `cargo bench -p triage`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use domain::CaseInput;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

// The service's allocator, so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    // As the service: every matrix product on this one thread.
    let (kb, device) = benchkit::setup();
    let models =
        triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device).expect("models");
    let runner = triage::Runner::of(Arc::new(models));
    let inputs = benchkit::sample_inputs(&kb, 256);
    let mut g = c.benchmark_group("all_four_models");
    g.measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_request", |b| {
        b.iter(|| {
            i = (i + 1) % inputs.len();
            black_box(runner.run(&inputs[i], 10, 3))
        })
    });
    for size in [8usize, 32, 64, 128] {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("batch", size), &size, |b, &size| {
            let refs: Vec<&CaseInput> = inputs.iter().take(size).collect();
            b.iter(|| black_box(runner.run_batch(&refs, 10, 3)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
