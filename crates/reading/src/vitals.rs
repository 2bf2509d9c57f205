//! Measurements written in the text ("temp 38.9", "fever of 102", "HR 118", "sats 89%",
//! "BP 182/110"), read as vital signs with the span of their number. The reader turns them into
//! the findings whose thresholds they meet, as a measured vital sign would.

use domain::VitalSign;

/// A measurement in the text: the sign, its value (temperatures in degrees Celsius) and the
/// byte range of the number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextVital {
    pub sign: VitalSign,
    pub value: f32,
    pub start: u32,
    pub end: u32,
}

/// What stands just before a number, where a cue would be: the end of `hay` (lower case, the
/// text before the number) within its last 24 characters, less punctuation and a few fillers
/// ("of", "was", "is", "at", "to", ...). A slice of `hay`: it is taken for every number in a
/// text, once, and allocating here was most of a reading's cost.
fn cue_tail(hay: &str) -> &str {
    // The last 24 characters.
    let tail = hay.char_indices().rev().nth(23).map_or(hay, |(at, _)| &hay[at..]);
    let mut t = tail.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    for _ in 0..3 {
        let mut changed = false;
        for filler in [
            " of", " was", " is", " at", " to", " up to", " around", " about", " reading", " over",
            " now",
        ] {
            if let Some(s) = t.strip_suffix(filler) {
                t = s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    t
}

/// Does the [`cue_tail`] `t` end with one of the cues, alone or after a space, "(" or ","?
fn cued(t: &str, cues: &[&str]) -> bool {
    cues.iter().any(|c| {
        t.strip_suffix(c)
            .is_some_and(|before| before.is_empty() || before.ends_with([' ', '(', ',']))
    })
}

/// The cue a few words further back in the same clause ("heart rate on his watch says 118",
/// "his sats on our finger monitor are 88"): the sign named by a word of the last
/// [`CLAUSE_LOOKBACK`] words before the number, with no clause mark and no other number
/// between. Only signs whose name is unambiguous are read so far back.
fn clause_cue(hay: &str) -> Option<VitalSign> {
    let clause = hay.rsplit(['.', ',', ';', ':', '!', '?', '\n', '(', ')']).next().unwrap_or(hay);
    if clause.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let words: Vec<&str> =
        clause.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let from = words.len().saturating_sub(CLAUSE_LOOKBACK);
    words[from..].iter().rev().find_map(|w| match *w {
        "temp" | "temperature" | "temps" | "thermometer" => Some(VitalSign::TemperatureC),
        "pulse" | "hr" | "bpm" => Some(VitalSign::HeartRate),
        "heart" if words[from..].contains(&"rate") => Some(VitalSign::HeartRate),
        "sats" | "spo2" | "saturation" | "saturations" | "oximeter" => Some(VitalSign::Spo2),
        _ => None,
    })
}

/// A temperature in degrees Celsius: `value` read as Fahrenheit when that may be meant and it
/// lies in a body's range in Fahrenheit (93 to 110), else as Celsius when that may be meant
/// and it lies in the range in Celsius (34 to 43).
fn celsius(value: f32, may_be_fahrenheit: bool, may_be_celsius: bool) -> Option<f32> {
    if may_be_fahrenheit && (93.0..=110.0).contains(&value) {
        Some((value - 32.0) * 5.0 / 9.0)
    } else if may_be_celsius && (34.0..=43.0).contains(&value) {
        Some(value)
    } else {
        None
    }
}

/// A number written with one decimal between 35.0 and 42.5 and no unit or cue of its own ("she
/// was 38.7 last night", "38.6 this morning on the ear thermometer"): in what people write about
/// symptoms, that is a body temperature in degrees Celsius. Not after a word that names another
/// measurement written with a decimal ("BMI 38.5", "sugar 36.1", "weighs 38.2").
fn bare_celsius(number: &str, value: f32, before: &str, after: &str) -> bool {
    let one_decimal = number.find('.').is_some_and(|dot| number.len() == dot + 2);
    let unit = after.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
    let unit_of_its_own = after.starts_with(['%', '/', '-', '.', 'x', '*'])
        || matches!(
            unit,
            "kg" | "kgs"
                | "kilos"
                | "lb"
                | "lbs"
                | "pounds"
                | "st"
                | "stone"
                | "mmol"
                | "mg"
                | "ml"
                | "g"
                | "cm"
                | "mm"
                | "m"
                | "in"
                | "inches"
                | "hours"
                | "hrs"
                | "hr"
                | "h"
                | "days"
                | "weeks"
                | "wks"
                | "years"
                | "yrs"
                | "months"
                | "minutes"
                | "mins"
                | "seconds"
                | "secs"
                | "miles"
                | "km"
                | "units"
                | "times"
                | "percent"
                | "pm"
                | "am"
        );
    let other = before
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| !w.is_empty())
        .is_some_and(|w| {
            matches!(
                w,
                "bmi"
                    | "sugar"
                    | "sugars"
                    | "glucose"
                    | "bm"
                    | "bms"
                    | "cbg"
                    | "weight"
                    | "weighs"
                    | "weighed"
                    | "kg"
                    | "lbs"
                    | "hb"
                    | "crp"
                    | "wcc"
                    | "inr"
                    | "lactate"
                    | "ketones"
                    | "hba1c"
                    | "potassium"
                    | "k"
                    | "na"
                    | "mmol"
                    | "size"
                    | "week"
                    | "weeks"
                    | "gestation"
                    | "hours"
                    | "minutes"
                    | "miles"
                    | "km"
            )
        });
    one_decimal && (35.0..=42.5).contains(&value) && !other && !unit_of_its_own
}

/// A blood pressure written without its cue just before: "it was 158/98 at the pharmacy" (a
/// pair no date, score or dose takes: systolic 90 to 260 over a lower diastolic of 40 to 150),
/// or "165 over 100" in a sentence that names the pressure or a reading.
fn bare_blood_pressure(value: f32, hay: &str, after: &str) -> bool {
    let (over, rest) = if let Some(r) = after.strip_prefix('/') {
        (false, r)
    } else if let Some(r) = after.strip_prefix("over ") {
        (true, r.trim_start())
    } else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(diastolic) = rest[..digits].parse::<f32>() else { return false };
    // Not a decimal ("100.5") or a longer figure, but a full stop may end the sentence.
    let tail = &rest[digits..];
    let decimal =
        tail.strip_prefix('.').is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()));
    if decimal || tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/') {
        return false;
    }
    let pair =
        (90.0..=260.0).contains(&value) && (40.0..=150.0).contains(&diastolic) && diastolic < value;
    let sentence = hay.rsplit(['.', '!', '?', '\n']).next().unwrap_or(hay);
    pair && (!over || ["pressure", "bp", "reading"].iter().any(|c| sentence.contains(c)))
}

