//! The shared reader on one request (tokenising included), over the texts of the reading
//! benchmark (`vignettes/reading/*.toml`). Run: `cargo bench -p kb --bench reading`.
//!
//! `per_text` cycles through the texts, one per iteration, with the semantic layer's cache of
//! words seen already filled (the service's steady state); `first_sight` reads each text with
//! an empty cache, as for a text whose words the service has never seen.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

// The service's allocator, so the figures are the service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct File {
    text: Vec<Text>,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

/// The texts of every `*.toml` of the reading benchmark, files in name order.
fn texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vignettes/reading");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("reading benchmark")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            toml::from_str::<File>(&std::fs::read_to_string(f).expect("read")).expect("parse").text
        })
        .map(|t| t.text)
        .collect()
}

fn bench(c: &mut Criterion) {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let reader = kb.reader();
    let texts = texts();
    assert!(reader.has_semantic(), "the bench expects the word vectors");
    let read = |r: &reading::Reader, t: &str| r.read(t, &textfeat::tokenize(t));
    for t in &texts {
        black_box(read(reader, t));
    }
    let mut g = c.benchmark_group("reading");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("per_text", |b| {
        b.iter(|| {
            i = (i + 1) % texts.len();
            black_box(read(reader, &texts[i]))
        })
    });
    let mut i = 0usize;
    g.bench_function("first_sight", |b| {
        b.iter_batched_ref(
            || {
                i = (i + 1) % texts.len();
                (reader.with_semantic_bar(reading::MIN_COSINE), i)
            },
            |(fresh, at)| black_box(read(fresh, &texts[*at])),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
