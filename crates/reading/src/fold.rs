//! Word folding for matching: British and American spelling made one, then a light suffix
//! stripper, so "vomiting", "vomited" and "vomits" meet "vomit", and "diarrhoea" meets
//! "diarrhea". Applied to the knowledge base's phrases and to the text alike, so both sides
//! fold the same way; it only has to be consistent, not linguistically exact.

use std::borrow::Cow;

/// Folds one normalised (lower-case) word: spelling, then the suffix stripper.
pub fn fold_word(word: &str) -> String {
    let mut w = spelling(word).into_owned();
    stem(&mut w);
    w
}

/// Folds a word lightly: spelling, then only a plural "s" and a final "e" ("rashes" meets
/// "rash", "spots" does not meet "spotting"). A phrase of one word is matched on this, since
/// stemming one word alone collides too often ("spotting", "tearing", "fits").
pub fn fold_light(word: &str) -> String {
    light(&spelling(word)).to_string()
}

/// Both folds of a word at once, into `stem` (cleared first) and as the light fold, a slice of
/// the spelled word: the reader folds every word of every request, and this spells it once and
/// allocates nothing for the usual word, which spelling leaves as it is.
pub(crate) fn fold_both<'a>(word: &'a str, stemmed: &mut String) -> Cow<'a, str> {
    let spelled = spelling(word);
    stemmed.clear();
    stemmed.push_str(&spelled);
    stem(stemmed);
    spelled
}

/// The light suffix stripper on a word already spelled (see [`fold_light`]): the phrase
/// lexicon's plural folding (`textfeat::fold_plural`), so the two readers agree on stems.
pub(crate) fn light(w: &str) -> &str {
    textfeat::fold_plural(w)
}

/// British spellings of medical words in their American form (haem- -> hem-, oe- -> e-,
/// -oea -> -ea, paed- -> ped-, faec- -> fec-, -our -> -or). Most words have none: they come
/// back borrowed.
fn spelling(word: &str) -> Cow<'_, str> {
    // Text-speak that would otherwise fold onto another word ("nite" is not "nits").
    match word {
        "nite" => return Cow::Borrowed("night"),
        "nites" => return Cow::Borrowed("nights"),
        "tonite" => return Cow::Borrowed("tonight"),
        // Units shortened as people type them ("7 wks pregnant", "pain for 3 hrs"); not "hr",
        // which notes use for heart rate.
        "wk" => return Cow::Borrowed("week"),
        "wks" => return Cow::Borrowed("weeks"),
        "hrs" => return Cow::Borrowed("hours"),
        "mins" => return Cow::Borrowed("minutes"),
        "yr" => return Cow::Borrowed("year"),
        "yrs" => return Cow::Borrowed("years"),
        "mth" | "mnth" => return Cow::Borrowed("month"),
        "mths" | "mnths" => return Cow::Borrowed("months"),
        // Notes write "cannot weight bear" where phrases say "cant weight bear".
        "cannot" => return Cow::Borrowed("cant"),
        // "hives" loses its "s" and "e" to the light fold and would meet "HIV".
        "hiv" => return Cow::Borrowed("hivirus"),
        // "note" and "noted" would stem to "not": "percussion note and absent breath
        // sounds" is no "not breathing".
        "note" | "notes" | "noted" | "noting" => return Cow::Borrowed("notew"),
        _ => {}
    }
    // Every rule needs an "ae" or "oe" somewhere, or a final "our": one pass over the bytes.
    let british = word.as_bytes().windows(2).any(|p| p[1] == b'e' && matches!(p[0], b'a' | b'o'));
    if !british && !word.ends_with("our") {
        return Cow::Borrowed(word);
    }
    let mut w = word.replace("aem", "em").replace("oea", "ea");
    for (uk, us) in [
        ("oede", "ede"),
        ("oeso", "eso"),
        ("oest", "est"),
        ("paed", "ped"),
        ("faec", "fec"),
        ("foet", "fet"),
        ("coel", "cel"),
        ("anaes", "anes"),
    ] {
        if w.starts_with(uk) {
            w = format!("{us}{}", &w[uk.len()..]);
        }
    }
    if w.len() > 5 && w.ends_with("our") {
        w.truncate(w.len() - 2);
        w.push('r');
    }
    Cow::Owned(w)
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

fn has_vowel(s: &str) -> bool {
    s.bytes().any(is_vowel)
}

/// "runn" -> "run", "stopp" -> "stop"; "ll", "ss" and "zz" stay ("swell", "dizz").
fn undouble(w: &mut String) {
    let b = w.as_bytes();
    let n = b.len();
    if n >= 3
        && b[n - 1] == b[n - 2]
        && !is_vowel(b[n - 1])
        && !matches!(b[n - 1], b'l' | b's' | b'z')
    {
        w.pop();
    }
}

