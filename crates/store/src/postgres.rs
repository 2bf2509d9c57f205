//! The PostgreSQL store: grouped writes, a local spool while the database is unreachable, and
//! replay of that spool in order once it is back.
//!
//! Two tasks own the writing. The **writer** takes reports and events from a channel, groups
//! what arrives within `batch_max_delay` (up to `batch_size` items), and either commits the
//! group in one transaction or, if the database fails or the spool already has a backlog,
//! appends it to the spool and fsyncs; only then is each caller answered. The **replayer**
//! sends the spool to the database in order, a chunk per transaction, and empties the spool only
//! once everything in it is committed. Every insert is idempotent (`ON CONFLICT DO NOTHING` on
//! the report id and on each event's own UUID), so a chunk sent again after a crash or a lost
//! commit acknowledgement stores nothing twice; the spool needs no progress marker.
//!
//! While the spool holds anything, new writes go behind it rather than to the database, so the
//! database sees writes in the order they were acknowledged; and a report waiting there is read
//! back from there, so an acknowledged report can be fetched while the database is down.
//!
//! # Several replicas on one database
//!
//! Any number of processes (`triagent serve` replicas behind a load balancer) may share one
//! database; nothing here assumes a single writer. What each shared thing relies on:
//!
//! - **Bus numbers** (`events.bus_seq`, the SSE ids) are each process's own: every replica's
//!   bus counts from 1. Each event row names the replica that numbered it
//!   ([`PgConfig::replica`], migrations/V5), and `next_bus_seq` and `events_by_bus_seq` look only
//!   at this replica's rows, so a stream resumes with its own replica's events and never
//!   another's, and a restarted replica continues after its own numbers. Numbering also starts
//!   above the rows of the single writer before replicas had names (`''`). An id means
//!   something only on the replica that gave it: a subscriber that reconnects to another
//!   replica resumes in that one's numbering, so event streams want sticky routing. Two live
//!   processes under one name would number into one sequence again; nothing detects it.
//! - **The store's own `seq`** (`bigserial`) is one sequence every replica draws from: unique,
//!   but transactions commit out of number order across replicas, so a reader of
//!   `events_after` can pass a number whose row commits later (gaps are normal too). It stays
//!   global by design; nothing here pages through it.
//! - **Report ids** are UUIDs the service makes per request (v4), so replicas never write one
//!   id; `ON CONFLICT (id) DO NOTHING` and the comparison after it only meet retries. Were two
//!   transactions to insert one id at once, the second waits for the first and then compares
//!   with its committed row (read committed), so the outcome is still a no-op or a conflict.
//! - **Event ids** are UUIDs given when an event is first kept; `ON CONFLICT (event_id)` only
//!   recognises a replay of the same process's spool.
//! - **The spool** belongs to one process: its own path on local disk, locked by the process
//!   that opens it. Its records keep the replica that acknowledged them (`records`), so a spool
//!   replayed under another name keeps its events in the numbering that gave their numbers. A
//!   report waiting in one replica's spool is read back (`get`) by that replica only; the
//!   others answer that it is not stored until the replay commits it.
//! - **Nothing of the database is cached**: `db_up`, the backlog and `spooling` describe this
//!   process's own connection and spool.
//! - **Migrations** run under a session advisory lock (`connection`) on a connection of their
//!   own, so replicas starting together apply each once and the others wait. Each migration must
//!   let the previous version's replicas go on running (V5 adds a column with a default, so
//!   their events go to `''`); a binary that lacks a migration the database has refuses to
//!   start (refinery's missing-version check): roll forward, never restart an older version.
//! - **API keys** (`keys`): ids are UUIDs and hashes unique; `revoke` locks the key's row
//!   (`FOR UPDATE`), so of two replicas revoking at once one revokes and the other finds it
//!   revoked; audit rows take a `bigserial` id, in insertion order, not commit order.
//!
//! This file holds the configuration, the store and the state it shares with its two tasks.
//! The tasks are in `writer` and `replayer`, what the spool holds in `records`, every SQL
//! statement in `sql`, and how the database is reached (pool, migrations, errors) in
//! `connection`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bus::DiagnosisEvent;
use chrono::Utc;
use deadpool_postgres::Pool;
use domain::TriageLevel;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::spool::Spool;
use crate::{FreeText, ReportStore, StoreError, StoreHealth, StoredEvent, StoredReport};

