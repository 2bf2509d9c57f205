//! Inference of the emergency-detector model: one request and batches of 8, 32 and 128, featurisation
//! (reading the text once, as the service does for all four agents) included. Run: `cargo bench -p emergency-detector`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use domain::CaseInput;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    // As the service: every matrix product on this one thread.
    ml::serial_matrix_products();
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let m = emergency_detector::EmergencyDetector::load(
        &emergency_detector::default_model_dir(),
        kb.clone(),
        &device,
    )
    .expect("committed model");
    let inputs: Vec<CaseInput> = synth::Generator::new(&kb, 4242)
        .cases(256)
        .iter()
        .map(synth::Case::input)
        .collect();
    let mut g = c.benchmark_group("emergency_detector");
    g.measurement_time(Duration::from_secs(4));
    for size in [1usize, 8, 32, 128] {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("batch", size), &size, |b, &size| {
            let mut start = 0usize;
            b.iter(|| {
                start = (start + size) % (inputs.len() - size);
                let cases: Vec<kb::Case> = inputs[start..start + size]
                    .iter()
                    .map(|i| kb.prepare(i.clone()))
                    .collect();
                let refs: Vec<&kb::Case> = cases.iter().collect();
                black_box(m.assess_batch(&refs))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
