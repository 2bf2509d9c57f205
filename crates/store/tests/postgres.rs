//! The PostgreSQL store against a real PostgreSQL (127.0.0.1:5432, user postgres, trust auth;
//! `TEST_DATABASE_URL` overrides). Each test creates its own database, named by a UUID, and a
//! guard drops it when the test ends, passing or failing. If PostgreSQL cannot be reached the
//! tests fail and say how to start one; they never skip.

use domain::TriageLevel;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bus::{DiagnosisEvent, DiagnosisEventKind};
use chrono::{DurationRound, Utc};
use serde_json::json;
use store::{
    FreeText, JsonBody, PgConfig, PgStore, ReportStore, StoreError, StoreHealth, StoredReport,
};
use testkit::{Proxy, TestDb};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

fn now() -> chrono::DateTime<Utc> {
    // PostgreSQL keeps microseconds.
    Utc::now().duration_trunc(chrono::Duration::microseconds(1)).unwrap()
}

fn report(n: u64) -> StoredReport {
    StoredReport {
        id: Uuid::new_v4(),
        created_at: now(),
        level: if n.is_multiple_of(3) { TriageLevel::Emergency } else { TriageLevel::Consultation },
        top_condition: if n.is_multiple_of(2) { Some("J06.9".to_owned()) } else { None },
        degraded: n.is_multiple_of(5),
        api_key_id: if n.is_multiple_of(7) { Some(Uuid::new_v4()) } else { None },
        body: JsonBody::from(
            json!({ "n": n, "triage": { "level": "consultation" }, "conditions": [{ "icd10": "J06.9", "probability": 0.412 }] }),
        ),
        free_text: Some(FreeText::new("my head hurts since yesterday")),
        events: Vec::new(),
    }
}

fn event(seq: u64, report_id: Uuid) -> DiagnosisEvent {
    DiagnosisEvent {
        seq,
        report_id,
        at: Utc::now(),
        kind: DiagnosisEventKind::TriageCompleted {
            level: TriageLevel::Consultation,
            degraded: false,
            total_ms: 1.25,
        },
        owner: None,
    }
}

fn config(url: String, spool: &Path) -> PgConfig {
    let mut c = PgConfig::new(url, spool);
    c.op_timeout = Duration::from_secs(2);
    c.retry_interval = Duration::from_millis(100);
    c
}

/// [`config`] for the replica `name`.
fn replica(url: String, spool: &Path, name: &str) -> PgConfig {
    let mut c = config(url, spool);
    c.replica = name.to_owned();
    c
}

/// `r` as `get` gives it back: without its events, which are read as events, or its text.
fn as_read(mut r: StoredReport) -> StoredReport {
    r.events = Vec::new();
    without_text(r)
}

/// A local port nothing listens on: a database there is unreachable.
async fn dead_port() -> u16 {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    dead.local_addr().unwrap().port()
}

/// Polls `check` every 20 ms until it holds, failing after a generous `limit`.
async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stored_ids(db: &TestDb) -> (Vec<Uuid>, HashSet<Uuid>) {
    let rows = db.client().await.query("SELECT id FROM reports", &[]).await.unwrap();
    let all: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let set = all.iter().copied().collect();
    (all, set)
}

/// `r` with the two events a triage would publish for it, numbered from `seq`.
fn with_events(mut r: StoredReport, seq: u64) -> StoredReport {
    r.events = vec![event(seq, r.id), event(seq + 1, r.id)];
    r
}

/// Events stored for each report id.
async fn events_per_report(db: &TestDb) -> std::collections::HashMap<Uuid, i64> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT report_id, count(*) FROM events WHERE report_id IS NOT NULL GROUP BY report_id",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn without_text(mut r: StoredReport) -> StoredReport {
    r.free_text = None;
    r
}

