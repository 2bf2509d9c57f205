//! The answer of `POST /v1/triage` on the wire: the JSON types of docs/api.md (with their OpenAPI
//! schemas) and the mapping of the triage core's typed answer (`triage::answer::Answer`, where
//! it is assembled) into them. Nothing here decides what the answer says; it names, rounds and
//! serialises.

use crate::openapi::{AdviceKindName, AgentStatusName, LevelName};
use serde::Serialize;
use serde_json::value::RawValue;
use triage::AgentKind;
use triage::answer::{AgentReport, Answer};
use utoipa::ToSchema;
use uuid::Uuid;

pub use triage::answer::DISCLAIMER;

/// A triage answer, as returned by `POST /v1/triage` and kept for `GET /v1/triage/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriageAnswer<'a> {
    /// The report id: `GET /v1/triage/{id}` returns this same answer.
    pub id: Uuid,
    pub triage: TriageSummary<'a>,
    /// Every finding known to be present or absent, once each: a measurement wins over what
    /// was sent, which wins over what was read in the text.
    pub findings: Vec<FindingAnswer<'a>>,
    /// Ranked, most probable first; calibrated probabilities summing to at most 1. Empty when
    /// the condition matcher was unavailable.
    pub conditions: Vec<ConditionAnswer<'a>>,
    /// Care advice; emergency advice first when the level is an emergency.
    pub care: Vec<CareAnswer<'a>>,
    pub agents: AgentsAnswer<'a>,
    /// True when any agent is not `ok`; the answer still keeps the safety floor.
    pub degraded: bool,
    pub inferred: Inferred,
    pub disclaimer: &'static str,
    /// Present (true) when the condition matcher was unavailable, so `conditions` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differential_unavailable: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriageSummary<'a> {
    #[schema(value_type = LevelName)]
    pub level: &'static str,
    /// Why the level is what it is, in plain words.
    pub reasons: &'a [String],
    /// Ids of the red-flag rules that fired.
    pub red_flags: Vec<&'a str>,
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
pub struct FindingAnswer<'a> {
    /// A symptom id of `GET /v1/symptoms`.
    pub id: &'a str,
    pub name: &'a str,
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
pub struct ConditionAnswer<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub icd10: &'a str,
    pub probability: f64,
    /// The usual urgency of the condition.
    #[schema(value_type = LevelName)]
    pub urgency: &'static str,
    /// The findings of this answer that raised the condition in the knowledge base's naive
    /// Bayes, strongest first: present findings it usually has (a finding it lists, or one
    /// implied by one it lists) (only with `options.explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supporting: Option<Vec<&'a str>>,
    /// The findings of this answer that lowered it, strongest first: findings known present that
    /// argue against it or that it does not have, and its usual findings known absent (only
    /// with `options.explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opposing: Option<Vec<&'a str>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CareAnswer<'a> {
    pub id: &'a str,
    #[schema(value_type = AdviceKindName)]
    pub kind: &'static str,
    #[schema(value_type = String)]
    pub title: &'a RawValue,
    #[schema(value_type = String)]
    pub advice: &'a RawValue,
    /// Signs that mean the person should seek care after all.
    #[schema(value_type = Vec<String>)]
    pub warning_signs: &'a RawValue,
    /// Condition ids this advice is for.
    pub applies_to: Vec<&'a str>,
}

/// How each agent did on this request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsAnswer<'a> {
    pub symptom_classifier: AgentAnswer<'a>,
    pub condition_matcher: AgentAnswer<'a>,
    pub treatment_retriever: AgentAnswer<'a>,
    pub emergency_detector: AgentAnswer<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentAnswer<'a> {
    #[schema(value_type = AgentStatusName)]
    pub status: &'static str,
    pub latency_ms: f64,
    /// The model version that answered (empty when the agent could not be reached).
    pub model: &'a str,
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

/// Three decimals, as every probability of the answer.
/// The texts of every piece of advice in the knowledge base, serialised once when the service
/// starts: they are the longest strings of an answer, and escaping them for every answer was a
/// good part of its serialisation.
#[derive(Debug)]
pub struct AdviceTexts(Vec<AdviceJson>);