/// How many words back [`clause_cue`] looks.
const CLAUSE_LOOKBACK: usize = 8;

/// Every measurement found, left to right.
pub fn vitals_in_text(text: &str) -> Vec<TextVital> {
    // Most texts have no number at all.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let lower = text.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.' || b[i - 1] == b'/'))
        {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        let end = i;
        let Ok(value) = lower[start..end].parse::<f32>() else { continue };
        let before = cue_tail(&lower[..start]);
        let after = lower[end..].trim_start();
        let unit_c = after.starts_with("°c")
            || after.starts_with("c ")
            || after.starts_with("c,")
            || after.starts_with("c.")
            || after == "c"
            || after.starts_with("deg c")
            || after.starts_with("degrees c");
        let unit_f = after.starts_with("°f")
            || after.starts_with("f ")
            || after.starts_with("f,")
            || after.starts_with("f.")
            || after == "f"
            || after.starts_with("deg f")
            || after.starts_with("degrees f");
        let temp_cue = cued(
            before,
            &[
                "temp",
                "temperature",
                "fever",
                "t",
                "pyrexial",
                "febrile",
                "temps",
                "tmax",
                "spiking",
                "spiked",
                "thermometer",
            ],
        );
        let found = if (temp_cue || unit_c || unit_f) && !after.starts_with('%') {
            celsius(value, unit_f || temp_cue, !unit_f).map(|c| (VitalSign::TemperatureC, c))
        } else if (after.starts_with('/')
            && cued(before, &["bp", "blood pressure", "pressure", "bps"])
            && (50.0..=300.0).contains(&value))
            || bare_blood_pressure(value, &lower[..start], after)
        {
            Some((VitalSign::SystolicBp, value))
        } else if (cued(before, &["hr", "heart rate", "pulse", "heart", "p", "pulse rate"])
            || after.starts_with("bpm"))
            && (20.0..=260.0).contains(&value)
            && !after.starts_with('%')
        {
            Some((VitalSign::HeartRate, value))
        } else if cued(
            before,
            &["rr", "resp rate", "respiratory rate", "resps", "breathing rate", "resp"],
        ) && (4.0..=90.0).contains(&value)
        {
            Some((VitalSign::RespiratoryRate, value))
        } else if (cued(
            before,
            &[
                "spo2",
                "sats",
                "sat",
                "saturation",
                "saturations",
                "sp02",
                "oxygen",
                "o2",
                "oxygen level",
                "oxygen levels",
                "oxygen saturation",
                "oximeter",
            ],
        ) || after.starts_with("% on air")
            || after.starts_with("% ra"))
            && after.starts_with('%')
            && (50.0..=100.0).contains(&value)
        {
            Some((VitalSign::Spo2, value))
        } else {
            // A number with a unit of its own is not a vital sign ("pulse ... for 20 minutes").
            let unit = after.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
            let plain = after.is_empty()
                || !after.starts_with(|c: char| c.is_ascii_alphabetic())
                || matches!(unit, "bpm" | "beats" | "c" | "f" | "degrees");
            match clause_cue(&lower[..start]) {
                Some(VitalSign::TemperatureC) if plain => {
                    celsius(value, true, true).map(|c| (VitalSign::TemperatureC, c))
                }
                Some(VitalSign::HeartRate) if plain && (30.0..=250.0).contains(&value) => {
                    Some((VitalSign::HeartRate, value))
                }
                Some(VitalSign::Spo2)
                    if (plain || after.starts_with('%')) && (60.0..=100.0).contains(&value) =>
                {
                    Some((VitalSign::Spo2, value))
                }
                None if bare_celsius(&lower[start..end], value, before, after) => {
                    Some((VitalSign::TemperatureC, value))
                }
                _ => None,
            }
        };
        if let Some((sign, value)) = found {
            out.push(TextVital { sign, value, start: start as u32, end: end as u32 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(VitalSign, f32)> {
        vitals_in_text(text)
            .into_iter()
            .map(|v| (v.sign, (v.value * 10.0).round() / 10.0))
            .collect()
    }

    #[test]
    fn reads_measurements_with_their_cues() {
        assert_eq!(read("temp 38.9 since last night"), [(VitalSign::TemperatureC, 38.9)]);
        assert_eq!(read("a fever of 102"), [(VitalSign::TemperatureC, 38.9)]);
        assert_eq!(read("it was 39.4C this morning"), [(VitalSign::TemperatureC, 39.4)]);
        assert_eq!(
            read("T 37.2, HR 118, RR 28, SpO2 89% on air, BP 182/110"),
            [
                (VitalSign::TemperatureC, 37.2),
                (VitalSign::HeartRate, 118.0),
                (VitalSign::RespiratoryRate, 28.0),
                (VitalSign::Spo2, 89.0),
                (VitalSign::SystolicBp, 182.0)
            ]
        );
        assert_eq!(read("pulse is about 130"), [(VitalSign::HeartRate, 130.0)]);
        assert_eq!(read("Heart rate on his watch says 118"), [(VitalSign::HeartRate, 118.0)]);
        assert_eq!(
            read("His sats on our little finger monitor are 88, usually he's 92."),
            [(VitalSign::Spo2, 88.0)]
        );
        assert_eq!(
            read("took her temperature under the arm and got 38.7"),
            [(VitalSign::TemperatureC, 38.7)]
        );
        assert_eq!(read("she was 38.7 last night"), [(VitalSign::TemperatureC, 38.7)]);
        assert_eq!(
            read("38.6 this morning on the ear thermometer"),
            [(VitalSign::TemperatureC, 38.6)]
        );
        assert_eq!(read("it was 158/98 at the pharmacy"), [(VitalSign::SystolicBp, 158.0)]);
        assert_eq!(read("my blood pressure was 165 over 100"), [(VitalSign::SystolicBp, 165.0)]);
        // At the end of a sentence.
        assert_eq!(
            read("I checked it at the chemist and it was 165/100."),
            [(VitalSign::SystolicBp, 165.0)]
        );
        assert_eq!(
            read("My blood pressure at work was 158/96. I'm obese."),
            [(VitalSign::SystolicBp, 158.0)]
        );
        assert_eq!(
            read("my home monitor keeps showing readings around 160 over 95."),
            [(VitalSign::SystolicBp, 160.0)]
        );
        assert!(read("it was 158/96.5 at the pharmacy").is_empty());
    }

    #[test]
    fn numbers_without_a_cue_are_not_vitals() {
        assert!(read("I'm 38 and have had 3 days of cough, 2 kids, 100 times a day").is_empty());
        assert!(read("took 2 paracetamol at 10").is_empty());
        assert!(read("peak flow 180, normally 450").is_empty());
        assert!(read("44F, 3/7 hx of cough. 33F with a rash").is_empty());
        assert!(read("felt my pulse racing for 20 minutes").is_empty());
        assert!(read("heart rate was fine, I'm 45").is_empty());
        assert!(read("temp went up and down over 3 days").is_empty());
        assert!(
            read("BMI 38.5, sugar 36.1, weighs 38.2, 38.25 hours, 38.5 kg, 37.5% of").is_empty()
        );
        assert!(read("I'm 38 and he is 40").is_empty());
        assert!(read("pain 10/10, since 12/05, took 500/125 tablets, 3/7 hx").is_empty());
        assert!(read("lost 120 over 80 days").is_empty());
    }
}
