//! What the spool holds for the PostgreSQL store: its records (a report or an event, as JSON),
//! the state the writer, the replayer and `get` share under one lock, and the index of the
//! reports waiting in it.
//!
//! Apart from the tasks because all three read or write this state, and the record format is
//! what a spool left by an earlier process must still decode to.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bus::DiagnosisEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoredReport;
use crate::spool::Spool;

/// The spool and what goes with it, behind the one lock the writer, the replayer and `get` take.
pub(super) struct SpoolState {
    pub(super) spool: Spool,
    /// New writes go to the spool rather than to the database.
    pub(super) spooling: bool,
    /// Opened on first use.
    pub(super) rejected: Option<Spool>,
    /// Where each report waiting in the spool starts, so that `get` can answer with an
    /// acknowledged report while the database is unreachable. Emptied with the spool.
    pub(super) reports: HashMap<Uuid, u64>,
}

impl SpoolState {
    /// The report `id` as it waits in the spool, if it does. A record that cannot be read or
    /// is not that report (which an index kept with the spool never gives) is `None`: the
    /// caller asks the database.
    pub(super) fn report(&self, id: Uuid) -> Option<StoredReport> {
        let at = *self.reports.get(&id)?;
        let record = self.spool.read_one(at).ok()??;
        match serde_json::from_slice::<SpoolRecord>(&record.payload) {
            Ok(SpoolRecord::Report(r)) if r.id == id => Some(r),
            _ => None,
        }
    }
}

/// Only what indexing a spool needs of a record.
#[derive(Deserialize)]
struct RecordKind {
    t: String,
    id: Uuid,
}

/// The reports in a spool and where each starts (done once, at open, for a spool that a
/// previous process left with a backlog).
pub(super) fn index_reports(spool: &Spool) -> std::io::Result<HashMap<Uuid, u64>> {
    let mut index = HashMap::new();
    let mut at = 0;
    loop {
        let records = spool.read(at, 1024)?;
        if records.is_empty() {
            return Ok(index);
        }
        for r in records {
            if let Ok(RecordKind { t, id }) = serde_json::from_slice::<RecordKind>(&r.payload)
                && t == "report"
            {
                index.insert(id, at);
            }
            at = r.next;
        }
    }
}

/// An event with the UUID that makes its insert idempotent (the bus's `seq` restarts with
/// the process, so it cannot be the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRow {
    pub(super) id: Uuid,
    pub(super) event: DiagnosisEvent,
}

/// One spool record: a report or an event, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum SpoolRecord {
    Report(StoredReport),
    Event(EventRow),
}

/// Takes the spool's lock, even one a panicking holder left poisoned.
pub(super) fn lock(spool: &Mutex<SpoolState>) -> MutexGuard<'_, SpoolState> {
    // Spool operations leave the state consistent at every return, including on I/O errors.
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}
