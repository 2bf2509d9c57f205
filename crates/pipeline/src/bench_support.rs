//! Inputs shared by the criterion benchmarks: realistic requests from the generator.

use domain::CaseInput;

/// `n` synthetic requests (text, sometimes structured fields), from a fixed seed.
pub fn sample_inputs(kb: &kb::KnowledgeBase, n: usize) -> Vec<CaseInput> {
    synth::Generator::new(kb, 4242).cases(n).iter().map(synth::Case::input).collect()
}
