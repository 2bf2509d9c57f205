//! The findings (`kb/findings/*.toml`): each finding's id, name, phrases and vital sign, and
//! the links between findings (`implies`, `composed_of`), resolved once every finding is known.
//!
//! Every later section names findings, so this file also keeps [`Findings`], which looks an id
//! up among them, and [`PhraseOwners`], which keeps one phrase from naming two findings.

use super::{Folder, Issues, KbError, check_id, check_phrases, phrase_key, starts_with_negation};
use crate::model::{BodySystem, Finding, FindingKind, VitalThreshold};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsFile {
    #[serde(default)]
    finding: Vec<RawFinding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinding {
    id: String,
    name: String,
    system: BodySystem,
    kind: FindingKind,
    #[serde(default)]
    red_flag: bool,
    clinical: Vec<String>,
    lay: Vec<String>,
    #[serde(default)]
    variants: Vec<String>,
    #[serde(default)]
    implies: Vec<String>,
    #[serde(default)]
    composed_of: Vec<Vec<String>>,
    #[serde(default)]
    negatives: Vec<String>,
    #[serde(default)]
    vital: Option<VitalThreshold>,
}

/// The findings loaded, and the index of each id.
pub(super) struct Findings {
    pub(super) list: Vec<Finding>,
    pub(super) index: HashMap<String, usize>,
}

impl Findings {
    /// The indices of the findings `ids` names, in `field` of `entry` in `file`; an unknown id
    /// or one listed twice is an issue.
    pub(super) fn resolve(
        &self,
        ids: &[String],
        file: &str,
        entry: &str,
        field: &str,
        issues: &mut Issues,
    ) -> Vec<usize> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.index.get(id) {
                Some(&i) => {
                    if out.contains(&i) {
                        issues.push(
                            file,
                            Some(entry),
                            Some(field),
                            format!("finding '{id}' is listed twice"),
                        );
                    } else {
                        out.push(i);
                    }
                }
                None => {
                    issues.push(file, Some(entry), Some(field), format!("unknown finding '{id}'"))
                }
            }
        }
        out
    }
}

/// The finding each phrase (in [`phrase_key`] form) belongs to, so that no phrase names two
/// findings. A finding's `negatives` are entered as "`id` (negatives)".
pub(super) struct PhraseOwners(HashMap<String, String>);

impl PhraseOwners {
    /// Gives `phrase` to `finding`, or records an issue in `field` if another one has it.
    /// Returns whether the phrase was nobody's before.
    pub(super) fn claim(
        &mut self,
        phrase: &str,
        finding: &str,
        file: &str,
        field: &str,
        issues: &mut Issues,
    ) -> bool {
        let key = phrase_key(phrase);
        match self.0.get(&key) {
            Some(owner) if owner != finding => {
                issues.push(
                    file,
                    Some(finding),
                    Some(field),
                    format!("phrase '{phrase}' is also a phrase of '{owner}'"),
                );
                false
            }
            Some(_) => false,
            None => {
                self.0.insert(key, finding.to_string());
                true
            }
        }
    }
}

/// The links between findings, kept as ids until every finding is known.
#[derive(Default)]
pub(super) struct Links {
    /// (file, finding, the ids it implies).
    implies: Vec<(String, usize, Vec<String>)>,
    /// (file, finding, its groups of parts).
    composed: Vec<(String, usize, Vec<Vec<String>>)>,
}

/// Reads `findings/`: checks each finding's id, name, phrases and vital sign, and keeps its
/// links for [`link_findings`].
pub(super) fn load_findings(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
) -> Result<(Findings, PhraseOwners, Links), KbError> {
    let mut findings = Findings { list: Vec::new(), index: HashMap::new() };
    let mut finding_file: Vec<String> = Vec::new();
    let mut phrases = PhraseOwners(HashMap::new());
    let mut links = Links::default();
    for (file, parsed) in folder.parse_section::<FindingsFile>("findings", issues)? {
        for f in parsed.finding {
            check_id(&file, &f.id, issues);
            if let Some(&prev) = findings.index.get(&f.id) {
                issues.push(
                    &file,
                    Some(&f.id),
                    Some("id"),
                    format!("duplicate finding id (also in {})", finding_file[prev]),
                );
                continue;
            }
            if f.name.trim().is_empty() {
                issues.push(&file, Some(&f.id), Some("name"), "must not be empty");
            }
            check_phrases(&file, &f.id, "clinical", &f.clinical, 1, issues);
            check_phrases(&file, &f.id, "lay", &f.lay, 1, issues);
            check_phrases(&file, &f.id, "variants", &f.variants, 0, issues);
            for p in f.clinical.iter().chain(&f.lay).chain(&f.variants) {
                phrases.claim(p, &f.id, &file, "lay/clinical", issues);
            }
            check_phrases(&file, &f.id, "negatives", &f.negatives, 0, issues);
            for p in &f.negatives {
                let key = phrase_key(p);
                if let Some(owner) = phrases.0.get(&key) {
                    issues.push(
                        &file,
                        Some(&f.id),
                        Some("negatives"),
                        format!("phrase '{p}' is also a phrase of '{owner}'"),
                    );
                } else if starts_with_negation(&key) {
                    issues.push(&file, Some(&f.id), Some("negatives"), format!("phrase '{p}' starts with a negation (say what is there: 'afebrile', 'eating normally')"));
                } else {
                    phrases.0.insert(key, format!("{} (negatives)", f.id));
                }
            }
            if let Some(v) = &f.vital
                && v.above.is_none() == v.below.is_none()
            {
                issues.push(
                    &file,
                    Some(&f.id),
                    Some("vital"),
                    "give exactly one of 'above' or 'below'",
                );
            }
            let i = findings.list.len();
            findings.index.insert(f.id.clone(), i);
            finding_file.push(file.clone());
            if !f.implies.is_empty() {
                links.implies.push((file.clone(), i, f.implies));
            }
            if !f.composed_of.is_empty() {
                links.composed.push((file.clone(), i, f.composed_of));
            }
            findings.list.push(Finding {
                id: f.id,
                name: f.name,
                system: f.system,
                kind: f.kind,
                red_flag: f.red_flag,
                clinical: f.clinical,
                lay: f.lay,
                variants: f.variants,
                synonyms: Vec::new(),
                implies: Vec::new(),
                composed_of: Vec::new(),
                negatives: f.negatives,
                denied_by: Vec::new(),
                vital: f.vital,
            });
        }
    }
    Ok((findings, phrases, links))
}

/// Resolves the links between findings, now that every finding is known: what each implies,
/// and the groups of parts it is composed of.
pub(super) fn link_findings(links: Links, findings: &mut Findings, issues: &mut Issues) {
    for (file, i, ids) in links.implies {
        let id = findings.list[i].id.clone();
        let resolved = findings.resolve(&ids, &file, &id, "implies", issues);
        if resolved.contains(&i) {
            issues.push(&file, Some(&id), Some("implies"), "a finding cannot imply itself");
        }
        findings.list[i].implies = resolved;
    }
    for (file, i, groups) in links.composed {
        let id = findings.list[i].id.clone();
        let resolved: Vec<Vec<usize>> =
            groups.iter().map(|g| findings.resolve(g, &file, &id, "composed_of", issues)).collect();
        if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
            issues.push(
                &file,
                Some(&id),
                Some("composed_of"),
                "give at least two non-empty groups",
            );
        }
        if resolved.iter().flatten().any(|&p| p == i) {
            issues.push(
                &file,
                Some(&id),
                Some("composed_of"),
                "a finding cannot be a part of itself",
            );
        }
        findings.list[i].composed_of = resolved;
    }
}
