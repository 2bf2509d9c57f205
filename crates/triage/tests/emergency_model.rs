//! The committed emergency-detector model: loads, round-trips, and the rules only raise.

use domain::{CaseInput, Sex, TriageLevel, Vitals};
use std::sync::Arc;
use triage::models::emergency::{EmergencyDetector, default_model_dir, least_cost_level};

fn setup() -> (Arc<kb::KnowledgeBase>, EmergencyDetector) {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let model = EmergencyDetector::load(&default_model_dir(), kb.clone(), &device)
        .expect("committed model loads");
    (kb, model)
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let (kb, model) = setup();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let again = EmergencyDetector::load(dir.path(), kb.clone(), &device).unwrap();
    let input = CaseInput {
        text: "short of breath and wheezy".into(),
        vitals: Vitals { spo2: Some(93.0), ..Default::default() },
        ..Default::default()
    };
    let input = kb.prepare(input);
    assert_eq!(model.probabilities(&[&input]), again.probabilities(&[&input]));
}

#[test]
fn red_flags_raise_the_model_level() {
    let (kb, model) = setup();
    let cases = [
        (
            "her face has dropped on one side and her speech is slurred",
            Some(70.0),
            TriageLevel::EmergencyAmbulance,
            "stroke",
        ),
        (
            "fever and a stiff neck, rash that does not fade under a glass",
            Some(19.0),
            TriageLevel::EmergencyAmbulance,
            "",
        ),
        ("i keep thinking about killing myself", Some(30.0), TriageLevel::Emergency, "suicid"),
    ];
    for (text, age, floor, rule_part) in cases {
        let a = model.assess(&kb.prepare(CaseInput {
            text: text.into(),
            age,
            sex: Sex::Unknown,
            ..Default::default()
        }));
        assert!(a.level <= floor, "{text}: {} should be at least {floor}", a.level);
        assert!(a.level <= a.model_level, "rules may only raise");
        assert!(!a.red_flags.is_empty(), "{text}: no red flag fired");
        assert!(
            a.red_flags.iter().any(|&r| kb.rules[r].id.contains(rule_part)),
            "{text}: {:?}",
            a.red_flags.iter().map(|&r| &kb.rules[r].id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn low_oxygen_from_vitals_alone_is_an_emergency() {
    let (kb, model) = setup();
    let a = model.assess(&kb.prepare(CaseInput {
        text: "feel a bit tired".into(),
        age: Some(50.0),
        vitals: Vitals { spo2: Some(86.0), ..Default::default() },
        ..Default::default()
    }));
    assert!(a.level.is_emergency(), "{}", a.level);
}

#[test]
fn least_cost_prefers_caution() {
    // 40% emergency, 60% self-care: under-triage costs three times more, so not self-care.
    let level = least_cost_level(&[0.0, 0.4, 0.0, 0.0, 0.6]);
    assert!(level < TriageLevel::SelfCare, "{level}");
    assert_eq!(least_cost_level(&[0.0, 0.0, 0.0, 0.0, 1.0]), TriageLevel::SelfCare);
}
