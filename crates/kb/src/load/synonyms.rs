//! The synonyms (`kb/synonyms/*.toml`, optional): phrases an open vocabulary gives for one of
//! our findings, added to that finding's phrases for the reader.

use super::findings::{Findings, PhraseOwners};
use super::{Folder, Issues, KbError, check_phrases};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SynonymsFile {
    #[serde(default)]
    synonym: Vec<RawSynonym>,
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

/// Reads `synonyms/`: each phrase no other finding has becomes one of its finding's synonyms.
pub(super) fn load_synonyms(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
    findings: &mut Findings,
    phrases: &mut PhraseOwners,
) -> Result<(), KbError> {
    for (file, parsed) in folder.parse_section::<SynonymsFile>("synonyms", issues)? {
        for syn in parsed.synonym {
            let Some(&i) = findings.index.get(&syn.finding) else {
                issues.push(
                    &file,
                    Some(&syn.term),
                    Some("finding"),
                    format!("unknown finding '{}'", syn.finding),
                );
                continue;
            };
            if syn.term.trim().is_empty() {
                issues.push(&file, Some(&syn.finding), Some("term"), "name the vocabulary's term");
            }
            check_phrases(&file, &syn.finding, "phrases", &syn.phrases, 1, issues);
            for p in &syn.phrases {
                if phrases.claim(p, &syn.finding, &file, "phrases", issues) {
                    findings.list[i].synonyms.push(p.clone());
                }
            }
        }
    }
    Ok(())
}
