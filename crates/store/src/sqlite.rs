//! The durable embedded store: reports and events in one SQLite file on local disk.
//!
//! One writer thread owns the only writing connection. It takes what callers hand it from a
//! channel, groups whatever is waiting (up to `batch_size` writes) into one transaction, and
//! answers each caller only after the commit: the database is in WAL mode with
//! `synchronous = FULL`, so a commit is on disk when it returns and an acknowledged report
//! survives a crash or a power cut. Grouping pays one fsync for many reports. In the same
//! transaction the writer forgets the oldest reports and events past the store's capacity
//! (a few at a time: [`headroom`]), and about once a minute those older than its maximum age.
//!
//! Reads (`get`, the event backfills) use connections of their own, on the blocking pool: WAL
//! lets them read the last commit while the writer writes the next.
//!
//! Why SQLite: one file a user can copy, inspect (`sqlite3 data/triagent.db`) and back up; SQL
//! with the same tables as PostgreSQL's, so retention is a `DELETE` by row order; compiled in
//! (`rusqlite`'s `bundled`), so nothing is installed. The person's text is never kept here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bus::DiagnosisEvent;
use chrono::{DateTime, Utc};
use domain::TriageLevel;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::body::JsonBody;
use crate::{ReportStore, StoreError, StoreHealth, StoredEvent, StoredReport};

/// Events kept per report of capacity: a triage publishes about seven.
const EVENTS_PER_REPORT: usize = 8;

/// How often the writer forgets what is older than the maximum age.
const AGE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The schema's version, in `PRAGMA user_version`: 0 is a new file or the first layout (events
/// numbered by a row id of their own, with an index on the bus number), 1 the present one.
const SCHEMA_VERSION: i64 = 1;

/// The schema, applied at open (every statement is idempotent). Times are nanoseconds since
/// the Unix epoch, so a report reads back exactly as it was put. Rows are kept in the order
/// they come: reports by `n`, events by their bus number (unique in a store, which one process
/// owns: see the lock in [`SqliteStore::open`]), so both grow at their end and retention
/// forgets the lowest numbers first. Report ids are time-ordered (`crate::new_report_id`), so
/// their index grows at its end too rather than dirtying a random page with every report.
/// An event's `payload` is its `type` and fields as JSON; its number, report and time are
/// columns, as they would only be written twice.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    n INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    level TEXT NOT NULL,
    top_condition TEXT,
    degraded INTEGER NOT NULL,
    api_key_id BLOB,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    bus_seq INTEGER PRIMARY KEY,
    report_id BLOB,
    kind TEXT NOT NULL,
    level TEXT,
    at INTEGER NOT NULL,
    payload TEXT NOT NULL
);
";

/// From the first layout, after [`SCHEMA`] made the new `events` beside the old one (renamed
/// `events_first_layout`): its rows keyed by their bus number; its second index goes with it.
const FROM_FIRST_LAYOUT: &str = "
INSERT OR IGNORE INTO events
    SELECT bus_seq, report_id, kind, level, at, payload FROM events_first_layout ORDER BY seq;
DROP TABLE events_first_layout;
";

/// Brings a file to [`SCHEMA_VERSION`] in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let first_layout = version < SCHEMA_VERSION
        && tx.prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'seq'")?.exists([])?;
    if first_layout {
        tx.execute_batch("ALTER TABLE events RENAME TO events_first_layout")?;
    }
    tx.execute_batch(SCHEMA)?;
    if first_layout {
        tx.execute_batch(FROM_FIRST_LAYOUT)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// Where and how much the embedded store keeps.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; its folder is created when missing.
    pub path: PathBuf,
    /// Most reports kept; the oldest are forgotten first. Events: eight times as many.
    pub capacity: usize,
    /// Reports and events older than this are forgotten (`None`: kept until capacity).
    pub max_age: Option<Duration>,
    /// Most writes committed in one transaction.
    pub batch_size: usize,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>, capacity: usize) -> Self {
        SqliteConfig { path: path.into(), capacity, max_age: None, batch_size: 256 }
    }
}

