//! Domain types shared by every Triagent crate: triage levels, sex, age bands and vital signs.
//!
//! These are plain values with no I/O, so that the knowledge base, the models, the coordinator
//! and the API all speak the same vocabulary. Parsing functions reject anything outside the
//! closed vocabularies, so an invalid level or sex cannot be built.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The five triage levels of the API, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageLevel {
    EmergencyAmbulance,
    Emergency,
    #[serde(rename = "consultation_24")]
    Consultation24,
    Consultation,
    SelfCare,
}

impl TriageLevel {
    /// All levels, most urgent first; the index is the model's class index.
    pub const ALL: [TriageLevel; 5] = [
        TriageLevel::EmergencyAmbulance,
        TriageLevel::Emergency,
        TriageLevel::Consultation24,
        TriageLevel::Consultation,
        TriageLevel::SelfCare,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TriageLevel::EmergencyAmbulance => "emergency_ambulance",
            TriageLevel::Emergency => "emergency",
            TriageLevel::Consultation24 => "consultation_24",
            TriageLevel::Consultation => "consultation",
            TriageLevel::SelfCare => "self_care",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The more urgent of two levels.
    pub fn most_urgent(self, other: TriageLevel) -> TriageLevel {
        self.min(other)
    }

    /// True for `emergency_ambulance` and `emergency`.
    pub fn is_emergency(self) -> bool {
        self <= TriageLevel::Emergency
    }
}

impl fmt::Display for TriageLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A circuit breaker's state, as agents' breakers report it on the bus, in the store, in
/// readiness and in metrics (where it is the number `as_u8` gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the breaker's back-off ends.
    Open,
    /// One trial call is let through to decide between open and closed.
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] =
        [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The number kept in an atomic and shown by the metrics gauge: 0 closed, 1 open, 2 half
    /// open.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The inverse of [`BreakerState::as_u8`]; anything unknown reads as half open, the state
    /// that neither promises calls go through nor refuses them all.
    pub fn from_u8(n: u8) -> BreakerState {
        match n {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sex as the API accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    #[default]
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 4] = [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

/// Age bands used by the knowledge base to say who gets a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBand {
    /// Under 1 year.
    Infant,
    /// 1 to 11 years.
    Child,
    /// 12 to 17 years.
    Adolescent,
    /// 18 to 64 years.
    Adult,
    /// 65 years and over.
    Older,
}

impl AgeBand {
    pub const ALL: [AgeBand; 5] =
        [AgeBand::Infant, AgeBand::Child, AgeBand::Adolescent, AgeBand::Adult, AgeBand::Older];

    pub fn of_age(years: f32) -> AgeBand {
        if years < 1.0 {
            AgeBand::Infant
        } else if years < 12.0 {
            AgeBand::Child
        } else if years < 18.0 {
            AgeBand::Adolescent
        } else if years < 65.0 {
            AgeBand::Adult
        } else {
            AgeBand::Older
        }
    }

    /// The half-open range of years `[lo, hi)` the band covers.
    pub fn years(self) -> (f32, f32) {
        match self {
            AgeBand::Infant => (0.0, 1.0),
            AgeBand::Child => (1.0, 12.0),
            AgeBand::Adolescent => (12.0, 18.0),
            AgeBand::Adult => (18.0, 65.0),
            AgeBand::Older => (65.0, 100.0),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The vital signs the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitalSign {
    TemperatureC,
    HeartRate,
    RespiratoryRate,
    Spo2,
    SystolicBp,
}

impl VitalSign {
    pub const ALL: [VitalSign; 5] = [
        VitalSign::TemperatureC,
        VitalSign::HeartRate,
        VitalSign::RespiratoryRate,
        VitalSign::Spo2,
        VitalSign::SystolicBp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VitalSign::TemperatureC => "temperature_c",
            VitalSign::HeartRate => "heart_rate",
            VitalSign::RespiratoryRate => "respiratory_rate",
            VitalSign::Spo2 => "spo2",
            VitalSign::SystolicBp => "systolic_bp",
        }
    }

    /// The range of physiologically possible values; anything outside is an input error.
    pub fn valid_range(self) -> (f32, f32) {
        match self {
            VitalSign::TemperatureC => (25.0, 45.0),
            VitalSign::HeartRate => (20.0, 250.0),
            VitalSign::RespiratoryRate => (4.0, 80.0),
            VitalSign::Spo2 => (50.0, 100.0),
            VitalSign::SystolicBp => (40.0, 260.0),
        }
    }

    /// A typical adult resting value, used to centre model inputs.
    pub fn typical(self) -> (f32, f32) {
        // (centre, scale)
        match self {
            VitalSign::TemperatureC => (37.0, 1.0),
            VitalSign::HeartRate => (80.0, 20.0),
            VitalSign::RespiratoryRate => (16.0, 5.0),
            VitalSign::Spo2 => (97.0, 3.0),
            VitalSign::SystolicBp => (120.0, 20.0),
        }
    }
}

/// Measured vital signs; each may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic_bp: Option<f32>,
}

impl Vitals {
    pub fn get(&self, sign: VitalSign) -> Option<f32> {
        match sign {
            VitalSign::TemperatureC => self.temperature_c,
            VitalSign::HeartRate => self.heart_rate,
            VitalSign::RespiratoryRate => self.respiratory_rate,
            VitalSign::Spo2 => self.spo2,
            VitalSign::SystolicBp => self.systolic_bp,
        }
    }

    pub fn set(&mut self, sign: VitalSign, value: Option<f32>) {
        let slot = match sign {
            VitalSign::TemperatureC => &mut self.temperature_c,
            VitalSign::HeartRate => &mut self.heart_rate,
            VitalSign::RespiratoryRate => &mut self.respiratory_rate,
            VitalSign::Spo2 => &mut self.spo2,
            VitalSign::SystolicBp => &mut self.systolic_bp,
        };
        *slot = value;
    }

    pub fn is_empty(&self) -> bool {
        VitalSign::ALL.iter().all(|s| self.get(*s).is_none())
    }
}

/// A structured finding the caller already knows, present or absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingObservation {
    pub id: String,
    pub present: bool,
}

/// What every agent receives: the same request, already validated.
///
/// `age` and `sex` are what the caller gave or what was read from the text; the agents treat
/// both the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseInput {
    pub text: String,
    pub age: Option<f32>,
    pub sex: Sex,
    /// Structured findings as indices into the knowledge base's finding list.
    pub findings: Vec<(usize, bool)>,
    pub vitals: Vitals,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_most_urgent_first() {
        assert!(TriageLevel::EmergencyAmbulance < TriageLevel::SelfCare);
        assert_eq!(
            TriageLevel::Consultation.most_urgent(TriageLevel::Emergency),
            TriageLevel::Emergency
        );
        for (i, l) in TriageLevel::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
            assert_eq!(TriageLevel::parse(l.as_str()), Some(*l));
        }
        assert_eq!(TriageLevel::parse("urgent"), None);
    }

    #[test]
    fn breaker_states_keep_their_number_and_wire_name() {
        for s in BreakerState::ALL {
            assert_eq!(BreakerState::from_u8(s.as_u8()), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn age_bands_cover_boundaries() {
        assert_eq!(AgeBand::of_age(0.1), AgeBand::Infant);
        assert_eq!(AgeBand::of_age(1.0), AgeBand::Child);
        assert_eq!(AgeBand::of_age(17.9), AgeBand::Adolescent);
        assert_eq!(AgeBand::of_age(64.9), AgeBand::Adult);
        assert_eq!(AgeBand::of_age(65.0), AgeBand::Older);
    }
}

/// A finding the symptom classifier read in the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractedFinding {
    pub finding: usize,
    pub present: bool,
    pub probability: f32,
}

/// A condition with its calibrated probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedCondition {
    pub condition: usize,
    pub probability: f32,
}

/// A care-advice entry and how close it is to the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievedAdvice {
    pub advice: usize,
    pub score: f32,
}

/// The emergency detector's answer: the model's level raised by the red-flag rules.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyAssessment {
    pub level: TriageLevel,
    pub model_level: TriageLevel,
    /// Probability of each level, most urgent first.
    pub probabilities: [f32; 5],
    /// Indices of the red-flag rules that fired.
    pub red_flags: Vec<usize>,
}
