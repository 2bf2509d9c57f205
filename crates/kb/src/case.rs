//! A request read once, for every agent and for the merge.

use crate::model::KnowledgeBase;
use domain::CaseInput;
use reading::Reading;
use textfeat::TextAnalysis;

/// A triage request with its text already read: tokens, feature hashes and the reading (the
/// findings the text asserts, with their assertion, confidence and span). Built once per
/// request ([`KnowledgeBase::prepare`]) and shared by the four agents and the merge, so none
/// of them tokenises or reads the text again; each agent still computes its own answer from it
/// and needs no other agent's.
#[derive(Debug, Clone)]
pub struct Case {
    pub input: CaseInput,
    /// Not `text`: that name is the request's own text, reached through `Deref`.
    pub analysis: TextAnalysis,
    /// What the text asserts, as findings ([`reading::Reader`]).
    pub reading: Reading,
    /// Everything known present or absent, each finding once: the findings sent (which win),
    /// every finding the reading asserts for the patient (umbrella denials included: "no
    /// urinary symptoms" is evidence), and what the vitals show.
    pub evidence: Vec<(usize, bool)>,
    /// The knowledge base's naive-Bayes log-score of every condition for this evidence, age
    /// and sex ([`crate::Bayes`]): worked out once, read by every agent that needs it.
    pub prior: Vec<f32>,
    /// The same scores as probabilities (their softmax), for the agents that weigh by them.
    pub posterior: Vec<f32>,
    /// The presenting complaint, when the text marks one ("Chief complaint: cough, fever",
    /// "presents with ...", "c/o ..."): the first symptom or sign read present for the patient
    /// after the marker, in the same sentence. The finding the person came about is the one
    /// the differential must explain first ([`presenting_complaint`]).
    pub chief: Option<usize>,
}

impl std::ops::Deref for Case {
    type Target = CaseInput;
    fn deref(&self) -> &CaseInput {
        &self.input
    }
}

impl KnowledgeBase {
    /// Reads a request's text once.
    pub fn prepare(&self, input: CaseInput) -> Case {
        let analysis = TextAnalysis::of(&input.text);
        let reading = self.reader.read(&input.text, &analysis.tokens);
        let evidence = self.evidence(&input, &reading);
        let mut prior = self.bayes().log_scores(&evidence, input.age, input.sex);
        if input.age.is_none()
            && textfeat::self_report(analysis.tokens.iter().map(|t| t.text.as_str()))
        {
            self.bayes().not_a_young_child(&mut prior);
        }
        let posterior = crate::posterior(&prior);
        let chief = presenting_complaint(self, &input.text, &reading);
        Case { input, analysis, reading, evidence, prior, posterior, chief }
    }

    /// [`Case::evidence`] of a request and its reading.
    pub fn evidence(&self, input: &CaseInput, reading: &Reading) -> Vec<(usize, bool)> {
        let mut out = input.findings.clone();
        for (f, p) in reading.asserted() {
            if !out.iter().any(|&(g, _)| g == f as usize) {
                out.push((f as usize, p));
            }
        }
        for f in self.findings_from_vitals(&input.vitals) {
            if !out.iter().any(|&(g, _)| g == f) {
                out.push((f, true));
            }
        }
        out
    }

    /// [`KnowledgeBase::present_mask`] of a prepared case.
    pub fn case_mask(&self, case: &Case, extra: &[usize]) -> Vec<bool> {
        let read: Vec<u32> = case.reading.present().map(|f| f.finding).collect();
        self.mask_of(&read, &case.input.findings, extra, &case.input.vitals)
    }
}

/// Words that introduce the presenting complaint in a clinical history.
const PRESENTING_MARKERS: [&str; 7] = [
    "chief complaint",
    "presenting complaint",
    "complains of",
    "complaining of",
    "presents with",
    "presenting with",
    "c/o",
];

/// The first symptom or sign read present for the patient after a presenting-complaint marker,
/// before the end of its sentence (see [`Case::chief`]). Risk factors never are one.
pub fn presenting_complaint(kb: &KnowledgeBase, text: &str, reading: &Reading) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let start =
        PRESENTING_MARKERS.iter().filter_map(|m| lower.find(m).map(|i| i + m.len())).min()?;
    let rest = &lower[start..];
    // The sentence ends at a full stop followed by a space (not "2.5 cm"), or a line break.
    let end = start
        + rest
            .char_indices()
            .find(|&(i, c)| {
                c == '\n'
                    || (c == '.'
                        && rest[i + 1..].starts_with(|n: char| n.is_whitespace() || n == '\0'))
                    || (c == '.' && i + 1 == rest.len())
            })
            .map_or(rest.len(), |(i, _)| i);
    reading
        .present()
        .filter(|f| (f.start as usize) >= start && (f.start as usize) < end)
        .filter(|f| kb.findings[f.finding as usize].kind != crate::FindingKind::RiskFactor)
        .min_by_key(|f| f.start)
        .map(|f| f.finding as usize)
}
