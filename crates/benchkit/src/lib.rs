//! What the criterion benchmarks share: the service's set-up ([`setup`]: the committed
//! knowledge base, the CPU device, matrix products on the calling thread), seeded synthetic
//! requests ([`sample_inputs`]), and the frame of every model's inference benchmark
//! (`crates/triage/benches/{symptoms,conditions,care,emergency}.rs`, [`agent_inference`]): one
//! request and batches of 8, 32 and 128, reading the text (`KnowledgeBase::prepare`) included
//! as the service does it once for all four agents. `crates/triage`'s benchmark of all four
//! together uses the first two. Only benchmarks depend on this crate.
//!
//! The benchmark binary names its allocator itself (mimalloc, as the service), since a
//! `#[global_allocator]` here would reach any binary that linked this crate.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, Throughput};
use domain::CaseInput;
use kb::KnowledgeBase;

/// Batch sizes timed, one request first.
pub const SIZES: [usize; 4] = [1, 8, 32, 128];

/// The committed knowledge base and the CPU device, with every matrix product on the calling
/// thread, as the service runs them.
pub fn setup() -> (Arc<KnowledgeBase>, Device) {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    ml::serial_matrix_products();
    let device = ml::select_device(ml::DeviceChoice::Cpu).expect("CPU device");
    (kb, device)
}

/// `n` synthetic requests (text, sometimes structured fields), from a fixed seed.
pub fn sample_inputs(kb: &KnowledgeBase, n: usize) -> Vec<CaseInput> {
    synth::Generator::new(kb, 4242).cases(n).iter().map(synth::Case::input).collect()
}

/// Times `run` (one agent's batch inference on prepared cases) under the group `name`, for
/// each of [`SIZES`], on a model `load` builds from the committed knowledge base.
pub fn agent_inference<M, R>(
    c: &mut Criterion,
    name: &str,
    load: impl FnOnce(Arc<KnowledgeBase>, &Device) -> M,
    run: impl Fn(&M, &[&kb::Case]) -> R,
) {
    let (kb, device) = setup();
    let model = load(kb.clone(), &device);
    let inputs = sample_inputs(&kb, 256);
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(4));
    for size in SIZES {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("batch", size), &size, |b, &size| {
            let mut start = 0usize;
            b.iter(|| {
                start = (start + size) % (inputs.len() - size);
                let cases: Vec<kb::Case> =
                    inputs[start..start + size].iter().map(|i| kb.prepare(i.clone())).collect();
                let refs: Vec<&kb::Case> = cases.iter().collect();
                black_box(run(&model, &refs))
            })
        });
    }
    g.finish();
}
