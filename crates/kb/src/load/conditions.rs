//! The conditions (`kb/conditions/*.toml`): each condition's code, demographics, findings with
//! their frequencies, opposing and required findings, and the checks that keep them coherent.

use super::findings::Findings;
use super::{Folder, Issues, KbError, check_id, valid_icd10};
use crate::model::{BodySystem, Condition, ConditionFinding, Prevalence, SexFilter};
use domain::{AgeBand, TriageLevel};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsFile {
    #[serde(default)]
    condition: Vec<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConditionFinding {
    id: String,
    freq: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    id: String,
    name: String,
    icd10: String,
    system: BodySystem,
    urgency: TriageLevel,
    prevalence: Prevalence,
    ages: Vec<AgeBand>,
    sex: SexFilter,
    #[serde(default)]
    min_age: Option<f32>,
    #[serde(default)]
    max_age: Option<f32>,
    #[serde(default)]
    pregnancy: bool,
    source: String,
    findings: Vec<RawConditionFinding>,
    #[serde(default)]
    opposing: Vec<String>,
    #[serde(default)]
    requires: Vec<Vec<String>>,
}

/// Reads `conditions/`: the conditions, and the index of each id.
pub(super) fn load_conditions(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
    findings: &Findings,
) -> Result<(Vec<Condition>, HashMap<String, usize>), KbError> {
    let mut conditions: Vec<Condition> = Vec::new();
    let mut condition_index: HashMap<String, usize> = HashMap::new();
    for (file, parsed) in folder.parse_section::<ConditionsFile>("conditions", issues)? {
        for c in parsed.condition {
            let e = c.id.as_str();
            check_id(&file, e, issues);
            if condition_index.contains_key(e) {
                issues.push(&file, Some(e), Some("id"), "duplicate condition id");
                continue;
            }
            if !valid_icd10(&c.icd10) {
                issues.push(
                    &file,
                    Some(e),
                    Some("icd10"),
                    format!("'{}' is not an ICD-10 code like 'J18.9'", c.icd10),
                );
            }
            if c.ages.is_empty() {
                issues.push(&file, Some(e), Some("ages"), "name at least one age band");
            }
            if c.source.trim().is_empty() {
                issues.push(&file, Some(e), Some("source"), "every condition names its source");
            }
            if !(4..=14).contains(&c.findings.len()) {
                issues.push(
                    &file,
                    Some(e),
                    Some("findings"),
                    format!("has {} findings; 4 to 14 expected", c.findings.len()),
                );
            }
            if let (Some(lo), Some(hi)) = (c.min_age, c.max_age)
                && lo > hi
            {
                issues.push(&file, Some(e), Some("min_age"), "min_age is above max_age");
            }
            if c.pregnancy && c.sex == SexFilter::Male {
                issues.push(
                    &file,
                    Some(e),
                    Some("sex"),
                    "a pregnancy condition cannot be male-only",
                );
            }
            // Resolved for its issues (unknown, listed twice): `cf` keeps the first of each.
            let ids: Vec<String> = c.findings.iter().map(|f| f.id.clone()).collect();
            findings.resolve(&ids, &file, e, "findings", issues);
            let mut cf = Vec::new();
            for f in &c.findings {
                if !(f.freq > 0.0 && f.freq <= 1.0) {
                    issues.push(
                        &file,
                        Some(e),
                        Some("findings.freq"),
                        format!("frequency of '{}' must be in (0, 1]", f.id),
                    );
                }
                if let Some(&i) = findings.index.get(&f.id)
                    && !cf.iter().any(|x: &ConditionFinding| x.finding == i)
                {
                    cf.push(ConditionFinding { finding: i, freq: f.freq.clamp(0.0, 1.0) });
                }
            }
            let opposing = findings.resolve(&c.opposing, &file, e, "opposing", issues);
            for o in &opposing {
                if cf.iter().any(|x| x.finding == *o) {
                    issues.push(
                        &file,
                        Some(e),
                        Some("opposing"),
                        format!(
                            "'{}' is both a finding and an opposing finding",
                            findings.list[*o].id
                        ),
                    );
                }
            }
            let mut requires = Vec::new();
            for group in &c.requires {
                let g = findings.resolve(group, &file, e, "requires", issues);
                if group.is_empty() {
                    issues.push(&file, Some(e), Some("requires"), "an empty group");
                } else if let Some(&first) = g.first()
                    && g.len() == group.len()
                    && !cf.iter().any(|x| x.finding == first)
                {
                    issues.push(&file, Some(e), Some("requires"), format!("the first finding of a group ('{}') must be one of the condition's findings", findings.list[first].id));
                }
                if g.iter().any(|f| opposing.contains(f)) {
                    issues.push(
                        &file,
                        Some(e),
                        Some("requires"),
                        "a required finding is also an opposing one",
                    );
                }
                requires.push(g);
            }
            // If the bands and the explicit limits leave no possible age, nobody can have it.
            if !c.ages.is_empty() {
                let possible = c.ages.iter().any(|b| {
                    let (lo, hi) = b.years();
                    let lo = c.min_age.map_or(lo, |m| lo.max(m));
                    let hi = c.max_age.map_or(hi, |m| hi.min(m));
                    lo <= hi
                });
                if !possible {
                    issues.push(
                        &file,
                        Some(e),
                        Some("ages"),
                        "age bands and min_age/max_age leave no possible age",
                    );
                }
            }
            condition_index.insert(c.id.clone(), conditions.len());
            conditions.push(Condition {
                id: c.id,
                name: c.name,
                icd10: c.icd10,
                system: c.system,
                urgency: c.urgency,
                prevalence: c.prevalence,
                ages: c.ages,
                min_age: c.min_age,
                max_age: c.max_age,
                sex: c.sex,
                pregnancy: c.pregnancy,
                source: c.source,
                findings: cf,
                opposing,
                requires,
            });
        }
    }
    Ok((conditions, condition_index))
}
