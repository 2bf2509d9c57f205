//! The answer of `POST /v1/triage`, typed, built from the coordinator's outcome (`triage::Outcome`).

use crate::openapi::{AdviceKindName, AgentStatusName, LevelName};
use crate::wire::Validated;
use triage::{AgentKind, AgentStatus, Outcome};
use domain::ExtractedFinding;
use kb::{AdviceKind, KnowledgeBase};
use reading::{ReadFinding, Reading};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub const DISCLAIMER: &str = "Triagent gives information, not a diagnosis. It can be wrong and it does not replace a \
doctor, nurse or pharmacist. If you are worried, or if things get worse, contact a health professional; in an \
emergency call your local emergency number now.";

/// A triage answer, as returned by `POST /v1/triage` and kept for `GET /v1/triage/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriageAnswer {
    /// The report id: `GET /v1/triage/{id}` returns this same answer.
    pub id: Uuid,
    pub triage: TriageSummary,
    /// Every finding known to be present or absent, once each: a measurement wins over what
    /// was sent, which wins over what was read in the text.
    pub findings: Vec<FindingAnswer>,
    /// Ranked, most probable first; calibrated probabilities summing to at most 1. Empty when
    /// the condition matcher was unavailable.
    pub conditions: Vec<ConditionAnswer>,
    /// Care advice; emergency advice first when the level is an emergency.
    pub care: Vec<CareAnswer>,
    pub agents: AgentsAnswer,
    /// True when any agent is not `ok`; the answer still keeps the safety floor.
    pub degraded: bool,
    pub inferred: Inferred,
    pub disclaimer: String,
    /// Present (true) when the condition matcher was unavailable, so `conditions` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differential_unavailable: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriageSummary {
    #[schema(value_type = LevelName)]
    pub level: &'static str,
    /// Why the level is what it is, in plain words.
    pub reasons: Vec<String>,
    /// Ids of the red-flag rules that fired.
    pub red_flags: Vec<String>,
}

/// Where a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingSource {
    /// Read in the text (the shared reading, its confidence refined by the symptom classifier).
    Text,
    /// Sent in `findings`.
    Structured,
    /// Derived from a measured vital sign.
    Vitals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingAnswer {
    /// A symptom id of `GET /v1/symptoms`.
    pub id: String,
    pub name: String,
    pub present: bool,
    /// 1 for sent and measured findings.
    pub probability: f64,
    pub source: FindingSource,
    /// For a finding read in the text: the part of the text that says it, as character
    /// offsets `[start, end)` into `text` (Unicode scalar values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionAnswer {
    pub id: String,
    pub name: String,
    pub icd10: String,
    pub probability: f64,
    /// The usual urgency of the condition.
    #[schema(value_type = LevelName)]
    pub urgency: &'static str,
    /// The findings of this answer that raised the condition in the knowledge base's naive
    /// Bayes, strongest first: present findings it usually has (a finding it lists, or one
    /// implied by one it lists) (only with `options.explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supporting: Option<Vec<String>>,
    /// The findings of this answer that lowered it, strongest first: findings known present that
    /// argue against it or that it does not have, and its usual findings known absent (only
    /// with `options.explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opposing: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CareAnswer {
    pub id: String,
    #[schema(value_type = AdviceKindName)]
    pub kind: &'static str,
    pub title: String,
    pub advice: String,
    /// Signs that mean the person should seek care after all.
    pub warning_signs: Vec<String>,
    /// Condition ids this advice is for.
    pub applies_to: Vec<String>,
}

/// How each agent did on this request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsAnswer {
    pub symptom_classifier: AgentAnswer,
    pub condition_matcher: AgentAnswer,
    pub treatment_retriever: AgentAnswer,
    pub emergency_detector: AgentAnswer,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentAnswer {
    #[schema(value_type = AgentStatusName)]
    pub status: &'static str,
    pub latency_ms: f64,
    /// The model version that answered (empty when the agent could not be reached).
    pub model: String,
}

