//! Reading a person's age and sex from free text ("a 48-year-old woman", "my 4 yo",
//! "3 month old baby", "I'm 34").
//!
//! Deliberately conservative: it answers only when a pattern is clear, because a wrong age is
//! worse than none (the red-flag rules for infants depend on it).

use domain::Sex;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Demographics {
    pub age: Option<f32>,
    pub sex: Option<Sex>,
}

/// The text's words, lower-cased, in one buffer: `(buffer, spans)`. An apostrophe is dropped
/// ("i'm" -> "im"), a decimal point stays inside a number, and glued forms such as "48yo",
/// "3yrs", "6mo" or "48f" are split into number and unit.
fn words(text: &str) -> (String, Vec<(usize, usize)>) {
    let mut buf = String::with_capacity(text.len());
    let mut spans = Vec::new();
    let mut start = 0;
    for ch in text.chars() {
        let word = &buf[start..];
        if ch.is_alphanumeric()
            || ch == '.' && !word.is_empty() && word.bytes().all(|c| c.is_ascii_digit())
        {
            for l in ch.to_lowercase() {
                buf.push(l);
            }
        } else if ch == '\'' || ch == '\u{2019}' {
            // "i'm" -> "im"
        } else if buf.len() > start {
            split_word(&buf, start, &mut spans);
            start = buf.len();
        }
    }
    if buf.len() > start {
        split_word(&buf, start, &mut spans);
    }
    (buf, spans)
}

/// The word `buf[start..]` as one span, or two when a number is glued to what follows it.
fn split_word(buf: &str, start: usize, spans: &mut Vec<(usize, usize)>) {
    let w = &buf[start..];
    let digits = w.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
    let trimmed = |s: &str| s.trim_end_matches('.').len();
    if digits > 0 && digits < w.len() && w.as_bytes()[0].is_ascii_digit() {
        spans.push((start, start + trimmed(&w[..digits])));
        spans.push((start + digits, buf.len()));
    } else {
        spans.push((start, start + trimmed(w)));
    }
}

fn number(w: &str) -> Option<f32> {
    let n = match w {
        "one" | "a" | "an" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        _ => return w.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0),
    };
    Some(n)
}

/// Unit words and how many years one of them is.
fn unit_years(w: &str) -> Option<f32> {
    Some(match w {
        "year" | "years" | "yr" | "yrs" | "yo" | "y" | "yrold" | "yearold" => 1.0,
        "month" | "months" | "mo" | "mos" | "mth" | "mths" | "mon" => 1.0 / 12.0,
        "week" | "weeks" | "wk" | "wks" => 7.0 / 365.25,
        "day" | "days" => 1.0 / 365.25,
        _ => return None,
    })
}

const FEMALE: &[&str] = &[
    "woman",
    "female",
    "girl",
    "lady",
    "f",
    "daughter",
    "wife",
    "mother",
    "mum",
    "mom",
    "grandmother",
    "grandma",
    "gran",
    "nan",
    "she",
    "her",
    "sister",
    "aunt",
    "pregnant",
    "girlfriend",
];
const MALE: &[&str] = &[
    "man",
    "male",
    "boy",
    "gentleman",
    "m",
    "son",
    "husband",
    "father",
    "dad",
    "grandfather",
    "grandpa",
    "grandad",
    "he",
    "him",
    "his",
    "brother",
    "uncle",
    "boyfriend",
    "guy",
];

