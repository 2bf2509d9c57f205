//! Deterministic red-flag rules: combinations of findings, age, sex and vital signs that force
//! a minimum triage level. They need no model, so they run even when every agent is down.

use crate::model::{KnowledgeBase, Rule};
use domain::{Sex, TriageLevel, Vitals};

/// What the rules look at: which findings are present (by index), age, sex and vitals.
#[derive(Debug, Clone)]
pub struct RuleInput<'a> {
    pub present: &'a [bool],
    pub age: Option<f32>,
    pub sex: Sex,
    pub vitals: &'a Vitals,
}

/// A rule that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleHit {
    pub rule: usize,
    pub level: TriageLevel,
}

impl Rule {
    pub fn fires(&self, input: &RuleInput<'_>) -> bool {
        let has = |i: &usize| input.present.get(*i).copied().unwrap_or(false);
        if !self.all.iter().all(has) {
            return false;
        }
        if !self.any.is_empty() && !self.any.iter().any(has) {
            return false;
        }
        if !self.vitals_any.is_empty()
            && !self.vitals_any.iter().any(|t| input.vitals.get(t.sign).is_some_and(|v| t.holds(v)))
            && !self.vital_findings.iter().any(has)
        {
            return false;
        }
        if self.min_age.is_some() || self.max_age.is_some() {
            match input.age {
                Some(a)
                    if self.min_age.is_some_and(|m| a < m)
                        || self.max_age.is_some_and(|m| a > m) =>
                {
                    return false;
                }
                None if !self.if_age_unknown => return false,
                Some(_) | None => {}
            }
        }
        self.sex.admits(input.sex)
    }
}

impl KnowledgeBase {
    /// Every rule that fires, most urgent first.
    pub fn red_flags(&self, input: &RuleInput<'_>) -> Vec<RuleHit> {
        let mut hits: Vec<RuleHit> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.fires(input))
            .map(|(i, r)| RuleHit { rule: i, level: r.level })
            .collect();
        hits.sort_by_key(|h| h.level);
        hits
    }

    /// The present-finding mask the rules read: structured findings said present, findings the
    /// reader reads as asserted present for the patient in the text, extra findings, and
    /// findings shown by the vitals. A finding present by any route counts as present; a
    /// finding the text only hedges, denies, gives to a relative or supposes counts for nothing.
    pub fn present_mask(
        &self,
        text: &str,
        structured: &[(usize, bool)],
        extra: &[usize],
        vitals: &Vitals,
    ) -> Vec<bool> {
        let tokens = textfeat::tokenize(text);
        let read: Vec<u32> = self.reader.read(text, &tokens).present().map(|f| f.finding).collect();
        self.mask_of(&read, structured, extra, vitals)
    }

    /// The mask from findings read present in the text.
    pub(crate) fn mask_of(
        &self,
        read: &[u32],
        structured: &[(usize, bool)],
        extra: &[usize],
        vitals: &Vitals,
    ) -> Vec<bool> {
        let mut mask = vec![false; self.findings.len()];
        for &id in read {
            mask[id as usize] = true;
        }
        for &(i, p) in structured {
            if p && i < mask.len() {
                mask[i] = true;
            }
        }
        for &i in extra {
            if i < mask.len() {
                mask[i] = true;
            }
        }
        for i in self.findings_from_vitals(vitals) {
            mask[i] = true;
        }
        mask
    }
}
