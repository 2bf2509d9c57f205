//! The JSON wire types of docs/api.md, and turning a request into a validated `CaseInput`.

use crate::error::{ApiError, ErrorCode};
use domain::{CaseInput, Sex, VitalSign, Vitals};
use kb::KnowledgeBase;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// serde reads a struct from a JSON array too, by position (`"options": []` would be the
/// defaults): the request's objects are read from JSON objects only, so an array is a 422
/// `invalid_value` naming the field.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData)).map(ObjectOnly)
    }
}

fn object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    ObjectOnly::deserialize(d).map(|o| o.0)
}

fn object_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<ObjectOnly<T>>::deserialize(d)?.map(|o| o.0))
}

fn objects<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<ObjectOnly<T>>::deserialize(d)?.into_iter().map(|o| o.0).collect())
}

/// A triage request (at most 64 KiB). At least one of `text` and `findings` is required;
/// unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    /// What the person says, in their own words (at most 4,000 characters, no NUL). Never logged.
    #[serde(default)]
    #[schema(
        max_length = 4000,
        example = "I'm 34 and I've had a pounding headache and a stiff neck since yesterday, no rash"
    )]
    pub text: Option<String>,
    /// Age in years, 0 to 120 (fractions for infants). Read from the text when absent.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 120)]
    pub age: Option<f64>,
    /// Read from the text when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::SexName>)]
    pub sex: Option<Sex>,
    #[serde(default, deserialize_with = "objects")]
    pub findings: Vec<FindingIn>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub vitals: Option<VitalsIn>,
    #[serde(default, deserialize_with = "object")]
    pub options: Options,
}

/// A finding the caller already knows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingIn {
    /// A symptom id of `GET /v1/symptoms`; an unknown id is a 422 naming it.
    pub id: String,
    /// Defaults to true.
    #[serde(default = "yes")]
    pub present: bool,
}

fn yes() -> bool {
    true
}

/// Measured vital signs; each must be within its physiological range.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsIn {
    /// Degrees Celsius.
    #[schema(minimum = 25, maximum = 45)]
    pub temperature_c: Option<f64>,
    /// Beats per minute.
    #[schema(minimum = 20, maximum = 250)]
    pub heart_rate: Option<f64>,
    /// Breaths per minute.
    #[schema(minimum = 4, maximum = 80)]
    pub respiratory_rate: Option<f64>,
    /// Oxygen saturation, percent.
    #[schema(minimum = 50, maximum = 100)]
    pub spo2: Option<f64>,
    /// Systolic blood pressure, mmHg.
    #[schema(minimum = 40, maximum = 260)]
    pub systolic_bp: Option<f64>,
}

/// How the answer is shaped.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// How many conditions to return, 1 to 20 (default 10).
    #[serde(default = "ten", deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 20, default = 10)]
    pub max_conditions: usize,
    /// Add `supporting` and `opposing` findings to each condition (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub explain: bool,
}

fn ten() -> usize {
    10
}

impl Default for Options {
    fn default() -> Self {
        Options { max_conditions: 10, explain: true }
    }
}

/// Parses the body, naming the JSON path of whatever is wrong. Strict: one JSON object and
/// nothing after it (serde would also read an array positionally, and stop at the end of the
/// first value), each key once.
pub fn parse(body: &[u8]) -> Result<TriageRequest, ApiError> {
    let malformed = |msg: &str| {
        ApiError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {msg}"))
    };
    // Only a body that is not an object pays for a second parse, to tell bad JSON (400) from a
    // JSON value of the wrong kind (422).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(_) => Err(ApiError::new(ErrorCode::NotAnObject, "the body must be a JSON object")),
            Err(e) => Err(malformed(&e.to_string())),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let request = serde_path_to_error::deserialize::<_, TriageRequest>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // The key itself, joined to the path of the object that holds it (the path may already
        // end with it).
        let key_field = |name: &str| {
            if path == "." || path.is_empty() {
                name.to_string()
            } else if path.ends_with(name) {
                path.clone()
            } else {
                format!("{path}.{name}")
            }
        };
        if inner.is_syntax() || inner.is_eof() {
            malformed(&msg)
        } else if let Some(rest) = msg.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            ApiError::invalid(
                ErrorCode::UnknownField,
                key_field(name),
                format!("unknown field `{name}`"),
            )
        } else if let Some(rest) = msg.strip_prefix("duplicate field `") {
            let name = rest.split('`').next().unwrap_or_default();
            ApiError::invalid(
                ErrorCode::DuplicateField,
                key_field(name),
                format!("the field `{name}` is given twice"),
            )
        } else {
            let field = if path == "." { String::new() } else { path };
            ApiError::invalid(ErrorCode::InvalidValue, field, plain_message(&msg))
        }
    })?;
    de.end().map_err(|_| malformed("there is more after the JSON object; send one object"))?;
    Ok(request)
}

/// serde's message in the request's terms: no Rust type names, no position.
fn plain_message(msg: &str) -> String {
    msg.split(" at line ")
        .next()
        .unwrap_or(msg)
        .replace("usize", "a whole number")
        .replace("u64", "a whole number")
        .replace("f64", "a number")
        .replace("struct TriageRequest", "an object")
        .replace("struct FindingIn", "an object")
        .replace("struct VitalsIn", "an object")
        .replace("struct Options", "an object")
        .replace("`", "")
}

/// A whole number that JSON may also write as `7.0` (JSON Schema's `integer` admits it).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| {
        n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e15).map(|f| f as u64)
    });
    whole
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, not {n}")))
}

/// Validated request: the agents' input plus what the answer must report.
pub struct Validated {
    pub input: CaseInput,
    pub inferred_age: Option<f32>,
    pub inferred_sex: Option<Sex>,
    pub max_conditions: usize,
    pub explain: bool,
}

