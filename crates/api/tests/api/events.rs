//! `GET /v1/events` over HTTP: order, filters, resuming, gaps, keep-alives and bad filters.

use crate::helpers::*;
use serde_json::{Value, json};

const COLD: &str = "bit of a runny nose and sneezing since yesterday";
const STROKE: &str = "his face has dropped on one side and his speech is slurred";

async fn triage_id(app: &TestApp, text: &str) -> String {
    let r = app.post_json(&json!({"text": text, "age": 30})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// Reads events until `triage_completed` for `id`, returning that report's events.
async fn events_of(sse: &mut SseStream, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = sse.next_event().await;
        if e["report_id"] == id {
            let done = e["type"] == "triage_completed";
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[actix_rt::test]
async fn a_triage_streams_its_steps_in_order() {
    let app = spawn_app().await;
    let mut sse = SseStream::open(&app, "", None).await;
    let text = "I have had a dry cough and a sore throat for three days";
    let id = triage_id(&app, text).await;
    let events = events_of(&mut sse, &id).await;
    let t = types(&events);
    assert_eq!(t.len(), 6, "{t:?}");
    assert_eq!(t[0], "triage_received");
    assert_eq!(t[5], "triage_completed");
    let mut agents = t[1..5].to_vec();
    agents.sort_unstable();
    assert_eq!(
        agents,
        ["care_retrieved", "conditions_ranked", "emergency_assessed", "findings_extracted"]
    );
    assert!(
        events.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()),
        "seq increases"
    );
    // Sizes, never the text.
    assert_eq!(events[0]["text_chars"], text.chars().count());
    assert!(events.iter().all(|e| !e.to_string().contains("sore throat")));
    assert_eq!(events[5]["degraded"], false);
}

#[actix_rt::test]
async fn filters_by_type_and_level_and_emergencies_come_before_completion() {
    let app = spawn_app().await;
    let mut emergencies = SseStream::open(
        &app,
        "?type=emergency_assessed,triage_completed&level=emergency_ambulance,emergency",
        None,
    )
    .await;
    let mut completed = SseStream::open(&app, "?type=triage_completed", None).await;
    let mut self_care =
        SseStream::open(&app, "?level=self_care,consultation,consultation_24", None).await;
    // The cold first: if the level filter let it through, it would be the first thing read.
    let cold = triage_id(&app, COLD).await;
    let stroke = triage_id(&app, STROKE).await;

    let first = emergencies.next_event().await;
    assert_eq!(first["report_id"], stroke, "{first}");
    assert_eq!(first["type"], "emergency_assessed");
    assert!(
        ["emergency_ambulance", "emergency"].contains(&first["level"].as_str().unwrap()),
        "{first}"
    );
    let second = emergencies.next_event().await;
    assert_eq!(
        (&second["report_id"], &second["type"], &second["level"]),
        (&json!(stroke), &json!("triage_completed"), &json!("emergency_ambulance")),
        "{second}"
    );
    assert!(first["seq"].as_u64() < second["seq"].as_u64());

    let a = completed.next_event().await;
    let b = completed.next_event().await;
    assert_eq!((&a["report_id"], &a["type"]), (&json!(cold), &json!("triage_completed")), "{a}");
    assert_eq!((&b["report_id"], &b["type"]), (&json!(stroke), &json!("triage_completed")), "{b}");

    // Events without a level never pass a level filter; the cold's levelled events do.
    let c = self_care.next_event().await;
    assert_eq!(c["report_id"], cold, "{c}");
    assert!(
        ["emergency_assessed", "triage_completed"].contains(&c["type"].as_str().unwrap()),
        "{c}"
    );
}

#[actix_rt::test]
async fn resuming_gets_exactly_the_events_after_the_last_id() {
    let mut s = test_settings();
    s.server.event_heartbeat_ms = 300;
    let app = spawn_with(s, triage::ModelAgent::all(models())).await;
    let first = triage_id(&app, COLD).await;
    // From the very start: the replay buffer has all six.
    let mut all = SseStream::open(&app, "?after=0", None).await;
    let mut log = events_of(&mut all, &first).await;
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    // Last-Event-ID: 2 (and it wins over a stale ?after=, as when a browser reconnects).
    for (query, header) in [("", Some(2)), ("?after=2", None), ("?after=0", Some(2))] {
        let mut resumed = SseStream::open(&app, query, header).await;
        let mut got = Vec::new();
        while got.len() < log.len() - 2 {
            got.push(resumed.next_event().await);
        }
        assert_eq!(got, log[2..], "{query} {header:?}");
        // Nothing else is queued: the next thing is the keep-alive of an idle stream.
        assert_eq!(
            resumed.next().await,
            Some(Sse::Comment("keep-alive".into())),
            "{query} {header:?}"
        );
        // And it carries on live, without a hole at the seam.
        let next = triage_id(&app, COLD).await;
        let live = resumed.next_event().await;
        assert_eq!(
            (&live["report_id"], &live["type"]),
            (&json!(next), &json!("triage_received")),
            "{live}"
        );
        log.extend(events_of(&mut all, &next).await);
        assert_eq!(live, log[log.len() - 6]);
    }
}

/// What a client resuming after event 0 receives up to the first triage's `triage_completed`
/// (event 6): `Ok(seq)` per event, `Err(missed)` per gap.
async fn resumed_from_start(app: &TestApp) -> Vec<Result<u64, u64>> {
    let mut sse = SseStream::open(app, "", Some(0)).await;
    let mut out = Vec::new();
    loop {
        match sse.next_message().await {
            Some(Sse::Message { id: None, event, data }) if event == "gap" => {
                out.push(Err(data["missed"].as_u64().unwrap()))
            }
            Some(Sse::Message { id: Some(seq), data, .. }) => {
                out.push(Ok(seq));
                if data["type"] == "triage_completed" {
                    return out;
                }
            }
            other => panic!("expected an event or a gap, got {other:?}"),
        }
    }
}

/// Resumes from the start until the answer is `want`. The store follows the bus
/// asynchronously (its sink takes what has arrived, then waits a moment), so just after a
/// triage the store may not have every event the bus has already let go of.
async fn resume_until(app: &TestApp, want: &[Result<u64, u64>]) {
    let mut got = Vec::new();
    for _ in 0..100 {
        got = resumed_from_start(app).await;
        if got == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got, want, "Ok(seq) per event, Err(missed) per gap");
}

#[actix_rt::test]
async fn resuming_beyond_the_replay_buffer_reads_the_store_first() {
    let mut s = test_settings();
    s.bus.replay = 4;
    let app = spawn_with(s, triage::ModelAgent::all(models())).await;
    triage_id(&app, COLD).await;
    // Six events published, four still in the bus: the first two from the store, the rest from
    // the bus, no repeat, no gap.
    resume_until(&app, &[Ok(1), Ok(2), Ok(3), Ok(4), Ok(5), Ok(6)]).await;
}

#[actix_rt::test]
async fn resuming_beyond_the_replay_buffer_and_the_store_says_how_many_were_missed() {
    let mut s = test_settings();
    s.bus.replay = 4;
    // The embedded store keeps the three newest events: the first two are nowhere.
    s.store.capacity = 3;
    let app = spawn_with(s, triage::ModelAgent::all(models())).await;
    triage_id(&app, COLD).await;
    // Six events published, four kept: the first two are gone.
    resume_until(&app, &[Err(2), Ok(3), Ok(4), Ok(5), Ok(6)]).await;
}

#[actix_rt::test]
async fn bad_filters_are_400_naming_the_field() {
    let app = spawn_app().await;
    for (query, header, code, field) in [
        ("?type=triage_done", None, "invalid_filter", "type"),
        ("?type=TriageCompleted", None, "invalid_filter", "type"),
        ("?type=", None, "invalid_filter", "type"),
        ("?level=urgent", None, "invalid_filter", "level"),
        ("?level=emergency,", None, "invalid_filter", "level"),
        ("?after=last", None, "invalid_last_event_id", "after"),
        ("", Some("-3"), "invalid_last_event_id", "Last-Event-ID"),
        ("?since=3", None, "unknown_parameter", "since"),
    ] {
        let mut req = app.client.get(format!("{}/v1/events{query}", app.base));
        if let Some(h) = header {
            req = req.header("Last-Event-ID", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{query} {header:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