/// Reports and events in a SQLite file: durable, bounded, embedded.
pub struct SqliteStore {
    path: PathBuf,
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Set while the last commit failed (a full disk, a file made read-only).
    failing: Arc<AtomicBool>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What a caller hands the writer, with where to send the answer.
enum Write {
    Report(Box<StoredReport>, Vec<EventRow>, oneshot::Sender<Result<(), StoreError>>),
    Events(Vec<EventRow>, oneshot::Sender<Result<(), StoreError>>),
}

/// An event as its row, made by the caller (on the request's own thread, in parallel with the
/// others), so the one writer thread only binds values.
struct EventRow {
    bus_seq: i64,
    report_id: Option<Uuid>,
    kind: &'static str,
    level: Option<&'static str>,
    at: i64,
    /// Its `type` and fields: its number, report and time are the columns above.
    payload: String,
}

impl EventRow {
    fn of(e: &DiagnosisEvent) -> Result<Self, StoreError> {
        Ok(EventRow {
            bus_seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
            report_id: Some(e.report_id).filter(|id| !id.is_nil()),
            kind: e.type_name(),
            level: e.level().map(TriageLevel::as_str),
            at: nanos(e.at),
            payload: serde_json::to_string(&e.kind)
                .map_err(|err| StoreError::Other(format!("event as JSON: {err}")))?,
        })
    }

    fn all(events: &[DiagnosisEvent]) -> Result<Vec<Self>, StoreError> {
        events.iter().map(EventRow::of).collect()
    }
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A connection that waits for a lock instead of failing at once.
fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the store at `config.path` and starts its writer thread.
    pub fn open(config: SqliteConfig) -> Result<Self, StoreError> {
        if config.capacity == 0 {
            return Err(StoreError::Other("store capacity must be at least 1 report".into()));
        }
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        // One process per file: a second service started in the same folder would number its
        // events from the same table as this one. The lock goes with the writer thread.
        let lock_path = config.path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| {
            StoreError::Other(format!("cannot create {}: {e}", lock_path.display()))
        })?;
        lock.try_lock().map_err(|_| {
            StoreError::Other(format!(
                "{} is in use by another process: give each service its own store.path",
                config.path.display()
            ))
        })?;
        let conn = open_connection(&config.path, OpenFlags::default())
            .and_then(|mut c| {
                // WAL is kept in the file; FULL makes each commit durable when it returns.
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                migrate(&mut c)?;
                Ok(c)
            })
            .map_err(|e| {
                StoreError::Other(format!("cannot open {}: {e}", config.path.display()))
            })?;
        let failing = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            _lock: lock,
            capacity: config.capacity,
            max_age: config.max_age,
            batch_size: config.batch_size.max(1),
            last_sweep: None,
            failing: failing.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| StoreError::Other(format!("cannot start the store's writer: {e}")))?;
        Ok(SqliteStore {
            path: config.path,
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(Vec::new())),
            failing,
        })
    }

    async fn write(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Write,
    ) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        let sent = self
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(make(ack)).is_ok());
        if !sent {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        done.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store's writer stopped".into())))
    }

    /// Runs `f` with a read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql_error)?,
            };
            let out = f(&conn).map_err(sql_error);
            readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Other(format!("a store read stopped: {e}")))?
    }
}

impl Drop for SqliteStore {
    /// Closes the channel so the writer commits what is queued and stops, then waits for it.
    fn drop(&mut self) {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = h.join();
        }
    }
}

