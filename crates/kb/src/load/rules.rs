//! The red-flag rules (`kb/rules/*.toml`): each rule's findings, ages, sex and vital signs, and
//! the examples that test it.

use super::findings::Findings;
use super::{Folder, Issues, KbError, check_id};
use crate::model::{Rule, RuleExample, SexFilter, VitalThreshold};
use domain::{Sex, TriageLevel, Vitals};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    level: TriageLevel,
    reason: String,
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    min_age: Option<f32>,
    #[serde(default)]
    max_age: Option<f32>,
    #[serde(default)]
    if_age_unknown: bool,
    #[serde(default = "any_sex")]
    sex: SexFilter,
    #[serde(default)]
    vitals_any: Vec<VitalThreshold>,
    source: String,
    #[serde(default)]
    example: Vec<RawExample>,
}

fn any_sex() -> SexFilter {
    SexFilter::Any
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    fires: bool,
    #[serde(default)]
    findings: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    age: Option<f32>,
    #[serde(default)]
    sex: Option<Sex>,
    #[serde(default)]
    vitals: Vitals,
    #[serde(default)]
    text: Option<String>,
}

/// Reads `rules/`, with the findings each rule's vital signs imply.
pub(super) fn load_rules(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
    findings: &Findings,
) -> Result<Vec<Rule>, KbError> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_ids: HashSet<String> = HashSet::new();
    for (file, parsed) in folder.parse_section::<RulesFile>("rules", issues)? {
        for r in parsed.rule {
            let e = r.id.as_str();
            check_id(&file, e, issues);
            if !rule_ids.insert(r.id.clone()) {
                issues.push(&file, Some(e), Some("id"), "duplicate rule id");
                continue;
            }
            if r.all.is_empty() && r.any.is_empty() && r.vitals_any.is_empty() {
                issues.push(
                    &file,
                    Some(e),
                    Some("all"),
                    "a rule needs at least one of 'all', 'any' or 'vitals_any'",
                );
            }
            if r.source.trim().is_empty() {
                issues.push(&file, Some(e), Some("source"), "every rule names its source");
            }
            if !r.example.iter().any(|x| x.fires) || !r.example.iter().any(|x| !x.fires) {
                issues.push(
                    &file,
                    Some(e),
                    Some("example"),
                    "every rule needs at least one firing and one not-firing example",
                );
            }
            let all = findings.resolve(&r.all, &file, e, "all", issues);
            let any = findings.resolve(&r.any, &file, e, "any", issues);
            let mut examples = Vec::new();
            for (k, x) in r.example.iter().enumerate() {
                let field = format!("example[{k}].findings");
                let present = findings.resolve(&x.findings, &file, e, &field, issues);
                let absent =
                    findings.resolve(&x.absent, &file, e, &format!("example[{k}].absent"), issues);
                examples.push(RuleExample {
                    fires: x.fires,
                    findings: present,
                    absent,
                    age: x.age,
                    sex: x.sex,
                    vitals: x.vitals,
                    text: x.text.clone(),
                });
            }
            let vital_findings = findings
                .list
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.vital.is_some_and(|fv| {
                        r.vitals_any.iter().any(|t| {
                            t.sign == fv.sign
                                && match (t.below, fv.below, t.above, fv.above) {
                                    (Some(tb), Some(fb), _, _) => fb <= tb,
                                    (_, _, Some(ta), Some(fa)) => fa >= ta,
                                    _ => false,
                                }
                        })
                    })
                })
                .map(|(i, _)| i)
                .collect();
            rules.push(Rule {
                vital_findings,
                id: r.id,
                level: r.level,
                reason: r.reason,
                all,
                any,
                min_age: r.min_age,
                max_age: r.max_age,
                if_age_unknown: r.if_age_unknown,
                sex: r.sex,
                vitals_any: r.vitals_any,
                source: r.source,
                examples,
            });
        }
    }
    Ok(rules)
}
