//! The durable embedded store (`store.path`): an answer kept before the service stopped is
//! there after it starts again, with the events that followed it.

use crate::helpers::{SseStream, models, spawn_stoppable, spawn_with, test_settings};
use serde_json::{Value, json};

#[actix_rt::test]
async fn answers_and_events_survive_a_restart_of_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.store.path = dir.path().join("data/triagent.db").display().to_string();

    let (app, stop, server) =
        spawn_stoppable(settings.clone(), triage::ModelAgent::all(models())).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["store"]["kind"], "sqlite", "{ready}");
    let r = app.post_json(&json!({"text": "sore throat and a runny nose for two days"})).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let app = spawn_with(settings, triage::ModelAgent::all(models())).await;
    let r = app.get(&format!("/v1/triage/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), answer);
    // The report's events are kept with it: a subscriber resuming from the start gets them
    // from the store, since the new process's bus never held them.
    let mut events = SseStream::open(&app, "?after=0&type=triage_completed", None).await;
    let completed = events.next_event().await;
    assert_eq!(completed["report_id"], id.as_str(), "{completed}");
}
