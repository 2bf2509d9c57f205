//! Writing a patient's facts as free text in one of four registers.

use crate::Patient;
use domain::{Sex, VitalSign};
use kb::{FindingKind, KnowledgeBase};
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

/// Who is writing, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// A worried adult writing about themselves.
    Lay,
    /// A parent or carer writing about someone else.
    Carer,
    /// A terse app user: keywords, no grammar.
    Terse,
    /// A clinician's note.
    Clinical,
}

impl Register {
    pub const ALL: [Register; 4] =
        [Register::Lay, Register::Carer, Register::Terse, Register::Clinical];

    pub fn as_str(self) -> &'static str {
        match self {
            Register::Lay => "lay",
            Register::Carer => "carer",
            Register::Terse => "terse",
            Register::Clinical => "clinical",
        }
    }

    pub(crate) fn pick(age: f32, rng: &mut ChaCha8Rng) -> Register {
        let r: f32 = rng.random();
        if age < 12.0 {
            // Children do not write their own triage requests.
            if r < 0.7 {
                Register::Carer
            } else if r < 0.85 {
                Register::Clinical
            } else {
                Register::Terse
            }
        } else if age >= 75.0 {
            if r < 0.35 {
                Register::Carer
            } else if r < 0.6 {
                Register::Lay
            } else if r < 0.8 {
                Register::Clinical
            } else {
                Register::Terse
            }
        } else if r < 0.45 {
            Register::Lay
        } else if r < 0.7 {
            Register::Terse
        } else if r < 0.9 {
            Register::Clinical
        } else {
            Register::Carer
        }
    }
}

pub(crate) struct Written {
    pub text: String,
    pub present: Vec<usize>,
    pub absent: Vec<usize>,
}

pub(crate) struct Writer {
    /// (lay phrases, clinical phrases, is risk factor) per finding.
    phrases: Vec<(Vec<String>, Vec<String>, bool)>,
    closings: Vec<&'static str>,
    fillers: Vec<&'static str>,
}

const LAY_CLOSINGS: &[&str] = &[
    "what should i do",
    "should i go to a and e",
    "do i need to see someone",
    "any advice please",
    "is this serious",
    "not sure what to do",
    "can i treat this at home",
    "thanks",
    "please help",
    "",
    "",
    "",
];

/// Everyday context people add that says nothing clinical; the models must learn to ignore it.
const FILLERS: &[&str] = &[
    "it started at work",
    "i was at the supermarket when it began",
    "we only got back from holiday on sunday",
    "my partner told me to ask",
    "i have an exam next week",
    "i took the day off work",
    "it was really busy at home this week",
    "i work nights",
    "i tried googling it",
    "i had a takeaway last night",
    "we have a new puppy",
    "i was gardening yesterday",
    "i have been working from home",
    "my kids are off school",
    "i took some tablets from the chemist",
    "i had a glass of wine on saturday",
    "i went to the gym on monday",
    "it is the school holidays",
    "i normally never get ill",
    "i do not like going to the doctor",
    "i had my booster in the autumn",
    "i have been really busy lately",
    "i live on my own",
    "we have just moved house",
    "it has been very hot this week",
    "the weather has been cold and wet",
    "i have been drinking plenty of water",
    "i ate as normal today",
    "my neighbour said to check",
    "i could not get a gp appointment",
    "we are staying with family",
    "i am a student",
    "i am retired",
    "i drive for a living",
    "i cycle to work",
    "she is at nursery",
    "he goes to primary school",
    "we had a party at the weekend",
    "i have been stressed with work",
    "i tried honey and lemon",
];

const DURATIONS_LAY: &[&str] = &[
    "since yesterday",
    "for 2 days",
    "for three days",
    "since this morning",
    "for a week",
    "for a few hours",
    "on and off for a month",
    "since last night",
    "for about 2 weeks",
    "for the past hour",
    "since the weekend",
    "for 5 days",
];

const DURATIONS_CLINICAL: &[&str] = &[
    "a 2-day history",
    "a 1-week history",
    "a 3-hour history",
    "a 24-hour history",
    "a 5-day history",
    "a 2-week history",
    "a 1-month history",
    "a 12-hour history",
];

const DURATIONS_TERSE: &[&str] =
    &["2 days", "3d", "since yesterday", "1 week", "few hours", "2/7", "x5 days", "today", ""];

