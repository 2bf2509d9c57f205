//! Knowledge-base validation on the shipped files and on a deliberately broken fixture.

use domain::{AgeBand, Sex, TriageLevel, Vitals};
use kb::{BodySystem, FindingKind, KbError, RuleInput, load_dir};
use std::path::Path;
use std::sync::OnceLock;

fn shipped() -> &'static kb::KnowledgeBase {
    static KB: OnceLock<kb::KnowledgeBase> = OnceLock::new();
    KB.get_or_init(|| match load_dir(kb::default_dir()) {
        Ok(kb) => kb,
        Err(e) => panic!("{e}"),
    })
}

#[test]
fn broken_fixture_reports_every_problem_with_file_entry_and_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let Err(KbError::Invalid(issues)) = load_dir(&dir) else {
        panic!("broken fixture must not load")
    };
    let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
    let has = |needle: &str| {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "expected an issue containing {needle:?} in:\n{}",
            text.join("\n")
        )
    };
    has("findings/a.toml: entry 'fever', field 'id': duplicate finding id");
    has(
        "findings/a.toml: entry 'cough', field 'lay/clinical': phrase 'temperature' is also a phrase of 'fever'",
    );
    has("conditions/a.toml: entry 'flu', field 'findings': unknown finding 'sneezing'");
    has("conditions/a.toml: entry 'flu', field 'findings': finding 'cough' is listed twice");
    has(
        "conditions/a.toml: entry 'flu', field 'findings.freq': frequency of 'cough' must be in (0, 1]",
    );
    has("conditions/b.toml: TOML parse error at line 6");
    has("unknown variant `sometimes`, expected one of `emergency_ambulance`");
    has("conditions/c.toml: entry 'bad_code', field 'icd10': 'flu' is not an ICD-10 code");
    has("conditions/c.toml: entry 'bad_code', field 'min_age': min_age is above max_age");
    has("advice/a.toml: TOML parse error at line 9");
    has("unknown field `colour`");
    has("advice/b.toml: entry 'fluids', field 'conditions': unknown condition 'no_such_condition'");
    has("advice/b.toml: entry 'fluids', field 'warning_signs'");
    has("rules/a.toml: entry 'hot', field 'all': unknown finding 'stiff_neck'");
    has(
        "rules/a.toml: entry 'hot', field 'example': every rule needs at least one firing and one not-firing example",
    );
}

#[test]
fn missing_directory_is_a_clear_io_error() {
    let err = load_dir("/nonexistent/kb").unwrap_err();
    assert!(
        err.to_string().contains("cannot read knowledge base at /nonexistent/kb/findings"),
        "{err}"
    );
}

#[test]
fn shipped_knowledge_base_is_valid_and_large_enough() {
    let kb = shipped();
    assert!(kb.findings.len() >= 400, "{} findings", kb.findings.len());
    assert!(kb.conditions.len() >= 250, "{} conditions", kb.conditions.len());
    assert!(kb.advice.len() >= 250, "{} advice entries", kb.advice.len());
    assert!(kb.rules.len() >= 25, "{} rules", kb.rules.len());
    assert!(kb.findings.iter().filter(|f| f.red_flag).count() >= 40);
    assert!(kb.findings.iter().filter(|f| f.kind == FindingKind::RiskFactor).count() >= 30);
}