/// Two replicas starting at the same moment on a fresh database: the advisory lock lets one
/// migrate while the other waits, so both start, and each migration is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_from_two_stores_at_once_and_again() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = tokio::join!(
        PgStore::open(replica(db.url(None), &dir.path().join("a"), "a")),
        PgStore::open(replica(db.url(None), &dir.path().join("b"), "b"))
    );
    let (a, b) = (a.expect("replica a migrates"), b.expect("replica b migrates"));
    assert_eq!(a.health().await, StoreHealth::Ok);
    assert_eq!(b.health().await, StoreHealth::Ok);
    a.shutdown().await;
    b.shutdown().await;
    let c = PgStore::open(config(db.url(None), &dir.path().join("c"))).await.unwrap();
    c.shutdown().await;
    assert_eq!(db.count("SELECT count(*) FROM refinery_schema_history").await, 5);
    for table in ["reports", "events", "api_keys", "audit_log"] {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
    }
    // V5: bus numbers are looked up per replica, never across all of them.
    let indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'events' AND indexname = ";
    assert_eq!(db.count(&format!("{indexes}'events_replica_bus_seq'")).await, 1);
    assert_eq!(db.count(&format!("{indexes}'events_bus_seq'")).await, 0);
}

/// Two replicas on one database: each numbers its events from 1 and resumes only its own,
/// while reports, keyed by UUID, are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_database_number_and_resume_their_own_events() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool_a, spool_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = PgStore::open(replica(db.url(None), &spool_a, "a")).await.unwrap();
    let b = PgStore::open(replica(db.url(None), &spool_b, "b")).await.unwrap();
    assert_eq!(a.next_bus_seq().await, 1);
    assert_eq!(b.next_bus_seq().await, 1);

    // Both buses give out 1, 2, 3...: a up to 3, b up to 6.
    let from_a = with_events(report(1), 1);
    a.put(from_a.clone()).await.unwrap();
    let breaker_a = vec![event(3, Uuid::nil())];
    a.append_events(breaker_a.clone()).await.unwrap();
    let from_b = with_events(report(2), 1);
    b.put(from_b.clone()).await.unwrap();
    let breaker_b: Vec<DiagnosisEvent> = (3..=6).map(|s| event(s, Uuid::nil())).collect();
    b.append_events(breaker_b.clone()).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM events WHERE replica = 'a'").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM events WHERE replica = 'b'").await, 6);
    assert_eq!(db.count("SELECT count(*) FROM events WHERE bus_seq = 1").await, 2);

    // A stream resuming on a replica gets that replica's events only.
    let own_a = [from_a.events.clone(), breaker_a.clone()].concat();
    let own_b = [from_b.events.clone(), breaker_b.clone()].concat();
    assert_eq!(a.events_by_bus_seq(0, u64::MAX, 100).await.unwrap(), own_a);
    assert_eq!(b.events_by_bus_seq(0, u64::MAX, 100).await.unwrap(), own_b);
    assert_eq!(a.events_by_bus_seq(1, 4, 100).await.unwrap(), own_a[1..]);
    assert_eq!(b.events_by_bus_seq(1, 4, 100).await.unwrap(), own_b[1..3]);
    assert!(a.events_by_bus_seq(3, u64::MAX, 100).await.unwrap().is_empty());
    // The store's own sequence stays global.
    assert_eq!(a.events_after(0, 100).await.unwrap().len(), 9);

    // A report is the database's, whichever replica took it.
    assert_eq!(b.get(from_a.id).await.unwrap(), Some(as_read(from_a.clone())));
    assert_eq!(a.get(from_b.id).await.unwrap(), Some(as_read(from_b.clone())));

    // Restarted, a continues after its own 3, not after b's 6.
    a.shutdown().await;
    let a = PgStore::open(replica(db.url(None), &spool_a, "a")).await.unwrap();
    assert_eq!(a.next_bus_seq().await, 4);
    assert_eq!(b.next_bus_seq().await, 7);
    let next = vec![event(4, Uuid::nil())];
    a.append_events(next.clone()).await.unwrap();
    assert_eq!(a.events_by_bus_seq(3, u64::MAX, 100).await.unwrap(), next);

    // Events kept before replicas had names ('') came from the single writer of that time:
    // a replica numbers above them, so an id given then is never given again, but never
    // resumes with them.
    let legacy = event(1000, Uuid::nil());
    db.client()
        .await
        .execute(
            "INSERT INTO events (event_id, bus_seq, kind, payload, at) VALUES ($1, 1000, $2, $3, now())",
            &[&Uuid::new_v4(), &legacy.type_name(), &serde_json::to_value(&legacy).unwrap()],
        )
        .await
        .unwrap();
    a.shutdown().await;
    let a = PgStore::open(replica(db.url(None), &spool_a, "a")).await.unwrap();
    assert_eq!(a.next_bus_seq().await, 1001);
    assert_eq!(a.events_by_bus_seq(0, u64::MAX, 100).await.unwrap(), [own_a, next].concat());
    a.shutdown().await;
    b.shutdown().await;
}

