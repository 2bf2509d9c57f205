//! Answer assembly: what a triage answer says, built from the request, its reading and the
//! [`Outcome`], as plain typed values. No transport here: the API maps an [`Answer`] to its
//! JSON wire types (and rounds its numbers) without deciding anything.

use crate::agent::AgentKind;
use crate::outcome::{AgentStatus, Outcome};
use domain::{CaseInput, ExtractedFinding, Sex, TriageLevel};
use kb::{AdviceKind, KnowledgeBase};
use reading::{ReadFinding, Reading};

/// Said with every answer.
pub const DISCLAIMER: &str = "Triagent gives information, not a diagnosis. It can be wrong and it does not replace a \
doctor, nurse or pharmacist. If you are worried, or if things get worse, contact a health professional; in an \
emergency call your local emergency number now.";

/// What assembly needs of a validated request beyond the agents' outcome: the agents' input,
/// what was read from the text because the request did not say it, and how the answer is
/// shaped.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub input: &'a CaseInput,
    /// Age read from the text because the request gave none.
    pub inferred_age: Option<f32>,
    /// Sex read from the text because the request gave none.
    pub inferred_sex: Option<Sex>,
    /// How many conditions to show.
    pub max_conditions: usize,
    /// Whether each condition lists the findings that moved it.
    pub explain: bool,
}

/// A triage answer, typed; borrowed from the knowledge base it was assembled over.
#[derive(Debug, Clone)]
pub struct Answer<'kb> {
    pub level: TriageLevel,
    /// Why the level is what it is, in plain words.
    pub reasons: Vec<String>,
    /// The red-flag rules that fired, most urgent first.
    pub red_flags: Vec<&'kb kb::Rule>,
    /// Every finding known present or absent, once each: a measurement wins over what was
    /// sent, which wins over what was read in the text.
    pub findings: Vec<AnsweredFinding<'kb>>,
    /// Most probable first, at most [`Request::max_conditions`]; empty when the condition
    /// matcher did not answer.
    pub conditions: Vec<AnsweredCondition<'kb>>,
    /// Care advice; emergency advice first when the level is an emergency.
    pub care: Vec<AnsweredCare<'kb>>,
    /// How each agent did, in [`AgentKind::ALL`] order.
    pub agents: [AgentReport; 4],
    /// True when any agent is not ok.
    pub degraded: bool,
    pub inferred_age: Option<f32>,
    pub inferred_sex: Option<Sex>,
    /// True when the condition matcher was not ok, so `conditions` is empty.
    pub differential_unavailable: bool,
}

/// Where a finding of the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingSource {
    /// Read in the text (the shared reading, its confidence refined by the symptom classifier).
    Text,
    /// Sent with the request.
    Structured,
    /// Derived from a measured vital sign.
    Vitals,
}

#[derive(Debug, Clone)]
pub struct AnsweredFinding<'kb> {
    pub finding: &'kb kb::Finding,
    pub present: bool,
    /// 1 for sent and measured findings.
    pub probability: f32,
    pub source: FindingSource,
    /// For a finding read in the text: the part of the text that says it, as character
    /// offsets `[start, end)` (Unicode scalar values).
    pub span: Option<[usize; 2]>,
}

#[derive(Debug, Clone)]
pub struct AnsweredCondition<'kb> {
    pub condition: &'kb kb::Condition,
    pub probability: f32,
    /// With [`Request::explain`]: the findings of the answer that raised and lowered it.
    pub explanation: Option<Explanation<'kb>>,
}

#[derive(Debug, Clone)]
pub struct AnsweredCare<'kb> {
    /// Its index in the knowledge base's advice.
    pub index: usize,
    pub advice: &'kb kb::Advice,
    /// The conditions this advice is for.
    pub applies_to: Vec<&'kb kb::Condition>,
}

/// The findings of an answer that moved one condition in the knowledge base's naive Bayes,
/// strongest first.
#[derive(Debug, Clone)]
pub struct Explanation<'kb> {
    pub supporting: Vec<&'kb kb::Finding>,
    pub opposing: Vec<&'kb kb::Finding>,
}

/// How one agent did on the request.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentReport {
    pub kind: AgentKind,
    pub status: AgentStatus,
    pub latency_ms: f64,
    /// The model version that answered (empty when the agent was not run).
    pub model: String,
}