mod connection;
mod keys;
mod records;
mod replayer;
mod sql;
mod writer;

use connection::{DbError, migrate, timed};
pub use keys::PgKeys;
use records::{EventRow, SpoolState, index_reports, lock};
use replayer::Replayer;
use writer::{Ack, Item, Writer};

/// How the PostgreSQL store connects, groups and spools.
#[derive(Clone)]
pub struct PgConfig {
    /// A libpq-style URL or key-value string (`postgres://user@host:5432/db`). No TLS.
    pub url: String,
    pub pool_size: usize,
    /// Most reports and events committed in one transaction.
    pub batch_size: usize,
    /// How long the writer waits for more writes after the first of a group; 0 takes only what
    /// is already waiting.
    pub batch_max_delay: Duration,
    pub spool_path: PathBuf,
    /// Keep the person's text in `reports.free_text` (and in the spool on the way).
    pub store_free_text: bool,
    /// How long connecting or one transaction may take before the database counts as
    /// unreachable and the writes go to the spool.
    pub op_timeout: Duration,
    /// How often the replayer tries the database again while the spool has a backlog.
    pub retry_interval: Duration,
    /// Spool records per replay transaction.
    pub replay_batch: usize,
    /// The most bytes the spool may hold; a write that would take it past this is refused
    /// (`StoreError::Unavailable`), never acknowledged and then lost.
    pub spool_max_bytes: u64,
    /// Stop replaying, for good, after this many records, as if the process died there: for
    /// crash drills and tests. `None` in service.
    pub replay_stop_after: Option<u64>,
    /// This process's name among the replicas that share the database (the service's
    /// `server.replica`, by default "host name:port"). The events it writes are kept under it,
    /// and the bus's numbering continues and resumes from its own events only, so two
    /// processes must never share one. '' (the default here) is the name of the events kept
    /// before replicas had names.
    pub replica: String,
}

impl std::fmt::Debug for PgConfig {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("pool_size", &self.pool_size)
            .field("batch_size", &self.batch_size)
            .field("batch_max_delay", &self.batch_max_delay)
            .field("spool_path", &self.spool_path)
            .field("store_free_text", &self.store_free_text)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// The service's defaults for everything but where the database and the spool are.
    pub fn new(url: impl Into<String>, spool_path: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            batch_size: 256,
            batch_max_delay: Duration::from_millis(2),
            spool_path: spool_path.into(),
            store_free_text: false,
            op_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_millis(500),
            replay_batch: 512,
            spool_max_bytes: 1 << 30,
            replay_stop_after: None,
            replica: String::new(),
        }
    }
}

/// Counters since the store was opened, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Reports and events written to the spool.
    pub spooled: u64,
    /// Spool records committed to the database by the replayer.
    pub replayed: u64,
    /// Spool records the database refused for their content (set aside in `PATH.rejected`).
    pub rejected: u64,
    /// Replayed reports whose id was already stored with other content (the first is kept).
    pub conflicts: u64,
    /// Transactions committed by the writer (one per group).
    pub batches: u64,
}

/// The PostgreSQL [`ReportStore`]. See the module documentation for how writes flow.
pub struct PgStore {
    tx: mpsc::Sender<Item>,
    pool: Pool,
    shared: Arc<Shared>,
    /// Weak, so that the spool (and its file lock) goes with the writer and the replayer:
    /// `shutdown` must release it.
    spool: Weak<Mutex<SpoolState>>,
    store_free_text: bool,
    op_timeout: Duration,
    spool_max_bytes: u64,
    replica: String,
    cancel: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("backlog", &self.backlog()).finish_non_exhaustive()
    }
}

