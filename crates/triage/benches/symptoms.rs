//! Inference of the symptom-classifier model: one request and batches of 8, 32 and 128, featurisation
//! (reading the text once, as the service does for all four agents) included; the frame is
//! `benchkit::agent_inference`. Run: `cargo bench -p triage --bench symptoms`.

use criterion::{Criterion, criterion_group, criterion_main};

// The service's allocator, so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    benchkit::agent_inference(
        c,
        "symptom_classifier",
        |kb, device| {
            triage::models::symptoms::SymptomClassifier::load(
                &triage::models::symptoms::default_model_dir(),
                &kb,
                device,
            )
            .expect("committed model")
        },
        |m, cases| m.predict_batch(cases),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
