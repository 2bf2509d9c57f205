//! The durable embedded store through the `ReportStore` trait, on a real file.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use store::{
    FreeText, JsonBody, ReportStore, SqliteConfig, SqliteStore, StoreError, StoreHealth,
    StoredReport,
};
use uuid::Uuid;

fn report(n: u32) -> StoredReport {
    StoredReport {
        id: Uuid::new_v4(),
        // Nanoseconds on purpose: a report reads back exactly as it was put.
        created_at: Utc::now() + chrono::Duration::nanoseconds(i64::from(n) * 1_001),
        level: domain::TriageLevel::Consultation,
        top_condition: Some("J06.9".to_owned()),
        degraded: false,
        api_key_id: None,
        body: JsonBody::from(json!({ "n": n, "level": "consultation" })),
        free_text: None,
        events: Vec::new(),
    }
}

fn event(seq: u64, report_id: Uuid) -> bus::DiagnosisEvent {
    bus::DiagnosisEvent {
        seq,
        report_id,
        at: Utc::now(),
        kind: bus::DiagnosisEventKind::TriageCompleted {
            level: domain::TriageLevel::Emergency,
            degraded: false,
            total_ms: 1.5,
        },
        owner: None,
    }
}

fn open(dir: &tempfile::TempDir, capacity: usize) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(dir.path().join("data/triagent.db"), capacity))
        .expect("the store opens")
}

#[tokio::test]
async fn a_report_reads_back_exactly_and_without_the_persons_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 10);
    let mut r = report(1);
    r.api_key_id = Some(Uuid::new_v4());
    r.degraded = true;
    r.top_condition = None;
    r.free_text = Some(FreeText::new("my chest hurts"));
    store.put(r.clone()).await.unwrap();
    r.free_text = None;
    assert_eq!(store.get(r.id).await.unwrap(), Some(r));
    assert_eq!(store.get(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.kind(), "sqlite");
    assert_eq!(store.health().await, StoreHealth::Ok);
    let bytes = std::fs::read(dir.path().join("data/triagent.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("data/triagent.db-wal")).unwrap_or_default();
    let needle = b"my chest hurts";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    assert!(!wal.windows(needle.len()).any(|w| w == needle));
}

#[tokio::test]
async fn a_retry_is_a_no_op_and_other_content_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 10);
    let r = report(1);
    store.put(r.clone()).await.unwrap();
    let mut restamped = r.clone();
    restamped.created_at = Utc::now() + chrono::Duration::hours(1);
    store.put(restamped).await.unwrap();
    let mut other = r.clone();
    other.level = domain::TriageLevel::Emergency;
    assert_eq!(store.put(other).await, Err(StoreError::Conflict(r.id)));
    assert_eq!(store.get(r.id).await.unwrap(), Some(r));
}

#[tokio::test]
async fn everything_acknowledged_is_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    {
        let store = open(&dir, 100);
        for n in 0..20 {
            let mut r = report(n);
            r.events = vec![event(u64::from(n) + 1, r.id)];
            store.put(r.clone()).await.unwrap();
            r.events.clear();
            reports.push(r);
        }
        store.append_events(vec![event(21, Uuid::nil())]).await.unwrap();
    }
    let store = open(&dir, 100);
    for r in &reports {
        assert_eq!(store.get(r.id).await.unwrap().as_ref(), Some(r));
    }
    // The bus numbers on from the last event kept, so resumed ids stay unique.
    assert_eq!(store.next_bus_seq().await, 22);
    let kept = store.events_after(0, 100).await.unwrap();
    assert_eq!(kept.len(), 21);
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(kept[0].event.report_id, reports[0].id);
    let missed = store.events_by_bus_seq(5, 9, 100).await.unwrap();
    assert_eq!(missed.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7, 8]);
}

#[tokio::test]
async fn past_capacity_the_oldest_reports_and_events_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 5);
    let mut ids = Vec::new();
    for n in 0..12 {
        let mut r = report(n);
        r.events = (0..10).map(|k| event(u64::from(n) * 10 + k + 1, r.id)).collect();
        ids.push(r.id);
        store.put(r).await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(store.get(*id).await.unwrap().is_some(), i >= 7, "report {i}");
    }
    let kept = store.events_after(0, 1000).await.unwrap();
    assert_eq!(kept.len(), 5 * 8, "eight events a report of capacity");
    assert_eq!(kept.last().unwrap().event.seq, 120);
}