/// What the store, the writer and the replayer share: whether the spool takes the writes, what
/// they last saw of the database and the spool, and the counters behind [`PgStats`].
struct Shared {
    backlog: AtomicU64,
    /// The spool file's length: set by the writer after an append and by the replayer when it
    /// empties the spool, both under the spool lock.
    spool_bytes: AtomicU64,
    db_up: AtomicBool,
    spool_failed: AtomicBool,
    /// Mirrors `SpoolState::spooling` for lock-free reads: only the writer sets it and only the
    /// replayer clears it, both under the spool lock.
    spooling: AtomicBool,
    replay_wake: Notify,
    spooled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    conflicts: AtomicU64,
    batches: AtomicU64,
    /// When the spool began holding writes (Unix microseconds; 0 while it is empty): set by
    /// the writer's first append to an empty spool (or at open, for a spool found non-empty)
    /// and cleared by the replayer when it empties the spool, both under the spool lock.
    spooled_since: AtomicI64,
}

impl Shared {
    /// How long the spool has held writes; zero while it is empty.
    fn spool_age(&self) -> Duration {
        match self.spooled_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_micros(
                u64::try_from(Utc::now().timestamp_micros() - since).unwrap_or(0),
            ),
        }
    }
}

impl PgStore {
    /// Connects, applies the migrations, opens the spool and starts the writer and replayer.
    ///
    /// An unreachable database is not an error: the store starts degraded, writes go to the
    /// spool, and the replayer migrates and replays once the database answers. A malformed URL,
    /// an unusable spool or a failing migration are errors.
    pub async fn open(config: PgConfig) -> Result<PgStore, StoreError> {
        let pg = connection::settings(&config.url, config.op_timeout, "triagent")?;
        let pool = connection::pool(pg.clone(), config.pool_size.max(1), config.op_timeout)?;

        let path = config.spool_path.clone();
        let (spool, recovered, reports) = tokio::task::spawn_blocking(move || {
            let (spool, recovered) = Spool::open(&path)?;
            let reports =
                if recovered.records > 0 { index_reports(&spool)? } else { HashMap::new() };
            std::io::Result::Ok((spool, recovered, reports))
        })
        .await
        .map_err(|e| StoreError::Other(format!("spool: {e}")))?
        .map_err(|e| StoreError::Other(format!("spool {}: {e}", config.spool_path.display())))?;
        if recovered.discarded_bytes > 0 {
            tracing::warn!(
                bytes = recovered.discarded_bytes,
                records = recovered.records,
                "spool had a torn or corrupt tail; cut off and kept aside"
            );
        }

        let migrated = match migrate(&pg, config.op_timeout).await {
            Ok(()) => true,
            Err(DbError::Transient(m)) => {
                tracing::warn!(error = %m, "database unreachable at start; writes go to the spool until it answers");
                false
            }
            Err(DbError::Refused(m)) => return Err(StoreError::Other(m)),
        };
        let spooling = !migrated || recovered.records > 0;
        let shared = Arc::new(Shared {
            backlog: AtomicU64::new(recovered.records),
            spool_bytes: AtomicU64::new(spool.len()),
            db_up: AtomicBool::new(migrated),
            spool_failed: AtomicBool::new(false),
            spooling: AtomicBool::new(spooling),
            replay_wake: Notify::new(),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            spooled_since: AtomicI64::new(if !spool.is_empty() {
                Utc::now().timestamp_micros()
            } else {
                0
            }),
        });
        let spool = Arc::new(Mutex::new(SpoolState { spool, spooling, rejected: None, reports }));
        let (tx, rx) = mpsc::channel(config.batch_size.max(1) * 4);
        let (cancel, cancelled) = watch::channel(false);
        let writer = Writer {
            pool: pool.clone(),
            shared: shared.clone(),
            spool: spool.clone(),
            batch_size: config.batch_size.max(1),
            batch_max_delay: config.batch_max_delay,
            op_timeout: config.op_timeout,
            spool_max_bytes: config.spool_max_bytes,
            replica: config.replica.clone(),
        };
        let replayer = Replayer {
            pool: pool.clone(),
            pg,
            shared: shared.clone(),
            spool: spool.clone(),
            read_from: 0,
            migrated,
            config: config.clone(),
        };
        let tasks = vec![
            tokio::spawn(writer.run(rx, cancelled.clone())),
            tokio::spawn(replayer.run(cancelled)),
        ];
        if spooling {
            shared.replay_wake.notify_one();
        }
        let spool = Arc::downgrade(&spool);
        Ok(PgStore {
            tx,
            pool,
            shared,
            spool,
            store_free_text: config.store_free_text,
            op_timeout: config.op_timeout,
            spool_max_bytes: config.spool_max_bytes,
            replica: config.replica,
            cancel,
            tasks: tokio::sync::Mutex::new(tasks),
        })
    }