/// How sure the answer is of a finding read in the text: the reading's confidence, moved
/// halfway towards the symptom classifier's probability for the same assertion when the
/// classifier answered.
fn text_confidence(read: &ReadFinding, classifier: Option<&[ExtractedFinding]>) -> f32 {
    let model = classifier
        .and_then(|c| c.iter().find(|e| e.finding == read.finding as usize))
        .map(|e| e.probability);
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

/// The answer to a request, from its reading (the same the agents read) and the outcome.
pub fn assemble<'kb>(
    kb: &'kb KnowledgeBase,
    request: &Request<'_>,
    reading: &Reading,
    o: &Outcome,
) -> Answer<'kb> {
    let input = request.input;
    // Everything known to be present or absent, and where it came from. A measurement wins
    // over what was sent, which wins over what was read in the text: one state per finding.
    let mut present = vec![false; kb.findings.len()];
    let mut absent = vec![false; kb.findings.len()];
    // Gives finding `i` its state unless an earlier source already did; whether it did.
    let mut claim = |i: usize, p: bool| {
        if present[i] || absent[i] {
            return false;
        }
        if p {
            present[i] = true
        } else {
            absent[i] = true
        }
        true
    };
    let mut findings: Vec<AnsweredFinding> = Vec::new();
    let finding = |i: usize, present: bool, probability: f32, source: FindingSource| {
        AnsweredFinding { finding: &kb.findings[i], present, probability, source, span: None }
    };
    for i in kb.findings_from_vitals(&input.vitals) {
        if claim(i, true) {
            findings.push(finding(i, true, 1.0, FindingSource::Vitals));
        }
    }
    for &(i, p) in &input.findings {
        if claim(i, p) {
            findings.push(finding(i, p, 1.0, FindingSource::Structured));
        }
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
        if !claim(i, p) {
            continue;
        }
        let mut f = finding(i, p, text_confidence(r, o.findings.as_deref()), FindingSource::Text);
        f.span = char_span(&input.text, r.start, r.end);
        findings.push(f);
    }

    // Every finding this answer shows, once, for the explanations.
    let said: Vec<(usize, bool)> = if request.explain {
        (0..kb.findings.len())
            .filter_map(|f| {
                if present[f] {
                    Some((f, true))
                } else if absent[f] {
                    Some((f, false))
                } else {
                    None
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let conditions: Vec<AnsweredCondition> = o
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .take(request.max_conditions)
        .map(|r| AnsweredCondition {
            condition: &kb.conditions[r.condition],
            probability: r.probability,
            explanation: request.explain.then(|| explain(kb, r.condition, &said)),
        })
        .collect();

    // Emergency advice first when the level is an emergency.
    let mut care: Vec<usize> = o.care.as_deref().unwrap_or(&[]).iter().map(|r| r.advice).collect();
    if o.decision.level.is_emergency() {
        care.sort_by_key(|&a| kb.advice[a].kind != AdviceKind::Emergency);
    }
    let care: Vec<AnsweredCare> = care
        .iter()
        .map(|&a| {
            let advice = &kb.advice[a];
            AnsweredCare {
                index: a,
                advice,
                applies_to: advice.conditions.iter().map(|&c| &kb.conditions[c]).collect(),
            }
        })
        .collect();

    let mut reasons: Vec<String> =
        o.decision.red_flags.iter().map(|&r| kb.rules[r].reason.clone()).collect();
    if let Some(e) = &o.emergency {
        reasons.push(format!("The emergency detector assessed this as {}.", e.model_level));
    }
    if o.decision.floor_applied {
        reasons.push("The emergency detector was unavailable: red-flag rules were applied and the level is at least 'consultation'.".into());
    }
    // An agent the coordinator did not run (a service built with fewer agents) has failed.
    let agent = |kind: AgentKind| match o.runs.iter().find(|r| r.kind == kind) {
        Some(r) => AgentReport {
            kind,
            status: r.status,
            latency_ms: r.latency_ms,
            model: r.version.clone(),
        },
        None => {
            AgentReport { kind, status: AgentStatus::Failed, latency_ms: 0.0, model: String::new() }
        }
    };
    let agents = AgentKind::ALL.map(agent);
    let differential_unavailable =
        agents.iter().any(|a| a.kind == AgentKind::ConditionMatcher && a.status != AgentStatus::Ok);
    Answer {
        level: o.decision.level,
        reasons,
        red_flags: o.decision.red_flags.iter().map(|&r| &kb.rules[r]).collect(),
        findings,
        conditions,
        care,
        agents,
        degraded: o.degraded,
        inferred_age: request.inferred_age,
        inferred_sex: request.inferred_sex,
        differential_unavailable,
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
fn explain<'kb>(kb: &'kb KnowledgeBase, c: usize, said: &[(usize, bool)]) -> Explanation<'kb> {
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
    let findings = |v: Vec<(f32, usize)>| {
        v.into_iter().take(EXPLAIN_MAX).map(|(_, f)| &kb.findings[f]).collect()
    };
    Explanation { supporting: findings(up), opposing: findings(down) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::Decision;
    use crate::outcome::AgentRun;
    use domain::{EmergencyAssessment, RankedCondition, RetrievedAdvice, VitalSign, Vitals};
    use std::sync::OnceLock;

    fn kb() -> &'static KnowledgeBase {
        static KB: OnceLock<KnowledgeBase> = OnceLock::new();
        KB.get_or_init(|| kb::load_dir(kb::default_dir()).expect("knowledge base"))
    }

    fn run(kind: AgentKind, status: AgentStatus) -> AgentRun {
        AgentRun { kind, version: format!("{}-1", kind.as_str()), status, latency_ms: 1.5 }
    }

    /// Every agent ok, nothing answered, a self-care decision.
    fn outcome() -> Outcome {
        Outcome {
            runs: AgentKind::ALL.iter().map(|&k| run(k, AgentStatus::Ok)).collect(),
            findings: Some(Vec::new()),
            conditions: Some(Vec::new()),
            care: Some(Vec::new()),
            emergency: None,
            decision: Decision {
                level: TriageLevel::SelfCare,
                red_flags: Vec::new(),
                floor_applied: false,
            },
            degraded: false,
            total_ms: 0.0,
        }
    }

    fn request(input: &CaseInput) -> Request<'_> {
        Request { input, inferred_age: None, inferred_sex: None, max_conditions: 10, explain: true }
    }

    fn idx(id: &str) -> usize {
        kb().finding_idx(id).expect("finding in the knowledge base")
    }

    #[test]
    fn char_spans_count_characters_not_bytes() {
        let text = "café, then fever";
        let start = text.find("fever").unwrap() as u32;
        assert_eq!(char_span(text, start, start + 5), Some([11, 16]));
        // Not on a character boundary, or past the end: no span.
        assert_eq!(char_span(text, 4, 6), None);
        assert_eq!(char_span(text, 0, 100), None);
    }

    #[test]
    fn a_measurement_wins_over_what_was_sent_which_wins_over_the_text() {
        let kb = kb();
        let mut vitals = Vitals::default();
        vitals.set(VitalSign::TemperatureC, Some(39.4));
        let input = CaseInput {
            text: "no fever, but a headache and a cough".into(),
            findings: vec![(idx("fever"), false), (idx("cough"), false)],
            vitals,
            ..Default::default()
        };
        let case = kb.prepare(input);
        let answer = assemble(kb, &request(&case.input), &case.reading, &outcome());
        let of =
            |id: &str| answer.findings.iter().filter(|f| f.finding.id == id).collect::<Vec<_>>();
        let fever = of("fever");
        assert_eq!(fever.len(), 1, "one state per finding");
        assert!(
            fever[0].present
                && fever[0].source == FindingSource::Vitals
                && fever[0].probability == 1.0
        );
        let cough = of("cough");
        assert!(
            cough.len() == 1
                && !cough[0].present
                && cough[0].source == FindingSource::Structured
                && cough[0].span.is_none()
        );
        let headache = of("headache");
        assert!(
            headache.len() == 1 && headache[0].present && headache[0].source == FindingSource::Text
        );
        let [s, e] = headache[0].span.expect("a text finding has its span");
        assert!(
            case.input.text.chars().skip(s).take(e - s).collect::<String>().contains("headache")
        );
    }

    #[test]
    fn the_classifier_moves_a_text_finding_halfway() {
        let kb = kb();
        let case = kb.prepare(CaseInput { text: "I have a headache".into(), ..Default::default() });
        let read = case
            .reading
            .findings
            .iter()
            .find(|r| r.finding as usize == idx("headache"))
            .expect("read")
            .confidence;
        let mut o = outcome();
        o.findings = Some(vec![ExtractedFinding {
            finding: idx("headache"),
            present: true,
            probability: 0.2,
        }]);
        let answer = assemble(kb, &request(&case.input), &case.reading, &o);
        let got = answer.findings.iter().find(|f| f.finding.id == "headache").unwrap().probability;
        assert_eq!(got, 0.5 * (read + 0.2));
        o.findings = None;
        let answer = assemble(kb, &request(&case.input), &case.reading, &o);
        assert_eq!(
            answer.findings.iter().find(|f| f.finding.id == "headache").unwrap().probability,
            read
        );
    }

    #[test]
    fn an_agent_not_run_has_failed_and_without_the_matcher_the_differential_is_unavailable() {
        let kb = kb();
        let input = CaseInput { text: "cough".into(), ..Default::default() };
        let mut o = outcome();
        o.runs.retain(|r| r.kind != AgentKind::ConditionMatcher);
        o.runs[0].status = AgentStatus::Overloaded;
        o.conditions = None;
        o.degraded = true;
        let case = kb.prepare(input.clone());
        let answer = assemble(kb, &request(&input), &case.reading, &o);
        assert_eq!(
            answer.agents.iter().map(|a| a.kind).collect::<Vec<_>>(),
            AgentKind::ALL.to_vec()
        );
        let matcher = &answer.agents[1];
        assert_eq!(
            (matcher.status, matcher.latency_ms, matcher.model.as_str()),
            (AgentStatus::Failed, 0.0, "")
        );
        assert_eq!(answer.agents[0].status, AgentStatus::Overloaded);
        assert!(answer.differential_unavailable && answer.conditions.is_empty() && answer.degraded);
        let all_ok = assemble(kb, &request(&input), &case.reading, &outcome());
        assert!(!all_ok.differential_unavailable);
    }

    #[test]
    fn conditions_are_cut_and_explained_only_on_request() {
        let kb = kb();
        let case = kb.prepare(CaseInput {
            text: "fever, cough and a headache, no rash".into(),
            ..Default::default()
        });
        let mut o = outcome();
        o.conditions =
            Some((0..5).map(|c| RankedCondition { condition: c, probability: 0.1 }).collect());
        let mut r = request(&case.input);
        r.max_conditions = 3;
        let answer = assemble(kb, &r, &case.reading, &o);
        assert_eq!(answer.conditions.len(), 3);
        assert!(answer.conditions.iter().all(|c| c.explanation.is_some()));
        assert!(std::ptr::eq(answer.conditions[0].condition, &kb.conditions[0]));
        r.explain = false;
        let answer = assemble(kb, &r, &case.reading, &o);
        assert!(answer.conditions.iter().all(|c| c.explanation.is_none()));
    }

    #[test]
    fn emergency_advice_comes_first_at_an_emergency_level_and_reasons_say_why() {
        let kb = kb();
        let case = kb.prepare(CaseInput { text: "cough".into(), ..Default::default() });
        let emergency = kb
            .advice
            .iter()
            .position(|a| a.kind == AdviceKind::Emergency)
            .expect("emergency advice");
        let other =
            kb.advice.iter().position(|a| a.kind != AdviceKind::Emergency).expect("other advice");
        let mut o = outcome();
        o.care = Some(vec![
            RetrievedAdvice { advice: other, score: 0.9 },
            RetrievedAdvice { advice: emergency, score: 0.1 },
        ]);
        let kinds = |a: &Answer| a.care.iter().map(|c| c.advice.kind).collect::<Vec<_>>();
        let calm = assemble(kb, &request(&case.input), &case.reading, &o);
        assert_eq!(
            kinds(&calm)[1],
            AdviceKind::Emergency,
            "in the retriever's order below an emergency"
        );
        o.decision =
            Decision { level: TriageLevel::Emergency, red_flags: vec![0], floor_applied: true };
        o.emergency = Some(EmergencyAssessment {
            level: TriageLevel::Emergency,
            model_level: TriageLevel::Consultation,
            probabilities: [0.0, 0.0, 1.0, 0.0, 0.0],
            red_flags: vec![0],
        });
        let urgent = assemble(kb, &request(&case.input), &case.reading, &o);
        assert_eq!(kinds(&urgent)[0], AdviceKind::Emergency);
        assert!(urgent.care.iter().all(|c| c.applies_to.len() == c.advice.conditions.len()));
        assert_eq!(urgent.red_flags[0].id, kb.rules[0].id);
        assert_eq!(urgent.reasons.len(), 3, "the rule's reason, the detector's level, the floor");
        assert_eq!(urgent.reasons[0], kb.rules[0].reason);
        assert!(urgent.reasons[1].ends_with("assessed this as consultation."));
    }
}
