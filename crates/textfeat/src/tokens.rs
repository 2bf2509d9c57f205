//! Normalisation, tokenisation and negation scope.

/// One word of the normalised text, with whether it lies inside a negation scope and whether a
/// clause boundary follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub negated: bool,
    /// True when this token is itself a negation trigger ("no", "denies").
    pub trigger: bool,
    /// Byte offsets of the word in the original text (`start..end`); for a "." or "," marker,
    /// the punctuation that made it.
    pub start: u32,
    pub end: u32,
}

impl Token {
    /// A clause marker with no place in the text (used where tokens are made by hand).
    pub fn boundary() -> Token {
        Token { text: ".".into(), negated: false, trigger: false, start: 0, end: 0 }
    }
}

/// Lower-cases, folds apostrophes away ("can't" -> "cant") and turns every other
/// non-alphanumeric character into a space, except that a comma becomes a standalone ","
/// and other clause punctuation a standalone "." so that negation scope can end there.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '\'' | '\u{2019}' | '`' => {}
            ',' => out.push_str(" , "),
            '.' | ';' | ':' | '!' | '?' | '\n' | '(' | ')' => out.push_str(" . "),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            c if c.is_alphanumeric() => {
                for l in c.to_lowercase() {
                    out.push(l);
                }
            }
            _ => out.push(' '),
        }
    }
    out
}

