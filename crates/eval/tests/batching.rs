//! Batching changes no answer: the hand-written vignettes and a slice of the synthetic test
//! split, each request alone (as with batching off, `agents.*.max_batch = 1`) and in batches of
//! 64 (as the agents' micro-batches under load), give the same findings, conditions, care
//! advice and level. Probabilities may differ in the last bits (a matrix product sums in another
//! order), so ranks may only swap between near-ties.

use domain::CaseInput;
use std::sync::Arc;

#[test]
fn answers_are_the_same_alone_and_in_batches() {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let models = triage::Models::load(kb.clone(), &triage::ModelDirs::default(), &device)
        .expect("committed models load");
    let runner = triage::Runner::of(Arc::new(models));
    let mut inputs: Vec<CaseInput> = eval::load_vignettes(&eval::default_vignettes_path(), &kb)
        .expect("vignettes load")
        .iter()
        .map(|v| eval::Item::from_vignette(v).input)
        .collect();
    inputs
        .extend(synth::Generator::new(&kb, 20261123 + 2).cases(320).iter().map(synth::Case::input));

    let alone: Vec<triage::Outcome> = inputs.iter().map(|i| runner.run(i, 10, 3)).collect();
    let mut batched = Vec::new();
    for chunk in inputs.chunks(64) {
        let refs: Vec<&CaseInput> = chunk.iter().collect();
        batched.extend(runner.run_batch(&refs, 10, 3));
    }
    assert_eq!(alone.len(), batched.len());
    const TIE: f32 = 1e-5;
    for (n, (a, b)) in alone.iter().zip(&batched).enumerate() {
        assert_eq!(a.decision, b.decision, "request {n}: level");
        let findings = |t: &triage::Outcome| {
            let mut f: Vec<(usize, bool)> = t
                .findings
                .as_deref()
                .expect("classifier ran")
                .iter()
                .map(|f| (f.finding, f.present))
                .collect();
            f.sort_unstable();
            f
        };
        assert_eq!(findings(a), findings(b), "request {n}: findings");
        let (ac, bc) = (
            a.conditions.as_deref().expect("matcher ran"),
            b.conditions.as_deref().expect("matcher ran"),
        );
        assert_eq!(ac.len(), bc.len(), "request {n}");
        for (x, y) in ac.iter().zip(bc) {
            assert!((x.probability - y.probability).abs() < TIE, "request {n}: {x:?} vs {y:?}");
            assert!(
                x.condition == y.condition || (x.probability - y.probability).abs() < TIE,
                "request {n}: conditions {x:?} vs {y:?}"
            );
        }
        let (aa, ba) =
            (a.care.as_deref().expect("retriever ran"), b.care.as_deref().expect("retriever ran"));
        assert_eq!(aa.len(), ba.len(), "request {n}");
        for (x, y) in aa.iter().zip(ba) {
            assert!((x.score - y.score).abs() < TIE, "request {n}: {x:?} vs {y:?}");
            assert!(
                x.advice == y.advice || (x.score - y.score).abs() < TIE,
                "request {n}: care {x:?} vs {y:?}"
            );
        }
        assert_eq!(
            a.emergency.as_ref().map(|e| e.level),
            b.emergency.as_ref().map(|e| e.level),
            "request {n}: emergency detector"
        );
    }
}