/// The spool keeps the name of the replica that acknowledged a write: replayed by a process
/// restarted under another name, its events stay in the numbering that gave their numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_events_are_replayed_under_the_replica_that_numbered_them() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let down = PgStore::open(replica(db.url(Some(dead_port().await)), &spool, "a")).await.unwrap();
    let r = with_events(report(1), 1);
    down.put(r.clone()).await.unwrap();
    down.append_events(vec![event(3, Uuid::nil())]).await.unwrap();
    assert_eq!(down.backlog(), 2);
    down.shutdown().await;

    let renamed = PgStore::open(replica(db.url(None), &spool, "c")).await.unwrap();
    eventually("the spool is replayed", Duration::from_secs(30), async || renamed.backlog() == 0)
        .await;
    assert_eq!(db.count("SELECT count(*) FROM events WHERE replica = 'a'").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM events WHERE replica <> 'a'").await, 0);
    assert!(renamed.events_by_bus_seq(0, u64::MAX, 100).await.unwrap().is_empty());
    renamed.shutdown().await;
    let a = PgStore::open(replica(db.url(None), &dir.path().join("a"), "a")).await.unwrap();
    assert_eq!(a.next_bus_seq().await, 4);
    a.shutdown().await;
}

#[tokio::test]
async fn put_get_round_trip_and_free_text_only_when_enabled() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::open(config(db.url(None), &dir.path().join("spool"))).await.unwrap();
    let reports: Vec<StoredReport> = (0..8).map(report).collect();
    for r in &reports {
        store.put(r.clone()).await.unwrap();
    }
    for r in &reports {
        assert_eq!(store.get(r.id).await.unwrap(), Some(without_text(r.clone())));
    }
    assert_eq!(store.get(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(db.count("SELECT count(*) FROM reports WHERE free_text IS NOT NULL").await, 0);
    assert_eq!(store.kind(), "postgres");
    store.shutdown().await;

    let mut with_text = config(db.url(None), &dir.path().join("spool"));
    with_text.store_free_text = true;
    let store = PgStore::open(with_text).await.unwrap();
    let r = report(1);
    store.put(r.clone()).await.unwrap();
    assert_eq!(store.get(r.id).await.unwrap(), Some(r.clone()));
    let text: String = db
        .client()
        .await
        .query_one("SELECT free_text FROM reports WHERE id = $1", &[&r.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "my head hurts since yesterday");
    store.shutdown().await;
}

#[tokio::test]
async fn events_keep_their_order_and_resume_after_a_sequence() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::open(config(db.url(None), &dir.path().join("spool"))).await.unwrap();
    let id = Uuid::new_v4();
    let first: Vec<DiagnosisEvent> = (1..=5).map(|s| event(s, id)).collect();
    store.append_events(first.clone()).await.unwrap();
    // Bus numbers restart with a process; the store's sequence does not.
    let second: Vec<DiagnosisEvent> = (1..=3).map(|s| event(s, Uuid::nil())).collect();
    store.append_events(second.clone()).await.unwrap();

    let all = store.events_after(0, 100).await.unwrap();
    let got: Vec<DiagnosisEvent> = all.iter().map(|e| e.event.clone()).collect();
    assert_eq!(got, [first.clone(), second.clone()].concat());
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let rest = store.events_after(all[4].seq, 100).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), second);
    assert_eq!(store.events_after(all[0].seq, 2).await.unwrap().len(), 2);
    assert_eq!(db.count("SELECT count(*) FROM events WHERE report_id IS NULL").await, 3);
    // Append-only, enforced by the database.
    let e = db.client().await.execute("DELETE FROM events", &[]).await.unwrap_err();
    let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
    assert!(message.contains("append-only"), "{e:?}");
    store.shutdown().await;
}

