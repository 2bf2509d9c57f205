//! The committed treatment-retriever model: loads, round-trips, never offers unsafe advice.

use domain::{CaseInput, Sex};
use kb::Contraindication;
use std::sync::Arc;
use triage::models::care::{TreatmentRetriever, contraindications, default_model_dir};

fn setup() -> (Arc<kb::KnowledgeBase>, TreatmentRetriever) {
    let kb = Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"));
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let model = TreatmentRetriever::load(&default_model_dir(), kb.clone(), &device)
        .expect("committed model loads");
    (kb, model)
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let (kb, model) = setup();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
    let again = TreatmentRetriever::load(dir.path(), kb.clone(), &device).unwrap();
    let input = CaseInput { text: "sore throat and a temperature".into(), ..Default::default() };
    let input = kb.prepare(input);
    assert_eq!(model.scores(&[&input]), again.scores(&[&input]));
}

#[test]
fn never_returns_advice_the_person_must_not_follow() {
    let (kb, model) = setup();
    let people = [
        CaseInput {
            text: "im pregnant and have a bad headache and back pain".into(),
            age: Some(29.0),
            sex: Sex::Female,
            ..Default::default()
        },
        CaseInput {
            text: "my son has a fever and sore throat".into(),
            age: Some(6.0),
            sex: Sex::Male,
            ..Default::default()
        },
        CaseInput {
            text: "joint pain, i take blood thinners and have kidney disease".into(),
            age: Some(70.0),
            ..Default::default()
        },
    ]
    .map(|p| kb.prepare(p));
    for p in &people {
        let avoid = contraindications(&kb, p);
        assert!(!avoid.is_empty(), "{}: no contraindication recognised", p.text);
        for r in model.retrieve(p, 20) {
            let a = &kb.advice[r.advice];
            assert!(
                !a.avoid_if.iter().any(|c| avoid.contains(c)),
                "{} offered to {:?}",
                a.id,
                p.text
            );
        }
    }
    let pregnant = contraindications(&kb, &people[0]);
    assert!(pregnant.contains(&Contraindication::Pregnancy));
    assert!(contraindications(&kb, &people[1]).contains(&Contraindication::ChildUnder12));
}

#[test]
fn retrieves_fitting_advice() {
    let (kb, model) = setup();
    let input = CaseInput {
        text: "watery diarrhoea and being sick since last night".into(),
        age: Some(35.0),
        ..Default::default()
    };
    let input = kb.prepare(input);
    let got = model.retrieve(&input, 5);
    let fits = got.iter().any(|r| {
        let a = &kb.advice[r.advice];
        a.findings.iter().any(|&f| {
            ["diarrhoea", "vomiting", "dehydration"].contains(&kb.findings[f].id.as_str())
        }) || a.conditions.iter().any(|&c| kb.conditions[c].id == "gastroenteritis")
    });
    assert!(fits, "{:?}", got.iter().map(|r| &kb.advice[r.advice].id).collect::<Vec<_>>());
}

/// Care covers only what is plausible for this person: nothing about an overdose, a pregnancy
/// or an eye problem for a headache with a stiff neck and a fever (the README's example), and
/// no pregnancy advice for a man.
#[test]
fn care_covers_only_plausible_problems() {
    let (kb, model) = setup();
    let input = CaseInput {
        text:
            "I am 34 and I have had a pounding headache and a stiff neck since yesterday, no rash"
                .into(),
        vitals: domain::Vitals { temperature_c: Some(39.2), ..Default::default() },
        ..Default::default()
    };
    let case = kb.prepare(input);
    let got: Vec<&str> =
        model.retrieve(&case, 5).iter().map(|r| kb.advice[r.advice].id.as_str()).collect();
    assert!(!got.is_empty());
    for a in &got {
        assert!(!a.contains("overdose") && !a.contains("pregnan") && !a.contains("eye"), "{got:?}");
    }
    let man = CaseInput {
        text: "tummy pain low down and some bleeding".into(),
        age: Some(30.0),
        sex: Sex::Male,
        ..Default::default()
    };
    let case = kb.prepare(man);
    for r in model.retrieve(&case, 5) {
        let a = &kb.advice[r.advice];
        assert!(
            a.conditions.is_empty() || a.conditions.iter().any(|&c| !kb.conditions[c].pregnancy),
            "{}",
            a.id
        );
    }
}
