//! Reading and validating the TOML files.
//!
//! [`load_dir`] reads the knowledge base one section (one folder of `kb/`) at a time, in the
//! order the sections need each other: findings first, since every other section names them;
//! synonyms and umbrellas, which add phrases to findings; the links between findings; then
//! conditions, advice (which names conditions too) and rules. It then builds what reads text from
//! the findings.
//!
//! Each section has its own file under `load/`, holding the shape its entries are read in (the
//! `Raw*` structs) beside the checks made on them, so one file says everything asked of one
//! folder and can be read next to its part of `kb/SCHEMA.md`. This file keeps what the sections
//! share: the issue collector, reading a folder's files, the id and phrase checks, and the
//! assembly of the result.

mod advice;
mod conditions;
mod findings;
mod reader;
mod rules;
mod synonyms;
mod umbrellas;

use crate::model::KnowledgeBase;
use advice::load_advice;
use conditions::load_conditions;
use findings::{link_findings, load_findings};
use reader::{build_lexicon, build_reader};
use rules::load_rules;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use synonyms::load_synonyms;
use umbrellas::load_umbrellas;

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

/// Loads and validates the knowledge base in `dir` (`findings/`, `conditions/`, `advice/`,
/// `rules/`). Returns every problem found, not just the first.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<KnowledgeBase, KbError> {
    let dir = dir.as_ref();
    let mut folder = Folder::new(dir);
    let mut issues = Issues(Vec::new());

    let (mut findings, mut phrases, links) = load_findings(&mut folder, &mut issues)?;
    // Synonyms from open vocabularies (optional folder): more phrases for the reader.
    if folder.has("synonyms") {
        load_synonyms(&mut folder, &mut issues, &mut findings, &mut phrases)?;
    }
    // Umbrella terms (optional folder): broad phrases read only when denied.
    if folder.has("umbrellas") {
        load_umbrellas(&mut folder, &mut issues, &mut findings)?;
    }
    link_findings(links, &mut findings, &mut issues);
    let (conditions, condition_index) = load_conditions(&mut folder, &mut issues, &findings)?;
    let advice = load_advice(&mut folder, &mut issues, &findings, &condition_index)?;
    let rules = load_rules(&mut folder, &mut issues, &findings)?;

    if findings.list.is_empty() {
        issues.push("findings", None, None, "no findings defined");
    }
    if conditions.is_empty() {
        issues.push("conditions", None, None, "no conditions defined");
    }
    if !issues.0.is_empty() {
        return Err(KbError::Invalid(issues.0));
    }

    let lexicon = build_lexicon(&findings.list);
    let reader = build_reader(dir, &findings.list)?;
    let with_vital =
        findings.list.iter().enumerate().filter_map(|(i, f)| Some((i, f.vital?))).collect();
    Ok(KnowledgeBase {
        findings: findings.list,
        with_vital,
        conditions,
        advice,
        rules,
        finding_index: findings.index,
        condition_index,
        lexicon,
        reader,
        fingerprint: folder.fingerprint(),
        bayes: std::sync::OnceLock::new(),
    })
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

/// The knowledge-base folder being read, and a hash of every file read from it so far (the
/// knowledge base's `fingerprint`).
struct Folder<'a> {
    dir: &'a Path,
    hasher: u64,
}

impl<'a> Folder<'a> {
    fn new(dir: &'a Path) -> Self {
        Folder { dir, hasher: 0xcbf2_9ce4_8422_2325 }
    }

    /// Whether the folder has the (optional) section.
    fn has(&self, section: &str) -> bool {
        self.dir.join(section).is_dir()
    }

    /// Parses all files of one section; syntax and schema errors become issues.
    fn parse_section<T: for<'de> Deserialize<'de>>(
        &mut self,
        section: &str,
        issues: &mut Issues,
    ) -> Result<Vec<(String, T)>, KbError> {
        let sub = self.dir.join(section);
        let mut out = Vec::new();
        for path in toml_files(&sub)? {
            let name = rel(self.dir, &path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| KbError::Io { path: path.display().to_string(), source: e })?;
            for b in name.bytes().chain(text.bytes()) {
                self.hasher ^= u64::from(b);
                self.hasher = self.hasher.wrapping_mul(0x0000_0100_0000_01b3);
            }
            match toml::from_str::<T>(&text) {
                Ok(v) => out.push((name, v)),
                Err(e) => issues.push(&name, None, None, e.to_string().trim().replace('\n', " ")),
            }
        }
        Ok(out)
    }

    /// The hash of every file read, as the knowledge base records it.
    fn fingerprint(&self) -> String {
        format!("{:016x}", self.hasher)
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

/// Records an issue if `id` (of an entry in `file`) is not a valid id.
fn check_id(file: &str, id: &str, issues: &mut Issues) {
    if !valid_id(id) {
        issues.push(file, Some(id), Some("id"), "ids are lower_snake_case ASCII");
    }
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
