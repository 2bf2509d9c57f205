//! Reading and validating the TOML files.

use crate::model::*;
use domain::{AgeBand, Sex, TriageLevel, Vitals};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use textfeat::Lexicon;

/// One problem in one place: which file, which entry, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbIssue {
    pub file: String,
    pub entry: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for KbIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(e) = &self.entry {
            write!(f, ": entry '{e}'")?;
        }
        if let Some(fl) = &self.field {
            write!(f, ", field '{fl}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("cannot read knowledge base at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("knowledge base has {} problem(s):\n{}", .0.len(), .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<KbIssue>),
    #[error("{0}")]
    Vectors(String),
}

/// The knowledge base shipped in the repository (`kb/` at the workspace root).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kb")
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SynonymsFile {
    #[serde(default)]
    synonym: Vec<RawSynonym>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UmbrellasFile {
    #[serde(default)]
    umbrella: Vec<RawUmbrella>,
}

/// A broad term whose denial denies several findings (`kb/umbrellas/*.toml`): "no weight
/// change" is no weight loss and no weight gain.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUmbrella {
    phrases: Vec<String>,
    denies: Vec<String>,
    source: String,
}

/// Phrases an open vocabulary gives for one of our findings (`kb/synonyms/*.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynonym {
    finding: String,
    /// The vocabulary's term the phrases come from ("HP:0002315", "SYMP:0000504").
    term: String,
    phrases: Vec<String>,
}

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

struct Issues(Vec<KbIssue>);

impl Issues {
    fn push(
        &mut self,
        file: &str,
        entry: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.0.push(KbIssue {
            file: file.to_string(),
            entry: entry.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
        });
    }
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, KbError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| KbError::Io { path: dir.display().to_string(), source: e })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && id.as_bytes()[0].is_ascii_lowercase()
}

fn valid_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() < 3
        || !b[0].is_ascii_uppercase()
        || !b[1].is_ascii_digit()
        || !(b[2].is_ascii_digit())
    {
        return false;
    }
    match code.split_once('.') {
        None => b.len() == 3,
        Some((head, tail)) => {
            head.len() == 3
                && (1..=4).contains(&tail.len())
                && tail.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        }
    }
}

/// A file name relative to the knowledge-base folder, for messages.
fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// Parses all files of one section; syntax and schema errors become issues.
fn parse_section<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    section: &str,
    issues: &mut Issues,
    hasher: &mut u64,
) -> Result<Vec<(String, T)>, KbError> {
    let sub = dir.join(section);
    let mut out = Vec::new();
    for path in toml_files(&sub)? {
        let name = rel(dir, &path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| KbError::Io { path: path.display().to_string(), source: e })?;
        for b in name.bytes().chain(text.bytes()) {
            *hasher ^= u64::from(b);
            *hasher = hasher.wrapping_mul(0x0000_0100_0000_01b3);
        }
        match toml::from_str::<T>(&text) {
            Ok(v) => out.push((name, v)),
            Err(e) => issues.push(&name, None, None, e.to_string().trim().replace('\n', " ")),
        }
    }
    Ok(out)
}

