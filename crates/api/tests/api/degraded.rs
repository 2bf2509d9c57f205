//! Degraded answers: one agent down at a time (failing test doubles of the agent trait), and
//! 503 when every queue is full.

use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use triage::{AgentKind, AgentModel};

const ORDER: [&str; 5] =
    ["emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care"];

fn rank(level: &Value) -> usize {
    ORDER.iter().position(|l| level == l).expect("a known level")
}

#[actix_rt::test]
async fn each_agent_down_gives_a_degraded_200_that_keeps_the_safety_floor() {
    for down in AgentKind::ALL {
        let app = spawn_with(test_settings(), with_failing(down)).await;
        let r = app
            .post_json(
                &json!({"text": "bit of a runny nose and sneezing since yesterday", "age": 30}),
            )
            .await;
        assert_eq!(r.status(), 200, "{down:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["degraded"], true, "{down:?}");
        assert_eq!(body["agents"][down.as_str()]["status"], "failed", "{down:?}");
        match down {
            AgentKind::EmergencyDetector => {
                assert!(rank(&body["triage"]["level"]) <= rank(&json!("consultation")), "{body}");
                let reasons = body["triage"]["reasons"].to_string();
                assert!(reasons.contains("unavailable"), "{reasons}");
            }
            AgentKind::ConditionMatcher => {
                assert_eq!(body["conditions"], json!([]));
                assert_eq!(body["differential_unavailable"], true);
            }
            _ => {}
        }
        // Red-flag rules still run when the emergency detector is down.
        if down == AgentKind::EmergencyDetector {
            let r = app
                .post_json(
                    &json!({"text": "his face has dropped on one side and his speech is slurred"}),
                )
                .await;
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["triage"]["level"], "emergency_ambulance", "{body}");
        }
    }
}

#[actix_rt::test]
async fn every_queue_full_is_503_with_retry_after() {
    let mut s = test_settings();
    s.agents.default.queue = 1;
    s.agents.default.max_batch = 1;
    let agents: Vec<Arc<dyn AgentModel>> = triage::ModelAgent::all(models())
        .into_iter()
        .map(|a| {
            Arc::new(Faulty { inner: a, fail: false, delay: Duration::from_millis(400) })
                as Arc<dyn AgentModel>
        })
        .collect();
    let app = Arc::new(spawn_with(s, agents).await);
    let mut calls = Vec::new();
    for i in 0..6 {
        let app = app.clone();
        calls.push(actix_rt::spawn(async move {
            app.post_json(&json!({"text": format!("cough number {i}")})).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ok = 0;
    let mut busy = 0;
    for c in calls {
        let r = c.await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert!(r.headers().get("retry-after").is_some());
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "overloaded");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
}

/// A request not answered within `server.handler_timeout_ms` is a 503 `handler_timeout` with
/// `Retry-After` and the JSON body, however slow the agents are below their own deadlines;
/// requests that fit are answered.
#[actix_rt::test]
async fn a_request_over_the_handler_deadline_is_a_503() {
    let mut s = test_settings();
    s.server.handler_timeout_ms = 200;
    let agents: Vec<Arc<dyn AgentModel>> = triage::ModelAgent::all(models())
        .into_iter()
        .map(|a| {
            Arc::new(Faulty { inner: a, fail: false, delay: Duration::from_millis(1500) })
                as Arc<dyn AgentModel>
        })
        .collect();
    let app = spawn_with(s, agents).await;
    let started = std::time::Instant::now();
    let r = app.post_json(&json!({"text": "a cough for two days"})).await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered before the agents: {:?}",
        started.elapsed()
    );
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "handler_timeout", "{body}");
    // Routes that do not wait on the agents are answered.
    assert_eq!(app.get("/healthz").await.status(), 200);
}