fn strip(w: &mut String, suffix: &str, min_stem: usize) -> bool {
    if w.len() >= suffix.len() + min_stem
        && w.ends_with(suffix)
        && has_vowel(&w[..w.len() - suffix.len()])
    {
        w.truncate(w.len() - suffix.len());
        true
    } else {
        false
    }
}

fn stem(w: &mut String) {
    if w.len() <= 3 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return;
    }
    if w.ends_with("iness") && w.len() > 7 {
        w.truncate(w.len() - 5);
        w.push('y');
    } else if !strip(w, "ness", 3) {
        strip(w, "ful", 3);
    }
    if w.ends_with("ies") && w.len() > 5 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if strip(w, "ation", 3) {
        w.push_str("at");
        return;
    } else if w.ends_with("ing") {
        if strip(w, "ing", 3) {
            undouble(w);
            return;
        }
    } else if w.ends_with("ed") && !w.ends_with("eed") {
        if strip(w, "ed", 3) {
            undouble(w);
            return;
        }
    } else if w.ends_with("es")
        && (w.ends_with("shes")
            || w.ends_with("ches")
            || w.ends_with("xes")
            || w.ends_with("sses")
            || w.ends_with("zes"))
    {
        w.truncate(w.len() - 2);
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    let b = w.as_bytes();
    let n = b.len();
    if n >= 4 && b[n - 1] == b'y' && !is_vowel(b[n - 2]) {
        w.pop();
        undouble(w);
    } else if n > 3 && b[n - 1] == b'e' {
        w.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::{fold_both, fold_light, fold_word, light};

    fn same(a: &str, b: &str) {
        assert_eq!(fold_word(a), fold_word(b), "{a} / {b}");
    }

    #[test]
    fn hiv_is_not_hives_and_a_note_is_not_not() {
        assert_ne!(fold_light("hiv"), fold_light("hives"));
        assert_ne!(fold_word("hiv"), fold_word("hives"));
        for w in ["note", "notes", "noted", "noting"] {
            assert_ne!(fold_word(w), fold_word("not"), "{w}");
            assert_ne!(fold_light(w), fold_light("not"), "{w}");
        }
    }

    #[test]
    fn inflections_meet() {
        for (a, b) in [
            ("vomiting", "vomit"),
            ("cannot", "cant"),
            ("vomited", "vomits"),
            ("coughing", "cough"),
            ("wheezing", "wheeze"),
            ("sneezing", "sneezes"),
            ("breathing", "breathe"),
            ("headaches", "headache"),
            ("rashes", "rash"),
            ("aches", "ache"),
            ("achy", "ache"),
            ("itchy", "itching"),
            ("dizziness", "dizzy"),
            ("runny", "running"),
            ("bleeding", "bleed"),
            ("swelling", "swell"),
            ("stopped", "stop"),
            ("urination", "urinating"),
            ("painful", "pain"),
            ("sweaty", "sweating"),
            ("tiredness", "tired"),
            ("allergies", "allergy"),
        ] {
            same(a, b);
        }
    }

    #[test]
    fn spellings_meet() {
        for (a, b) in [
            ("diarrhoea", "diarrhea"),
            ("haemoptysis", "hemoptysis"),
            ("anaemia", "anemia"),
            ("oedema", "edema"),
            ("dyspnoea", "dyspnea"),
            ("amenorrhoea", "amenorrhea"),
            ("oesophagus", "esophagus"),
            ("paediatric", "pediatric"),
            ("tumour", "tumor"),
            ("ischaemic", "ischemic"),
            ("wks", "weeks"),
            ("hrs", "hours"),
            ("yrs", "years"),
        ] {
            same(a, b);
        }
    }

    #[test]
    fn short_and_distinct_words_stay_apart() {
        for (a, b) in
            [("red", "reed"), ("bed", "bleed"), ("need", "ne"), ("fever", "feet"), ("toe", "to")]
        {
            assert_ne!(fold_word(a), fold_word(b), "{a} / {b}");
        }
        assert_eq!(fold_word("no"), "no");
        assert_eq!(fold_word("38"), "38");
    }

    #[test]
    fn both_folds_at_once_are_the_two_folds() {
        let mut stemmed = String::new();
        for w in [
            "vomiting",
            "rashes",
            "diarrhoea",
            "haemorrhoids",
            "tumours",
            "oedematous",
            "spots",
            "fits",
            "bruise",
            "us",
            "no",
            "38",
        ] {
            let spelled = fold_both(w, &mut stemmed);
            assert_eq!(stemmed, fold_word(w), "{w}");
            assert_eq!(light(&spelled), fold_light(w), "{w}");
        }
    }
}