#[test]
fn shipped_conditions_cover_people_and_systems() {
    let kb = shipped();
    for band in AgeBand::ALL {
        let n = kb.conditions.iter().filter(|c| c.ages.contains(&band)).count();
        assert!(n >= 40, "only {n} conditions for {band:?}");
    }
    let count = |s: BodySystem| kb.conditions.iter().filter(|c| c.system == s).count();
    for s in [
        BodySystem::Cardiovascular,
        BodySystem::Respiratory,
        BodySystem::Gastrointestinal,
        BodySystem::Neurological,
        BodySystem::MentalHealth,
        BodySystem::Musculoskeletal,
        BodySystem::Skin,
        BodySystem::Injury,
        BodySystem::Poisoning,
        BodySystem::Infection,
        BodySystem::Reproductive,
        BodySystem::Ent,
        BodySystem::Eye,
    ] {
        assert!(count(s) >= 4, "{s:?} has {} conditions", count(s));
    }
    assert!(kb.conditions.iter().filter(|c| c.pregnancy).count() >= 5);
    for level in TriageLevel::ALL {
        assert!(kb.conditions.iter().filter(|c| c.urgency == level).count() >= 10, "{level}");
    }
    // Every condition has at least one piece of advice that applies to it.
    for (i, c) in kb.conditions.iter().enumerate() {
        assert!(kb.advice.iter().any(|a| a.conditions.contains(&i)), "no advice for {}", c.id);
    }
}

/// Every red-flag rule is tested by its own examples: structured, and from free text where the
/// example gives one.
#[test]
fn every_red_flag_rule_passes_its_examples() {
    let kb = shipped();
    let mut failures = Vec::new();
    for rule in &kb.rules {
        for (k, ex) in rule.examples.iter().enumerate() {
            let structured: Vec<(usize, bool)> = ex.findings.iter().map(|&i| (i, true)).collect();
            let mask = kb.present_mask("", &structured, &[], &ex.vitals);
            let input = RuleInput {
                present: &mask,
                age: ex.age,
                sex: ex.sex.unwrap_or(Sex::Unknown),
                vitals: &ex.vitals,
            };
            if rule.fires(&input) != ex.fires {
                failures.push(format!(
                    "{} example {k} (structured): expected fires={}",
                    rule.id, ex.fires
                ));
            }
            if let Some(text) = &ex.text {
                let mask = kb.present_mask(text, &[], &[], &ex.vitals);
                let input = RuleInput {
                    present: &mask,
                    age: ex.age,
                    sex: ex.sex.unwrap_or(Sex::Unknown),
                    vitals: &ex.vitals,
                };
                if rule.fires(&input) != ex.fires {
                    let read: Vec<&str> = mask
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| **p)
                        .map(|(i, _)| kb.findings[i].id.as_str())
                        .collect();
                    failures.push(format!(
                        "{} example {k} (text {text:?}, read {read:?}): expected fires={}",
                        rule.id, ex.fires
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vitals_imply_findings() {
    let kb = shipped();
    let v = Vitals { temperature_c: Some(39.2), spo2: Some(88.0), ..Default::default() };
    let ids: Vec<&str> =
        kb.findings_from_vitals(&v).into_iter().map(|i| kb.findings[i].id.as_str()).collect();
    assert!(ids.contains(&"fever"), "{ids:?}");
    assert!(ids.contains(&"low_oxygen_saturation"), "{ids:?}");
    assert!(!ids.contains(&"high_fever"), "{ids:?}");
}

#[test]
fn phrase_matcher_reads_negations() {
    let kb = shipped();
    let f = kb
        .lexicon()
        .findings("I've had a pounding headache and a stiff neck since yesterday, no rash");
    let by_id =
        |id: &str| f.iter().find(|(i, _)| kb.findings[*i as usize].id == id).map(|(_, p)| *p);
    assert_eq!(by_id("headache"), Some(true));
    assert_eq!(by_id("neck_stiffness"), Some(true));
    assert_eq!(by_id("rash"), Some(false));
}

#[test]
fn minimal_fixture_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minimal");
    let kb = load_dir(&dir).expect("minimal fixture is valid");
    assert_eq!(kb.conditions.len(), 1);
    let rule = &kb.rules[0];
    for ex in &rule.examples {
        let mask = kb.present_mask("", &[], &[], &ex.vitals);
        let input =
            RuleInput { present: &mask, age: ex.age, sex: Sex::Unknown, vitals: &ex.vitals };
        assert_eq!(rule.fires(&input), ex.fires);
    }
}
