//! A request read once, for every agent and for the merge.

use crate::model::KnowledgeBase;
use domain::CaseInput;
use textfeat::TextAnalysis;

/// A triage request with its text already read: tokens, feature hashes and the findings the
/// phrase matcher finds. Built once per request ([`KnowledgeBase::prepare`]) and shared by the
/// four agents and the merge, so none of them tokenises or scans the text again; each agent
/// still computes its own answer from it and needs no other agent's.
#[derive(Debug, Clone)]
pub struct Case {
    pub input: CaseInput,
    /// Not `text`: that name is the request's own text, reached through `Deref`.
    pub analysis: TextAnalysis,
    /// Findings the phrase matcher reads in the text, each once: (finding index, present).
    pub mentions: Vec<(u32, bool)>,
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
        let mentions = self.lexicon().findings_in_tokens(&analysis.tokens);
        Case {
            input,
            analysis,
            mentions,
        }
    }

    /// [`KnowledgeBase::present_mask`] of a prepared case.
    pub fn case_mask(&self, case: &Case, extra: &[usize]) -> Vec<bool> {
        self.mask_of(
            &case.mentions,
            &case.input.findings,
            extra,
            &case.input.vitals,
        )
    }
}
