//! API keys on the HTTP surface: 401 without a valid key, 403 without the route's scope, 429
//! over the rate, a key reads only its own reports, revocation, development mode, and the
//! audit log of key use. Keys are real ones in a real key file (the embedded default's key
//! store); PostgreSQL's key store is tested in the store crate and by `serve.rs`.

use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::{AuditAction, FileKeys, KeyStore, Scope};

struct Keyed {
    app: TestApp,
    keys: Arc<FileKeys>,
    _dir: tempfile::TempDir,
}

async fn spawn_keyed(required: bool, tweak: impl FnOnce(&mut settings::Settings)) -> Keyed {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let mut s = test_settings();
    s.auth.required = required;
    s.auth.keys_file = path.display().to_string();
    s.auth.cache_ttl_ms = 0;
    tweak(&mut s);
    let app = spawn_with(s, triage::ModelAgent::all(models())).await;
    Keyed { app, keys: Arc::new(FileKeys::open(&path).unwrap()), _dir: dir }
}

async fn new_key(k: &Keyed, scopes: &[Scope]) -> String {
    k.keys.create("test", scopes).await.unwrap().secret.expose().to_string()
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{}{path}", app.base);
    let mut req = if method == "POST" { app.client.post(url) } else { app.client.get(url) };
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    // The event stream never ends: only its status matters here.
    let body = if headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        Value::Null
    } else {
        r.json().await.unwrap_or(Value::Null)
    };
    (status, headers, body)
}

fn triage_body() -> Value {
    json!({"text": "sore throat and a runny nose for two days", "age": 30})
}

fn example_path(path: &str) -> String {
    path.replace("{id}", "00000000-0000-4000-8000-000000000000")
}

#[actix_rt::test]
async fn every_v1_route_needs_a_key_and_operations_routes_do_not() {
    let k = spawn_keyed(true, |_| {}).await;
    for (method, path, access) in api::route_access() {
        let body = (method == "POST").then(triage_body);
        let (status, headers, body) = send(&k.app, method, &example_path(path), None, body).await;
        if access == api::Access::Public {
            assert_ne!(status, 401, "{method} {path} is public");
            continue;
        }
        assert!(path.starts_with("/v1/"), "{path}");
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(body["error"]["code"], "missing_api_key", "{method} {path}: {body}");
        assert_eq!(body["error"]["field"], "Authorization");
        assert!(
            headers
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
            "{method} {path}"
        );
    }
    // Malformed headers and unknown keys.
    for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer tri_nothex", "tri_0000"] {
        let r = k
            .app
            .client
            .post(format!("{}/v1/triage", k.app.base))
            .header("Authorization", bad)
            .json(&triage_body())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            ["invalid_authorization", "invalid_api_key"]
                .contains(&body["error"]["code"].as_str().unwrap()),
            "{bad}: {body}"
        );
    }
    let unknown = store::KeySecret::generate();
    let (status, _, body) =
        send(&k.app, "POST", "/v1/triage", Some(unknown.expose()), Some(triage_body())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
}

#[actix_rt::test]
async fn scopes_are_enforced_and_a_key_reads_only_its_own_reports() {
    let k = spawn_keyed(true, |_| {}).await;
    let writer = new_key(&k, &[Scope::TriageWrite, Scope::ReportsRead]).await;
    let reader = new_key(&k, &[Scope::ReportsRead]).await;
    let watcher = new_key(&k, &[Scope::EventsRead]).await;

    let (status, _, body) =
        send(&k.app, "POST", "/v1/triage", Some(&reader), Some(triage_body())).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert!(body["error"]["message"].as_str().unwrap().contains("triage:write"));

    let (status, _, answer) =
        send(&k.app, "POST", "/v1/triage", Some(&writer), Some(triage_body())).await;
    assert_eq!(status, 200, "{answer}");
    let path = format!("/v1/triage/{}", answer["id"].as_str().unwrap());
    let (status, _, again) = send(&k.app, "GET", &path, Some(&writer), None).await;
    assert_eq!((status, &again), (200, &answer));
    // Another key, even one allowed to read reports, does not learn the report exists.
    let (status, _, body) = send(&k.app, "GET", &path, Some(&reader), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _, _) = send(&k.app, "GET", &path, Some(&watcher), None).await;
    assert_eq!(status, 403);

    // The vocabularies need a key, any key.
    let (status, _, _) = send(&k.app, "GET", "/v1/symptoms", Some(&watcher), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&k.app, "GET", "/v1/events", Some(&writer), None).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&k.app, "GET", "/v1/events", Some(&watcher), None).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn a_revoked_key_stops_working() {
    let k = spawn_keyed(true, |_| {}).await;
    let created = k.keys.create("to revoke", &[Scope::TriageWrite]).await.unwrap();
    let key = created.secret.expose().to_string();
    let (status, _, _) = send(&k.app, "POST", "/v1/triage", Some(&key), Some(triage_body())).await;
    assert_eq!(status, 200);
    // Revoked from another handle on the file, as `triagent keys revoke` does; the test's
    // cache_ttl_ms is 0, so the next request reads the key again.
    FileKeys::open(k.keys.path()).unwrap().revoke(created.key.id).await.unwrap();
    let (status, _, body) =
        send(&k.app, "POST", "/v1/triage", Some(&key), Some(triage_body())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
}

#[actix_rt::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let k = spawn_keyed(true, |s| {
        s.auth.rate_per_second = 1;
        s.auth.burst = 2;
    })
    .await;
    let busy = new_key(&k, &[Scope::ReportsRead]).await;
    let calm = new_key(&k, &[Scope::ReportsRead]).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let (status, headers, body) =
            send(&k.app, "GET", "/v1/conditions", Some(&busy), None).await;
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited");
            retry_after =
                headers.get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        statuses.push(status);
    }
    // A burst of 2 at 1 a second: on a slow machine a third may pass after a second.
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| (1..=2).contains(&s)), "{retry_after:?}");
    let (status, _, _) = send(&k.app, "GET", "/v1/conditions", Some(&calm), None).await;
    assert_eq!(status, 200, "limits are per key");
}

