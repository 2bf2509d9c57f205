//! The writer task: takes reports and events from the store's channel, commits them in groups,
//! one transaction each, or spools them when the database fails, and only then answers each
//! caller.
//!
//! Apart from the store because it is a task of its own with its own loop; [`commit`], the
//! grouped transaction, lives here too and is shared with the replayer, so a write reaches the
//! tables the same way whether it goes there at once or through the spool.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::DiagnosisEvent;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::TriageLevel;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::Shared;
use super::connection::{DbError, timed};
use super::records::{EventRow, ReportRecord, SpoolRecord, SpoolState, lock};
use super::sql;
use crate::{FreeText, StoreError, StoredReport};

/// Where the writer sends a write's outcome, once it is committed, spooled or refused.
pub(super) type Ack = oneshot::Sender<Result<(), StoreError>>;

/// A write waiting in the writer's channel.
pub(super) enum Item {
    Report(StoredReport, Ack),
    Events(Vec<EventRow>, Ack),
}

impl Item {
    fn weight(&self) -> usize {
        match self {
            Item::Report(..) => 1,
            Item::Events(e, _) => e.len().max(1),
        }
    }
}

pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) shared: Arc<Shared>,
    pub(super) spool: Arc<Mutex<SpoolState>>,
    pub(super) batch_size: usize,
    pub(super) batch_max_delay: Duration,
    pub(super) op_timeout: Duration,
    /// [`PgConfig::spool_max_bytes`](super::PgConfig::spool_max_bytes).
    pub(super) spool_max_bytes: u64,
    /// [`PgConfig::replica`](super::PgConfig::replica): the reports' events are kept under it.
    pub(super) replica: String,
}