struct Writer {
    conn: Connection,
    /// Held, locked, while the writer runs.
    _lock: std::fs::File,
    capacity: usize,
    max_age: Option<Duration>,
    batch_size: usize,
    last_sweep: Option<Instant>,
    failing: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Write>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.batch_size {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
            let outcome = self.commit(&batch);
            self.failing.store(outcome.is_err(), Ordering::Relaxed);
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, writes = batch.len(), "the embedded store failed a commit");
            }
            for (i, w) in batch.into_iter().enumerate() {
                let answer = match &outcome {
                    Ok(each) => each[i].clone(),
                    Err(e) => Err(e.clone()),
                };
                match w {
                    Write::Report(_, _, ack) | Write::Events(_, ack) => {
                        let _ = ack.send(answer);
                    }
                }
            }
        }
    }

    /// One transaction for the whole group: each report inserted unless its id is there (a
    /// retry of the same content is fine, other content a conflict), then the events of the
    /// reports inserted and the events given alone, in bus order, then what retention forgets,
    /// so the group costs one durable commit.
    fn commit(&mut self, batch: &[Write]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let mut answers = Vec::with_capacity(batch.len());
        let mut events: Vec<&EventRow> = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO reports (id, created_at, level, top_condition, degraded, \
                     api_key_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .map_err(sql_error)?;
            for w in batch {
                match w {
                    Write::Report(r, rows, _) => {
                        let inserted = insert
                            .execute(params![
                                r.id.as_bytes().as_slice(),
                                nanos(r.created_at),
                                r.level.as_str(),
                                r.top_condition,
                                r.degraded,
                                r.api_key_id.as_ref().map(|k| k.as_bytes().as_slice()),
                                // Serialised JSON, so valid UTF-8: bound without a check.
                                ToSqlOutput::Borrowed(ValueRef::Text(r.body.as_bytes())),
                            ])
                            .map_err(sql_error)?;
                        if inserted == 1 {
                            events.extend(rows);
                            answers.push(Ok(()));
                        } else {
                            let kept = read_report(&tx, r.id).map_err(sql_error)?;
                            answers.push(match kept {
                                Some(k) if k.same_content(r) => Ok(()),
                                _ => Err(StoreError::Conflict(r.id)),
                            });
                        }
                    }
                    Write::Events(e, _) => {
                        events.extend(e);
                        answers.push(Ok(()));
                    }
                }
            }
            events.sort_by_key(|e| e.bus_seq);
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (bus_seq, report_id, kind, level, at, payload) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (bus_seq) DO NOTHING",
                )
                .map_err(sql_error)?;
            for e in events {
                insert
                    .execute(params![
                        e.bus_seq,
                        e.report_id.as_ref().map(|id| id.as_bytes().as_slice()),
                        e.kind,
                        e.level,
                        e.at,
                        e.payload,
                    ])
                    .map_err(sql_error)?;
            }
        }
        forget_old(&tx, self.capacity, self.max_age, &mut self.last_sweep).map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        Ok(answers)
    }
}

/// Reports forgotten at once past capacity (eight times as many events): 1/512 of the capacity,
/// at most 128. A commit that deletes rewrites the pages at the start of each table and index
/// as well as those at their end: with a few reports a commit, deleting in every commit added
/// half to the bytes the writer writes, and making room for this many at a time took a quarter
/// off them (docs/performance.md, 2026-12-07). A store never holds more than its capacity, and
/// at most this many fewer.
fn headroom(capacity: usize) -> usize {
    (capacity / 512).min(128)
}

/// Forgets reports and events past capacity (a range delete by row number, once the oldest row
/// is outside the last `capacity` numbers, down to [`headroom`] below) and, about once a
/// minute, those older than the maximum age (the oldest rows, up to the first one younger).
fn forget_old(
    conn: &Connection,
    capacity: usize,
    max_age: Option<Duration>,
    last_sweep: &mut Option<Instant>,
) -> rusqlite::Result<()> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let room = headroom(capacity);
    trim(
        conn,
        "SELECT (SELECT MIN(n) FROM reports), (SELECT MAX(n) FROM reports)",
        "DELETE FROM reports WHERE n <= ?1",
        count(capacity),
        count(room),
    )?;
    trim(
        conn,
        "SELECT (SELECT MIN(bus_seq) FROM events), (SELECT MAX(bus_seq) FROM events)",
        "DELETE FROM events WHERE bus_seq <= ?1",
        count(capacity.saturating_mul(EVENTS_PER_REPORT)),
        count(room.saturating_mul(EVENTS_PER_REPORT)),
    )?;
    let Some(max_age) = max_age else { return Ok(()) };
    if last_sweep.is_some_and(|t| t.elapsed() < AGE_SWEEP_EVERY) {
        return Ok(());
    }
    *last_sweep = Some(Instant::now());
    let cutoff = nanos(Utc::now()) - i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX);
    // Rows are in the order they were made, so the old ones are a prefix: each delete reads
    // up to the first row new enough, not the whole table (which would hold the writer up).
    conn.prepare_cached(
        "DELETE FROM reports WHERE n < COALESCE(\
         (SELECT n FROM reports WHERE created_at >= ?1 ORDER BY n LIMIT 1), \
         (SELECT MAX(n) + 1 FROM reports))",
    )?
    .execute([cutoff])?;
    conn.prepare_cached(
        "DELETE FROM events WHERE bus_seq < COALESCE(\
         (SELECT bus_seq FROM events WHERE at >= ?1 ORDER BY bus_seq LIMIT 1), \
         (SELECT MAX(bus_seq) + 1 FROM events))",
    )?
    .execute([cutoff])?;
    Ok(())
}

