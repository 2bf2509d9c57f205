//! The durable embedded store (`store.path`): an answer kept before the service stopped is
//! there after it starts again, with the events that followed it.

use crate::helpers::{SseStream, TestApp, kb, models, spawn_stoppable, test_settings};
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

    // The first service's store lets go of its file (and its lock) once the last of that
    // service's tasks has ended, a moment after the server stops: until then the file is
    // refused as in use, which is what a second process would be told.
    let mut tries = 0;
    let app = loop {
        match api::Application::build_with_agents(
            settings.clone(),
            kb(),
            triage::ModelAgent::all(models()),
        )
        .await
        {
            Ok(app) => break app,
            Err(e) if tries < 100 && e.to_string().contains("in use") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the service does not start again on its file: {e}"),
        }
    };
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until(std::future::pending()));
    let app = TestApp { base, client: reqwest::Client::new() };
    let r = app.get(&format!("/v1/triage/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), answer);
    // The report's events are kept with it: a subscriber resuming from the start gets them
    // from the store, since the new process's bus never held them.
    let mut events = SseStream::open(&app, "?after=0&type=triage_completed", None).await;
    let completed = events.next_event().await;
    assert_eq!(completed["report_id"], id.as_str(), "{completed}");
}