impl Writer {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Item>, mut cancel: watch::Receiver<bool>) {
        let mut closing = false;
        loop {
            let first = if closing {
                rx.recv().await
            } else {
                tokio::select! {
                    item = rx.recv() => item,
                    _ = cancel.changed() => {
                        // Take nothing new, but finish everything already queued.
                        closing = true;
                        rx.close();
                        continue;
                    }
                }
            };
            let Some(first) = first else { return };
            let mut weight = first.weight();
            let mut batch = vec![first];
            let deadline = Instant::now() + self.batch_max_delay;
            while weight < self.batch_size {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => {
                        weight += item.weight();
                        batch.push(item);
                    }
                    _ => break,
                }
            }
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Item>) {
        if !self.shared.spooling.load(Ordering::Acquire) {
            match self.commit_items(&batch).await {
                Ok(conflicts) => {
                    self.shared.db_up.store(true, Ordering::Relaxed);
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    return ack_all(batch, &conflicts);
                }
                Err(DbError::Refused(_)) => return self.write_one_by_one(batch).await,
                Err(DbError::Transient(m)) => {
                    tracing::warn!(error = %m, items = batch.len(), "database write failed; spooling");
                    self.shared.db_up.store(false, Ordering::Relaxed);
                }
            }
        }
        self.spool(batch).await;
    }

    async fn commit_items(&self, batch: &[Item]) -> Result<Vec<Uuid>, DbError> {
        let mut reports = Vec::new();
        let mut events = Vec::new();
        for item in batch {
            match item {
                Item::Report(r, _) => reports.push((r, self.replica.as_str())),
                Item::Events(e, _) => events.extend(e),
            }
        }
        timed(self.op_timeout, commit(&self.pool, &reports, &events)).await
    }

    /// The database refused something in the group: commit each item alone so one bad write
    /// fails alone. An item that meets a transient error goes to the spool with the rest.
    async fn write_one_by_one(&self, batch: Vec<Item>) {
        let mut rest = batch.into_iter();
        loop {
            let Some(item) = rest.next() else { return };
            match self.commit_items(std::slice::from_ref(&item)).await {
                Ok(conflicts) => ack_all(vec![item], &conflicts),
                Err(DbError::Refused(m)) => {
                    tracing::warn!(error = %m, "database refused a write");
                    let ack = match item {
                        Item::Report(_, ack) | Item::Events(_, ack) => ack,
                    };
                    let _ = ack.send(Err(StoreError::Other(m)));
                }
                Err(DbError::Transient(_)) => {
                    self.shared.db_up.store(false, Ordering::Relaxed);
                    let mut left = vec![item];
                    left.extend(rest);
                    return self.spool(left).await;
                }
            }
        }
    }

    async fn spool(&self, batch: Vec<Item>) {
        let mut payloads = Vec::new();
        // The report each payload holds, if it is one.
        let mut report_ids = Vec::new();
        for item in &batch {
            let encoded = match item {
                Item::Report(r, _) => {
                    let record = ReportRecord { report: r.clone(), replica: self.replica.clone() };
                    vec![(serde_json::to_vec(&SpoolRecord::Report(record)), Some(r.id))]
                }
                Item::Events(e, _) => e
                    .iter()
                    .map(|e| (serde_json::to_vec(&SpoolRecord::Event(e.clone())), None))
                    .collect(),
            };
            for (p, id) in encoded {
                match p {
                    Ok(p) => {
                        payloads.push(p);
                        report_ids.push(id);
                    }
                    Err(e) => {
                        let m = format!("cannot encode a write for the spool: {e}");
                        return nack_all(batch, &StoreError::Other(m));
                    }
                }
            }
        }
        let n = payloads.len() as u64;
        let spool = self.spool.clone();
        let shared = self.shared.clone();
        let max = self.spool_max_bytes;
        let appended = tokio::task::spawn_blocking(move || {
            let mut state = lock(&spool);
            let adding: u64 = payloads.iter().map(|p| p.len() as u64 + 8).sum();
            if state.spool.len().saturating_add(adding) > max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!("the spool is at its limit of {max} bytes"),
                ));
            }
            let was_empty = state.spool.is_empty();
            let offsets = state.spool.append(&payloads)?;
            shared.spool_bytes.store(state.spool.len(), Ordering::Relaxed);
            if was_empty {
                shared.spooled_since.store(Utc::now().timestamp_micros(), Ordering::Relaxed);
            }
            for (id, at) in report_ids.into_iter().zip(offsets) {
                if let Some(id) = id {
                    state.reports.insert(id, at);
                }
            }
            state.spooling = true;
            shared.spooling.store(true, Ordering::Release);
            std::io::Result::Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match appended {
            Ok(()) => {
                self.shared.spool_failed.store(false, Ordering::Relaxed);
                self.shared.backlog.fetch_add(n, Ordering::Relaxed);
                self.shared.spooled.fetch_add(n, Ordering::Relaxed);
                self.shared.replay_wake.notify_one();
                ack_all(batch, &[]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::warn!(error = %e, items = batch.len(), "spool full; writes refused until the database takes the backlog");
                nack_all(
                    batch,
                    &StoreError::Unavailable(format!("database unreachable and spool full: {e}")),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, items = batch.len(), "spool write failed; writes refused");
                self.shared.spool_failed.store(true, Ordering::Relaxed);
                nack_all(
                    batch,
                    &StoreError::Unavailable(format!(
                        "database unreachable and spool not writable: {e}"
                    )),
                );
            }
        }
    }
}

fn ack_all(batch: Vec<Item>, conflicts: &[Uuid]) {
    for item in batch {
        // A caller that gave up waiting is gone; its write is kept all the same.
        let _ = match item {
            Item::Report(r, ack) if conflicts.contains(&r.id) => {
                ack.send(Err(StoreError::Conflict(r.id)))
            }
            Item::Report(_, ack) | Item::Events(_, ack) => ack.send(Ok(())),
        };
    }
}

fn nack_all(batch: Vec<Item>, error: &StoreError) {
    for item in batch {
        let (Item::Report(_, ack) | Item::Events(_, ack)) = item;
        let _ = ack.send(Err(error.clone()));
    }
}