/// When the lowest key (`bounds`: the lowest and highest) is outside the last `keep` numbers,
/// deletes (`delete`) up to `room` more than that, oldest first.
fn trim(
    conn: &Connection,
    bounds: &str,
    delete: &str,
    keep: i64,
    room: i64,
) -> rusqlite::Result<()> {
    let (lowest, highest): (Option<i64>, Option<i64>) =
        conn.prepare_cached(bounds)?.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if let (Some(lowest), Some(highest)) = (lowest, highest)
        && lowest <= highest.saturating_sub(keep)
    {
        conn.prepare_cached(delete)?
            .execute([highest.saturating_sub(keep).saturating_add(room)])?;
    }
    Ok(())
}

fn uuid_of(bytes: &[u8]) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn read_report(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<StoredReport>> {
    conn.prepare_cached(
        "SELECT created_at, level, top_condition, degraded, api_key_id, body \
         FROM reports WHERE id = ?1",
    )?
    .query_row([id.as_bytes().as_slice()], |row| {
        let level: String = row.get(1)?;
        let level = TriageLevel::parse(&level).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown level {level:?}").into(),
            )
        })?;
        let key: Option<Vec<u8>> = row.get(4)?;
        let body: String = row.get(5)?;
        Ok(StoredReport {
            id,
            created_at: DateTime::from_timestamp_nanos(row.get(0)?),
            level,
            top_condition: row.get(2)?,
            degraded: row.get(3)?,
            api_key_id: key.as_deref().map(uuid_of).transpose()?,
            body: JsonBody::from_trusted(body.into_bytes()),
            free_text: None,
            events: Vec::new(),
        })
    })
    .optional()
}

/// The columns [`event_of`] reads, in its order.
const EVENT_COLUMNS: &str = "bus_seq, report_id, at, payload";

/// An event from its row. The payload is its `type` and fields (a row of the first layout
/// holds the whole event there, which reads the same way).
fn event_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<DiagnosisEvent> {
    let seq: i64 = row.get(0)?;
    let report: Option<Vec<u8>> = row.get(1)?;
    let kind = serde_json::from_str(row.get_ref(3)?.as_str()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(DiagnosisEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        report_id: report.as_deref().map(uuid_of).transpose()?.unwrap_or_else(Uuid::nil),
        at: DateTime::from_timestamp_nanos(row.get(2)?),
        kind,
        owner: None,
    })
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn put(&self, mut report: StoredReport) -> Result<(), StoreError> {
        // The person's words are never kept on this disk.
        report.free_text = None;
        let rows = EventRow::all(&std::mem::take(&mut report.events))?;
        self.write(|ack| Write::Report(Box::new(report), rows, ack)).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<StoredReport>, StoreError> {
        self.read(move |conn| read_report(conn, id)).await
    }

    async fn health(&self) -> StoreHealth {
        if self.failing.load(Ordering::Relaxed) {
            StoreHealth::Down { reason: "the last commit to the embedded store failed".into() }
        } else {
            StoreHealth::Ok
        }
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn append_events(&self, events: Vec<DiagnosisEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = EventRow::all(&events)?;
        self.write(|ack| Write::Events(rows, ack)).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let mut q = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE bus_seq > ?1 ORDER BY bus_seq LIMIT ?2"
            ))?;
            let rows = q.query_map(params![int(after), int(limit as u64)], |row| {
                let event = event_of(row)?;
                Ok(StoredEvent { seq: event.seq, event })
            })?;
            rows.collect()
        })
        .await
    }

    async fn events_by_bus_seq(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DiagnosisEvent>, StoreError> {
        self.read(move |conn| {
            let mut q = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE bus_seq > ?1 AND bus_seq < ?2 \
                 ORDER BY bus_seq LIMIT ?3"
            ))?;
            let rows =
                q.query_map(params![int(after), int(before), int(limit as u64)], event_of)?;
            rows.collect()
        })
        .await
    }

    async fn next_bus_seq(&self) -> u64 {
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(bus_seq), 0) + 1 FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .await
        .map_or(1, |n| u64::try_from(n).unwrap_or(1))
    }
}
