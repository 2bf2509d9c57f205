//! Building the JSON answer of `POST /v1/triage` from the coordinator's outcome.

use crate::wire::Validated;
use coordinator::{AgentStatus, TriageOutcome};
use kb::{AdviceKind, KnowledgeBase};
use serde_json::{Value, json};

pub const DISCLAIMER: &str = "Triagent gives information, not a diagnosis. It can be wrong and it does not replace a \
doctor, nurse or pharmacist. If you are worried, or if things get worse, contact a health professional; in an \
emergency call your local emergency number now.";

fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

/// The answer as API.md describes it.
pub fn build(kb: &KnowledgeBase, v: &Validated, o: &TriageOutcome) -> Value {
    let input = &v.input;
    // Everything known to be present or absent, and where it came from. A measurement wins
    // over what was sent, which wins over what was read in the text: one state per finding.
    let mut present = vec![false; kb.findings.len()];
    let mut absent = vec![false; kb.findings.len()];
    let mut findings: Vec<Value> = Vec::new();
    let from_vitals = kb.findings_from_vitals(&input.vitals);
    for &i in &from_vitals {
        present[i] = true;
        findings.push(json!({"id": kb.findings[i].id, "name": kb.findings[i].name, "present": true, "probability": 1.0, "source": "vitals"}));
    }
    for &(i, p) in &input.findings {
        if present[i] || absent[i] {
            continue;
        }
        if p { present[i] = true } else { absent[i] = true }
        findings.push(json!({"id": kb.findings[i].id, "name": kb.findings[i].name, "present": p, "probability": 1.0, "source": "structured"}));
    }
    for f in o.findings.as_deref().unwrap_or(&[]) {
        if present[f.finding] || absent[f.finding] {
            continue;
        }
        if f.present { present[f.finding] = true } else { absent[f.finding] = true }
        findings.push(json!({"id": kb.findings[f.finding].id, "name": kb.findings[f.finding].name, "present": f.present, "probability": round(f.probability), "source": "text"}));
    }

    let conditions: Vec<Value> = o
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .take(v.max_conditions)
        .map(|r| {
            let c = &kb.conditions[r.condition];
            let mut item = json!({"id": c.id, "name": c.name, "icd10": c.icd10, "probability": round(r.probability), "urgency": c.urgency.as_str()});
            if v.explain {
                let supporting: Vec<&str> = c.findings.iter().filter(|f| present[f.finding]).map(|f| kb.findings[f.finding].id.as_str()).collect();
                let opposing: Vec<&str> = c
                    .findings
                    .iter()
                    .filter(|f| absent[f.finding])
                    .map(|f| f.finding)
                    .chain(c.opposing.iter().copied().filter(|&o| present[o]))
                    .map(|i| kb.findings[i].id.as_str())
                    .collect();
                item["supporting"] = json!(supporting);
                item["opposing"] = json!(opposing);
            }
            item
        })
        .collect();

    // Emergency advice first when the level is an emergency.
    let mut care: Vec<usize> = o.care.as_deref().unwrap_or(&[]).iter().map(|r| r.advice).collect();
    if o.decision.level.is_emergency() {
        care.sort_by_key(|&a| kb.advice[a].kind != AdviceKind::Emergency);
    }
    let care: Vec<Value> = care
        .iter()
        .map(|&a| {
            let a = &kb.advice[a];
            json!({
                "id": a.id, "kind": a.kind.as_str(), "title": a.title, "advice": a.advice,
                "warning_signs": a.warning_signs,
                "applies_to": a.conditions.iter().map(|&c| kb.conditions[c].id.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();

    let mut reasons: Vec<String> = o.decision.red_flags.iter().map(|&r| kb.rules[r].reason.clone()).collect();
    if let Some(e) = &o.emergency {
        reasons.push(format!("The emergency detector assessed this as {}.", e.model_level));
    }
    if o.decision.floor_applied {
        reasons.push("The emergency detector was unavailable: red-flag rules were applied and the level is at least 'consultation'.".into());
    }
    let mut agents = serde_json::Map::new();
    for r in &o.runs {
        agents.insert(r.kind.as_str().into(), json!({"status": r.status.as_str(), "latency_ms": (r.latency_ms * 1000.0).round() / 1000.0, "model": r.version}));
    }
    let mut inferred = serde_json::Map::new();
    if let Some(a) = v.inferred_age {
        inferred.insert("age".into(), json!((f64::from(a) * 100.0).round() / 100.0));
    }
    if let Some(s) = v.inferred_sex {
        inferred.insert("sex".into(), json!(s.as_str()));
    }
    let mut answer = json!({
        "id": o.id,
        "triage": {
            "level": o.decision.level.as_str(),
            "reasons": reasons,
            "red_flags": o.decision.red_flags.iter().map(|&r| kb.rules[r].id.as_str()).collect::<Vec<_>>(),
        },
        "findings": findings,
        "conditions": conditions,
        "care": care,
        "agents": agents,
        "degraded": o.degraded,
        "inferred": inferred,
        "disclaimer": DISCLAIMER,
    });
    if o.runs.iter().any(|r| r.kind == coordinator::AgentKind::ConditionMatcher && r.status != AgentStatus::Ok) {
        answer["differential_unavailable"] = json!(true);
    }
    answer
}