/// Commits reports, each with its own events, and events of no report in one transaction;
/// returns the ids of reports that were already stored with other content (left as they were).
/// A report's events are inserted only with the report's first insert: a retried or replayed
/// report that is already there brought them the first time. Each report comes with the
/// replica its events are kept under; each event of no report carries its own.
pub(super) async fn commit(
    pool: &Pool,
    reports: &[(&StoredReport, &str)],
    events: &[&EventRow],
) -> Result<Vec<Uuid>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut conflicts = Vec::new();
    let mut rows: Vec<(Uuid, &str, &DiagnosisEvent)> =
        events.iter().map(|e| (e.id, e.replica.as_str(), &e.event)).collect();
    if !reports.is_empty() {
        let (reports, replicas): (Vec<&StoredReport>, Vec<&str>) = reports.iter().copied().unzip();
        let ids: Vec<Uuid> = reports.iter().map(|r| r.id).collect();
        let created: Vec<DateTime<Utc>> = reports.iter().map(|r| r.created_at).collect();
        let levels: Vec<&str> = reports.iter().map(|r| r.level.as_str()).collect();
        let tops: Vec<Option<&str>> = reports.iter().map(|r| r.top_condition.as_deref()).collect();
        let degraded: Vec<bool> = reports.iter().map(|r| r.degraded).collect();
        let keys: Vec<Option<Uuid>> = reports.iter().map(|r| r.api_key_id).collect();
        let bodies: Vec<&crate::JsonBody> = reports.iter().map(|r| &r.body).collect();
        let texts: Vec<Option<&str>> =
            reports.iter().map(|r| r.free_text.as_ref().map(FreeText::expose)).collect();
        let inserted = tx
            .query(
                sql::INSERT_REPORTS,
                &[&ids, &created, &levels, &tops, &degraded, &keys, &bodies, &texts],
            )
            .await?;
        let inserted: HashSet<Uuid> = inserted.iter().map(|row| row.get(0)).collect();
        let mut first: HashMap<Uuid, &StoredReport> = HashMap::new();
        for (r, replica) in reports.into_iter().zip(replicas) {
            // A second write of one id within the group compares with the first.
            if let Some(earlier) = first.get(&r.id) {
                if !earlier.same_content(r) {
                    conflicts.push(r.id);
                }
                continue;
            }
            first.insert(r.id, r);
            if inserted.contains(&r.id) {
                // Inserted now: its events go in with it (a report already there has its own).
                rows.extend(r.events.iter().map(|event| (Uuid::new_v4(), replica, event)));
                continue;
            }
            // Already stored: a retry (same content) is fine, anything else is a conflict.
            // Compared in SQL so both sides went through the same jsonb conversion.
            let same = tx
                .query_opt(
                    sql::SAME_REPORT,
                    &[
                        &r.id,
                        &r.level.as_str(),
                        &r.top_condition,
                        &r.degraded,
                        &r.api_key_id,
                        &r.body,
                    ],
                )
                .await?;
            if same.is_none() {
                conflicts.push(r.id);
            }
        }
    }
    if !rows.is_empty() {
        // In bus order, so the store's own numbering follows the bus within a transaction.
        rows.sort_by_key(|(_, _, e)| e.seq);
        let ids: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
        let reports: Vec<Option<Uuid>> =
            rows.iter().map(|(_, _, e)| Some(e.report_id).filter(|id| !id.is_nil())).collect();
        let seqs: Vec<i64> =
            rows.iter().map(|(_, _, e)| i64::try_from(e.seq).unwrap_or(i64::MAX)).collect();
        let kinds: Vec<&str> = rows.iter().map(|(_, _, e)| e.type_name()).collect();
        let levels: Vec<Option<&str>> =
            rows.iter().map(|(_, _, e)| e.level().map(TriageLevel::as_str)).collect();
        let payloads: Vec<serde_json::Value> = rows
            .iter()
            .map(|(_, _, e)| serde_json::to_value(e))
            .collect::<Result<_, _>>()
            .map_err(|e| DbError::Refused(format!("event as JSON: {e}")))?;
        let at: Vec<DateTime<Utc>> = rows.iter().map(|(_, _, e)| e.at).collect();
        let replicas: Vec<&str> = rows.iter().map(|(_, replica, _)| *replica).collect();
        // ORDER BY the position so the global sequence follows the order events were given in.
        tx.execute(
            sql::INSERT_EVENTS,
            &[&ids, &reports, &seqs, &kinds, &levels, &payloads, &at, &replicas],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(conflicts)
}