/// Reads age and sex from text where a clear pattern gives them.
pub fn read_demographics(text: &str) -> Demographics {
    let (buf, spans) = words(text);
    let w: Vec<&str> = spans.iter().map(|&(a, b)| &buf[a..b]).collect();
    let mut age: Option<f32> = None;
    for i in 0..w.len() {
        let Some(n) = number(w[i]) else { continue };
        let next = w.get(i + 1).copied().unwrap_or("");
        let after = w.get(i + 2).copied().unwrap_or("");
        let prev = if i > 0 { w[i - 1] } else { "" };
        let prev2 = if i > 1 { w[i - 2] } else { "" };
        // "48 year old", "48-year-old", "3 month old", "48yo", "6 weeks old"
        if let Some(u) = unit_years(next) {
            let is_age = matches!(next, "yo" | "y" | "yrold" | "yearold")
                || after == "old"
                || after == "of" && w.get(i + 3).is_some_and(|&x| x == "age")
                || prev == "aged"
                || prev == "age";
            // Words such as "a" only count with an explicit "old": "a week old".
            let word_number = w[i].parse::<f32>().is_err();
            if is_age && (!word_number || after == "old") {
                age = Some(n * u);
                break;
            }
        }
        // "aged 48", "age 48", "age: 48"
        if (prev == "aged" || prev == "age") && w[i].parse::<f32>().is_ok() && n <= 120.0 {
            age = Some(n);
            break;
        }
        // "im 34", "i am 34", "my 4 yo" handled above; "48 f", "48m"
        if w[i].parse::<f32>().is_ok()
            && (prev == "im" || (prev == "am" && prev2 == "i"))
            && (1.0..=110.0).contains(&n)
            && unit_years(next).is_none()
        {
            age = Some(n);
            break;
        }
        if w[i].parse::<f32>().is_ok()
            && (next == "f" || next == "m")
            && (1.0..=110.0).contains(&n)
            && i < 3
        {
            age = Some(n);
            break;
        }
    }
    if age.is_none() && w.iter().any(|&x| x == "newborn" || x == "neonate") {
        age = Some(0.02);
    }
    let age = age.filter(|a| *a <= 120.0);

    // Sex: the first gendered noun naming the patient wins; otherwise pronouns, if one-sided.
    // A relative who saw or speaks about the writer ("my girlfriend saw me", "my husband says
    // I") is a witness, not the patient; the pronouns then may be the witness's too, so none
    // count and the sex stays unknown: a wrong sex is worse than none.
    let strong = |set: &[&str], x: &str| {
        set.contains(&x) && !matches!(x, "she" | "her" | "he" | "him" | "his")
    };
    let mut sex = None;
    let mut witness = false;
    for (i, &x) in w.iter().enumerate() {
        let (female, male) = (strong(FEMALE, x), strong(MALE, x));
        if !female && !male {
            continue;
        }
        if i > 0 && w[i - 1] == "my" && is_witness(&w[i + 1..]) {
            witness = true;
            continue;
        }
        sex = Some(if female { Sex::Female } else { Sex::Male });
        break;
    }
    if sex.is_none() && !witness {
        let f = w.iter().filter(|&&x| matches!(x, "she" | "her")).count();
        let m = w.iter().filter(|&&x| matches!(x, "he" | "him" | "his")).count();
        if f > 0 && m == 0 {
            sex = Some(Sex::Female);
        } else if m > 0 && f == 0 {
            sex = Some(Sex::Male);
        }
    }
    Demographics { age, sex }
}

/// Nouns for someone a writer may be writing about instead of themselves.
const OTHERS: &[&str] = &[
    "baby",
    "babies",
    "toddler",
    "infant",
    "newborn",
    "child",
    "kid",
    "kids",
    "children",
    "son",
    "daughter",
    "boy",
    "girl",
    "grandson",
    "granddaughter",
    "nephew",
    "niece",
    "brother",
    "sister",
    "mum",
    "mom",
    "mother",
    "dad",
    "father",
    "husband",
    "wife",
    "partner",
    "boyfriend",
    "girlfriend",
    "friend",
    "grandma",
    "grandmother",
    "grandpa",
    "grandfather",
    "grandad",
    "nan",
    "gran",
    "aunt",
    "uncle",
    "patient",
    "pt",
    "neighbour",
    "neighbor",
    "flatmate",
    "roommate",
    "colleague",
    "fiance",
    "fiancee",
];