/// Past a capacity of 1,024 the store makes room for two reports (1/512) at a time, so most
/// commits delete nothing, and it never holds more than its capacity.
#[tokio::test]
async fn retention_makes_room_for_a_few_at_a_time_never_above_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 1024);
    let mut ids = Vec::new();
    let kept = |ids: Vec<Uuid>| {
        let store = &store;
        async move {
            let mut kept = Vec::new();
            for (i, id) in ids.into_iter().enumerate() {
                if store.get(id).await.unwrap().is_some() {
                    kept.push(i);
                }
            }
            kept
        }
    };
    for n in 0..1024 {
        let r = report(n);
        ids.push(r.id);
        store.put(r).await.unwrap();
    }
    assert_eq!(kept(ids.clone()).await.len(), 1024, "at capacity, nothing is forgotten");
    // The 1,025th report makes room for two more: the three oldest go.
    for (n, expect) in [(1024, 1022), (1025, 1023), (1026, 1024), (1027, 1022)] {
        let r = report(n);
        ids.push(r.id);
        store.put(r).await.unwrap();
        let kept = kept(ids.clone()).await;
        assert_eq!(kept.len(), expect, "after report {n}");
        assert_eq!(kept, (ids.len() - expect..ids.len()).collect::<Vec<_>>(), "the newest kept");
    }
}

#[tokio::test]
async fn reports_older_than_the_maximum_age_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::new(dir.path().join("t.db"), 100);
    config.max_age = Some(Duration::from_secs(3600));
    let store = SqliteStore::open(config).unwrap();
    let mut old = report(1);
    old.created_at = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let fresh = report(2);
    store.put(old.clone()).await.unwrap();
    store.put(fresh.clone()).await.unwrap();
    assert_eq!(store.get(old.id).await.unwrap(), None);
    assert!(store.get(fresh.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ReportStore> = Arc::new(open(&dir, 10_000));
    let tasks: Vec<_> = (0..400)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let r = report(n);
                store.put(r.clone()).await.map(|()| r.id)
            })
        })
        .collect();
    for t in tasks {
        let id = t.await.unwrap().unwrap();
        assert!(store.get(id).await.unwrap().is_some());
    }
}

#[test]
fn zero_capacity_and_an_unwritable_path_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(SqliteStore::open(SqliteConfig::new(dir.path().join("t.db"), 0)).is_err());
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(SqliteStore::open(SqliteConfig::new(file.join("t.db"), 10)).is_err());
}

#[test]
fn one_process_at_a_time_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir, 10);
    let again = SqliteStore::open(SqliteConfig::new(dir.path().join("data/triagent.db"), 10));
    let Err(StoreError::Other(message)) = again else { panic!("a second store opened the file") };
    assert!(message.contains("in use by another process"), "{message}");
    drop(first);
    drop(open(&dir, 10));
}

#[tokio::test]
async fn a_file_of_the_first_layout_keeps_its_reports_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/triagent.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let r = report(1);
    let e = event(7, r.id);
    {
        // The layout of the first release: events numbered by a row id, the bus number indexed.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE reports (n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE,
                 created_at INTEGER NOT NULL, level TEXT NOT NULL, top_condition TEXT,
                 degraded INTEGER NOT NULL, api_key_id BLOB, body TEXT NOT NULL);
             CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 bus_seq INTEGER NOT NULL, report_id BLOB, kind TEXT NOT NULL, level TEXT,
                 at INTEGER NOT NULL, payload TEXT NOT NULL);
             CREATE INDEX events_bus_seq ON events (bus_seq);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO reports (id, created_at, level, top_condition, degraded, body)
             VALUES (?1, ?2, 'consultation', 'J06.9', 0, ?3)",
            rusqlite::params![
                r.id.as_bytes().as_slice(),
                r.created_at.timestamp_nanos_opt().unwrap(),
                std::str::from_utf8(r.body.as_bytes()).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (bus_seq, report_id, kind, level, at, payload)
             VALUES (7, ?1, 'triage_completed', 'emergency', 0, ?2)",
            rusqlite::params![r.id.as_bytes().as_slice(), serde_json::to_string(&e).unwrap()],
        )
        .unwrap();
    }
    let store = open(&dir, 10);
    assert_eq!(store.get(r.id).await.unwrap(), Some(r.clone()));
    let kept = store.events_by_bus_seq(0, 100, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].seq, kept[0].report_id), (7, r.id));
    assert_eq!(store.next_bus_seq().await, 8, "the numbering goes on");
    // And it takes new ones in the new layout.
    store.append_events(vec![event(8, Uuid::nil())]).await.unwrap();
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 2);
}
