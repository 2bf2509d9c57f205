//! The physician-written development vignettes in `../shared/data/dev-vignettes/` (see their
//! README): measured on, never trained on, never copied into the repository. Two scores:
//! - the differential: ICD-10 top-1/3/10 over every case (a gold code outside the knowledge
//!   base counts as a miss) and the reach (share of cases whose gold is in the knowledge base);
//! - the reading of their negatives: each "No ..." phrase, read alone, must be read absent for
//!   every finding it denies (`vignettes/dev-absent-map.toml`, our own annotation of which
//!   knowledge-base findings each phrase denies), with no finding read present from it.

use crate::Item;
use domain::{CaseInput, Sex, TriageLevel};
use kb::KnowledgeBase;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One case as published (the fields this evaluation reads).
#[derive(Debug, Clone, Deserialize)]
pub struct DevVignette {
    pub id: String,
    pub demographics: String,
    pub chief_complaints: String,
    pub presentation: String,
    pub absent_findings: String,
    #[serde(default)]
    pub physical_history: String,
    #[serde(default)]
    pub family_history: String,
    #[serde(default)]
    pub social_history: String,
    pub gold_icd10: Vec<String>,
}

/// `../shared/data/dev-vignettes/avey-dev.jsonl` beside the repository.
pub fn default_dev_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dev-vignettes/avey-dev.jsonl")
}

pub fn default_absent_map_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vignettes/dev-absent-map.toml")
}

pub fn load_dev(path: &Path) -> Result<Vec<DevVignette>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn filled(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && t != "-" && !t.eq_ignore_ascii_case("none")).then_some(t)
}