#[tokio::test]
async fn put_is_idempotent_and_other_content_under_the_same_id_is_a_conflict() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::open(config(db.url(None), &dir.path().join("spool"))).await.unwrap();
    let r = report(2);
    store.put(r.clone()).await.unwrap();
    store.put(r.clone()).await.unwrap();
    let mut restamped = r.clone();
    restamped.created_at = now() + chrono::Duration::seconds(5);
    store.put(restamped).await.unwrap();
    let mut other = r.clone();
    other.body = JsonBody::from(json!({"something": "else"}));
    assert_eq!(store.put(other).await, Err(StoreError::Conflict(r.id)));
    assert_eq!(db.count("SELECT count(*) FROM reports").await, 1);
    assert_eq!(store.get(r.id).await.unwrap(), Some(without_text(r)));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_grouped_into_few_transactions() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(db.url(None), &dir.path().join("spool"));
    c.batch_size = 64;
    c.batch_max_delay = Duration::from_millis(50);
    let store = Arc::new(PgStore::open(c).await.unwrap());
    let puts: Vec<_> = (0..256)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.put(report(n)).await })
        })
        .collect();
    for p in puts {
        p.await.unwrap().unwrap();
    }
    let batches = store.stats().batches;
    // 256 puts at once, 64 per group: 4 transactions when nothing else runs; far fewer than
    // one per put however loaded the machine is.
    assert!((4..=64).contains(&batches), "{batches} transactions for 256 puts");
    assert_eq!(db.count("SELECT count(*) FROM reports").await, 256);
    store.shutdown().await;
}

