//! The memory store through the `ReportStore` trait, as the service will use it.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::json;
use store::{JsonBody, MemoryStore, ReportStore, StoreError, StoreHealth, StoredReport};
use uuid::Uuid;

fn report(n: u32) -> StoredReport {
    StoredReport {
        id: Uuid::new_v4(),
        created_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::seconds(i64::from(n)),
        level: domain::TriageLevel::Consultation,
        top_condition: Some("J06.9".to_owned()),
        degraded: false,
        api_key_id: None,
        body: JsonBody::from(
            json!({ "n": n, "level": "consultation", "conditions": [{ "icd10": "J06.9", "p": 0.7 }] }),
        ),
        free_text: None,
        events: Vec::new(),
    }
}

fn store(capacity: usize) -> MemoryStore {
    MemoryStore::new(capacity).expect("positive capacity")
}

#[tokio::test]
async fn put_then_get_returns_the_same_report() {
    let store = store(10);
    let mut r = report(1);
    r.api_key_id = Some(Uuid::new_v4());
    r.degraded = true;
    r.top_condition = None;
    store.put(r.clone()).await.unwrap();
    assert_eq!(store.get(r.id).await.unwrap(), Some(r));
    assert_eq!(store.get(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn putting_the_same_report_twice_is_a_no_op() {
    let store = store(10);
    let r = report(1);
    store.put(r.clone()).await.unwrap();
    store.put(r.clone()).await.unwrap();
    // A retry that stamps the report again is still the same write; the first time is kept.
    let mut restamped = r.clone();
    restamped.created_at = Utc::now();
    store.put(restamped).await.unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.get(r.id).await.unwrap(), Some(r));
}

#[tokio::test]
async fn a_retry_does_not_refresh_the_eviction_order() {
    let store = store(2);
    let (a, b, c) = (report(1), report(2), report(3));
    store.put(a.clone()).await.unwrap();
    store.put(b.clone()).await.unwrap();
    store.put(a.clone()).await.unwrap();
    store.put(c.clone()).await.unwrap();
    assert_eq!(store.get(a.id).await.unwrap(), None);
    assert!(store.get(b.id).await.unwrap().is_some());
    assert!(store.get(c.id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_report_put_again_after_eviction_is_kept_again_as_the_newest() {
    let store = store(2);
    let (a, b, c) = (report(1), report(2), report(3));
    for r in [&a, &b, &c] {
        store.put(r.clone()).await.unwrap();
    }
    assert_eq!(store.get(a.id).await.unwrap(), None);
    store.put(a.clone()).await.unwrap();
    assert_eq!(store.get(a.id).await.unwrap(), Some(a));
    assert_eq!(store.get(b.id).await.unwrap(), None);
    assert_eq!(store.evicted(), 2);
}

#[tokio::test]
async fn same_id_with_other_content_is_a_conflict_and_keeps_the_first() {
    let store = store(10);
    let first = report(1);
    store.put(first.clone()).await.unwrap();

    let mut other_body = first.clone();
    other_body.body = JsonBody::from(json!({ "n": 2 }));
    let mut other_level = first.clone();
    other_level.level = domain::TriageLevel::Emergency;
    let mut other_key = first.clone();
    other_key.api_key_id = Some(Uuid::new_v4());

    for conflicting in [other_body, other_level, other_key] {
        assert_eq!(store.put(conflicting).await, Err(StoreError::Conflict(first.id)));
    }
    assert_eq!(store.get(first.id).await.unwrap(), Some(first));
    assert_eq!(store.len(), 1);
    assert_eq!(store.evicted(), 0);
}

#[tokio::test]
async fn at_capacity_the_oldest_reports_are_evicted_first() {
    let store = store(3);
    let reports: Vec<_> = (0..5).map(report).collect();
    for r in &reports {
        store.put(r.clone()).await.unwrap();
        assert!(store.len() <= 3);
    }
    assert_eq!(store.len(), 3);
    assert_eq!(store.evicted(), 2);
    for r in &reports[..2] {
        assert_eq!(store.get(r.id).await.unwrap(), None);
    }
    for r in &reports[2..] {
        assert_eq!(store.get(r.id).await.unwrap().as_ref(), Some(r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_stay_bounded_and_keep_the_newest() {
    const CAPACITY: usize = 50;
    const TASKS: u32 = 16;
    const PER_TASK: u32 = 40;
    let store: Arc<MemoryStore> = Arc::new(store(CAPACITY));

    // Many writers at once, with a reader checking the bound while they run.
    let watcher = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..2_000 {
                assert!(store.len() <= CAPACITY);
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..PER_TASK {
                    let r = report(t * PER_TASK + i);
                    ids.push(r.id);
                    store.put(r).await.unwrap();
                    tokio::task::yield_now().await;
                }
                ids
            })
        })
        .collect();
    let mut old_ids = Vec::new();
    for w in writers {
        old_ids.extend(w.await.unwrap());
    }
    watcher.await.unwrap();

    // Every report was either kept or counted as evicted, exactly once.
    let total = (TASKS * PER_TASK) as usize;
    assert_eq!(store.len(), CAPACITY);
    assert_eq!(store.evicted(), (total - CAPACITY) as u64);
    let mut kept = 0;
    for id in &old_ids {
        if store.get(*id).await.unwrap().is_some() {
            kept += 1;
        }
    }
    assert_eq!(kept, CAPACITY);

    // Then exactly `CAPACITY` newer reports, again from many tasks and each written twice: all
    // must be kept, once, and every older one gone. (Retries are only checked here: in the flood
    // above another writer may evict a report between its write and its retry, and the retry then
    // rightly stores it again.)
    let newest: Vec<_> = (0..CAPACITY as u32).map(|n| report(10_000 + n)).collect();
    let writers: Vec<_> = newest
        .chunks(5)
        .map(|chunk| {
            let store = Arc::clone(&store);
            let chunk = chunk.to_vec();
            tokio::spawn(async move {
                for r in chunk {
                    store.put(r.clone()).await.unwrap();
                    tokio::task::yield_now().await;
                    store.put(r).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(store.len(), CAPACITY);
    assert_eq!(store.evicted(), total as u64);
    for r in &newest {
        assert_eq!(store.get(r.id).await.unwrap().as_ref(), Some(r));
    }
    for id in &old_ids {
        assert_eq!(store.get(*id).await.unwrap(), None);
    }
}

#[test]
fn zero_capacity_is_refused() {
    let err = MemoryStore::new(0).unwrap_err();
    assert!(matches!(err, StoreError::Other(_)));
    assert!(err.to_string().contains("capacity must be at least 1"), "{err}");
    assert_eq!(store(1).capacity(), 1);
}

#[tokio::test]
async fn usable_as_a_shared_trait_object() {
    let store: Arc<dyn ReportStore> = Arc::new(store(4));
    assert_eq!(store.kind(), "memory");
    assert_eq!(store.health().await, StoreHealth::Ok);

    let r = report(7);
    let writer = Arc::clone(&store);
    let written = r.clone();
    tokio::spawn(async move { writer.put(written).await }).await.unwrap().unwrap();
    assert_eq!(store.get(r.id).await.unwrap(), Some(r));
}

#[test]
fn reports_and_health_round_trip_through_json() {
    let r = report(3);
    let back: StoredReport = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let down = StoreHealth::Down { reason: "connection refused".to_owned() };
    assert_eq!(
        serde_json::to_value(&down).unwrap(),
        json!({ "status": "down", "reason": "connection refused" })
    );
}

fn event(seq: u64) -> bus::DiagnosisEvent {
    bus::DiagnosisEvent {
        seq,
        report_id: Uuid::new_v4(),
        at: Utc::now(),
        kind: bus::DiagnosisEventKind::TriageReceived {
            text_chars: 10,
            structured_findings: 0,
            has_vitals: false,
        },
        owner: None,
    }
}

#[tokio::test]
async fn events_are_numbered_bounded_and_resumable() {
    let store = store(3);
    store.append_events((1..=2).map(event).collect()).await.unwrap();
    store.append_events((3..=5).map(event).collect()).await.unwrap();
    // Only the last three are kept, numbered by the store in append order.
    let kept = store.events_after(0, 10).await.unwrap();
    assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(kept.iter().map(|e| e.event.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(
        store.events_after(3, 10).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(store.events_after(3, 1).await.unwrap().len(), 1);
    assert!(store.events_after(5, 10).await.unwrap().is_empty());
    assert!(store.events_after(u64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_memory_store_never_keeps_the_persons_text() {
    let store = store(3);
    let mut r = report(1);
    r.free_text = Some(store::FreeText::new("my chest hurts"));
    store.put(r.clone()).await.unwrap();
    let got = store.get(r.id).await.unwrap().unwrap();
    assert_eq!(got.free_text, None);
    // The text's Debug shows its size only.
    assert_eq!(format!("{:?}", r.free_text.unwrap()), "FreeText(14 chars)");
}

#[tokio::test]
async fn the_event_sink_keeps_the_bus_events_of_no_report() {
    let bus = bus::Bus::new(64, 0);
    let store: Arc<dyn ReportStore> = Arc::new(store(100));
    let sink = store::spawn_event_sink(&bus, store.clone(), 8);
    let report = Uuid::new_v4();
    for n in 0..20 {
        bus.publish(
            Uuid::nil(),
            bus::DiagnosisEventKind::BreakerStateChanged {
                agent: "condition_matcher".into(),
                state: domain::BreakerState::Open,
            },
        );
        // A report's events go with its report, through `put`; the sink leaves them.
        if n % 2 == 0 {
            bus.publish(
                report,
                bus::DiagnosisEventKind::AgentDegraded {
                    agent: "condition_matcher".into(),
                    status: "timeout".into(),
                },
            );
        }
    }
    bus.close();
    // The sink ends once the bus is closed and everything published has been appended.
    let counts = tokio::time::timeout(std::time::Duration::from_secs(30), sink.finished())
        .await
        .expect("the sink finishes");
    assert_eq!(counts, (20, 0));
    let kept = store.events_after(0, 100).await.unwrap();
    assert_eq!(kept.len(), 20);
    assert!(kept.iter().all(|e| e.event.report_id.is_nil()));
}

#[tokio::test]
async fn a_report_brings_its_events_and_the_ring_stays_in_bus_order() {
    let store = store(100);
    let (mut a, mut b) = (report(1), report(2));
    // Two triages that ran at once: b finished first, with later bus numbers than a's start.
    a.events = [1, 3, 6]
        .into_iter()
        .map(|seq| bus::DiagnosisEvent { report_id: a.id, ..event(seq) })
        .collect();
    b.events = [2, 4, 5]
        .into_iter()
        .map(|seq| bus::DiagnosisEvent { report_id: b.id, ..event(seq) })
        .collect();
    store.put(b.clone()).await.unwrap();
    store.put(a.clone()).await.unwrap();
    // A retry brings no second copy.
    store.put(a.clone()).await.unwrap();
    let backfill = store.events_by_bus_seq(0, u64::MAX, 100).await.unwrap();
    assert_eq!(backfill.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(backfill.iter().filter(|e| e.report_id == a.id).count(), 3);
    assert_eq!(
        store.events_by_bus_seq(2, 6, 100).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    // Read back, a report carries none.
    assert!(store.get(a.id).await.unwrap().unwrap().events.is_empty());
}
