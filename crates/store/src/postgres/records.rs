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
            Ok(SpoolRecord::Report(r)) if r.report.id == id => Some(r.report),
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
/// the process, so it cannot be the key), and the replica whose bus numbered it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRow {
    pub(super) id: Uuid,
    /// See [`ReportRecord::replica`].
    #[serde(default)]
    pub(super) replica: String,
    pub(super) event: DiagnosisEvent,
}

/// A report waiting in the spool, with the replica whose bus numbered its events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ReportRecord {
    #[serde(flatten)]
    pub(super) report: StoredReport,
    /// The replica a record's events are kept under when it is replayed: the name of the
    /// process that acknowledged it, not of the one that replays it. A bus number means
    /// something only with the numbering that gave it, so a spool replayed by a process
    /// restarted under another name must not put its events into the new name's numbering.
    /// Records of a version that did not write it were numbered by the single writer of
    /// that time, whose events are kept under '' (migrations/V5): the default.
    #[serde(default)]
    pub(super) replica: String,
}

/// One spool record: a report or an event, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum SpoolRecord {
    Report(ReportRecord),
    Event(EventRow),
}

/// Takes the spool's lock, even one a panicking holder left poisoned.
pub(super) fn lock(spool: &Mutex<SpoolState>) -> MutexGuard<'_, SpoolState> {
    // Spool operations leave the state consistent at every return, including on I/O errors.
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus::DiagnosisEventKind;
    use domain::TriageLevel;

    fn report() -> StoredReport {
        let id = Uuid::new_v4();
        StoredReport {
            id,
            created_at: chrono::Utc::now(),
            level: TriageLevel::SelfCare,
            top_condition: Some("J06.9".into()),
            degraded: false,
            api_key_id: None,
            body: crate::JsonBody::from(serde_json::json!({"triage": {"level": "self_care"}})),
            free_text: None,
            events: vec![DiagnosisEvent {
                seq: 7,
                report_id: id,
                at: chrono::Utc::now(),
                kind: DiagnosisEventKind::TriageCompleted {
                    level: TriageLevel::SelfCare,
                    degraded: false,
                    total_ms: 1.0,
                },
                owner: None,
            }],
        }
    }

    #[test]
    fn records_keep_their_replica_and_older_ones_read_as_the_single_writers() {
        let r = report();
        let record = SpoolRecord::Report(ReportRecord { report: r.clone(), replica: "a".into() });
        let bytes = serde_json::to_vec(&record).unwrap();
        // What indexing a spool reads is still at the top of the record.
        let kind: RecordKind = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((kind.t.as_str(), kind.id), ("report", r.id));
        match serde_json::from_slice(&bytes).unwrap() {
            SpoolRecord::Report(back) => {
                assert_eq!(back.report, r);
                assert_eq!(back.replica, "a");
            }
            SpoolRecord::Event(_) => panic!("a report read back as an event"),
        }
        // A record written before replicas had names.
        let mut old = serde_json::to_value(&r).unwrap();
        old["t"] = "report".into();
        match serde_json::from_value(old).unwrap() {
            SpoolRecord::Report(back) => {
                assert_eq!((back.report, back.replica), (r.clone(), "".into()))
            }
            SpoolRecord::Event(_) => panic!("a report read back as an event"),
        }
        let old = serde_json::json!({"t": "event", "id": Uuid::nil(), "event": r.events[0]});
        match serde_json::from_value(old).unwrap() {
            SpoolRecord::Event(e) => assert_eq!((e.id, e.replica.as_str()), (Uuid::nil(), "")),
            SpoolRecord::Report(_) => panic!("an event read back as a report"),
        }
    }
}
