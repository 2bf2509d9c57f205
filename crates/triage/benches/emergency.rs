//! Inference of the emergency-detector model: one request and batches of 8, 32 and 128, featurisation
//! (reading the text once, as the service does for all four agents) included; the frame is
//! `benchkit::agent_inference`. Run: `cargo bench -p triage --bench emergency`.

use criterion::{Criterion, criterion_group, criterion_main};

// The service's allocator, so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    benchkit::agent_inference(
        c,
        "emergency_detector",
        |kb, device| {
            triage::models::emergency::EmergencyDetector::load(
                &triage::models::emergency::default_model_dir(),
                kb,
                device,
            )
            .expect("committed model")
        },
        |m, cases| m.assess_batch(cases),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
