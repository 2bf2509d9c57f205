//! The hand-written vignettes (`vignettes/vignettes.toml`).

use domain::{Sex, TriageLevel};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vignette {
    pub id: String,
    pub voice: String,
    pub text: String,
    #[serde(default)]
    pub age: Option<f32>,
    #[serde(default)]
    pub sex: Option<Sex>,
    pub gold_icd10: Vec<String>,
    pub gold_level: TriageLevel,
    #[serde(default)]
    pub note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    vignette: Vec<Vignette>,
}

#[derive(Debug, thiserror::Error)]
pub enum VignetteError {
    #[error("cannot read {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("{file}: vignette '{id}': {message}")]
    Invalid { file: String, id: String, message: String },
}

pub fn default_vignettes_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vignettes/vignettes.toml")
}

/// Loads the vignettes and checks them against the knowledge base: known voices, and every
/// gold code a code some condition has.
pub fn load_vignettes(path: &Path, kb: &kb::KnowledgeBase) -> Result<Vec<Vignette>, VignetteError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| VignetteError::Io(name.clone(), e))?;
    let file: File =
        toml::from_str(&text).map_err(|e| VignetteError::Parse(name.clone(), e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for v in &file.vignette {
        let bad =
            |m: String| VignetteError::Invalid { file: name.clone(), id: v.id.clone(), message: m };
        if !seen.insert(v.id.clone()) {
            return Err(bad("duplicate id".into()));
        }
        if !["lay", "terse", "clinical", "parent", "carer"].contains(&v.voice.as_str()) {
            return Err(bad(format!("unknown voice '{}'", v.voice)));
        }
        if v.gold_icd10.is_empty() {
            return Err(bad("no gold ICD-10 code".into()));
        }
        for code in &v.gold_icd10 {
            if !kb.conditions.iter().any(|c| &c.icd10 == code) {
                return Err(bad(format!(
                    "gold code {code} is not the code of any condition in the knowledge base"
                )));
            }
        }
    }
    Ok(file.vignette)
}
