//! What reads text, built from the validated findings: the lexicon of their phrases, and the
//! reader, with the word vectors in `kb/vectors/` when they are there.

use super::KbError;
use crate::model::{Finding, FindingKind};
use std::path::Path;
use textfeat::Lexicon;

/// The lexicon of every finding's clinical and lay phrases.
pub(super) fn build_lexicon(findings: &[Finding]) -> Lexicon {
    let mut lexicon = Lexicon::new();
    for (i, f) in findings.iter().enumerate() {
        for p in f.clinical.iter().chain(&f.lay) {
            lexicon.insert(p, i as u32);
        }
    }
    lexicon
}

/// The reader of every finding's phrases, with the word vectors of `dir` if it has them.
pub(super) fn build_reader(dir: &Path, findings: &[Finding]) -> Result<reading::Reader, KbError> {
    let vectors_path = dir.join("vectors").join("word_vectors.bin");
    let vectors = if vectors_path.exists() {
        Some(
            reading::WordVectors::load(&vectors_path)
                .map_err(|e| KbError::Vectors(e.to_string()))?,
        )
    } else {
        None
    };
    let entries = findings
        .iter()
        .map(|f| reading::FindingEntry {
            phrases: f
                .clinical
                .iter()
                .chain(&f.lay)
                .chain(&f.variants)
                .chain(&f.synonyms)
                .cloned()
                .collect(),
            red_flag: f.red_flag,
            risk_factor: f.kind == FindingKind::RiskFactor,
            recent: f.kind == FindingKind::RiskFactor && f.id.starts_with("recent_"),
            // An exposure to someone ill is said of the one who is ill ("his brother had the
            // same last week"): said of a relative, it is the patient's too.
            family_history: f.id.starts_with("family_history")
                || matches!(
                    f.id.as_str(),
                    "sick_contacts"
                        | "household_members_same_symptoms"
                        | "meningitis_contact"
                        | "tb_exposure"
                ),
            vital: f.vital.map(|v| (v.sign, v.above, v.below)),
            implies: f.implies.iter().map(|&p| p as u32).collect(),
            composed_of: f
                .composed_of
                .iter()
                .map(|g| g.iter().map(|&p| p as u32).collect())
                .collect(),
            negatives: f.negatives.clone(),
            denials: f.denied_by.clone(),
        })
        .collect();
    Ok(reading::Reader::new(entries, vectors.as_ref()))
}