/// What the service read from the text because the request did not say it.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Inferred {
    /// Age in years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::SexName>)]
    pub sex: Option<&'static str>,
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

/// The answer as API.md describes it.
/// How sure the answer is of a finding read in the text: the reading's confidence, moved
/// halfway towards the symptom classifier's probability for the same assertion when the
/// classifier answered.
fn text_confidence(read: &ReadFinding, classifier: Option<&[ExtractedFinding]>) -> f32 {
    let model = classifier.and_then(|c| c.iter().find(|e| e.finding == read.finding as usize)).map(|e| e.probability);
    match model {
        Some(p) => 0.5 * (read.confidence + p),
        None => read.confidence,
    }
}

/// Character offsets of a byte range of `text`.
fn char_span(text: &str, start: u32, end: u32) -> Option<[usize; 2]> {
    let (s, e) = (start as usize, end as usize);
    if e > text.len() || s > e || !text.is_char_boundary(s) || !text.is_char_boundary(e) {
        return None;
    }
    let cs = text[..s].chars().count();
    Some([cs, cs + text[s..e].chars().count()])
}

pub fn build(kb: &KnowledgeBase, id: Uuid, v: &Validated, reading: &Reading, o: &Outcome) -> TriageAnswer {
    let input = &v.input;
    // Everything known to be present or absent, and where it came from. A measurement wins
    // over what was sent, which wins over what was read in the text: one state per finding.
    let mut present = vec![false; kb.findings.len()];
    let mut absent = vec![false; kb.findings.len()];
    let mut findings: Vec<FindingAnswer> = Vec::new();
    let finding = |i: usize, present: bool, probability: f64, source: FindingSource| FindingAnswer {
        id: kb.findings[i].id.clone(),
        name: kb.findings[i].name.clone(),
        present,
        probability,
        source,
        span: None,
    };
    for i in kb.findings_from_vitals(&input.vitals) {
        present[i] = true;
        findings.push(finding(i, true, 1.0, FindingSource::Vitals));
    }
    for &(i, p) in &input.findings {
        if present[i] || absent[i] {
            continue;
        }
        if p { present[i] = true } else { absent[i] = true }
        findings.push(finding(i, p, 1.0, FindingSource::Structured));
    }
    // The text's findings are the reading's, whether or not the classifier answered.
    for r in &reading.findings {
        let i = r.finding as usize;
        let p = if r.is_present() {
            true
        } else if r.is_absent() {
            false
        } else {
            continue;
        };
        if present[i] || absent[i] {
            continue;
        }
        if p { present[i] = true } else { absent[i] = true }
        let mut f = finding(i, p, round(text_confidence(r, o.findings.as_deref())), FindingSource::Text);
        f.span = char_span(&input.text, r.start, r.end);
        findings.push(f);
    }

    // Every finding this answer shows, once, for the explanations.
    let said: Vec<(usize, bool)> = if v.explain {
        (0..kb.findings.len()).filter_map(|f| if present[f] { Some((f, true)) } else if absent[f] { Some((f, false)) } else { None }).collect()
    } else {
        Vec::new()
    };
    let conditions: Vec<ConditionAnswer> = o
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .take(v.max_conditions)
        .map(|r| {
            let c = &kb.conditions[r.condition];
            let (supporting, opposing) = if v.explain {
                let (s, o) = explain(kb, r.condition, &said);
                (Some(s), Some(o))
            } else {
                (None, None)
            };
            ConditionAnswer { id: c.id.clone(), name: c.name.clone(), icd10: c.icd10.clone(), probability: round(r.probability), urgency: c.urgency.as_str(), supporting, opposing }
        })
        .collect();

    // Emergency advice first when the level is an emergency.
    let mut care: Vec<usize> = o.care.as_deref().unwrap_or(&[]).iter().map(|r| r.advice).collect();
    if o.decision.level.is_emergency() {
        care.sort_by_key(|&a| kb.advice[a].kind != AdviceKind::Emergency);
    }
    let care: Vec<CareAnswer> = care
        .iter()
        .map(|&a| {
            let a = &kb.advice[a];
            CareAnswer {
                id: a.id.clone(),
                kind: a.kind.as_str(),
                title: a.title.clone(),
                advice: a.advice.clone(),
                warning_signs: a.warning_signs.clone(),
                applies_to: a.conditions.iter().map(|&c| kb.conditions[c].id.clone()).collect(),
            }
        })
        .collect();

    let mut reasons: Vec<String> = o.decision.red_flags.iter().map(|&r| kb.rules[r].reason.clone()).collect();
    if let Some(e) = &o.emergency {
        reasons.push(format!("The emergency detector assessed this as {}.", e.model_level));
    }
    if o.decision.floor_applied {
        reasons.push("The emergency detector was unavailable: red-flag rules were applied and the level is at least 'consultation'.".into());
    }
    // An agent the coordinator did not run (a service built with fewer agents) has failed.
    let agent = |kind: AgentKind| match o.runs.iter().find(|r| r.kind == kind) {
        Some(r) => AgentAnswer { status: r.status.as_str(), latency_ms: (r.latency_ms * 1000.0).round() / 1000.0, model: r.version.clone() },
        None => AgentAnswer { status: AgentStatus::Failed.as_str(), latency_ms: 0.0, model: String::new() },
    };
    let agents = AgentsAnswer {
        symptom_classifier: agent(AgentKind::SymptomClassifier),
        condition_matcher: agent(AgentKind::ConditionMatcher),
        treatment_retriever: agent(AgentKind::TreatmentRetriever),
        emergency_detector: agent(AgentKind::EmergencyDetector),
    };
    let condition_matcher_down = agents.condition_matcher.status != AgentStatus::Ok.as_str();
    TriageAnswer {
        id,
        triage: TriageSummary {
            level: o.decision.level.as_str(),
            reasons,
            red_flags: o.decision.red_flags.iter().map(|&r| kb.rules[r].id.clone()).collect(),
        },
        findings,
        conditions,
        care,
        agents,
        degraded: o.degraded,
        inferred: Inferred { age: v.inferred_age.map(|a| (f64::from(a) * 100.0).round() / 100.0), sex: v.inferred_sex.map(|s| s.as_str()) },
        disclaimer: DISCLAIMER.into(),
        differential_unavailable: condition_matcher_down.then_some(true),
    }
}

