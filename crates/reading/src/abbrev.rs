//! Clinical abbreviations written in capitals: "SOB", "DOE", "HA", "SI", "N/V", "D&V". In lower case
//! most of them are everyday words ("sob", "doe", "ha"), so the knowledge base cannot list them
//! as phrases; written in capitals in a note they are the abbreviation. Each is read as a word
//! of the finding it stands for, in place, so negation and the rest of the context work as for
//! the word itself ("denies SOB" denies shortness of breath).

use textfeat::Token;

/// The word an abbreviation written wholly in capitals stands for.
fn capitals(word: &str) -> Option<&'static str> {
    Some(match word {
        "SOB" => "dyspnoea",
        "SOBOE" | "DOE" => "soboe",
        "HA" => "headache",
        "SI" => "suicidality",
        _ => return None,
    })
}

/// A letter of a joined group such as "N/V", "N/V/D" or "D&V".
fn joined_letter(word: &str) -> Option<&'static str> {
    Some(match word {
        "N" => "nausea",
        "V" => "vomiting",
        "D" => "diarrhoea",
        _ => return None,
    })
}

/// The tokens with each capitalised abbreviation replaced by the word it stands for, or `None`
/// when the text has none (the usual case: nothing is copied).
pub(crate) fn expand(text: &str, tokens: &[Token]) -> Option<Vec<Token>> {
    let span = |t: &Token| text.get(t.start as usize..t.end as usize).unwrap_or("");
    let is_caps = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    // Whether tokens `a` and `b` are joined by one "/", "&" or "+" and nothing else.
    let joined = |a: &Token, b: &Token| {
        text.get(a.end as usize..b.start as usize)
            .is_some_and(|g| matches!(g.trim(), "/" | "&" | "+") && g.trim().len() == g.len())
    };
    let mut out: Option<Vec<Token>> = None;
    let mut i = 0;
    while i < tokens.len() {
        let s = span(&tokens[i]);
        // "SI joint" is the sacroiliac joint, not suicidal ideation.
        let joint =
            tokens.get(i + 1).is_some_and(|t| matches!(t.text.as_str(), "joint" | "joints" | "jt"));
        if is_caps(s)
            && let Some(w) = capitals(s)
            && !(s == "SI" && joint)
        {
            out.get_or_insert_with(|| tokens.to_vec())[i].text = w.to_string();
            i += 1;
            continue;
        }
        // A group of two or more single capitals joined: every letter must be one of ours.
        let mut j = i;
        while j + 1 < tokens.len() && joined(&tokens[j], &tokens[j + 1]) {
            j += 1;
        }
        if j > i && (i..=j).all(|k| joined_letter(span(&tokens[k])).is_some()) {
            let o = out.get_or_insert_with(|| tokens.to_vec());
            for k in i..=j {
                o[k].text = joined_letter(span(&tokens[k])).unwrap_or_default().to_string();
            }
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let tokens = textfeat::tokenize(text);
        expand(text, &tokens).unwrap_or(tokens).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn capitalised_abbreviations_are_their_words() {
        assert_eq!(words("c/o SOB and HA"), ["c", "o", "dyspnoea", "and", "headache"]);
        assert_eq!(words("DOE"), ["soboe"]);
        assert_eq!(words("N/V/D x 2 days"), ["nausea", "vomiting", "diarrhoea", "x", "2", "days"]);
        assert_eq!(words("3 days of D&V"), ["3", "days", "of", "diarrhoea", "vomiting"]);
        assert_eq!(words("denies SI"), ["denies", "suicidality"]);
        assert_eq!(words("SI joint pain"), ["si", "joint", "pain"]);
    }

    #[test]
    fn lower_case_words_and_other_capitals_stay() {
        assert_eq!(words("I sob at night"), ["i", "sob", "at", "night"]);
        assert_eq!(words("ha ha"), ["ha", "ha"]);
        assert_eq!(words("Vitamin D and N"), ["vitamin", "d", "and", "n"]);
        assert_eq!(words("N / V"), ["n", "v"]);
        assert_eq!(words("A/B"), ["a", "b"]);
    }
}
