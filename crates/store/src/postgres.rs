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

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bus::DiagnosisEvent;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::spool::Spool;
use crate::{FreeText, ReportStore, StoreError, StoreHealth, StoredEvent, StoredReport};

mod keys;
pub use keys::PgKeys;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The advisory-lock key every replica takes around the migration run ("triagent" in ASCII),
/// so two replicas starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x7472_6961_6765_6e74;

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
    cancel: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("backlog", &self.backlog()).finish_non_exhaustive()
    }
}

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

struct SpoolState {
    spool: Spool,
    /// New writes go to the spool rather than to the database.
    spooling: bool,
    /// Opened on first use.
    rejected: Option<Spool>,
    /// Where each report waiting in the spool starts, so that `get` can answer with an
    /// acknowledged report while the database is unreachable. Emptied with the spool.
    reports: HashMap<Uuid, u64>,
}

impl SpoolState {
    /// The report `id` as it waits in the spool, if it does. A record that cannot be read or
    /// is not that report (which an index kept with the spool never gives) is `None`: the
    /// caller asks the database.
    fn report(&self, id: Uuid) -> Option<StoredReport> {
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
fn index_reports(spool: &Spool) -> std::io::Result<HashMap<Uuid, u64>> {
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

type Ack = oneshot::Sender<Result<(), StoreError>>;

enum Item {
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

/// An event with the UUID that makes its insert idempotent (the bus's `seq` restarts with
/// the process, so it cannot be the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventRow {
    id: Uuid,
    event: DiagnosisEvent,
}

/// One spool record: a report or an event, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum SpoolRecord {
    Report(StoredReport),
    Event(EventRow),
}

/// Why a database operation failed, as far as what to do next is concerned.
#[derive(Debug)]
pub(crate) enum DbError {
    /// The database cannot be reached or cannot work now: spool and retry.
    Transient(String),
    /// The database refused this content (a data or constraint error): retrying cannot help.
    Refused(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Only the SQLSTATE goes into the message: a server message may quote values.
        match e.code() {
            Some(code) if code.code().starts_with("22") || code.code().starts_with("23") => {
                DbError::Refused(format!("database refused the write (SQLSTATE {})", code.code()))
            }
            Some(code) => DbError::Transient(format!("database error (SQLSTATE {})", code.code())),
            None => DbError::Transient(format!("database unreachable: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Transient(format!("database unreachable: {other}")),
        }
    }
}

impl DbError {
    fn message(&self) -> &str {
        match self {
            DbError::Transient(m) | DbError::Refused(m) => m,
        }
    }
}

async fn timed<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    timeout(limit, f).await.unwrap_or_else(|_| {
        Err(DbError::Transient(format!("database did not answer within {limit:?}")))
    })
}

impl PgStore {
    /// Connects, applies the migrations, opens the spool and starts the writer and replayer.
    ///
    /// An unreachable database is not an error: the store starts degraded, writes go to the
    /// spool, and the replayer migrates and replays once the database answers. A malformed URL,
    /// an unusable spool or a failing migration are errors.
    pub async fn open(config: PgConfig) -> Result<PgStore, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| StoreError::Other(format!("database url: {e}")))?;
        pg.connect_timeout(config.op_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("triagent");
        }
        // A connection the network closed is noticed by `is_closed` without a query.
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = Manager::from_connect(pg.clone(), OnRuntime::current(), manager_config);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.op_timeout))
            .create_timeout(Some(config.op_timeout))
            .recycle_timeout(Some(config.op_timeout))
            .build()
            .map_err(|e| StoreError::Other(format!("database pool: {e}")))?;

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
            Ok::<_, DbError>(client
                .query_opt(
                    "SELECT id, created_at, level, top_condition, degraded, api_key_id, body, free_text FROM reports WHERE id = $1",
                    &[&id],
                )
                .await?)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.message().to_owned()))?;
        Ok(row.map(|row| StoredReport {
            id: row.get(0),
            created_at: row.get(1),
            level: row.get(2),
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
            client.simple_query("SELECT 1").await?;
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
        let rows = events.into_iter().map(|event| EventRow { id: Uuid::new_v4(), event }).collect();
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
            Ok::<_, DbError>(client.query("SELECT payload FROM events WHERE bus_seq > $1 AND bus_seq < $2 ORDER BY bus_seq LIMIT $3", &[&after, &before, &limit]).await?)
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

    /// Above the highest bus number in the database when it answers and the spool is empty.
    /// Otherwise (database down, or events of an earlier run still in the spool) the largest
    /// number kept is unknown, and the bus starts at the current time in microseconds: above
    /// any number an earlier run gave, unless it published more than a million events a
    /// second, and still exact in a JavaScript number until the year 2255.
    async fn next_bus_seq(&self) -> u64 {
        let now = u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1);
        if self.backlog() > 0 {
            return now;
        }
        let max = async {
            let client = self.pool.get().await?;
            Ok::<_, DbError>(
                client
                    .query_one("SELECT coalesce(max(bus_seq), 0) FROM events", &[])
                    .await?
                    .get::<_, i64>(0),
            )
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
            Ok::<_, DbError>(
                client
                    .query(
                        "SELECT seq, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&after, &limit],
                    )
                    .await?,
            )
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

/// Opens pooled connections on the runtime that opened the store, whichever task asks.
///
/// actix-web runs each HTTP worker on a runtime of its own, and a tokio-postgres connection
/// lives on the runtime that connected it (its socket and its driver task). Left to itself,
/// the pool would connect on whichever worker asked first and lose the connection when that
/// worker stops (at shutdown, the writer's final commits and the last audit flush would find
/// it closed). Connecting on the opener's runtime (the service's main one) keeps every
/// connection alive as long as the store.
pub(crate) struct OnRuntime(tokio::runtime::Handle);

impl OnRuntime {
    pub(crate) fn current() -> OnRuntime {
        OnRuntime(tokio::runtime::Handle::current())
    }
}

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg = pg.clone();
        let opened = self.0.spawn(async move {
            let (client, connection) = pg.connect(NoTls).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "database connection ended");
                }
            });
            Ok((client, driver))
        });
        // The runtime is shutting down: as the pool sees it, connecting timed out.
        Box::pin(async move {
            opened.await.unwrap_or_else(|_| Err(tokio_postgres::Error::__private_api_timeout()))
        })
    }
}