/// A denied finding counts against a condition when it removes at least this much of the log
/// score (the condition has it at least one time in ten).
const ABSENT_EFFECT: f32 = 0.1;
/// At most this many findings each way.
const EXPLAIN_MAX: usize = 8;

/// The findings of this answer that moved condition `c` up (supporting) and down (opposing) in
/// the knowledge base's naive Bayes (`kb::Bayes::effect`), strongest first. The learned
/// correction on top is not itemised. Present findings the condition neither lists nor opposes
/// move it by the knowledge base's leak and are left out; a present finding it opposes, and a
/// usual finding denied, are opposing.
fn explain(kb: &KnowledgeBase, c: usize, said: &[(usize, bool)]) -> (Vec<String>, Vec<String>) {
    let bayes = kb.bayes();
    let mut up: Vec<(f32, usize)> = Vec::new();
    let mut down: Vec<(f32, usize)> = Vec::new();
    for &(f, present) in said {
        let e = bayes.effect(c, f, present);
        if present && e > 0.0 {
            up.push((e, f));
        } else if (present && e < 0.0) || (!present && e <= -ABSENT_EFFECT) {
            down.push((e, f));
        }
    }
    up.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    down.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let ids = |v: Vec<(f32, usize)>| v.into_iter().take(EXPLAIN_MAX).map(|(_, f)| kb.findings[f].id.clone()).collect();
    (ids(up), ids(down))
}