    pub fn stats(&self) -> PgStats {
        let s = &self.shared;
        PgStats {
            spooled: s.spooled.load(Ordering::Relaxed),
            replayed: s.replayed.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            conflicts: s.conflicts.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
        }
    }

    /// Stops taking writes, finishes those already queued (each still committed or spooled
    /// before it is acknowledged), stops the replayer between chunks, and waits for both tasks,
    /// so the spool is closed (and its lock released) when this returns.
    pub async fn shutdown(&self) {
        let _ = self.cancel.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn submit(&self, make: impl FnOnce(Ack) -> Item) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        let closed = || StoreError::Unavailable("the report store is shutting down".into());
        self.tx.send(make(ack)).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        timed(self.op_timeout, async { Ok::<_, DbError>(self.pool.get().await?) }).await.map_err(
            |e| {
                self.shared.db_up.store(false, Ordering::Relaxed);
                StoreError::Unavailable(e.message().to_owned())
            },
        )
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The tasks finish what is queued and exit; nothing here can wait for them.
        let _ = self.cancel.send(true);
    }
}

#[async_trait]
impl ReportStore for PgStore {
    async fn put(&self, mut report: StoredReport) -> Result<(), StoreError> {
        if !self.store_free_text {
            report.free_text = None;
        }
        self.submit(|ack| Item::Report(report, ack)).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<StoredReport>, StoreError> {
        // A report acknowledged while the database was unreachable waits in the spool until
        // it is replayed: it is answered from there, database up or not. The replayed copy is
        // the same report: the service makes every id, and the API never writes one twice with
        // other content (the replay would keep the database's copy then).
        // The flag is set, under the spool's lock, before any write it holds is acknowledged.
        if self.shared.spooling.load(Ordering::Acquire)
            && let Some(spool) = self.spool.upgrade()
        {
            // The lock is held through fsyncs, so it is taken off the async threads.
            let spooled =
                tokio::task::spawn_blocking(move || lock(&spool).report(id)).await.ok().flatten();
            if let Some(mut report) = spooled {
                if !self.store_free_text {
                    report.free_text = None;
                }
                report.events = Vec::new();
                return Ok(Some(report));
            }
        }
        let client = self.client().await?;
        let row = timed(self.op_timeout, async {
            Ok::<_, DbError>(client.query_opt(sql::REPORT_BY_ID, &[&id]).await?)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.message().to_owned()))?;
        let Some(row) = row else { return Ok(None) };
        let level: &str = row.get(2);
        let level = TriageLevel::parse(level).ok_or_else(|| {
            StoreError::Other(format!("report {id} has an unknown level {level:?}"))
        })?;
        Ok(Some(StoredReport {
            id: row.get(0),
            created_at: row.get(1),
            level,
            top_condition: row.get(3),
            degraded: row.get(4),
            api_key_id: row.get(5),
            body: row.get(6),
            free_text: if self.store_free_text {
                row.get::<_, Option<String>>(7).map(FreeText::new)
            } else {
                None
            },
            events: Vec::new(),
        }))
    }

    async fn health(&self) -> StoreHealth {
        // A cheap round trip keeps `db_up` true to the database even when nothing is written.
        let ping = async {
            let client = self.pool.get().await?;
            client.simple_query(sql::PING).await?;
            Ok::<_, DbError>(())
        };
        let up = timed(self.op_timeout.min(Duration::from_secs(2)), ping).await.is_ok();
        self.shared.db_up.store(up, Ordering::Relaxed);
        let backlog = self.backlog();
        if !up && self.shared.spool_failed.load(Ordering::Relaxed) {
            StoreHealth::Down {
                reason: "database unreachable and the spool cannot be written".into(),
            }
        } else if backlog > 0 {
            StoreHealth::Degraded {
                reason: format!("{backlog} writes spooled, waiting for the database"),
            }
        } else if !up {
            StoreHealth::Degraded { reason: "database unreachable; writes go to the spool".into() }
        } else {
            StoreHealth::Ok
        }
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn append_events(&self, events: Vec<DiagnosisEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = events
            .into_iter()
            .map(|event| EventRow { id: Uuid::new_v4(), replica: self.replica.clone(), event })
            .collect();
        self.submit(|ack| Item::Events(rows, ack)).await
    }

    async fn events_by_bus_seq(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DiagnosisEvent>, StoreError> {
        let client = self.client().await?;
        let (after, before) =
            (i64::try_from(after).unwrap_or(i64::MAX), i64::try_from(before).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = timed(self.op_timeout, async {
            Ok::<_, DbError>(
                client
                    .query(sql::EVENTS_BY_BUS_SEQ, &[&self.replica, &after, &before, &limit])
                    .await?,
            )
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.message().to_owned()))?;
        rows.into_iter()
            .map(|row| {
                serde_json::from_value(row.get(0))
                    .map_err(|e| StoreError::Other(format!("stored event: {e}")))
            })
            .collect()
    }

    /// Above the highest bus number this replica has kept in the database (and above those of
    /// the single writer before replicas had names, so an id a subscriber got then is never
    /// given again), when the database answers and the spool is empty. Other replicas' numbers
    /// are their own and play no part. Otherwise (database down, or events of an earlier run
    /// still in the spool) the largest number kept is unknown, and the bus starts at the
    /// current time in microseconds: above any number an earlier run gave, unless it published
    /// more than a million events a second, and still exact in a JavaScript number until the
    /// year 2255.
    async fn next_bus_seq(&self) -> u64 {
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
        if self.backlog() > 0 {
            return now;
        }
        let max = async {
            let client = self.pool.get().await?;
            let row = client.query_one(sql::MAX_BUS_SEQ, &[&self.replica]).await?;
            Ok::<_, DbError>(row.get::<_, i64>(0))
        };
        match timed(self.op_timeout, max).await {
            Ok(max) => u64::try_from(max).unwrap_or(0) + 1,
            Err(_) => now,
        }
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = timed(self.op_timeout, async {
            Ok::<_, DbError>(client.query(sql::EVENTS_AFTER, &[&after, &limit]).await?)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.message().to_owned()))?;
        rows.into_iter()
            .map(|row| {
                let seq: i64 = row.get(0);
                let event = serde_json::from_value(row.get(1))
                    .map_err(|e| StoreError::Other(format!("event {seq}: {e}")))?;
                Ok(StoredEvent { seq: u64::try_from(seq).unwrap_or(0), event })
            })
            .collect()
    }

    fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }

    fn spool_bytes(&self) -> (u64, u64) {
        (self.shared.spool_bytes.load(Ordering::Relaxed), self.spool_max_bytes)
    }

    fn spool_age(&self) -> Duration {
        self.shared.spool_age()
    }
}