#[derive(Debug)]
struct AdviceJson {
    title: Box<RawValue>,
    advice: Box<RawValue>,
    warning_signs: Box<RawValue>,
}

impl AdviceTexts {
    pub fn of(kb: &kb::KnowledgeBase) -> AdviceTexts {
        AdviceTexts(
            kb.advice
                .iter()
                .map(|a| AdviceJson {
                    title: raw(&a.title),
                    advice: raw(&a.advice),
                    warning_signs: raw(&a.warning_signs),
                })
                .collect(),
        )
    }
}

/// `value` as JSON text (strings and lists of strings always serialise).
fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    let text = serde_json::to_string(value).expect("strings serialise");
    RawValue::from_string(text).expect("serde_json writes valid JSON")
}

fn round(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

impl From<triage::answer::FindingSource> for FindingSource {
    fn from(s: triage::answer::FindingSource) -> Self {
        match s {
            triage::answer::FindingSource::Text => FindingSource::Text,
            triage::answer::FindingSource::Structured => FindingSource::Structured,
            triage::answer::FindingSource::Vitals => FindingSource::Vitals,
        }
    }
}

impl<'a> From<&'a AgentReport> for AgentAnswer<'a> {
    fn from(r: &'a AgentReport) -> Self {
        AgentAnswer {
            status: r.status.as_str(),
            latency_ms: (r.latency_ms * 1000.0).round() / 1000.0,
            model: &r.model,
        }
    }
}

/// The answer as docs/api.md describes it, under its report id.
pub fn wire<'a>(id: Uuid, a: &'a Answer<'a>, texts: &'a AdviceTexts) -> TriageAnswer<'a> {
    let findings = a
        .findings
        .iter()
        .map(|f| FindingAnswer {
            id: &f.finding.id,
            name: &f.finding.name,
            present: f.present,
            probability: round(f.probability),
            source: f.source.into(),
            span: f.span,
        })
        .collect();
    let ids = |v: &[&'a kb::Finding]| v.iter().map(|f| f.id.as_str()).collect();
    let conditions = a
        .conditions
        .iter()
        .map(|r| {
            let c = r.condition;
            ConditionAnswer {
                id: &c.id,
                name: &c.name,
                icd10: &c.icd10,
                probability: round(r.probability),
                urgency: c.urgency.as_str(),
                supporting: r.explanation.as_ref().map(|e| ids(&e.supporting)),
                opposing: r.explanation.as_ref().map(|e| ids(&e.opposing)),
            }
        })
        .collect();
    let care = a
        .care
        .iter()
        .map(|c| {
            let text = &texts.0[c.index];
            CareAnswer {
                id: &c.advice.id,
                kind: c.advice.kind.as_str(),
                title: &text.title,
                advice: &text.advice,
                warning_signs: &text.warning_signs,
                applies_to: c.applies_to.iter().map(|c| c.id.as_str()).collect(),
            }
        })
        .collect();
    let agent = |kind: AgentKind| {
        AgentAnswer::from(a.agents.iter().find(|r| r.kind == kind).expect("every kind reported"))
    };
    TriageAnswer {
        id,
        triage: TriageSummary {
            level: a.level.as_str(),
            reasons: &a.reasons,
            red_flags: a.red_flags.iter().map(|r| r.id.as_str()).collect(),
        },
        findings,
        conditions,
        care,
        agents: AgentsAnswer {
            symptom_classifier: agent(AgentKind::SymptomClassifier),
            condition_matcher: agent(AgentKind::ConditionMatcher),
            treatment_retriever: agent(AgentKind::TreatmentRetriever),
            emergency_detector: agent(AgentKind::EmergencyDetector),
        },
        degraded: a.degraded,
        inferred: Inferred {
            age: a.inferred_age.map(|a| (f64::from(a) * 100.0).round() / 100.0),
            sex: a.inferred_sex.map(|s| s.as_str()),
        },
        disclaimer: DISCLAIMER,
        differential_unavailable: a.differential_unavailable.then_some(true),
    }
}