impl Validated {
    /// What the triage core's answer assembly needs of the request.
    pub fn request(&self) -> triage::answer::Request<'_> {
        triage::answer::Request {
            input: &self.input,
            inferred_age: self.inferred_age,
            inferred_sex: self.inferred_sex,
            max_conditions: self.max_conditions,
            explain: self.explain,
        }
    }
}

pub fn validate(
    req: TriageRequest,
    kb: &KnowledgeBase,
    max_text_chars: usize,
) -> Result<Validated, ApiError> {
    let text = req.text.unwrap_or_default();
    if text.chars().count() > max_text_chars {
        return Err(ApiError::invalid(
            ErrorCode::TextTooLong,
            "text",
            format!("text is limited to {max_text_chars} characters"),
        ));
    }
    // PostgreSQL's text refuses NUL; nobody writes one. Refused here, before anything is kept.
    if text.contains('\0') {
        return Err(ApiError::invalid(
            ErrorCode::InvalidText,
            "text",
            "text contains a NUL character (U+0000)",
        ));
    }
    if text.trim().is_empty() && req.findings.is_empty() {
        return Err(ApiError::invalid(
            ErrorCode::EmptyRequest,
            "text",
            "give `text`, `findings`, or both",
        ));
    }
    if let Some(a) = req.age
        && !(a.is_finite() && (0.0..=120.0).contains(&a))
    {
        return Err(ApiError::invalid(
            ErrorCode::AgeOutOfRange,
            "age",
            "age is in years, from 0 to 120",
        ));
    }
    let mut findings = Vec::with_capacity(req.findings.len());
    for (i, f) in req.findings.iter().enumerate() {
        match kb.finding_idx(&f.id) {
            Some(idx) => findings.push((idx, f.present)),
            None => {
                return Err(ApiError::invalid(
                    ErrorCode::UnknownFinding,
                    format!("findings[{i}].id"),
                    format!("unknown finding id '{}': see GET /v1/symptoms", f.id),
                ));
            }
        }
    }
    let mut vitals = Vitals::default();
    if let Some(v) = req.vitals {
        for (sign, value) in [
            (VitalSign::TemperatureC, v.temperature_c),
            (VitalSign::HeartRate, v.heart_rate),
            (VitalSign::RespiratoryRate, v.respiratory_rate),
            (VitalSign::Spo2, v.spo2),
            (VitalSign::SystolicBp, v.systolic_bp),
        ] {
            if let Some(x) = value {
                let (lo, hi) = sign.valid_range();
                if !(x.is_finite() && (f64::from(lo)..=f64::from(hi)).contains(&x)) {
                    return Err(ApiError::invalid(
                        ErrorCode::VitalOutOfRange,
                        format!("vitals.{}", sign.as_str()),
                        format!("{} must be between {lo} and {hi}", sign.as_str()),
                    ));
                }
                vitals.set(sign, Some(x as f32));
            }
        }
    }
    // Measured vitals are findings too (a temperature of 39.2 is a fever): every agent gets them
    // as structured findings, so the condition matcher, which reads no vitals, still knows.
    for i in kb.findings_from_vitals(&vitals) {
        match findings.iter_mut().find(|(f, _)| *f == i) {
            Some(slot) => slot.1 = true,
            None => findings.push((i, true)),
        }
    }
    if !(1..=triage::MAX_CONDITIONS).contains(&req.options.max_conditions) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidValue,
            "options.max_conditions",
            format!("max_conditions is from 1 to {}", triage::MAX_CONDITIONS),
        ));
    }
    // Age and sex from the text only when the caller did not send them.
    let read = textfeat::read_demographics(&text);
    let inferred_age = if req.age.is_none() { read.age } else { None };
    let inferred_sex = if req.sex.is_none() { read.sex } else { None };
    Ok(Validated {
        input: CaseInput {
            text,
            age: req.age.map(|a| a as f32).or(inferred_age),
            sex: req.sex.or(inferred_sex).unwrap_or(Sex::Unknown),
            findings,
            vitals,
        },
        inferred_age,
        inferred_sex,
        max_conditions: req.options.max_conditions,
        explain: req.options.explain,
    })
}

/// `GET /v1/symptoms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SymptomList<'a> {
    pub symptoms: Vec<Symptom<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Symptom<'a> {
    /// The id to send in `findings[].id`.
    pub id: &'a str,
    pub name: &'a str,
    /// Whether the finding alone can make a triage urgent.
    pub red_flag: bool,
    /// Lay and clinical phrasings the service recognises.
    pub phrases: Vec<&'a str>,
}

/// `GET /v1/conditions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionList<'a> {
    pub conditions: Vec<ConditionItem<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConditionItem<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub icd10: &'a str,
    #[schema(value_type = crate::openapi::LevelName)]
    pub urgency: &'static str,
    /// Where the knowledge base's facts about the condition come from.
    pub source: &'a str,
}

impl<'a> SymptomList<'a> {
    pub fn of(kb: &'a KnowledgeBase) -> Self {
        let symptoms = kb
            .findings
            .iter()
            .map(|f| Symptom {
                id: &f.id,
                name: &f.name,
                red_flag: f.red_flag,
                phrases: f.lay.iter().chain(&f.clinical).map(String::as_str).collect(),
            })
            .collect();
        SymptomList { symptoms }
    }
}

impl<'a> ConditionList<'a> {
    pub fn of(kb: &'a KnowledgeBase) -> Self {
        let conditions = kb
            .conditions
            .iter()
            .map(|c| ConditionItem {
                id: &c.id,
                name: &c.name,
                icd10: &c.icd10,
                urgency: c.urgency.as_str(),
                source: &c.source,
            })
            .collect();
        ConditionList { conditions }
    }
}
