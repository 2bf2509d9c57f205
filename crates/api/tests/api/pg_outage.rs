//! The service with PostgreSQL: through a TCP proxy of the test's own that cuts the database
//! off for seconds while triage requests flow, every request answered 200 is in the database
//! exactly once afterwards, no request is refused for the outage's sake, and a report answered
//! during the outage can be fetched during it; and an event
//! stream resumes from the database across a restart of the service.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use testkit::{Proxy, TestDb};

async fn store_status(app: &TestApp) -> String {
    let r: Value = app.get("/readyz").await.json().await.unwrap();
    r["store"]["status"].as_str().unwrap_or_default().to_string()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn every_answered_triage_survives_a_database_outage_exactly_once() {
    let db = TestDb::create().await;
    let proxy = Proxy::start(db.upstream()).await;
    let spool = tempfile::tempdir().unwrap();
    let mut s = test_settings();
    s.database.url = settings::Secret::new(db.url(Some(proxy.port)));
    s.database.spool_path = spool.path().join("spool").display().to_string();
    s.database.timeout_ms = 1000;
    let app = Arc::new(spawn_with(s, triage::ModelAgent::all(models())).await);
    assert_eq!(store_status(&app).await, "ok");

    let stop = Arc::new(AtomicBool::new(false));
    let texts = [
        "a sore throat and a runny nose for two days",
        "crushing chest pain and sweating, I am 58",
        "my 3 year old has a rash and a temperature of 39",
        "back pain after lifting boxes",
    ];
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (app, stop) = (app.clone(), stop.clone());
            actix_rt::spawn(async move {
                let (mut ok, mut refused) = (Vec::new(), Vec::new());
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let r = app.post_json(&json!({"text": texts[(n + c) % texts.len()], "age": 20 + (n % 60) as u32})).await;
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    match (status, body["id"].as_str()) {
                        (200, Some(id)) => ok.push(id.to_string()),
                        _ => refused.push(status),
                    }
                }
                (ok, refused)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    proxy.cut();
    wait_for("the store reports itself degraded", Duration::from_secs(30), async || {
        store_status(&app).await == "degraded"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A report answered during the outage can be fetched during it (from the spool), exactly
    // as it was sent.
    let r = app.post_json(&json!({"text": "a dry cough for a week", "age": 41})).await;
    assert_eq!(r.status(), 200);
    let sent: Value = r.json().await.unwrap();
    let during = sent["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/v1/triage/{during}")).await;
    assert_eq!(r.status(), 200, "a report answered during the outage is fetched during it");
    assert_eq!(r.json::<Value>().await.unwrap(), sent);
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut refused) = (vec![during], Vec::new());
    for c in clients {
        let (ok, bad) = c.await.unwrap();
        acked.extend(ok);
        refused.extend(bad);
    }
    wait_for("the spool is replayed", Duration::from_secs(60), async || {
        store_status(&app).await == "ok"
    })
    .await;

    let client = db.client().await;
    let rows = client.query("SELECT id::text FROM reports", &[]).await.unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let unique: HashSet<&String> = stored.iter().collect();
    println!(
        "outage through the API: {} answered 200, {} refused, {} reports in the database",
        acked.len(),
        refused.len(),
        stored.len()
    );
    assert!(refused.is_empty(), "requests refused during the outage: {refused:?}");
    assert!(acked.len() >= 8, "requests flowed: {}", acked.len());
    assert_eq!(unique.len(), stored.len(), "a report is stored twice");
    assert_eq!(stored.len(), acked.len(), "the database holds other reports than those answered");
    assert!(acked.iter().all(|id| unique.contains(id)), "an answered report is missing");
    // A report answered during the outage reads back as it was sent.
    let last = acked.last().unwrap();
    let r = app.get(&format!("/v1/triage/{last}")).await;
    assert_eq!(r.status(), 200);
    let events: i64 = client
        .query_one("SELECT count(*) - count(DISTINCT event_id) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 0, "an event is stored twice");
}

#[actix_rt::test]
async fn an_event_stream_resumes_from_the_database_across_a_restart() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |spool: &str| {
        let mut s = test_settings();
        s.database.url = settings::Secret::new(db.url(None));
        s.database.spool_path = dir.path().join(spool).display().to_string();
        s
    };
    let (first, stop, server) =
        spawn_stoppable(settings("a"), triage::ModelAgent::all(models())).await;
    let mut sse = SseStream::open(&first, "?after=0", None).await;
    let r = first.post_json(&json!({"text": "a runny nose and sneezing", "age": 30})).await;
    assert_eq!(r.status(), 200);
    let mut before = Vec::new();
    while before.last().is_none_or(|e: &Value| e["type"] != "triage_completed") {
        before.push(sse.next_event().await);
    }
    drop(sse);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let client = db.client().await;
    wait_for("the events are in the database", Duration::from_secs(30), async || {
        client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get::<_, i64>(0)
            as usize
            >= before.len()
    })
    .await;

    // A new process: its bus continues the numbering, so the ids the client saw still hold.
    let second = spawn_with(settings("b"), triage::ModelAgent::all(models())).await;
    let last_seen = before[1]["seq"].as_u64().unwrap();
    let mut resumed = SseStream::open(&second, "", Some(last_seen)).await;
    let mut again = Vec::new();
    while again.len() < before.len() - 2 {
        again.push(resumed.next_event().await);
    }
    assert_eq!(again, before[2..], "the events after the last id, from the database");
    let r = second.post_json(&json!({"text": "a runny nose and sneezing", "age": 30})).await;
    assert_eq!(r.status(), 200);
    let live = resumed.next_event().await;
    assert_eq!(live["type"], "triage_received");
    assert_eq!(
        live["seq"].as_u64().unwrap(),
        before.last().unwrap()["seq"].as_u64().unwrap() + 1,
        "numbering continues"
    );
}
