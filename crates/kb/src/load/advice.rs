//! The care advice (`kb/advice/*.toml`): each piece of advice with the conditions and findings
//! it applies to, who must not follow it, and when to seek help instead.

use super::findings::Findings;
use super::{Folder, Issues, KbError, check_id};
use crate::model::{Advice, AdviceKind, Contraindication};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdviceFile {
    #[serde(default)]
    advice: Vec<RawAdvice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvice {
    id: String,
    kind: AdviceKind,
    title: String,
    advice: String,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default)]
    findings: Vec<String>,
    #[serde(default)]
    avoid_if: Vec<Contraindication>,
    warning_signs: Vec<String>,
    source: String,
}

/// Reads `advice/`, naming conditions by `condition_index`.
pub(super) fn load_advice(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
    findings: &Findings,
    condition_index: &HashMap<String, usize>,
) -> Result<Vec<Advice>, KbError> {
    let mut advice: Vec<Advice> = Vec::new();
    let mut advice_ids: HashSet<String> = HashSet::new();
    for (file, parsed) in folder.parse_section::<AdviceFile>("advice", issues)? {
        for a in parsed.advice {
            let e = a.id.as_str();
            check_id(&file, e, issues);
            if !advice_ids.insert(a.id.clone()) {
                issues.push(&file, Some(e), Some("id"), "duplicate advice id");
                continue;
            }
            if a.conditions.is_empty() && a.findings.is_empty() {
                issues.push(
                    &file,
                    Some(e),
                    Some("conditions"),
                    "link the advice to at least one condition or finding",
                );
            }
            if a.warning_signs.is_empty() {
                issues.push(
                    &file,
                    Some(e),
                    Some("warning_signs"),
                    "advice always says when to seek help",
                );
            }
            if a.title.trim().is_empty() || a.advice.trim().is_empty() {
                issues.push(&file, Some(e), Some("advice"), "title and advice must not be empty");
            }
            if a.source.trim().is_empty() {
                issues.push(&file, Some(e), Some("source"), "every advice entry names its source");
            }
            let mut conds = Vec::new();
            for c in &a.conditions {
                match condition_index.get(c) {
                    Some(&i) => conds.push(i),
                    None => issues.push(
                        &file,
                        Some(e),
                        Some("conditions"),
                        format!("unknown condition '{c}'"),
                    ),
                }
            }
            let fnd = findings.resolve(&a.findings, &file, e, "findings", issues);
            advice.push(Advice {
                id: a.id,
                kind: a.kind,
                title: a.title,
                advice: a.advice,
                conditions: conds,
                findings: fnd,
                avoid_if: a.avoid_if,
                warning_signs: a.warning_signs,
                source: a.source,
            });
        }
    }
    Ok(advice)
}