/// Applies the migrations under a session advisory lock, on a connection of its own so the
/// lock is released with it even if this task dies.
pub(crate) async fn migrate(pg: &tokio_postgres::Config, limit: Duration) -> Result<(), DbError> {
    let (mut client, connection) =
        timed(limit, async { Ok::<_, DbError>(pg.connect(NoTls).await?) }).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        // Not bounded by `limit`: another replica may hold the lock for as long as its
        // migrations take.
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
        let run = embedded::migrations::runner().set_grouped(false).run_async(&mut client).await;
        if let Err(e) = run {
            return Err(if client.is_closed() {
                DbError::Transient(format!("connection lost during migrations: {e}"))
            } else {
                DbError::Refused(format!("migrations failed: {e}"))
            });
        }
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
        Ok::<(), DbError>(())
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}

/// Commits reports, each with its own events, and events of no report in one transaction;
/// returns the ids of reports that were already stored with other content (left as they were).
/// A report's events are inserted only with the report's first insert: a retried or replayed
/// report that is already there brought them the first time.
async fn commit(
    pool: &Pool,
    reports: &[&StoredReport],
    events: &[&EventRow],
) -> Result<Vec<Uuid>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut conflicts = Vec::new();
    let mut rows: Vec<(Uuid, &DiagnosisEvent)> = events.iter().map(|e| (e.id, &e.event)).collect();
    if !reports.is_empty() {
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
                "INSERT INTO reports (id, created_at, level, top_condition, degraded, api_key_id, body, free_text) \
                 SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::bool[], $6::uuid[], $7::jsonb[], $8::text[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&ids, &created, &levels, &tops, &degraded, &keys, &bodies, &texts],
            )
            .await?;
        let inserted: HashSet<Uuid> = inserted.iter().map(|row| row.get(0)).collect();
        let mut first: HashMap<Uuid, &StoredReport> = HashMap::new();
        for r in reports {
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
                rows.extend(r.events.iter().map(|event| (Uuid::new_v4(), event)));
                continue;
            }
            // Already stored: a retry (same content) is fine, anything else is a conflict.
            // Compared in SQL so both sides went through the same jsonb conversion.
            let same = tx
                .query_opt(
                    "SELECT 1 FROM reports WHERE id = $1 AND level = $2 AND top_condition IS NOT DISTINCT FROM $3 \
                     AND degraded = $4 AND api_key_id IS NOT DISTINCT FROM $5 AND body = $6::jsonb",
                    &[&r.id, &r.level, &r.top_condition, &r.degraded, &r.api_key_id, &r.body],
                )
                .await?;
            if same.is_none() {
                conflicts.push(r.id);
            }
        }
    }
    if !rows.is_empty() {
        // In bus order, so the store's own numbering follows the bus within a transaction.
        rows.sort_by_key(|(_, e)| e.seq);
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let reports: Vec<Option<Uuid>> =
            rows.iter().map(|(_, e)| Some(e.report_id).filter(|id| !id.is_nil())).collect();
        let seqs: Vec<i64> =
            rows.iter().map(|(_, e)| i64::try_from(e.seq).unwrap_or(i64::MAX)).collect();
        let kinds: Vec<&str> = rows.iter().map(|(_, e)| e.type_name()).collect();
        let levels: Vec<Option<&str>> = rows.iter().map(|(_, e)| e.level()).collect();
        let payloads: Vec<serde_json::Value> = rows
            .iter()
            .map(|(_, e)| serde_json::to_value(e))
            .collect::<Result<_, _>>()
            .map_err(|e| DbError::Refused(format!("event as JSON: {e}")))?;
        let at: Vec<DateTime<Utc>> = rows.iter().map(|(_, e)| e.at).collect();
        // ORDER BY the position so the global sequence follows the order events were given in.
        tx.execute(
            "INSERT INTO events (event_id, report_id, bus_seq, kind, level, payload, at) \
             SELECT e.id, e.report_id, e.bus_seq, e.kind, e.level, e.payload, e.at \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[]) \
                  WITH ORDINALITY AS e(id, report_id, bus_seq, kind, level, payload, at, ord) \
             ORDER BY e.ord \
             ON CONFLICT (event_id) DO NOTHING",
            &[&ids, &reports, &seqs, &kinds, &levels, &payloads, &at],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(conflicts)
}

fn lock(spool: &Mutex<SpoolState>) -> MutexGuard<'_, SpoolState> {
    // Spool operations leave the state consistent at every return, including on I/O errors.
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Writer {
    pool: Pool,
    shared: Arc<Shared>,
    spool: Arc<Mutex<SpoolState>>,
    batch_size: usize,
    batch_max_delay: Duration,
    op_timeout: Duration,
    /// [`PgConfig::spool_max_bytes`].
    spool_max_bytes: u64,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Item>, mut cancel: watch::Receiver<bool>) {
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
                Item::Report(r, _) => reports.push(r),
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
                    vec![(serde_json::to_vec(&SpoolRecord::Report(r.clone())), Some(r.id))]
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

struct Replayer {
    pool: Pool,
    pg: tokio_postgres::Config,
    shared: Arc<Shared>,
    spool: Arc<Mutex<SpoolState>>,
    /// Where replay goes on in the spool; every record before it is committed. Only the
    /// replayer moves it, so it lives here rather than under the spool's lock.
    read_from: u64,
    migrated: bool,
    config: PgConfig,
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
    async fn run(mut self, mut cancel: watch::Receiver<bool>) {
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
                SpoolRecord::Report(r) => reports.push(r),
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

/// `jsonb` (and `json`) straight from and to the answer's text: the binary `jsonb` format is a
/// version byte (1) and the text, so nothing is parsed or re-encoded on our side.
impl tokio_postgres::types::ToSql for crate::JsonBody {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for crate::JsonBody {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == tokio_postgres::types::Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        } else {
            raw
        };
        Ok(crate::JsonBody::from_trusted(text.to_vec()))
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
}