#[tokio::test]
async fn writes_spooled_while_down_reach_the_database_despite_a_torn_tail() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Nothing listens on this port: the store starts degraded and spools.
    let dead_port = dead_port().await;
    let down = PgStore::open(config(db.url(Some(dead_port)), &spool)).await.unwrap();
    let reports: Vec<StoredReport> = (0..10).map(report).collect();
    for r in &reports {
        down.put(r.clone()).await.unwrap();
    }
    down.append_events(vec![event(1, reports[0].id)]).await.unwrap();
    assert_eq!(down.backlog(), 11);
    assert!(matches!(down.health().await, StoreHealth::Degraded { .. }));
    // An acknowledged report can be read back while the database is down, from the spool
    // (without the free text, which this store does not keep); one never stored cannot be
    // known not to exist.
    for r in &reports {
        assert_eq!(down.get(r.id).await.unwrap(), Some(without_text(r.clone())));
    }
    assert!(matches!(down.get(Uuid::new_v4()).await, Err(StoreError::Unavailable(_))));
    down.shutdown().await;
    // A write torn by a crash after the last acknowledged one.
    let mut bytes = std::fs::read(&spool).unwrap();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&spool, bytes).unwrap();

    // A process restarted while the database is still down serves them from the spool it
    // finds.
    let restarted = PgStore::open(config(db.url(Some(dead_port)), &spool)).await.unwrap();
    for r in &reports {
        assert_eq!(restarted.get(r.id).await.unwrap(), Some(without_text(r.clone())));
    }
    restarted.shutdown().await;

    let up = PgStore::open(config(db.url(None), &spool)).await.unwrap();
    eventually("the backlog is replayed", Duration::from_secs(30), async || up.backlog() == 0)
        .await;
    assert_eq!(up.health().await, StoreHealth::Ok);
    let (all, set) = stored_ids(&db).await;
    assert_eq!(all.len(), 10);
    assert!(reports.iter().all(|r| set.contains(&r.id)));
    assert_eq!(db.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0, "the spool is emptied once committed");
    for r in &reports {
        assert_eq!(up.get(r.id).await.unwrap(), Some(without_text(r.clone())));
    }
    // New writes go straight to the database again.
    up.put(report(99)).await.unwrap();
    assert_eq!(up.backlog(), 0);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_database_outage_exactly_once() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(db.upstream()).await;
    let store = Arc::new(
        PgStore::open(config(db.url(Some(proxy.port)), &dir.path().join("spool"))).await.unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<JoinHandle<(Vec<Uuid>, u64, usize)>> = (0..4)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut acked, mut events, mut failed) = (Vec::new(), 0u64, 0usize);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let r = report(n * 4 + w);
                    let id = r.id;
                    match store.put(r).await {
                        Ok(()) => acked.push(id),
                        Err(_) => failed += 1,
                    }
                    if n.is_multiple_of(4) {
                        match store.append_events(vec![event(n, id), event(n + 1, id)]).await {
                            Ok(()) => events += 2,
                            Err(_) => failed += 1,
                        }
                    }
                }
                (acked, events, failed)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    eventually("the store reports itself degraded", Duration::from_secs(10), async || {
        matches!(store.health().await, StoreHealth::Degraded { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spooled_during_outage = store.backlog();
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut events, mut failed) = (Vec::new(), 0, 0);
    for w in writers {
        let (a, e, f) = w.await.unwrap();
        acked.extend(a);
        events += e;
        failed += f;
    }
    eventually("the spool is replayed", Duration::from_secs(30), async || store.backlog() == 0)
        .await;
    assert_eq!(store.health().await, StoreHealth::Ok);

    let stats = store.stats();
    println!(
        "outage test: {} reports and {events} events acknowledged, {failed} refused; {} writes spooled ({spooled_during_outage} \
         backlog at restore), {} replayed, {} direct transactions",
        acked.len(),
        stats.spooled,
        stats.replayed,
        stats.batches
    );
    assert_eq!(failed, 0, "no write may be refused while the spool works");
    assert!(spooled_during_outage > 0, "writes went on during the outage");
    assert_eq!(stats.replayed, stats.spooled);
    let (all, set) = stored_ids(&db).await;
    assert_eq!(all.len(), set.len(), "a report is stored twice");
    assert_eq!(all.len(), acked.len(), "the database holds other reports than those acknowledged");
    let missing = acked.iter().filter(|id| !set.contains(id)).count();
    assert_eq!(missing, 0, "{missing} acknowledged reports are not in the database");
    assert_eq!(db.count("SELECT count(*) FROM events").await, i64::try_from(events).unwrap());
    assert_eq!(
        db.count("SELECT count(DISTINCT event_id) FROM events").await,
        i64::try_from(events).unwrap()
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_replay_loses_nothing_and_writes_nothing_twice() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let proxy = Proxy::start(db.upstream()).await;
    let mut first = config(db.url(Some(proxy.port)), &spool);
    first.replay_batch = 10;
    // The first process "dies" once 40 records are committed.
    first.replay_stop_after = Some(40);
    let a = PgStore::open(first).await.unwrap();
    proxy.cut();
    let reports: Vec<StoredReport> = (0..100).map(report).collect();
    for r in &reports {
        a.put(r.clone()).await.unwrap();
    }
    assert_eq!(a.backlog(), 100);
    proxy.restore();
    eventually("the first process replays 40 records", Duration::from_secs(30), async || {
        a.stats().replayed == 40
    })
    .await;
    a.shutdown().await;
    assert_eq!(db.count("SELECT count(*) FROM reports").await, 40, "the replay stopped midway");
    assert_eq!(a.backlog(), 60);

    // The restarted process replays the whole spool again; the first 40 are recognised.
    let b = PgStore::open(config(db.url(None), &spool)).await.unwrap();
    eventually("the restarted process replays the spool", Duration::from_secs(30), async || {
        b.backlog() == 0
    })
    .await;
    assert_eq!(b.stats().replayed, 100);
    let (all, set) = stored_ids(&db).await;
    assert_eq!(all.len(), 100);
    assert!(reports.iter().all(|r| set.contains(&r.id)));
    for r in &reports {
        assert_eq!(b.get(r.id).await.unwrap(), Some(without_text(r.clone())));
    }
    b.shutdown().await;
}

#[tokio::test]
async fn api_keys_keep_only_hashes_revoke_and_audit() {
    use store::{AuditAction, KeyStore, PgKeys, Revoked, Scope};
    let db = TestDb::create().await;
    // `connect` applies the migrations itself (the `triagent keys` commands run before any
    // service has).
    let keys = PgKeys::connect(&db.url(None), Duration::from_secs(10)).await.expect("keys connect");
    let created = keys
        .create("kiosk", &[Scope::ReportsRead, Scope::TriageWrite, Scope::TriageWrite])
        .await
        .unwrap();
    assert_eq!(created.key.scopes, vec![Scope::TriageWrite, Scope::ReportsRead]);
    let found = keys.find(&created.secret.hash()).await.unwrap().expect("found by hash");
    assert_eq!(found.id, created.key.id);
    assert!(
        found.is_active() && found.allows(Scope::TriageWrite) && !found.allows(Scope::EventsRead)
    );
    assert!(keys.find(&store::KeySecret::generate().hash()).await.unwrap().is_none());
    // Only the hash is in the table; the key itself is nowhere in the database.
    let client = db.client().await;
    let row = client
        .query_one("SELECT hash, array_to_string(scopes, ',') FROM api_keys", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), created.secret.hash().as_str());
    assert_eq!(row.get::<_, String>(1), "triage:write,reports:read");
    let dump: String = client.query_one("SELECT (SELECT coalesce(string_agg(t::text, ' '), '') FROM api_keys t) || (SELECT coalesce(string_agg(a::text, ' '), '') FROM audit_log a)", &[]).await.unwrap().get(0);
    assert!(!dump.contains(&created.secret.expose()[4..]), "the key is never stored");

    keys.audit(vec![store::AuditEntry {
        at: now(),
        api_key_id: Some(created.key.id),
        action: AuditAction::KeyUsed,
        detail: serde_json::json!({"requests": 3}),
    }])
    .await
    .unwrap();
    assert_eq!(keys.revoke(created.key.id).await.unwrap(), Revoked::Revoked);
    assert_eq!(keys.revoke(created.key.id).await.unwrap(), Revoked::AlreadyRevoked);
    assert_eq!(keys.revoke(Uuid::new_v4()).await.unwrap(), Revoked::NotFound);
    assert!(!keys.find(&created.secret.hash()).await.unwrap().unwrap().is_active());
    let listed = keys.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
    let audit = keys.recent_audit(10).await.unwrap();
    assert_eq!(
        audit.iter().map(|a| a.action).collect::<Vec<_>>(),
        vec![AuditAction::KeyCreated, AuditAction::KeyUsed, AuditAction::KeyRevoked]
    );
    assert!(audit.iter().all(|a| a.api_key_id == Some(created.key.id)));
    assert_eq!(audit[1].detail["requests"], 3);
    // The key store also works on a database the report store migrated.
    let dir = tempfile::tempdir().unwrap();
    let reports = PgStore::open(config(db.url(None), &dir.path().join("s"))).await.unwrap();
    let second = PgKeys::new(&db.url(None), Duration::from_secs(10)).unwrap();
    assert_eq!(second.list().await.unwrap().len(), 1);
    reports.shutdown().await;
}

/// A spool at its limit refuses new writes (never acknowledges what it cannot keep), keeps
/// what it acknowledged, and takes writes again once the database has the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_writes_and_keeps_what_it_acknowledged() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let dead_port = dead_port().await;
    let mut c = config(db.url(Some(dead_port)), &spool);
    // Room for a few reports, not ten.
    let one = serde_json::to_vec(&with_events(report(0), 1)).unwrap().len() as u64 + 200;
    c.spool_max_bytes = 3 * one;
    let down = PgStore::open(c.clone()).await.unwrap();
    let (mut kept, mut refused) = (Vec::new(), 0);
    for n in 0..10 {
        let r = with_events(report(n), 2 * n + 1);
        match down.put(r.clone()).await {
            Ok(()) => kept.push(r),
            Err(StoreError::Unavailable(_)) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(!kept.is_empty() && refused > 0, "kept {}, refused {refused}", kept.len());
    assert!(std::fs::metadata(&spool).unwrap().len() <= c.spool_max_bytes);
    // What the metrics show: the spool's bytes, under its limit.
    let (bytes, limit) = down.spool_bytes();
    assert_eq!((bytes, limit), (std::fs::metadata(&spool).unwrap().len(), c.spool_max_bytes));
    // And how long it has held them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(down.spool_age() >= Duration::from_millis(50), "{:?}", down.spool_age());
    down.shutdown().await;
    let mut c = config(db.url(None), &spool);
    c.spool_max_bytes = 3 * one;
    let up = PgStore::open(c).await.unwrap();
    eventually("the backlog is replayed", Duration::from_secs(30), async || up.backlog() == 0)
        .await;
    let (all, set) = stored_ids(&db).await;
    assert_eq!(all.len(), kept.len());
    assert!(kept.iter().all(|r| set.contains(&r.id)));
    // The kept reports have all their events; the refused ones left none behind.
    let events = events_per_report(&db).await;
    assert_eq!(
        events.len(),
        kept.len(),
        "events of {} reports for {} kept",
        events.len(),
        kept.len()
    );
    assert!(kept.iter().all(|r| events.get(&r.id) == Some(&2)), "{events:?}");
    up.put(report(99)).await.unwrap();
    assert_eq!(up.spool_bytes().0, 0, "an emptied spool shows 0 bytes");
    assert_eq!(up.spool_age(), Duration::ZERO, "and no age");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_and_its_events_are_stored_together_or_not_at_all() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(db.url(None), &dir.path().join("spool"));
    c.store_free_text = true;
    let store = Arc::new(PgStore::open(c).await.unwrap());
    // PostgreSQL refuses a NUL in text (the API rejects it before; this is the store's own
    // guarantee whatever the database refuses): neither the report nor its events are kept.
    let mut poisoned = with_events(report(1), 1);
    poisoned.free_text = Some(FreeText::new("head\0ache"));
    assert!(matches!(store.put(poisoned.clone()).await, Err(StoreError::Other(_))));
    // One refused among good ones written at once: the group falls back to one by one and
    // the good ones keep their events.
    let good: Vec<StoredReport> = (2..8).map(|n| with_events(report(n), 10 * n)).collect();
    let mut puts: Vec<JoinHandle<Result<(), StoreError>>> = good
        .iter()
        .cloned()
        .map(|r| {
            let s = store.clone();
            tokio::spawn(async move { s.put(r).await })
        })
        .collect();
    let mut bad = with_events(report(9), 900);
    bad.free_text = Some(FreeText::new("\0"));
    let s = store.clone();
    puts.push(tokio::spawn(async move { s.put(bad).await }));
    let results: Vec<_> =
        futures_util::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
    assert!(results[..good.len()].iter().all(Result::is_ok), "{results:?}");
    assert!(results[good.len()].is_err());
    // A retry of a stored report brings no second copy of its events.
    store.put(good[0].clone()).await.unwrap();
    let events = events_per_report(&db).await;
    assert_eq!(events.len(), good.len(), "{events:?}");
    assert!(good.iter().all(|r| events.get(&r.id) == Some(&2)), "{events:?}");
    assert_eq!(db.count("SELECT count(*) FROM reports").await, good.len() as i64);
    // Read back, a report carries none: they are read as events.
    assert!(store.get(good[0].id).await.unwrap().unwrap().events.is_empty());
    store.shutdown().await;
}