/// A word set written once: `$is` tests a word with a `match` (a switch on length and a few
/// comparisons, for every token of every request, rather than a comparison with every word),
/// and the tests read the same words as the slice `$list`.
macro_rules! word_set {
    ($(#[$doc:meta])* $is:ident, $list:ident: $($w:literal)|+) => {
        $(#[$doc])*
        fn $is(w: &str) -> bool {
            matches!(w, $($w)|+)
        }
        #[cfg(test)]
        const $list: &[&str] = &[$($w),+];
    };
}

word_set! {
    /// Words that open a negation scope.
    is_trigger, TRIGGERS:
    "no" | "not" | "denies" | "denied" | "deny" | "denying" | "without" | "never" | "nor" | "negative"
        | "dont" | "doesnt" | "didnt" | "isnt" | "hasnt" | "havent" | "hadnt" | "wasnt" | "arent" | "absent"
        | "free" | "nil"
}

word_set! {
    /// Words that end a negation scope (a new clause with its own verb, or a contrast).
    is_terminator, TERMINATORS:
    "but" | "however" | "although" | "though" | "except" | "apart" | "yet" | "whereas" | "which" | "has"
        | "have" | "had" | "is" | "was" | "reports" | "complains" | "presents" | "admits" | "feels" | "feeling"
        | "got" | "getting" | "developed" | "now" | "also" | "still" | "then" | "so" | "just" | "only"
}

/// How many words a negation scope reaches at most, so a stray "no" cannot negate a paragraph.
const MAX_SCOPE: usize = 7;

/// Splits normalised text into tokens and marks negation scope. A "." token (from
/// punctuation) ends the scope, except that a comma-separated list after a trigger stays
/// negated ("denies fever, cough or rash") while each item is short.
pub fn tokenize(text: &str) -> Vec<Token> {
    let words = words_with_offsets(text);
    let mut out: Vec<Token> = Vec::with_capacity(words.len() + 1);
    let mut scope_left = 0usize;
    let mut since_break = 0usize;
    let mut raw = words.into_iter().peekable();
    while let Some((w, start, end)) = raw.next() {
        if w == "." || w == "," {
            // A comma inside a negated list keeps the scope open for one more short item;
            // anything longer, or the end of a sentence, closes it.
            if w == "," && scope_left > 0 && since_break <= 4 {
                scope_left = MAX_SCOPE.min(scope_left + 3);
            } else {
                scope_left = 0;
            }
            since_break = 0;
            // Keep one boundary marker so phrases never match across clauses.
            if out.last().is_some_and(|t| t.text != ".") {
                out.push(Token { text: ".".into(), negated: false, trigger: false, start, end });
            }
            continue;
        }
        since_break += 1;
        if is_trigger(&w) {
            // "no longer" and "not only" do not negate what follows in the usual way, and
            // "negative" only negates as "negative for".
            let next = raw.peek().map_or("", |n| n.0.as_str());
            let real = !(matches!((w.as_str(), next), ("no", "longer") | ("not", "only"))
                || (w == "negative" && next != "for")
                || (w == "free" && next != "of"));
            out.push(Token { text: w, negated: scope_left > 0, trigger: real, start, end });
            if real {
                scope_left = MAX_SCOPE;
            }
            continue;
        }
        if is_terminator(&w) {
            scope_left = 0;
        }
        let negated = scope_left > 0;
        scope_left = scope_left.saturating_sub(1);
        out.push(Token { text: w, negated, trigger: false, start, end });
    }
    out
}

/// The words of [`normalise`]`(text)` split on whitespace, each with the byte range of the
/// original text it came from: the same words, found in one pass without the normalised copy.
fn words_with_offsets(text: &str) -> Vec<(String, u32, u32)> {
    let mut out = Vec::with_capacity(text.len() / 5 + 1);
    let mut word = String::new();
    let mut start = 0usize;
    let mut end = 0usize;
    let flush = |word: &mut String, out: &mut Vec<(String, u32, u32)>, start: usize, end: usize| {
        if !word.is_empty() {
            out.push((std::mem::take(word), start as u32, end as u32));
        }
    };
    for (i, ch) in text.char_indices() {
        let next = i + ch.len_utf8();
        match ch {
            '\'' | '\u{2019}' | '`' => {}
            ',' => {
                flush(&mut word, &mut out, start, end);
                out.push((",".into(), i as u32, next as u32));
            }
            '.' | ';' | ':' | '!' | '?' | '\n' | '(' | ')' => {
                flush(&mut word, &mut out, start, end);
                out.push((".".into(), i as u32, next as u32));
            }
            c if c.is_alphanumeric() => {
                if word.is_empty() {
                    start = i;
                }
                if c.is_ascii() {
                    word.push(c.to_ascii_lowercase());
                } else {
                    word.extend(c.to_lowercase());
                }
                end = next;
            }
            _ => flush(&mut word, &mut out, start, end),
        }
    }
    flush(&mut word, &mut out, start, end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negated_words(text: &str) -> Vec<String> {
        tokenize(text).into_iter().filter(|t| t.negated).map(|t| t.text).collect()
    }

    #[test]
    fn normalises_punctuation_and_apostrophes() {
        assert_eq!(
            normalise("Can't BREATHE!").split_whitespace().collect::<Vec<_>>(),
            ["cant", "breathe", "."]
        );
        assert_eq!(normalise("a, b").split_whitespace().collect::<Vec<_>>(), ["a", ",", "b"]);
    }

    #[test]
    fn word_lists_agree() {
        for w in TRIGGERS {
            assert!(is_trigger(w) && !is_terminator(w), "{w}");
        }
        for w in TERMINATORS {
            assert!(is_terminator(w) && !is_trigger(w), "{w}");
        }
        for w in ["nope", "noo", "butter", "ha", "free of", "", "i", "s"] {
            assert!(!is_trigger(w) && !is_terminator(w), "{w}");
        }
    }

    #[test]
    fn words_are_the_normalised_words_with_their_offsets() {
        for text in [
            "Can't BREATHE!",
            "a, b",
            "  ...  ",
            "Crème brûlée, ÉCOLE; x'y z\u{2019}s (ok)?",
            "temp 38.9C, no-rash",
            "",
        ] {
            let words = words_with_offsets(text);
            let texts: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
            assert_eq!(texts, normalise(text).split_whitespace().collect::<Vec<_>>(), "{text}");
            for (w, s, e) in &words {
                let original: String = text[*s as usize..*e as usize]
                    .chars()
                    .filter(|c| !matches!(c, '\'' | '\u{2019}' | '`'))
                    .collect();
                assert_eq!(normalise(&original).trim(), w.as_str(), "{text}");
            }
        }
    }

    #[test]
    fn simple_negation() {
        assert_eq!(negated_words("headache and a stiff neck, no rash"), ["rash"]);
    }

    #[test]
    fn negated_list_survives_commas() {
        assert_eq!(
            negated_words("denies chest pain, palpitations or fever"),
            ["chest", "pain", "palpitations", "or", "fever"]
        );
    }

    #[test]
    fn terminator_ends_scope() {
        let n = negated_words("no fever but has a bad cough");
        assert_eq!(n, ["fever"]);
    }

    #[test]
    fn sentence_ends_scope() {
        let n = negated_words(
            "No vomiting. The headache is terrible and it started suddenly this morning",
        );
        assert_eq!(n, ["vomiting"]);
    }

    #[test]
    fn cant_is_not_a_negation() {
        assert!(negated_words("i cant breathe properly").is_empty());
    }

    #[test]
    fn no_longer_is_not_a_trigger() {
        assert!(negated_words("he no longer eats").is_empty());
    }
}
