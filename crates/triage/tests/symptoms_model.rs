//! The committed symptom-classifier model: loads, round-trips, reads negations.

use domain::CaseInput;
use triage::models::symptoms::{SymptomClassifier, default_model_dir};

fn setup() -> (kb::KnowledgeBase, SymptomClassifier) {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let model =
        SymptomClassifier::load(&default_model_dir(), &kb, &device).expect("committed model loads");
    (kb, model)
}

fn text(t: &str) -> CaseInput {
    CaseInput { text: t.into(), ..Default::default() }
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let (kb, model) = setup();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let again = SymptomClassifier::load(dir.path(), &kb, &device).unwrap();
    let inputs = [
        kb.prepare(text("crushing chest pain and sweating")),
        kb.prepare(text("my 4 yo has had a temp of 39 since yesterday and won't eat")),
    ];
    let refs: Vec<&kb::Case> = inputs.iter().collect();
    assert_eq!(model.probabilities(&refs), again.probabilities(&refs));
}

#[test]
fn reads_negations() {
    let (kb, model) = setup();
    let id = |s: &str| kb.finding_idx(s).unwrap();
    let cases = [
        (
            "headache and a stiff neck since yesterday, no rash",
            vec![("headache", true), ("neck_stiffness", true), ("rash", false)],
        ),
        (
            "I have had a pounding headache and a stiff neck since yesterday, no rash",
            vec![("headache", true), ("neck_stiffness", true), ("rash", false)],
        ),
        (
            "denies chest pain. has a cough and a fever",
            vec![("chest_pain", false), ("cough", true), ("fever", true)],
        ),
        ("i have been vomiting but no diarrhoea", vec![("vomiting", true), ("diarrhoea", false)]),
        (
            "no fever, no cough, just a sore throat",
            vec![("fever", false), ("cough", false), ("sore_throat", true)],
        ),
    ];
    for (t, expected) in cases {
        let got = model.predict(&kb.prepare(text(t)));
        for (f, present) in expected {
            assert!(
                got.iter().any(|x| x.finding == id(f) && x.present == present),
                "{t:?}: expected {f} present={present}, got {:?}",
                got.iter()
                    .map(|x| (kb.findings[x.finding].id.as_str(), x.present))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn rejects_a_model_for_another_knowledge_base() {
    let (_, model) = setup();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let broken = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/kb/tests/fixtures/minimal");
    let small = kb::load_dir(broken).expect("minimal fixture loads");
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let err = SymptomClassifier::load(dir.path(), &small, &device)
        .err()
        .expect("vocabulary mismatch is an error");
    assert!(err.to_string().contains("different knowledge base"), "{err}");
}
