//! The umbrella terms (`kb/umbrellas/*.toml`, optional): broad phrases whose denial denies
//! several findings, read only when denied.

use super::findings::Findings;
use super::{Folder, Issues, KbError, check_phrases, phrase_key, starts_with_negation};
use serde::Deserialize;

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

/// Reads `umbrellas/`: each umbrella's phrases become phrases that deny the findings it names.
pub(super) fn load_umbrellas(
    folder: &mut Folder<'_>,
    issues: &mut Issues,
    findings: &mut Findings,
) -> Result<(), KbError> {
    for (file, parsed) in folder.parse_section::<UmbrellasFile>("umbrellas", issues)? {
        for u in parsed.umbrella {
            let name = u.phrases.first().cloned().unwrap_or_default();
            check_phrases(&file, &name, "phrases", &u.phrases, 1, issues);
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
                match findings.index.get(id) {
                    Some(&i) => findings.list[i].denied_by.extend(u.phrases.iter().cloned()),
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
    Ok(())
}