impl DevVignette {
    /// The "No ..." phrases of `absent_findings`, each as published.
    pub fn absent_phrases(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = self.absent_findings.as_str();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 0..bytes.len() {
            // A new phrase starts at "No" after a comma or full stop.
            let word_end = !bytes.get(i + 2).is_some_and(|b| b.is_ascii_alphanumeric());
            if i > 0
                && s.is_char_boundary(i)
                && s[i..].starts_with("No")
                && word_end
                && s[..i].trim_end().ends_with([',', '.'])
            {
                out.push(s[start..i].to_string());
                start = i;
            }
        }
        out.push(s[start..].to_string());
        out.into_iter()
            .map(|p| p.trim_matches(|c: char| c == ' ' || c == '.' || c == ',').trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// The usual request: the chief complaint, the presentation, each absent finding as its own
    /// sentence, then the histories.
    pub fn request_text(&self) -> String {
        let mut t = format!(
            "Chief complaint: {}. {}",
            self.chief_complaints.trim(),
            self.presentation.trim()
        );
        for p in self.absent_phrases() {
            let _ = write!(t, " {p}.");
        }
        for (label, h) in [
            ("Past history", &self.physical_history),
            ("Family history", &self.family_history),
            ("Social history", &self.social_history),
        ] {
            if let Some(h) = filled(h) {
                let _ = write!(t, " {label}: {h}");
            }
        }
        t
    }

    /// Age and sex from "61 year old Male".
    pub fn demographics(&self) -> (Option<f32>, Sex) {
        let d = textfeat::read_demographics(&self.demographics);
        (d.age, d.sex.unwrap_or(Sex::Unknown))
    }

    /// Where the first code that answers this case's gold stands in `codes` (0 is first).
    pub fn gold_rank(&self, codes: &[String]) -> Option<usize> {
        codes.iter().position(|c| self.gold_icd10.iter().any(|g| dev_code_matches(c, g)))
    }

    pub fn item(&self) -> Item {
        let (age, sex) = self.demographics();
        Item {
            input: CaseInput {
                text: self.request_text(),
                age,
                sex,
                findings: Vec::new(),
                vitals: Default::default(),
            },
            gold_codes: self.gold_icd10.clone(),
            gold_level: TriageLevel::Consultation,
        }
    }
}

/// A returned code is right when, ignoring dots and case, it starts with a gold code (a gold
/// code ending in `$` must match exactly).
pub fn dev_code_matches(code: &str, gold: &str) -> bool {
    let norm = |s: &str| s.replace('.', "").to_ascii_uppercase();
    let c = norm(code);
    match gold.strip_suffix('$') {
        Some(exact) => c == norm(exact),
        None => c.starts_with(&norm(gold)),
    }
}

#[derive(Deserialize)]
struct MapFile {
    phrase: Vec<MapEntry>,
}

#[derive(Deserialize)]
struct MapEntry {
    key: String,
    findings: Vec<String>,
}

/// Which findings each "No ..." phrase denies, keyed by `phrase_key` (the map file holds only
/// the keys, so the dev set's wording is not copied into the repository).
pub fn load_absent_map(
    path: &Path,
    kb: &KnowledgeBase,
) -> Result<HashMap<String, Vec<usize>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: MapFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for e in file.phrase {
        let ids = e
            .findings
            .iter()
            .map(|f| {
                kb.finding_idx(f)
                    .ok_or_else(|| format!("{}: unknown finding '{f}'", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(e.key, ids);
    }
    Ok(out)
}

/// A phrase's key: 64-bit FNV-1a of the phrase lower-cased with single spaces, in hex.
pub fn phrase_key(p: &str) -> String {
    let norm = p.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    let hash = norm
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// How the negatives were read.
#[derive(Debug, Clone, Default)]
pub struct AbsentScore {
    /// "No ..." phrases in all.
    pub phrases: usize,
    /// Phrases that deny at least one knowledge-base finding.
    pub in_kb: usize,
    /// Of those, phrases whose every denied finding was read absent.
    pub read_absent: usize,
    /// Phrases (of all) from which some finding was read present.
    pub with_present: usize,
    /// Phrases missing from the map (should be none).
    pub unmapped: usize,
    /// Every phrase that denies a finding and was read wrong: (phrase, the finding ids it
    /// denies, what was read with `!` marking absent), space-separated.
    pub misses: Vec<(String, String, String)>,
}

/// Reads each "No ..." phrase alone, as the sentence it is in the request.
pub fn score_absent(
    kb: &KnowledgeBase,
    reader: &reading::Reader,
    cases: &[DevVignette],
    map: &HashMap<String, Vec<usize>>,
) -> AbsentScore {
    let mut s = AbsentScore::default();
    for v in cases {
        for p in v.absent_phrases() {
            s.phrases += 1;
            let Some(gold) = map.get(&phrase_key(&p)) else {
                s.unmapped += 1;
                continue;
            };
            let sentence = format!("{p}.");
            let read = reader.read(&sentence, &textfeat::tokenize(&sentence));
            let present: Vec<&str> =
                read.present().map(|f| kb.findings[f.finding as usize].id.as_str()).collect();
            if !present.is_empty() {
                s.with_present += 1;
            }
            if gold.is_empty() {
                continue;
            }
            s.in_kb += 1;
            let all = gold.iter().all(|&g| read.absent().any(|f| f.finding as usize == g));
            if all && present.is_empty() {
                s.read_absent += 1;
            } else {
                let denied: Vec<&str> = gold.iter().map(|&g| kb.findings[g].id.as_str()).collect();
                let got: Vec<String> = read
                    .findings
                    .iter()
                    .map(|f| {
                        format!(
                            "{}{}",
                            if f.is_absent() { "!" } else { "" },
                            kb.findings[f.finding as usize].id
                        )
                    })
                    .collect();
                s.misses.push((p.clone(), denied.join(" "), got.join(" ")));
            }
        }
    }
    s
}

/// Differential scores on the dev vignettes.
#[derive(Debug, Clone, Default)]
pub struct DevScore {
    pub name: String,
    pub n: usize,
    pub top1: f64,
    pub top3: f64,
    pub top10: f64,
    pub reach: f64,
}

/// The reach: cases some knowledge-base condition's code answers.
pub fn dev_reach(kb: &KnowledgeBase, cases: &[DevVignette]) -> f64 {
    let hit = cases
        .iter()
        .filter(|v| {
            kb.conditions.iter().any(|c| v.gold_icd10.iter().any(|g| dev_code_matches(&c.icd10, g)))
        })
        .count();
    hit as f64 / cases.len().max(1) as f64
}

/// Scores ranked code lists (one per case) against the gold.
pub fn score_dev(
    name: &str,
    kb: &KnowledgeBase,
    cases: &[DevVignette],
    ranked: &[Vec<String>],
) -> DevScore {
    let n = cases.len().max(1) as f64;
    let within = |k: usize| {
        cases.iter().zip(ranked).filter(|(v, c)| v.gold_rank(c).is_some_and(|r| r < k)).count()
            as f64
            / n
    };
    DevScore {
        name: name.to_string(),
        n: cases.len(),
        top1: within(1),
        top3: within(3),
        top10: within(10),
        reach: dev_reach(kb, cases),
    }
}

pub fn dev_markdown(scores: &[DevScore], absent: &AbsentScore) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Development vignettes ({} physician-written cases, measured only)\n",
        scores.first().map_or(0, |d| d.n)
    );
    let _ = writeln!(s, "| | top-1 | top-3 | top-10 | reach |\n|---|---|---|---|---|");
    for d in scores {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            d.name, d.top1, d.top3, d.top10, d.reach
        );
    }
    let _ = writeln!(
        s,
        "\nTheir negatives: {} \"No ...\" phrases, {} of them deny a knowledge-base finding; {} ({:.1} %) of those are read absent for every finding they deny, with nothing read present. Phrases from which some finding was read present: {}. Phrases not in the annotation map: {}.",
        absent.phrases,
        absent.in_kb,
        absent.read_absent,
        100.0 * absent.read_absent as f64 / absent.in_kb.max(1) as f64,
        absent.with_present,
        absent.unmapped
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_keys_ignore_case_and_spacing() {
        // The value the map file was written with (FNV-1a of "no fever").
        assert_eq!(phrase_key("No  Fever"), "db82f9adf04c1cc0");
        assert_eq!(phrase_key("no fever"), phrase_key(" NO fever "));
        assert_ne!(phrase_key("no fever"), phrase_key("no fevers"));
    }
}