#[actix_rt::test]
async fn without_required_keys_anonymous_requests_pass_and_keys_are_still_checked() {
    let k = spawn_keyed(false, |_| {}).await;
    let (status, _, answer) = send(&k.app, "POST", "/v1/triage", None, Some(triage_body())).await;
    assert_eq!(status, 200);
    let path = format!("/v1/triage/{}", answer["id"].as_str().unwrap());
    let (status, _, _) = send(&k.app, "GET", &path, None, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(
        &k.app,
        "POST",
        "/v1/triage",
        Some(store::KeySecret::generate().expose()),
        Some(triage_body()),
    )
    .await;
    assert_eq!(status, 401, "a key that is sent is checked");
    // A key's report is its own even here.
    let key = new_key(&k, &[Scope::TriageWrite, Scope::ReportsRead]).await;
    let (_, _, owned) = send(&k.app, "POST", "/v1/triage", Some(&key), Some(triage_body())).await;
    let other = new_key(&k, &[Scope::ReportsRead]).await;
    let (status, _, _) = send(
        &k.app,
        "GET",
        &format!("/v1/triage/{}", owned["id"].as_str().unwrap()),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn key_use_and_refusals_reach_the_audit_log_without_the_key() {
    let k = spawn_keyed(true, |s| s.auth.audit_flush_ms = 50).await;
    let created = k.keys.create("audited", &[Scope::TriageWrite]).await.unwrap();
    let key = created.secret.expose().to_string();
    for _ in 0..3 {
        assert_eq!(
            send(&k.app, "POST", "/v1/triage", Some(&key), Some(triage_body())).await.0,
            200
        );
    }
    assert_eq!(send(&k.app, "GET", "/v1/events", Some(&key), None).await.0, 403);
    assert_eq!(send(&k.app, "GET", "/v1/symptoms", None, None).await.0, 401);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let audit = loop {
        let audit = k.keys.recent_audit(100).await.unwrap();
        let used: u64 = audit
            .iter()
            .filter(|a| a.action == AuditAction::KeyUsed && a.api_key_id == Some(created.key.id))
            .map(|a| a.detail["requests"].as_u64().unwrap())
            .sum();
        let denied = audit
            .iter()
            .any(|a| a.action == AuditAction::ScopeDenied && a.api_key_id == Some(created.key.id));
        let failed =
            audit.iter().any(|a| a.action == AuditAction::AuthFailed && a.api_key_id.is_none());
        if used == 3 && denied && failed {
            break audit;
        }
        assert!(std::time::Instant::now() < deadline, "audit log: {audit:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(audit[0].action, AuditAction::KeyCreated);
    let file = std::fs::read_to_string(format!("{}.audit.jsonl", k.keys.path().display())).unwrap();
    assert!(!file.contains(&key[4..]) && !file.contains(created.secret.hash().as_str()));
}

/// Events belong to tenants: a key with `events:read` follows the events of its own reports
/// only; `events:read_all` follows everyone's.
#[actix_rt::test]
async fn a_key_follows_only_its_own_reports_events() {
    let k = spawn_keyed(true, |_| {}).await;
    let alice = new_key(&k, &[Scope::TriageWrite, Scope::EventsRead]).await;
    let bob = new_key(&k, &[Scope::TriageWrite, Scope::EventsRead]).await;
    let operator = new_key(&k, &[Scope::EventsReadAll]).await;
    let query = "?type=triage_completed";
    let mut a = SseStream::open_as(&k.app, query, None, Some(&alice)).await;
    let mut b = SseStream::open_as(&k.app, query, None, Some(&bob)).await;
    let mut op = SseStream::open_as(&k.app, query, None, Some(&operator)).await;
    let (_, _, bobs) = send(&k.app, "POST", "/v1/triage", Some(&bob), Some(triage_body())).await;
    let (_, _, alices) =
        send(&k.app, "POST", "/v1/triage", Some(&alice), Some(triage_body())).await;
    // Bob's report came first; Alice's stream skips it.
    assert_eq!(a.next_event().await["report_id"], alices["id"]);
    assert_eq!(b.next_event().await["report_id"], bobs["id"]);
    assert_eq!(op.next_event().await["report_id"], bobs["id"]);
    assert_eq!(op.next_event().await["report_id"], alices["id"]);
    // Resuming from before both: Alice's replay holds only hers too.
    let first = alices["id"].clone();
    let mut again = SseStream::open_as(&k.app, query, Some(0), Some(&alice)).await;
    assert_eq!(again.next_event().await["report_id"], first);
    // A key without either events scope is refused.
    let (status, _, _) =
        send(&k.app, "GET", "/v1/events", Some(&new_key(&k, &[Scope::TriageWrite]).await), None)
            .await;
    assert_eq!(status, 403);
}
