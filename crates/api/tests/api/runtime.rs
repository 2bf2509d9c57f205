//! The runtime seen over HTTP, with doubles of the agent trait: breakers, panics, parallel
//! agents, and a graceful shutdown with requests and event streams open.

use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use triage::{AgentKind, AgentModel};

async fn answer(app: &TestApp, text: &str) -> Value {
    let r = app.post_json(&json!({"text": text})).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn breaker(app: &TestApp, agent: &str) -> Value {
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    ready["agents"][agent]["breaker"].clone()
}

#[actix_rt::test]
async fn the_breaker_opens_after_failures_and_closes_once_the_agent_recovers() {
    let mut s = test_settings();
    s.agents.default.breaker_failures = 3;
    // Long enough that the request right after the third failure surely finds it open.
    s.agents.default.breaker_backoff_ms = 1500;
    s.agents.default.breaker_backoff_max_ms = 1500;
    let fail = Arc::new(AtomicBool::new(true));
    let agents = replacing(AgentKind::SymptomClassifier, |inner| {
        Arc::new(Flaky { inner, fail: fail.clone(), panic_on: None }) as Arc<dyn AgentModel>
    });
    let app = spawn_with(s, agents).await;
    let mut sse = SseStream::open(&app, "?type=breaker_state_changed", None).await;
    for _ in 0..3 {
        let a = answer(&app, "a headache").await;
        assert_eq!(a["agents"]["symptom_classifier"]["status"], "failed", "{a}");
    }
    let a = answer(&app, "a headache").await;
    assert_eq!(a["agents"]["symptom_classifier"]["status"], "circuit_open", "{a}");
    assert_eq!(a["degraded"], true);
    assert_eq!(a["agents"]["condition_matcher"]["status"], "ok");
    assert_eq!(breaker(&app, "symptom_classifier").await, "open");

    // The agent recovers; after the back-off a trial call goes through and closes the breaker.
    fail.store(false, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let a = answer(&app, "a headache").await;
        match a["agents"]["symptom_classifier"]["status"].as_str().unwrap() {
            "ok" => break,
            "circuit_open" if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("expected the breaker to close, got {other}"),
        }
    }
    assert_eq!(answer(&app, "a headache").await["degraded"], false);
    assert_eq!(breaker(&app, "symptom_classifier").await, "closed");
    let mut states = Vec::new();
    while states.last().is_none_or(|s| s != "closed") {
        let e = sse.next_event().await;
        assert_eq!(e["agent"], "symptom_classifier");
        states.push(e["state"].as_str().unwrap().to_string());
    }
    assert_eq!(states.first().map(String::as_str), Some("open"), "{states:?}");
}

#[actix_rt::test]
async fn a_panicking_agent_gives_a_degraded_200_and_the_next_requests_work() {
    let agents = replacing(AgentKind::TreatmentRetriever, |inner| {
        Arc::new(Flaky { inner, fail: Arc::new(AtomicBool::new(false)), panic_on: Some("boom") })
            as Arc<dyn AgentModel>
    });
    let app = spawn_with(test_settings(), agents).await;
    let a = answer(&app, "boom, a sudden headache").await;
    assert_eq!(a["degraded"], true);
    assert_eq!(a["agents"]["treatment_retriever"]["status"], "failed", "{a}");
    assert_eq!(a["agents"]["emergency_detector"]["status"], "ok", "{a}");
    assert_eq!(a["care"], json!([]), "{a}");
    assert!(a["triage"]["level"].is_string());
    for _ in 0..3 {
        let a = answer(&app, "a sudden headache").await;
        assert_eq!(a["degraded"], false, "{a}");
        assert!(!a["care"].as_array().unwrap().is_empty(), "{a}");
    }
}

#[actix_rt::test]
async fn the_four_agents_run_at_the_same_time() {
    let agents: Vec<Arc<dyn AgentModel>> = triage::ModelAgent::all(models())
        .into_iter()
        .map(|inner| {
            Arc::new(Faulty { inner, fail: false, delay: Duration::from_millis(300) })
                as Arc<dyn AgentModel>
        })
        .collect();
    let app = spawn_with(test_settings(), agents).await;
    // A first request opens the connection and warms everything up.
    answer(&app, "a sore throat").await;
    let started = Instant::now();
    let a = answer(&app, "a sore throat").await;
    let took = started.elapsed();
    assert_eq!(a["degraded"], false, "{a}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // One after another would be 1,200 ms.
    assert!(took < Duration::from_millis(900), "four 300 ms agents took {took:?}: not in parallel");
}

#[actix_rt::test]
async fn shutdown_finishes_requests_in_flight_then_ends_event_streams() {
    let mut s = test_settings();
    // Keep-alives must not hold shutdown up either.
    s.server.event_heartbeat_ms = 200;
    // Far beyond the test's bounds: a shutdown that waited for it would fail the test.
    s.server.shutdown_timeout_secs = 600;
    let agents: Vec<Arc<dyn AgentModel>> = triage::ModelAgent::all(models())
        .into_iter()
        .map(|inner| {
            Arc::new(Faulty { inner, fail: false, delay: Duration::from_millis(1500) })
                as Arc<dyn AgentModel>
        })
        .collect();
    let (app, stop, server) = spawn_stoppable(s, agents).await;
    let app = Arc::new(app);
    let mut received = SseStream::open(&app, "?type=triage_received", None).await;
    let mut completed = SseStream::open(&app, "?type=triage_completed", None).await;
    const N: usize = 6;
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let app = app.clone();
            actix_rt::spawn(async move {
                app.post_json(&json!({"text": format!("a cough for {i} days")})).await
            })
        })
        .collect();
    // Every request has reached the coordinator; the agents need 1.5 s more.
    for _ in 0..N {
        received.next_event().await;
    }
    stop.send(()).unwrap();
    let mut ids = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["degraded"], false, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    // The events of those requests were flushed to the stream before it ended.
    let mut done = Vec::new();
    while let Some(m) = completed.next().await {
        if let Sse::Message { data, .. } = m {
            done.push(data["report_id"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    done.sort();
    assert_eq!(done, ids);
    assert_eq!(received.next_message().await, None, "every stream ends");
    tokio::time::timeout(Duration::from_secs(120), server)
        .await
        .expect("the server stops well before its shutdown timeout")
        .unwrap()
        .unwrap();
    // No longer listening.
    assert!(app.client.get(format!("{}/healthz", app.base)).send().await.is_err());
}
