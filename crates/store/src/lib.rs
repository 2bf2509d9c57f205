//! Where triage reports are kept, behind one trait.
//!
//! The embedded default, [`MemoryStore`], keeps them in process and bounded, so the service runs
//! with nothing else installed and cannot grow without limit; [`SqliteStore`] keeps them, as
//! bounded, in a SQLite file on local disk, so they survive a restart; [`PgStore`] keeps them in
//! PostgreSQL, with a local [`spool`] that takes the writes while the database is unreachable.
//! All three also keep the diagnosis events of the bus ([`spawn_event_sink`]) so a client can resume
//! the event stream from the store. Only this crate may know how reports are stored (and only
//! it knows SQL): callers hold an `Arc<dyn ReportStore>` and never learn whether a report lives
//! in a map or a table.

mod body;
pub mod keys;
mod memory;
mod postgres;
mod sink;
pub mod spool;
mod sqlite;

pub use body::JsonBody;
pub use keys::{
    ApiKey, AuditAction, AuditEntry, CreatedKey, FileKeys, KeyHash, KeySecret, KeyStore, Revoked,
    Scope,
};
pub use memory::MemoryStore;
pub use postgres::{PgConfig, PgKeys, PgStore};
pub use sink::{EventSink, spawn_event_sink};
pub use sqlite::{SqliteConfig, SqliteStore};

use bus::DiagnosisEvent;
use domain::TriageLevel;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new report's id: a UUID of version 7, its first 48 bits the time in milliseconds and the
/// other 74 random. Unique across replicas without coordination, as a random one is, and
/// rising with time, so a store's index of report ids grows at its end instead of taking a
/// write at a random place for every report. It tells no more than the report's `created_at`.
pub fn new_report_id() -> Uuid {
    Uuid::now_v7()
}

/// One triage answer as it is kept, so it can be fetched again by id after the request ended.
///
/// The few fields beside `body` are copied out of it so that a database can index and filter on
/// them (level, condition, degraded answers, the caller) without parsing the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The final triage level, kept by its wire name (`emergency_ambulance` … `self_care`).
    pub level: TriageLevel,
    /// ICD-10 code of the most probable condition; `None` when no condition was confident enough
    /// or the condition matcher did not answer.
    pub top_condition: Option<String>,
    /// True when an agent failed and the answer was built without it, so such answers can be
    /// found and reviewed.
    pub degraded: bool,
    /// The API key that asked, when the request was authenticated; never the key itself.
    pub api_key_id: Option<Uuid>,
    /// The full API answer, kept verbatim so a later fetch returns exactly what was first sent.
    pub body: JsonBody,
    /// What the person wrote. Handed to the store so that a deployment that must keep it can
    /// (PostgreSQL with `store_free_text` on, in its own purgeable column); every store drops it
    /// otherwise, before it reaches memory, a table or the spool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_text: Option<FreeText>,
    /// The diagnosis events the triage published, kept with the report in the same write: a
    /// store holds a report with all its events or neither, whatever fails (no orphan events,
    /// no report missing its trail). A report read back carries none; they are read as events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<DiagnosisEvent>,
}

/// A person's own words. Its `Debug` prints only the length, so a report logged by mistake
/// does not leak them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for FreeText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FreeText({} chars)", self.0.chars().count())
    }
}

/// A diagnosis event as the store keeps it: `seq` is the store's own global sequence (a
/// PostgreSQL `bigserial`), which survives restarts, unlike the bus's `event.seq`, which starts
/// again at 1 with every process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: DiagnosisEvent,
}

impl StoredReport {
    /// Whether `other` is a retry of this write. `created_at` is left out on purpose: a caller
    /// that retries may stamp the report again, and the first time stays the true one; so is
    /// `free_text`, which stores may drop.
    fn same_content(&self, other: &StoredReport) -> bool {
        self.id == other.id
            && self.level == other.level
            && self.top_condition == other.top_condition
            && self.degraded == other.degraded
            && self.api_key_id == other.api_key_id
            && self.body == other.body
    }
}

/// What a store can report about itself, for the service's health endpoint and readiness: a
/// store that is `Down` should take the service out of rotation, `Degraded` should not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StoreHealth {
    Ok,
    Degraded { reason: String },
    Down { reason: String },
}

/// Why a store operation failed, in terms a caller can act on without knowing the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached now (connection lost, pool exhausted); worth retrying later.
    #[error("report store unavailable: {0}")]
    Unavailable(String),
    /// A report with this id is already stored with other content. Ids are generated by the
    /// service, so this points at a bug rather than a race; retrying will not help.
    #[error("report {0} is already stored with different content")]
    Conflict(Uuid),
    /// Anything else, including a store configured wrongly at start-up.
    #[error("report store error: {0}")]
    Other(String),
}

/// The one way the rest of Triagent keeps and fetches reports.
///
/// It uses `async_trait` so that it stays object safe: the service chooses the backend from its
/// configuration at start-up and holds it as `Arc<dyn ReportStore>`.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Keeps `report` and its events, together or not at all. Idempotent: putting the same id with the same content again succeeds and
    /// stores nothing new, so a write retried after a timeout cannot fail or duplicate. The same
    /// id with different content is [`StoreError::Conflict`] and leaves the first report as it was.
    async fn put(&self, report: StoredReport) -> Result<(), StoreError>;

    /// The report with this id, or `None` if it was never stored or is no longer kept (a bounded
    /// store evicts; a database may expire).
    async fn get(&self, id: Uuid) -> Result<Option<StoredReport>, StoreError>;

    /// The store's own view of whether it can serve; never fails, since reporting failure is its
    /// purpose.
    async fn health(&self) -> StoreHealth;

    /// A short stable name of the backend (`"memory"`, `"postgres"`), for logs, metrics and
    /// the health endpoint.
    fn kind(&self) -> &'static str;

    /// Keeps diagnosis events that belong to no report (a breaker's change of state), in the
    /// order given, after any appended before. Returns once they are as durable as a
    /// [`put`](Self::put) report. Events are never deduplicated by content: each call appends.
    /// A report's own events go with it, through `put`.
    async fn append_events(&self, events: Vec<DiagnosisEvent>) -> Result<(), StoreError>;

    /// Up to `limit` kept events with a store `seq` greater than `after`, oldest first, so an
    /// event stream can resume beyond the bus's in-memory replay buffer. `after = 0` is the start.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Kept events whose bus `seq` is above `after` and below `before`, in bus order, at most
    /// `limit`: what an event stream resuming from an id older than the bus's replay buffer
    /// missed (the bus numbers events from [`next_bus_seq`](Self::next_bus_seq), so ids stay
    /// unique across restarts of one service). A store that several replicas share gives only
    /// this replica's events: bus numbers are each replica's own.
    async fn events_by_bus_seq(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DiagnosisEvent>, StoreError>;

    /// The number the bus should give its first event, above every bus number this store has
    /// kept for this replica, so numbering continues across restarts. Called once, at start.
    async fn next_bus_seq(&self) -> u64 {
        1
    }

    /// Reports and events acknowledged but not yet in their final place (the PostgreSQL store's
    /// spool backlog), for metrics; 0 for stores without one.
    fn backlog(&self) -> u64 {
        0
    }

    /// The spool's size and its limit in bytes, for metrics; (0, 0) for stores without one.
    fn spool_bytes(&self) -> (u64, u64) {
        (0, 0)
    }

    /// How long the spool has held writes that wait for their final place, for metrics; zero
    /// when it is empty, and for stores without one.
    fn spool_age(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}
