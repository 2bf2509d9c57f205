//! The committed condition-matcher model: loads, round-trips, gives calibrated rankings.

use domain::{CaseInput, Sex};
use triage::models::conditions::{ConditionMatcher, default_model_dir};

fn setup() -> (kb::KnowledgeBase, ConditionMatcher) {
    let kb = kb::load_dir(kb::default_dir()).expect("knowledge base");
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let model =
        ConditionMatcher::load(&default_model_dir(), &kb, &device).expect("committed model loads");
    (kb, model)
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let (kb, model) = setup();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let again = ConditionMatcher::load(dir.path(), &kb, &device).unwrap();
    let input = CaseInput {
        text: "burning when i pee and going all the time".into(),
        age: Some(30.0),
        sex: Sex::Female,
        ..Default::default()
    };
    let input = kb.prepare(input);
    assert_eq!(model.probabilities(&[&input]), again.probabilities(&[&input]));
    assert_eq!(model.temperature(), again.temperature());
}

#[test]
fn probabilities_are_a_distribution_and_ranked() {
    let (kb, model) = setup();
    let input = CaseInput {
        text: "sudden crushing central chest pain going down my left arm, sweating".into(),
        age: Some(62.0),
        sex: Sex::Male,
        ..Default::default()
    };
    let input = kb.prepare(input);
    let p = model.probabilities(&[&input]).pop().unwrap();
    assert_eq!(p.len(), kb.conditions.len());
    let sum: f32 = p.iter().sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
    let top = model.predict(&input, 10);
    assert!(top.windows(2).all(|w| w[0].probability >= w[1].probability));
    let codes: Vec<&str> =
        top.iter().take(3).map(|r| kb.conditions[r.condition].icd10.as_str()).collect();
    assert!(codes.iter().any(|c| c.starts_with("I21") || c.starts_with("I20")), "{codes:?}");
}

#[test]
fn structured_findings_count() {
    let (kb, model) = setup();
    let f = |id: &str| kb.finding_idx(id).unwrap();
    let input = CaseInput {
        text: String::new(),
        age: Some(25.0),
        sex: Sex::Female,
        findings: vec![
            (f("painful_urination"), true),
            (f("frequent_urination"), true),
            (f("fever"), false),
        ],
        ..Default::default()
    };
    let input = kb.prepare(input);
    let top = model.predict(&input, 3);
    let ids: Vec<&str> = top.iter().map(|r| kb.conditions[r.condition].id.as_str()).collect();
    assert!(ids.contains(&"cystitis"), "{ids:?}");
}
