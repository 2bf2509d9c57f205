//! The events themselves: one closed enum, so every consumer matches on the same steps and a new
//! step is a compile error wherever events are handled, not a silently ignored string.

use chrono::{DateTime, Utc};
use domain::{BreakerState, TriageLevel};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Why an agent's answer is missing from a triage (the `status` of [`DiagnosisEventKind::AgentDegraded`]).
pub const AGENT_STATUSES: [&str; 3] = ["timeout", "failed", "circuit_open"];

/// One event as it travels on the bus and over the wire.
///
/// `seq` is assigned by the bus, global and strictly increasing, so a client that reconnects
/// can say exactly where it stopped (`Last-Event-ID`) and the store can order events without
/// trusting clocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiagnosisEvent {
    pub seq: u64,
    /// The triage this event belongs to; nil for breaker events, which belong to no report.
    pub report_id: Uuid,
    /// Wall-clock time of publication, RFC 3339 on the wire; for display, not for ordering.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: DiagnosisEventKind,
    /// The API key whose request made the event: `None` without a key (development), for an
    /// event of no report (a breaker), or for an event read back from a store. Not on the wire:
    /// it decides which subscribers may see the event ([`crate::Filter::owner`]).
    #[serde(skip)]
    pub owner: Option<Uuid>,
}

impl DiagnosisEvent {
    /// The triage level the event carries, if any (see [`DiagnosisEventKind::level`]).
    pub fn level(&self) -> Option<TriageLevel> {
        self.kind.level()
    }

    /// The event's wire tag (see [`DiagnosisEventKind::type_name`]).
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// A condition in a ranking, by id and code only: names and descriptions stay in the knowledge
/// base, where a reader of the event can look them up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankedCode {
    pub id: String,
    pub icd10: String,
    pub probability: f32,
}

/// Every step of a triage, and the agent-health changes that affect triage.
///
/// No variant may hold free text: string fields are ids from the knowledge base, ICD-10 codes,
/// agent names or values from [`AGENT_STATUSES`]; levels and breaker states are `domain`'s
/// enums, on the wire by their snake_case names. Timings are in
/// milliseconds as `f64` so sub-millisecond agents still show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiagnosisEventKind {
    /// A request was accepted. Only the size of the text is recorded, never the text.
    TriageReceived {
        text_chars: usize,
        structured_findings: usize,
        has_vitals: bool,
    },
    /// Finding ids the symptom classifier read as present or explicitly absent.
    FindingsExtracted {
        present: Vec<String>,
        absent: Vec<String>,
        latency_ms: f64,
    },
    ConditionsRanked {
        top: Vec<RankedCode>,
        latency_ms: f64,
    },
    /// Advice ids from the knowledge base.
    CareRetrieved {
        advice: Vec<String>,
        latency_ms: f64,
    },
    /// The emergency detector's level and the red-flag rule ids that fired.
    EmergencyAssessed {
        #[schema(value_type = crate::schema::LevelName)]
        level: TriageLevel,
        red_flags: Vec<String>,
        latency_ms: f64,
    },
    /// The merged, final level; `degraded` when at least one agent's answer was missing.
    TriageCompleted {
        #[schema(value_type = crate::schema::LevelName)]
        level: TriageLevel,
        degraded: bool,
        total_ms: f64,
    },
    AgentDegraded {
        agent: String,
        status: String,
    },
    BreakerStateChanged {
        agent: String,
        #[schema(value_type = crate::schema::BreakerStateName)]
        state: BreakerState,
    },
}

impl DiagnosisEventKind {
    /// Every wire tag, in declaration order, so an API can reject an unknown type in a filter
    /// instead of silently matching nothing.
    pub const TYPE_NAMES: [&'static str; 8] = [
        "triage_received",
        "findings_extracted",
        "conditions_ranked",
        "care_retrieved",
        "emergency_assessed",
        "triage_completed",
        "agent_degraded",
        "breaker_state_changed",
    ];

    /// The triage level the event carries: the detector's for `emergency_assessed`, the final
    /// one for `triage_completed`. Other events have no level, so a level filter drops them.
    pub fn level(&self) -> Option<TriageLevel> {
        match self {
            Self::EmergencyAssessed { level, .. } | Self::TriageCompleted { level, .. } => {
                Some(*level)
            }
            _ => None,
        }
    }

    /// The snake_case `type` tag the event serialises with; filters match on it.
    pub fn type_name(&self) -> &'static str {
        let i = match self {
            Self::TriageReceived { .. } => 0,
            Self::FindingsExtracted { .. } => 1,
            Self::ConditionsRanked { .. } => 2,
            Self::CareRetrieved { .. } => 3,
            Self::EmergencyAssessed { .. } => 4,
            Self::TriageCompleted { .. } => 5,
            Self::AgentDegraded { .. } => 6,
            Self::BreakerStateChanged { .. } => 7,
        };
        Self::TYPE_NAMES[i]
    }
}