/// Whether the writer writes about their own illness: the text speaks in the first person ("I",
/// "me", "my", "I'm", "I've", "myself") and names nobody else it could be about (a relative, a
/// child, a patient), unless that person only witnessed the writer's illness ("my girlfriend saw
/// me"). A person who writes about themselves is not an infant or a young child: carers write
/// for those. `words` are the text's normalised tokens (lower case, apostrophes folded away).
pub fn self_report<'a>(words: impl IntoIterator<Item = &'a str>) -> bool {
    let w: Vec<&str> = words.into_iter().collect();
    let first_person =
        w.iter().any(|&x| matches!(x, "i" | "im" | "ive" | "id" | "me" | "my" | "myself"));
    if !first_person {
        return false;
    }
    !w.iter().enumerate().any(|(i, &x)| {
        OTHERS.contains(&x)
            && !(i > 0 && matches!(w[i - 1], "my" | "our") && is_witness(&w[i + 1..]))
    })
}

/// Whether the words after "my <relative>" make the relative a witness of the writer's own
/// illness: the writer ("me", "myself", "I") within the next four words, unless "me" is
/// followed by the relative's own ("told me her ear hurts").
fn is_witness(after: &[&str]) -> bool {
    let near = &after[..after.len().min(4)];
    near.iter().enumerate().any(|(k, &x)| match x {
        "i" | "myself" => true,
        "me" => !near
            .get(k + 1)
            .is_some_and(|&n| matches!(n, "her" | "his" | "she" | "he" | "its" | "their" | "they")),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(t: &str) -> Option<f32> {
        read_demographics(t).age
    }

    #[test]
    fn reads_common_age_forms() {
        assert_eq!(age("A 48-year-old woman presents with"), Some(48.0));
        assert_eq!(age("my 4 yo has had a temp"), Some(4.0));
        assert_eq!(age("I'm 34 and I've had a headache"), Some(34.0));
        assert_eq!(age("68yo M, chest pain"), Some(68.0));
        assert_eq!(age("aged 71, confused"), Some(71.0));
        assert_eq!(age("55 m chest pain"), Some(55.0));
        let a = age("my 6 week old baby").unwrap();
        assert!((a - 6.0 * 7.0 / 365.25).abs() < 1e-4);
        assert!((age("3-month-old boy").unwrap() - 0.25).abs() < 1e-4);
    }

    #[test]
    fn durations_are_not_ages() {
        assert_eq!(age("headache for 3 days"), None);
        assert_eq!(age("had a temp of 39 since yesterday"), None);
        assert_eq!(age("cough for 2 weeks"), None);
    }

    #[test]
    fn reads_sex() {
        assert_eq!(read_demographics("A 48-year-old woman").sex, Some(Sex::Female));
        assert_eq!(read_demographics("my son has a fever").sex, Some(Sex::Male));
        assert_eq!(read_demographics("she has had pain, her tummy").sex, Some(Sex::Female));
        assert_eq!(read_demographics("headache fever stiff neck").sex, None);
    }

    #[test]
    fn reads_who_writes_about_themselves() {
        let me = |t: &str| self_report(crate::tokenize(t).iter().map(|t| t.text.as_str()));
        assert!(me("I've had a sore throat and a runny nose for two days"));
        assert!(me("my skin has become yellow and my pee is dark"));
        assert!(me("my girlfriend saw me have a fit"));
        assert!(!me("my son has had a fever since last night"));
        assert!(!me("I think my baby has a rash"));
        assert!(!me("Worried about my mum, she is confused"));
        assert!(!me("58M, chest pain radiating to the left arm"));
        assert!(!me("A 34-year-old woman presents with a cough"));
    }

    #[test]
    fn a_relative_who_saw_the_writer_is_not_the_patient() {
        let sex = |t: &str| read_demographics(t).sex;
        assert_eq!(
            sex("I had a fit last night, my girlfriend saw me go stiff and I bit my tongue"),
            None
        );
        assert_eq!(sex("my husband found me on the floor, he called an ambulance"), None);
        assert_eq!(sex("my wife says I snore and stop breathing"), None);
        assert_eq!(sex("my wife says I snore, I am a 50 year old man"), Some(Sex::Male));
        assert_eq!(sex("my daughter told me her ear hurts"), Some(Sex::Female));
        assert_eq!(sex("my mum has had a cough and I think she is worse"), Some(Sex::Female));
    }
}
