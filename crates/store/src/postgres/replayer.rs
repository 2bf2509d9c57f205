//! The replayer task: sends what the spool holds to the database, in order, a chunk per
//! transaction, sets aside what the database refuses, and empties the spool once all of it is
//! committed.
//!
//! Apart from the store and the writer because it is a task of its own, with its own retry loop,
//! and the only code that moves through the spool or empties it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio::sync::watch;
use uuid::Uuid;

use super::connection::{DbError, migrate, timed};
use super::records::{SpoolRecord, SpoolState, lock};
use super::writer::commit;
use super::{PgConfig, Shared};
use crate::spool::Spool;

pub(super) struct Replayer {
    pub(super) pool: Pool,
    pub(super) pg: tokio_postgres::Config,
    pub(super) shared: Arc<Shared>,
    pub(super) spool: Arc<Mutex<SpoolState>>,
    /// Where replay goes on in the spool; every record before it is committed. Only the
    /// replayer moves it, so it lives here rather than under the spool's lock.
    pub(super) read_from: u64,
    pub(super) migrated: bool,
    pub(super) config: PgConfig,
}

/// What one replay step did.
enum Step {
    /// The spool is empty and new writes go to the database again.
    Drained,
    /// Committed a chunk; more may follow.
    Progress,
    /// The database failed; try again after the retry interval.
    Failed,
    /// `replay_stop_after` reached.
    Stop,
}

impl Replayer {
    pub(super) async fn run(mut self, mut cancel: watch::Receiver<bool>) {
        let mut done = 0u64;
        let mut retry_later = false;
        loop {
            if *cancel.borrow() {
                return;
            }
            if retry_later || self.shared.backlog.load(Ordering::Relaxed) == 0 {
                let wait = async {
                    if retry_later {
                        tokio::time::sleep(self.config.retry_interval).await;
                    } else {
                        self.shared.replay_wake.notified().await;
                    }
                };
                tokio::select! {
                    _ = wait => {}
                    _ = cancel.changed() => return,
                }
            }
            retry_later = false;
            match self.step(&mut done).await {
                Step::Drained | Step::Progress => {}
                Step::Failed => retry_later = true,
                Step::Stop => return,
            }
        }
    }

    async fn step(&mut self, done: &mut u64) -> Step {
        if !self.migrated {
            match migrate(&self.pg, self.config.op_timeout).await {
                Ok(()) => self.migrated = true,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "migrations not applied yet; retrying");
                    return Step::Failed;
                }
            }
        }
        let mut max = self.config.replay_batch.max(1);
        if let Some(stop) = self.config.replay_stop_after {
            max = max.min(usize::try_from(stop.saturating_sub(*done)).unwrap_or(usize::MAX));
            if max == 0 {
                return Step::Stop;
            }
        }
        let spool = self.spool.clone();
        let shared = self.shared.clone();
        let from = self.read_from;
        let chunk = tokio::task::spawn_blocking(move || {
            let mut state = lock(&spool);
            let records = state.spool.read(from, max)?;
            let mut drained = false;
            if records.is_empty() && from == state.spool.len() {
                drained = true;
                // Everything in the spool is committed: only now may it go, and new writes
                // may go to the database directly again.
                state.spool.clear()?;
                shared.spool_bytes.store(0, Ordering::Relaxed);
                shared.spooled_since.store(0, Ordering::Relaxed);
                state.reports = HashMap::new();
                state.spooling = false;
                shared.spooling.store(false, Ordering::Release);
                shared.backlog.store(0, Ordering::Relaxed);
            }
            std::io::Result::Ok((records, drained))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let records = match chunk {
            Ok((_, true)) => {
                self.read_from = 0;
                return Step::Drained;
            }
            Ok((r, false)) if r.is_empty() => {
                tracing::error!("spool backlog cannot be read past the last replayed record");
                return Step::Failed;
            }
            Ok((r, false)) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                return Step::Failed;
            }
        };
        let mut decoded = Vec::with_capacity(records.len());
        let mut undecodable = Vec::new();
        for r in &records {
            match serde_json::from_slice::<SpoolRecord>(&r.payload) {
                Ok(d) => decoded.push((d, &r.payload)),
                // Checksummed but not a record of this version: set aside, never lost.
                Err(_) => undecodable.push(r.payload.clone()),
            }
        }
        let outcome = self.commit_records(&decoded).await;
        let mut refused = undecodable;
        match outcome {
            Ok(conflicts) => self.note_conflicts(conflicts),
            Err(DbError::Transient(m)) => {
                tracing::warn!(error = %m, "replay failed; retrying");
                self.shared.db_up.store(false, Ordering::Relaxed);
                return Step::Failed;
            }
            Err(DbError::Refused(_)) => {
                for (record, payload) in &decoded {
                    match self
                        .commit_records(std::slice::from_ref(&(record.clone(), *payload)))
                        .await
                    {
                        Ok(conflicts) => self.note_conflicts(conflicts),
                        Err(DbError::Refused(_)) => refused.push((*payload).clone()),
                        Err(DbError::Transient(_)) => return Step::Failed,
                    }
                }
            }
        }
        if !refused.is_empty() {
            self.set_aside(refused).await;
        }
        self.shared.db_up.store(true, Ordering::Relaxed);
        let n = records.len() as u64;
        let next = records.last().map_or(0, |r| r.next);
        self.read_from = next;
        self.shared
            .backlog
            .fetch_sub(n.min(self.shared.backlog.load(Ordering::Relaxed)), Ordering::Relaxed);
        self.shared.replayed.fetch_add(n, Ordering::Relaxed);
        *done += n;
        if self.config.replay_stop_after.is_some_and(|stop| *done >= stop) {
            Step::Stop
        } else {
            Step::Progress
        }
    }

    async fn commit_records(
        &self,
        records: &[(SpoolRecord, &Vec<u8>)],
    ) -> Result<Vec<Uuid>, DbError> {
        let mut reports = Vec::new();
        let mut events = Vec::new();
        for (r, _) in records {
            match r {
                // Under the replica that acknowledged it, which need not be this process's.
                SpoolRecord::Report(r) => reports.push((&r.report, r.replica.as_str())),
                SpoolRecord::Event(e) => events.push(e),
            }
        }
        timed(self.config.op_timeout, commit(&self.pool, &reports, &events)).await
    }

    fn note_conflicts(&self, conflicts: Vec<Uuid>) {
        if !conflicts.is_empty() {
            tracing::warn!(count = conflicts.len(), ids = ?conflicts, "replayed reports conflict with stored ones; the stored ones are kept");
            self.shared.conflicts.fetch_add(conflicts.len() as u64, Ordering::Relaxed);
        }
    }

    /// Records the database will never take go to `PATH.rejected`, in the spool format, for a
    /// person to look at: the replay must go on, and an acknowledged write must not vanish.
    async fn set_aside(&self, payloads: Vec<Vec<u8>>) {
        let n = payloads.len() as u64;
        let spool = self.spool.clone();
        let mut path = self.config.spool_path.as_os_str().to_owned();
        path.push(".rejected");
        let result = tokio::task::spawn_blocking(move || {
            let mut state = lock(&spool);
            if state.rejected.is_none() {
                state.rejected = Some(Spool::open(std::path::Path::new(&path))?.0);
            }
            state.rejected.as_mut().map_or(Ok(()), |r| r.append(&payloads).map(drop))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = result {
            tracing::error!(error = %e, records = n, "cannot set refused spool records aside");
        }
        tracing::warn!(records = n, "spool records refused by the database set aside");
        self.shared.rejected.fetch_add(n, Ordering::Relaxed);
    }
}