/// The form two phrases are compared in: normalised, words joined by single spaces.
fn phrase_key(p: &str) -> String {
    textfeat::normalise(p).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a phrase (in [`phrase_key`] form) starts with a negation word.
fn starts_with_negation(key: &str) -> bool {
    key.split(' ').next().is_some_and(|w| matches!(w, "no" | "not" | "never" | "without" | "nil"))
}

fn check_phrases(
    file: &str,
    id: &str,
    field: &str,
    phrases: &[String],
    min: usize,
    issues: &mut Issues,
) {
    if phrases.len() < min {
        issues.push(file, Some(id), Some(field), format!("needs at least {min} phrase(s)"));
    }
    for p in phrases {
        if p.trim().is_empty() || p.chars().any(|c| c.is_uppercase()) {
            issues.push(
                file,
                Some(id),
                Some(field),
                format!("phrase '{p}' must be non-empty lower case"),
            );
        }
    }
}

/// Loads and validates the knowledge base in `dir` (`findings/`, `conditions/`, `advice/`,
/// `rules/`). Returns every problem found, not just the first.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<KnowledgeBase, KbError> {
    let dir = dir.as_ref();
    let mut issues = Issues(Vec::new());
    let mut hasher: u64 = 0xcbf2_9ce4_8422_2325;

    // Findings.
    let mut findings: Vec<Finding> = Vec::new();
    // (file, finding, the ids it implies), resolved once every finding is known.
    let mut implies: Vec<(String, usize, Vec<String>)> = Vec::new();
    // (file, finding, its groups of parts), resolved likewise.
    let mut composed: Vec<(String, usize, Vec<Vec<String>>)> = Vec::new();
    let mut finding_index: HashMap<String, usize> = HashMap::new();
    let mut finding_file: Vec<String> = Vec::new();
    let mut phrase_owner: HashMap<String, String> = HashMap::new();
    for (file, parsed) in parse_section::<FindingsFile>(dir, "findings", &mut issues, &mut hasher)?
    {
        for f in parsed.finding {
            if !valid_id(&f.id) {
                issues.push(&file, Some(&f.id), Some("id"), "ids are lower_snake_case ASCII");
            }
            if let Some(&prev) = finding_index.get(&f.id) {
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
            check_phrases(&file, &f.id, "clinical", &f.clinical, 1, &mut issues);
            check_phrases(&file, &f.id, "lay", &f.lay, 1, &mut issues);
            check_phrases(&file, &f.id, "variants", &f.variants, 0, &mut issues);
            for p in f.clinical.iter().chain(&f.lay).chain(&f.variants) {
                let key = phrase_key(p);
                match phrase_owner.get(&key) {
                    Some(owner) if owner != &f.id => issues.push(
                        &file,
                        Some(&f.id),
                        Some("lay/clinical"),
                        format!("phrase '{p}' is also a phrase of '{owner}'"),
                    ),
                    _ => {
                        phrase_owner.insert(key, f.id.clone());
                    }
                }
            }
            check_phrases(&file, &f.id, "negatives", &f.negatives, 0, &mut issues);
            for p in &f.negatives {
                let key = phrase_key(p);
                if let Some(owner) = phrase_owner.get(&key) {
                    issues.push(
                        &file,
                        Some(&f.id),
                        Some("negatives"),
                        format!("phrase '{p}' is also a phrase of '{owner}'"),
                    );
                } else if starts_with_negation(&key) {
                    issues.push(&file, Some(&f.id), Some("negatives"), format!("phrase '{p}' starts with a negation (say what is there: 'afebrile', 'eating normally')"));
                } else {
                    phrase_owner.insert(key, format!("{} (negatives)", f.id));
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
            finding_index.insert(f.id.clone(), findings.len());
            finding_file.push(file.clone());
            if !f.implies.is_empty() {
                implies.push((file.clone(), findings.len(), f.implies));
            }
            if !f.composed_of.is_empty() {
                composed.push((file.clone(), findings.len(), f.composed_of));
            }
            findings.push(Finding {
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

    let resolve =
        |ids: &[String], file: &str, entry: &str, field: &str, issues: &mut Issues| -> Vec<usize> {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match finding_index.get(id) {
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
                    None => issues.push(
                        file,
                        Some(entry),
                        Some(field),
                        format!("unknown finding '{id}'"),
                    ),
                }
            }
            out
        };

    // Synonyms from open vocabularies (optional folder): more phrases for the reader.
    if dir.join("synonyms").is_dir() {
        for (file, parsed) in
            parse_section::<SynonymsFile>(dir, "synonyms", &mut issues, &mut hasher)?
        {
            for syn in parsed.synonym {
                let Some(&i) = finding_index.get(&syn.finding) else {
                    issues.push(
                        &file,
                        Some(&syn.term),
                        Some("finding"),
                        format!("unknown finding '{}'", syn.finding),
                    );
                    continue;
                };
                if syn.term.trim().is_empty() {
                    issues.push(
                        &file,
                        Some(&syn.finding),
                        Some("term"),
                        "name the vocabulary's term",
                    );
                }
                check_phrases(&file, &syn.finding, "phrases", &syn.phrases, 1, &mut issues);
                for p in &syn.phrases {
                    let key = phrase_key(p);
                    match phrase_owner.get(&key) {
                        Some(owner) if owner != &syn.finding => issues.push(
                            &file,
                            Some(&syn.finding),
                            Some("phrases"),
                            format!("phrase '{p}' is also a phrase of '{owner}'"),
                        ),
                        Some(_) => {}
                        None => {
                            phrase_owner.insert(key, syn.finding.clone());
                            findings[i].synonyms.push(p.clone());
                        }
                    }
                }
            }
        }
    }

    // Umbrella terms (optional folder): broad phrases read only when denied.
    if dir.join("umbrellas").is_dir() {
        for (file, parsed) in
            parse_section::<UmbrellasFile>(dir, "umbrellas", &mut issues, &mut hasher)?
        {
            for u in parsed.umbrella {
                let name = u.phrases.first().cloned().unwrap_or_default();
                check_phrases(&file, &name, "phrases", &u.phrases, 1, &mut issues);
                if u.source.trim().is_empty() {
                    issues.push(&file, Some(&name), Some("source"), "name the source");
                }
                if u.denies.is_empty() {
                    issues.push(&file, Some(&name), Some("denies"), "name at least one finding");
                }
                for p in &u.phrases {
                    if starts_with_negation(&phrase_key(p)) {
                        issues.push(&file, Some(&name), Some("phrases"), format!("phrase '{p}' starts with a negation (write the term itself: 'weight change')"));
                    }
                }
                for id in &u.denies {
                    match finding_index.get(id) {
                        Some(&i) => findings[i].denied_by.extend(u.phrases.iter().cloned()),
                        None => issues.push(
                            &file,
                            Some(&name),
                            Some("denies"),
                            format!("unknown finding '{id}'"),
                        ),
                    }
                }
            }
        }
    }

    for (file, i, ids) in implies {
        let id = findings[i].id.clone();
        let resolved = resolve(&ids, &file, &id, "implies", &mut issues);
        if resolved.contains(&i) {
            issues.push(&file, Some(&id), Some("implies"), "a finding cannot imply itself");
        }
        findings[i].implies = resolved;
    }
    for (file, i, groups) in composed {
        let id = findings[i].id.clone();
        let resolved: Vec<Vec<usize>> =
            groups.iter().map(|g| resolve(g, &file, &id, "composed_of", &mut issues)).collect();
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
        findings[i].composed_of = resolved;
    }

    // Conditions.
    let mut conditions: Vec<Condition> = Vec::new();
    let mut condition_index: HashMap<String, usize> = HashMap::new();
    for (file, parsed) in
        parse_section::<ConditionsFile>(dir, "conditions", &mut issues, &mut hasher)?
    {
        for c in parsed.condition {
            let e = c.id.as_str();
            if !valid_id(e) {
                issues.push(&file, Some(e), Some("id"), "ids are lower_snake_case ASCII");
            }
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
            let ids: Vec<String> = c.findings.iter().map(|f| f.id.clone()).collect();
            let idx = resolve(&ids, &file, e, "findings", &mut issues);
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
                if let Some(&i) = finding_index.get(&f.id)
                    && !cf.iter().any(|x: &ConditionFinding| x.finding == i)
                {
                    cf.push(ConditionFinding { finding: i, freq: f.freq.clamp(0.0, 1.0) });
                }
            }
            let _ = idx;
            let opposing = resolve(&c.opposing, &file, e, "opposing", &mut issues);
            for o in &opposing {
                if cf.iter().any(|x| x.finding == *o) {
                    issues.push(
                        &file,
                        Some(e),
                        Some("opposing"),
                        format!("'{}' is both a finding and an opposing finding", findings[*o].id),
                    );
                }
            }
            let mut requires = Vec::new();
            for group in &c.requires {
                let g = resolve(group, &file, e, "requires", &mut issues);
                if group.is_empty() {
                    issues.push(&file, Some(e), Some("requires"), "an empty group");
                } else if let Some(&first) = g.first()
                    && g.len() == group.len()
                    && !cf.iter().any(|x| x.finding == first)
                {
                    issues.push(&file, Some(e), Some("requires"), format!("the first finding of a group ('{}') must be one of the condition's findings", findings[first].id));
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

    // Advice.
    let mut advice: Vec<Advice> = Vec::new();
    let mut advice_ids: HashSet<String> = HashSet::new();
    for (file, parsed) in parse_section::<AdviceFile>(dir, "advice", &mut issues, &mut hasher)? {
        for a in parsed.advice {
            let e = a.id.as_str();
            if !valid_id(e) {
                issues.push(&file, Some(e), Some("id"), "ids are lower_snake_case ASCII");
            }
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
            let fnd = resolve(&a.findings, &file, e, "findings", &mut issues);
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

    // Rules.
    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_ids: HashSet<String> = HashSet::new();
    for (file, parsed) in parse_section::<RulesFile>(dir, "rules", &mut issues, &mut hasher)? {
        for r in parsed.rule {
            let e = r.id.as_str();
            if !valid_id(e) {
                issues.push(&file, Some(e), Some("id"), "ids are lower_snake_case ASCII");
            }
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
            let all = resolve(&r.all, &file, e, "all", &mut issues);
            let any = resolve(&r.any, &file, e, "any", &mut issues);
            let mut examples = Vec::new();
            for (k, x) in r.example.iter().enumerate() {
                let field = format!("example[{k}].findings");
                let present = resolve(&x.findings, &file, e, &field, &mut issues);
                let absent =
                    resolve(&x.absent, &file, e, &format!("example[{k}].absent"), &mut issues);
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

    if findings.is_empty() {
        issues.push("findings", None, None, "no findings defined");
    }
    if conditions.is_empty() {
        issues.push("conditions", None, None, "no conditions defined");
    }
    if !issues.0.is_empty() {
        return Err(KbError::Invalid(issues.0));
    }

    let mut lexicon = Lexicon::new();
    for (i, f) in findings.iter().enumerate() {
        for p in f.clinical.iter().chain(&f.lay) {
            lexicon.insert(p, i as u32);
        }
    }
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
    let reader = reading::Reader::new(entries, vectors.as_ref());
    let with_vital = findings.iter().enumerate().filter_map(|(i, f)| Some((i, f.vital?))).collect();
    Ok(KnowledgeBase {
        findings,
        with_vital,
        conditions,
        advice,
        rules,
        finding_index,
        condition_index,
        lexicon,
        reader,
        fingerprint: format!("{hasher:016x}"),
        bayes: std::sync::OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_format() {
        for ok in ["J18.9", "A09", "T78.2", "O00.9", "U07.1", "S52.50"] {
            assert!(valid_icd10(ok), "{ok}");
        }
        for bad in ["J18.", "j18.9", "18.9", "J1", "J18.99999", "JJ8"] {
            assert!(!valid_icd10(bad), "{bad}");
        }
    }
}