fn person_noun(age: f32, sex: Sex) -> &'static str {
    match (age, sex) {
        (a, Sex::Female) if a < 1.0 => "baby girl",
        (a, Sex::Male) if a < 1.0 => "baby boy",
        (a, _) if a < 1.0 => "baby",
        (a, Sex::Female) if a < 18.0 => "girl",
        (a, Sex::Male) if a < 18.0 => "boy",
        (_, Sex::Female) => "woman",
        (_, Sex::Male) => "man",
        _ => "person",
    }
}

fn age_words(age: f32) -> String {
    if age < 2.0 / 12.0 {
        format!("{}-week-old", ((age * 52.0).round() as i32).max(1))
    } else if age < 2.0 {
        format!("{}-month-old", ((age * 12.0).round() as i32).max(1))
    } else {
        format!("{}-year-old", age as i32)
    }
}

fn pronoun(sex: Sex) -> (&'static str, &'static str) {
    match sex {
        Sex::Female => ("she", "her"),
        Sex::Male => ("he", "his"),
        _ => ("they", "their"),
    }
}

fn list(items: &[String], last: &str) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} {last} {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// One typo: swap, drop or double a letter in a longer word.
fn typo(word: &str, rng: &mut ChaCha8Rng) -> String {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 || !chars.iter().all(|c| c.is_ascii_alphabetic()) {
        return word.to_string();
    }
    let i = rng.random_range(1..chars.len() - 1);
    let mut out = chars.clone();
    match rng.random_range(0..3) {
        0 => out.swap(i, i + 1),
        1 => {
            out.remove(i);
        }
        _ => out.insert(i, chars[i]),
    }
    out.into_iter().collect()
}

impl Writer {
    pub(crate) fn new(kb: &KnowledgeBase) -> Self {
        let phrases = kb
            .findings
            .iter()
            .map(|f| (f.lay.clone(), f.clinical.clone(), f.kind == FindingKind::RiskFactor))
            .collect();
        // A closing line must not itself read as a finding ("i'm worried" is anxiety).
        let closings =
            LAY_CLOSINGS.iter().copied().filter(|c| kb.lexicon().find(c).is_empty()).collect();
        let fillers = FILLERS.iter().copied().filter(|c| kb.lexicon().find(c).is_empty()).collect();
        Writer { phrases, closings, fillers }
    }

    fn phrase(&self, f: usize, clinical_bias: f64, rng: &mut ChaCha8Rng) -> String {
        let (lay, clin, _) = &self.phrases[f];
        let pool = if rng.random_bool(clinical_bias) || lay.is_empty() { clin } else { lay };
        pool.choose(rng).cloned().unwrap_or_default()
    }

    pub(crate) fn write(
        &self,
        p: &Patient,
        present: &[usize],
        absent: &[usize],
        reg: Register,
        rng: &mut ChaCha8Rng,
    ) -> Written {
        let mut present: Vec<usize> = present.to_vec();
        present.shuffle(rng);
        let mut absent: Vec<usize> = absent.to_vec();
        absent.shuffle(rng);
        // Terse users rarely write negations; everyone else sometimes leaves them out too.
        let keep_neg = match reg {
            Register::Terse => rng.random_bool(0.4),
            Register::Clinical => true,
            _ => rng.random_bool(0.8),
        };
        if !keep_neg {
            absent.clear();
        }
        let (symptoms, risks): (Vec<usize>, Vec<usize>) =
            present.iter().partition(|&&f| !self.phrases[f].2);
        let clinical_bias = match reg {
            Register::Clinical => 0.85,
            Register::Terse => 0.4,
            _ => 0.12,
        };
        let sym: Vec<String> =
            symptoms.iter().map(|&f| self.phrase(f, clinical_bias, rng)).collect();
        // Risk factors are phrased in the first person by lay writers ("im pregnant"), so a carer
        // uses the clinical words for them.
        let risk_bias = if reg == Register::Carer { 1.0 } else { clinical_bias };
        let risk: Vec<String> = risks.iter().map(|&f| self.phrase(f, risk_bias, rng)).collect();
        let neg: Vec<String> = absent.iter().map(|&f| self.phrase(f, clinical_bias, rng)).collect();

        let text = match reg {
            Register::Lay => self.lay(p, &sym, &risk, &neg, rng),
            Register::Carer => self.carer(p, &sym, &risk, &neg, rng),
            Register::Terse => self.terse(p, &sym, &risk, &neg, rng),
            Register::Clinical => self.clinical(p, &sym, &risk, &neg, rng),
        };
        let text = if matches!(reg, Register::Lay | Register::Carer | Register::Terse) {
            text.split(' ')
                .map(|w| if rng.random_bool(0.025) { typo(w, rng) } else { w.to_string() })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text
        };
        let mut present_all = symptoms;
        present_all.extend(risks);
        Written { text, present: present_all, absent }
    }

    fn vitals_lay(&self, p: &Patient, rng: &mut ChaCha8Rng) -> Option<String> {
        let t = p.vitals.temperature_c?;
        (t > 37.8 && rng.random_bool(0.35)).then(|| format!("temp is {t:.1}"))
    }

    fn lay(
        &self,
        p: &Patient,
        sym: &[String],
        risk: &[String],
        neg: &[String],
        rng: &mut ChaCha8Rng,
    ) -> String {
        let mut parts: Vec<String> = Vec::new();
        let intro = match rng.random_range(0..5) {
            0 => format!("i'm {} and", p.age as i32),
            1 => format!(
                "{} year old {} here,",
                p.age as i32,
                if p.sex == Sex::Female { "female" } else { "male" }
            ),
            2 => format!(
                "hi, i'm a {}yo {}.",
                p.age as i32,
                if p.sex == Sex::Female { "f" } else { "m" }
            ),
            _ => String::new(),
        };
        let dur = DURATIONS_LAY.choose(rng).copied().unwrap_or("");
        let (first, rest) = sym.split_at(sym.len().min(rng.random_range(1..=3)));
        let opener = ["i've had", "i have", "i've got", "been having", "having", "i keep getting"]
            .choose(rng)
            .copied()
            .unwrap_or("i have");
        if first.is_empty() {
            parts.push(format!("{intro} not feeling right {dur}"));
        } else {
            parts.push(format!("{intro} {opener} {} {dur}", list(first, "and")).trim().to_string());
        }
        if !rest.is_empty() {
            let glue = ["also", "and now", "plus", "i also have", "there's also"]
                .choose(rng)
                .copied()
                .unwrap_or("also");
            parts.push(format!("{glue} {}", list(rest, "and")));
        }
        if let Some(v) = self.vitals_lay(p, rng) {
            parts.push(v);
        }
        if !risk.is_empty() {
            parts.push(list(risk, "and").to_string());
        }
        if !neg.is_empty() {
            let form = match rng.random_range(0..3) {
                0 => format!("no {}", list(neg, "or")),
                1 => format!("i don't have {}", list(neg, "or")),
                _ => format!("there's no {}", list(neg, "or")),
            };
            parts.push(form);
        }
        if rng.random_bool(0.5)
            && let Some(f) = self.fillers.choose(rng)
        {
            let at = rng.random_range(0..=parts.len());
            parts.insert(at, f.to_string());
        }
        if let Some(c) = self.closings.choose(rng)
            && !c.is_empty()
        {
            parts.push(c.to_string());
        }
        let sep = if rng.random_bool(0.5) { ". " } else { ", " };
        parts.retain(|s| !s.trim().is_empty());
        parts.join(sep).trim().to_string()
    }

    fn carer(
        &self,
        p: &Patient,
        sym: &[String],
        risk: &[String],
        neg: &[String],
        rng: &mut ChaCha8Rng,
    ) -> String {
        let (he, _his) = pronoun(p.sex);
        let who = if p.age < 1.0 {
            let a = age_words(p.age).replace('-', " ");
            match p.sex {
                Sex::Female => format!("my {a} daughter"),
                Sex::Male => format!("my {a} son"),
                _ => format!("my {a} baby"),
            }
        } else if p.age < 18.0 {
            let kid = match p.sex {
                Sex::Female => "daughter",
                Sex::Male => "son",
                _ => "child",
            };
            match rng.random_range(0..3) {
                0 => format!("my {} yo {kid}", p.age as i32),
                1 => format!("my {kid} ({})", p.age as i32),
                _ => format!("my {} year old", p.age as i32),
            }
        } else if p.age >= 60.0 {
            let rel = match (p.sex, rng.random_range(0..3)) {
                (Sex::Female, 0) => "mum",
                (Sex::Female, 1) => "grandmother",
                (Sex::Female, _) => "mother",
                (Sex::Male, 0) => "dad",
                (Sex::Male, 1) => "grandad",
                _ => "father",
            };
            format!("my {rel} who is {}", p.age as i32)
        } else {
            let rel = match p.sex {
                Sex::Female => "wife",
                Sex::Male => "husband",
                _ => "partner",
            };
            format!("my {rel} ({})", p.age as i32)
        };
        let dur = DURATIONS_LAY.choose(rng).copied().unwrap_or("");
        let mut parts = Vec::new();
        let (first, rest) = sym.split_at(sym.len().min(2));
        parts.push(format!(
            "{who} has had {} {dur}",
            if first.is_empty() { "something wrong".into() } else { list(first, "and") }
        ));
        if !rest.is_empty() {
            parts.push(format!("{he} also has {}", list(rest, "and")));
        }
        if let Some(v) = self.vitals_lay(p, rng) {
            parts.push(v);
        }
        if !risk.is_empty() {
            parts.push(format!("background {}", list(risk, "and")));
        }
        if !neg.is_empty() {
            parts.push(format!("no {}", list(neg, "or")));
        }
        if rng.random_bool(0.4)
            && let Some(f) = self.fillers.choose(rng)
        {
            let at = rng.random_range(1..=parts.len());
            parts.insert(at, f.to_string());
        }
        if let Some(c) = self.closings.choose(rng)
            && !c.is_empty()
        {
            parts.push(c.to_string());
        }
        parts.join(". ")
    }

    fn terse(
        &self,
        p: &Patient,
        sym: &[String],
        risk: &[String],
        neg: &[String],
        rng: &mut ChaCha8Rng,
    ) -> String {
        let mut parts: Vec<String> = Vec::new();
        if rng.random_bool(0.5) {
            let s = match p.sex {
                Sex::Female => "f",
                Sex::Male => "m",
                _ => "",
            };
            parts.push(if p.age < 2.0 { age_words(p.age) } else { format!("{}{s}", p.age as i32) });
        }
        parts.extend(sym.iter().cloned());
        let dur = DURATIONS_TERSE.choose(rng).copied().unwrap_or("");
        if !dur.is_empty() {
            parts.push(dur.to_string());
        }
        parts.extend(risk.iter().cloned());
        for n in neg {
            parts.push(format!("no {n}"));
        }
        let sep = if rng.random_bool(0.5) { " " } else { ", " };
        parts.join(sep)
    }

    fn clinical(
        &self,
        p: &Patient,
        sym: &[String],
        risk: &[String],
        neg: &[String],
        rng: &mut ChaCha8Rng,
    ) -> String {
        let (he, _his) = pronoun(p.sex);
        let he_cap = {
            let mut c = he.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        };
        let dur = DURATIONS_CLINICAL.choose(rng).copied().unwrap_or("a short history");
        let mut parts = Vec::new();
        let (first, rest) = sym.split_at(sym.len().min(3));
        let who = format!("{} {}", age_words(p.age), person_noun(p.age, p.sex));
        let art = if who.starts_with('8') || who.starts_with("11-") || who.starts_with("18-") {
            "An"
        } else {
            "A"
        };
        match rng.random_range(0..3) {
            0 => parts.push(format!("{art} {who} presents with {dur} of {}", list(first, "and"))),
            1 => parts.push(format!("{art} {who} with {dur} of {}", list(first, "and"))),
            _ => parts.push(format!("{who}, {}", list(first, "and"))),
        }
        if !rest.is_empty() {
            parts.push(format!("{he_cap} also reports {}", list(rest, "and")));
        }
        if !neg.is_empty() {
            parts.push(match rng.random_range(0..2) {
                0 => format!("{he_cap} denies {}", list(neg, "or")),
                _ => format!("No {}", list(neg, "or")),
            });
        }
        if !risk.is_empty() {
            parts.push(format!("Background: {}", list(risk, "and")));
        }
        if !p.vitals.is_empty() && rng.random_bool(0.5) {
            let mut obs = Vec::new();
            for s in VitalSign::ALL {
                if let Some(x) = p.vitals.get(s) {
                    obs.push(match s {
                        VitalSign::TemperatureC => format!("T {x:.1}"),
                        VitalSign::HeartRate => format!("HR {x:.0}"),
                        VitalSign::RespiratoryRate => format!("RR {x:.0}"),
                        VitalSign::Spo2 => format!("SpO2 {x:.0}%"),
                        VitalSign::SystolicBp => format!("BP {x:.0}/{:.0}", x * 0.62),
                    });
                }
            }
            parts.push(format!("Obs: {}", obs.join(", ")));
        }
        parts.join(". ") + "."
    }
}
