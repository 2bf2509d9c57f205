//! Two replicas in one process, on one PostgreSQL database and one JetStream stream (NATS at
//! 127.0.0.1:4222, or TEST_NATS_URL): a subscriber on either sees every replica's events once,
//! in order, numbered the same on both; a report written through one reads back through the
//! other; and a subscriber resumes on the other replica from the last id it saw.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn nats_url() -> String {
    format!("nats://{}", testkit::nats_host_port())
}

/// Settings of one replica: the database, the stream `stream` and a folder of its own.
pub fn replica_settings(
    name: &str,
    db: &testkit::TestDb,
    stream: &str,
    dir: &tempfile::TempDir,
) -> settings::Settings {
    testkit::require_nats();
    let mut s = test_settings();
    s.server.replica = name.to_owned();
    s.database.url = settings::Secret::new(db.postgres_url(None));
    s.database.spool_path = dir.path().join(format!("{name}.spool")).display().to_string();
    s.events.nats_url = settings::Secret::new(nats_url());
    s.events.stream = stream.to_owned();
    s.events.subject_prefix = format!("{}.events", stream.to_ascii_lowercase());
    s.events.max_age_hours = 1;
    s.events.outbox_path = dir.path().join(format!("{name}.outbox")).display().to_string();
    s
}

async fn triage(app: &TestApp, n: usize) -> String {
    let text =
        ["a dry cough and a sore throat for three days", "crushing chest pain for an hour"][n % 2];
    let r = app.post_json(&json!({"text": text, "age": 40 + n})).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Reads events until every report in `ids` has completed; every event is returned.
async fn until_completed(sse: &mut SseStream, ids: &[String]) -> Vec<Value> {
    let mut open: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    while !open.is_empty() {
        let e = sse.next_event().await;
        if e["type"] == "triage_completed" {
            open.remove(e["report_id"].as_str().unwrap_or_default());
        }
        out.push(e);
    }
    out
}

#[actix_rt::test]
async fn every_replica_sees_every_event_once_and_resumes_anywhere() {
    let db = testkit::TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let stream = format!("TEST_{}", uuid::Uuid::new_v4().simple());
    let a =
        spawn_with(replica_settings("a", &db, &stream, &dir), triage::ModelAgent::all(models()))
            .await;
    let b =
        spawn_with(replica_settings("b", &db, &stream, &dir), triage::ModelAgent::all(models()))
            .await;
    let mut on_a = SseStream::open(&a, "", None).await;
    let mut on_b = SseStream::open(&b, "", None).await;

    let mut ids = Vec::new();
    for n in 0..10_usize {
        ids.push(triage(if n.is_multiple_of(2) { &a } else { &b }, n).await);
    }
    let seen_a = until_completed(&mut on_a, &ids).await;
    let seen_b = until_completed(&mut on_b, &ids).await;
    // The same events, under the same numbers, on both replicas.
    assert_eq!(seen_a, seen_b);
    let mut per_report: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &seen_a {
        per_report
            .entry(e["report_id"].as_str().unwrap())
            .or_default()
            .push(e["type"].as_str().unwrap());
    }
    for id in &ids {
        let types = &per_report[id.as_str()];
        assert_eq!(types.len(), 6, "each step of {id} once: {types:?}");
        assert_eq!(types[0], "triage_received");
        assert_eq!(types[5], "triage_completed");
    }
    let seqs: Vec<u64> = seen_a.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // A report kept by one replica reads back through the other.
    for (n, id) in ids.iter().enumerate() {
        let other = if n.is_multiple_of(2) { &b } else { &a };
        assert_eq!(other.get(&format!("/v1/triage/{id}")).await.status(), 200, "{id}");
    }

    // A subscriber of A that saw the first 20 events resumes on B: the rest, no more.
    let last = seqs[19];
    let mut resumed = SseStream::open(&b, "", Some(last)).await;
    for want in &seen_a[20..] {
        assert_eq!(&resumed.next_event().await, want);
    }
    testkit::delete_nats_stream(&stream).await;
}
