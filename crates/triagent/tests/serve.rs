//! The real `triagent serve` binary as a child process: settings from environment variables,
//! a graceful shutdown on SIGTERM with requests in flight, a kill during spool replay, and two
//! replicas on one database and one NATS JetStream stream through an outage and a kill.
//!
//! These live here rather than in the API's test binary because only this crate's tests get
//! `CARGO_BIN_EXE_triagent`: cargo builds the binary first and hands over its exact path, so
//! the test never runs a stale or missing binary.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use testkit::TestDb;

/// Generous: a debug build loading four models on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(180);

/// A running `triagent serve`, killed if the test ends early.
struct Serve {
    child: Child,
    port: u16,
    /// Lines of the child's stderr, read on a thread so the pipe never fills up.
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
    /// The folder of its default store (`store.path`), removed with it.
    _data: tempfile::TempDir,
}

/// A port nobody listens on right now. The child binds it a moment later; another process
/// taking it in between would make the child fail loudly, not the test pass wrongly.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Serve {
    /// Starts the binary with only `env` as its `TRIAGENT…` environment, and waits until it
    /// says it is ready (on the port it was given through the environment).
    fn start(env: &[(&str, String)]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_triagent"));
        cmd.arg("serve").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, _) in
            std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("TRIAGENT"))
        {
            cmd.env_remove(k);
        }
        let data = tempfile::tempdir().unwrap();
        cmd.env("TRIAGENT_ENV", "development")
            .env("TRIAGENT__SERVER__PORT", port.to_string())
            .env("TRIAGENT__STORE__PATH", data.path().join("triagent.db"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the triagent binary starts");
        let pipe = child.stderr.take().unwrap();
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Serve { child, port, stderr, log: Vec::new(), _data: data };
        let ready = format!("ready on port {port} ");
        serve.wait_for_line(|l| l.contains(&ready));
        serve
    }

    fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool) {
        let until = Instant::now() + WAIT;
        loop {
            match self.stderr.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let found = wanted(&line);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    panic!("triagent did not print the expected line; stderr: {:#?}", self.log)
                }
            }
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.log.extend(self.stderr.try_iter());
                return status;
            }
            assert!(Instant::now() < until, "triagent did not exit; stderr: {:#?}", self.log);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts a triage request; returns when the answer arrived with the answer.
async fn post(
    client: reqwest::Client,
    base: String,
    text: String,
) -> (Instant, reqwest::Result<reqwest::Response>) {
    let r = client.post(format!("{base}/v1/triage")).json(&json!({"text": text})).send().await;
    (Instant::now(), r)
}

#[tokio::test]
async fn settings_come_from_environment_variables() {
    // The port (in `start`) and one agent's runtime: the condition matcher waits 300 ms for a
    // micro-batch to fill, so its latency shows the override took effect.
    let mut serve = Serve::start(&[
        ("TRIAGENT__AGENTS__CONDITION_MATCHER__MAX_WAIT_US", "300000".into()),
        ("TRIAGENT__AGENTS__CONDITION_MATCHER__DEADLINE_MS", "30000".into()),
    ]);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", serve.base()))
        .send()
        .await
        .expect("listening on the port from the environment");
    assert_eq!(health.status(), 200);
    let r = post(client.clone(), serve.base(), "a sore throat and a cough".into()).await.1.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["degraded"], false, "{body}");
    let waited = body["agents"]["condition_matcher"]["latency_ms"].as_f64().unwrap();
    assert!(
        waited >= 300.0,
        "condition_matcher answered in {waited} ms: the override was not applied"
    );
    serve.signal("INT");
    assert_eq!(serve.wait_exit().code(), Some(0), "{:#?}", serve.log);
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_exits_0() {
    // Every agent holds its first request up to 4 s waiting for a batch to fill, so the burst
    // below is still in flight when SIGTERM arrives.
    let mut serve = Serve::start(&[
        ("TRIAGENT__AGENTS__DEFAULT__MAX_WAIT_US", "4000000".into()),
        ("TRIAGENT__AGENTS__DEFAULT__MAX_BATCH", "64".into()),
        ("TRIAGENT__AGENTS__DEFAULT__DEADLINE_MS", "60000".into()),
        ("TRIAGENT__SERVER__SHUTDOWN_TIMEOUT_SECS", "600".into()),
    ]);
    let base = serve.base();
    let client = reqwest::Client::new();
    let mut events = client
        .get(format!("{base}/v1/events?type=triage_received,triage_completed"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    const N: usize = 16;
    let calls: Vec<_> = (0..N)
        .map(|i| {
            tokio::spawn(post(client.clone(), base.clone(), format!("a headache for {i} days")))
        })
        .collect();
    // Wait until the service has taken every request (one `triage_received` event each).
    let mut text = String::new();
    while text.matches("event: triage_received").count() < N {
        let chunk = tokio::time::timeout(WAIT, events.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the stream is open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(
        text.matches("event: triage_completed").count(),
        0,
        "the requests must still be in flight"
    );
    let sent = Instant::now();
    serve.signal("TERM");

    let mut answered_after_signal = 0;
    for c in calls {
        let (at, r) = c.await.unwrap();
        let r = r.expect("an accepted request is answered");
        answered_after_signal += usize::from(at > sent);
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["degraded"], false, "{body}");
        for agent in
            ["symptom_classifier", "condition_matcher", "treatment_retriever", "emergency_detector"]
        {
            assert_eq!(body["agents"][agent]["status"], "ok", "{body}");
        }
        assert!(
            body["triage"]["level"].is_string()
                && !body["conditions"].as_array().unwrap().is_empty(),
            "{body}"
        );
    }
    assert!(answered_after_signal > 0, "no request was in flight at SIGTERM");
    // Their events were flushed before the stream ended, and it does end.
    while let Ok(Some(chunk)) =
        tokio::time::timeout(WAIT, events.chunk()).await.expect("the stream ends in time")
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(text.matches("event: triage_completed").count(), N, "{text}");
    let status = serve.wait_exit();
    assert_eq!(status.code(), Some(0), "{:#?}", serve.log);
    assert!(serve.log.iter().any(|l| l.contains("stopped")), "{:#?}", serve.log);
}

/// Runs `triagent keys ARGS`; (success, stdout, stderr).
fn keys_cmd(args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triagent"));
    cmd.arg("keys").args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("TRIAGENT")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("triagent keys runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The production setup end to end: keys created with the command line in PostgreSQL, the
/// service requiring them, a key's reports kept under its id, revocation, the audit log, and
/// no key or hash in any line either process printed, with the access log on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_the_command_line_guard_a_production_service_and_never_reach_a_log() {
    let db = TestDb::create().await;
    let url = db.postgres_url(None);
    let (ok, writer, create_log) = keys_cmd(&[
        "create",
        "--name",
        "clinic app",
        "--scopes",
        "triage:write,reports:read",
        "--database-url",
        &url,
    ]);
    assert!(ok, "{create_log}");
    let writer = writer.trim().to_string();
    assert!(
        writer.starts_with("tri_") && writer.len() == 68,
        "the key alone on stdout: {writer:?}"
    );
    let writer_id = create_log
        .split_whitespace()
        .skip_while(|w| *w != "key")
        .nth(1)
        .expect("the key id on stderr")
        .to_string();
    let (ok, watcher, log2) = keys_cmd(&[
        "create",
        "--name",
        "dashboard",
        "--scopes",
        "events:read",
        "--database-url",
        &url,
    ]);
    assert!(ok, "{log2}");
    let watcher = watcher.trim().to_string();
    assert!(
        !keys_cmd(&["create", "--name", "x", "--scopes", "triage:read", "--database-url", &url]).0,
        "an unknown scope is refused"
    );
    let (ok, list, list_log) = keys_cmd(&["list", "--database-url", &url]);
    assert!(
        ok && list.contains("clinic app")
            && list.contains("dashboard")
            && list.contains(&writer_id),
        "{list}{list_log}"
    );

    let spool = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(&[
        ("TRIAGENT_ENV", "production".into()),
        ("TRIAGENT_LOG", "debug".into()),
        ("TRIAGENT__DATABASE__URL", url.clone()),
        ("TRIAGENT__DATABASE__SPOOL_PATH", spool.path().join("spool").display().to_string()),
        ("TRIAGENT__AUTH__CACHE_TTL_MS", "0".into()),
        ("TRIAGENT__AGENTS__DEFAULT__DEADLINE_MS", "30000".into()),
    ]);
    let base = serve.base();
    let client = reqwest::Client::new();
    let triage = |key: Option<&str>| {
        let mut r = client
            .post(format!("{base}/v1/triage"))
            .json(&json!({"text": "a cough and a fever for three days", "age": 40}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(triage(None).await.unwrap().status(), 401, "production requires a key");
    let wrong = store::KeySecret::generate();
    assert_eq!(triage(Some(wrong.expose())).await.unwrap().status(), 401);
    assert_eq!(triage(Some(&watcher)).await.unwrap().status(), 403);
    let answer: Value = triage(Some(&writer)).await.unwrap().json().await.unwrap();
    let id = answer["id"].as_str().expect("an answer").to_string();
    let get = |key: &str| {
        client.get(format!("{base}/v1/triage/{id}")).bearer_auth(key.to_string()).send()
    };
    assert_eq!(get(&writer).await.unwrap().status(), 200);
    assert_eq!(get(&watcher).await.unwrap().status(), 403);

    let (ok, _, revoke_log) = keys_cmd(&["revoke", &writer_id, "--database-url", &url]);
    assert!(ok, "{revoke_log}");
    assert_eq!(triage(Some(&writer)).await.unwrap().status(), 401, "a revoked key stops working");

    serve.signal("TERM");
    assert_eq!(serve.wait_exit().code(), Some(0), "{:#?}", serve.log);

    // The report is kept under the key's id; the audit log has the admin actions and the use.
    let pg = db.client().await;
    let owner: Option<uuid::Uuid> = pg
        .query_one("SELECT api_key_id FROM reports WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner.map(|u| u.to_string()), Some(writer_id.clone()));
    let actions: Vec<String> = pg
        .query("SELECT action FROM audit_log ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for wanted in ["key_created", "key_revoked", "key_used", "auth_failed", "scope_denied"] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} missing from {actions:?}; {:#?}",
            serve.log
        );
    }

    // Every line either process printed: the access log is there (so the check below looks at
    // real log lines), and no key or hash is.
    let lines: Vec<&str> = serve
        .log
        .iter()
        .map(String::as_str)
        .chain(create_log.lines())
        .chain(log2.lines())
        .chain(list_log.lines())
        .chain(revoke_log.lines())
        .chain(list.lines())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("triagent::access") && l.contains(&writer_id)),
        "no access log line: {lines:#?}"
    );
    for secret in [&writer, &watcher, &wrong.expose().to_string()] {
        let hash = store::KeySecret::new(secret.as_str()).hash();
        for l in &lines {
            assert!(!l.contains(&secret[4..]), "a key in a log line: {l}");
            assert!(!l.contains(hash.as_str()), "a key hash in a log line: {l}");
        }
    }
}

/// Killed (SIGKILL) in the middle of replaying its spool, the service loses no answered report
/// and writes none twice once it is started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_spool_replay_the_restarted_service_keeps_every_answered_report_once() {
    let db = TestDb::create().await;
    let proxy = testkit::Proxy::start(db.upstream()).await;
    let spool = tempfile::tempdir().unwrap();
    let env = |url: String| {
        vec![
            ("TRIAGENT__DATABASE__URL", url),
            ("TRIAGENT__DATABASE__SPOOL_PATH", spool.path().join("spool").display().to_string()),
            ("TRIAGENT__DATABASE__TIMEOUT_MS", "1000".to_string()),
            // Small replay transactions, so the replay takes long enough to be interrupted.
            ("TRIAGENT__DATABASE__REPLAY_BATCH", "2".to_string()),
            ("TRIAGENT__AGENTS__DEFAULT__DEADLINE_MS", "30000".to_string()),
        ]
    };
    let mut first = Serve::start(&env(db.postgres_url(Some(proxy.port))));
    let base = first.base();
    let client = reqwest::Client::new();
    proxy.cut();
    const N: usize = 120;
    let mut acked = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(8) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|i| {
                tokio::spawn(post(
                    client.clone(),
                    base.clone(),
                    format!("a cough and a sore throat for {i} days"),
                ))
            })
            .collect();
        for c in calls {
            let r = c.await.unwrap().1.expect("answered");
            assert_eq!(r.status(), 200, "answered during the outage");
            let body: Value = r.json().await.unwrap();
            acked.push(body["id"].as_str().unwrap().to_string());
        }
    }
    let ready: Value =
        client.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["store"]["status"], "degraded", "{ready}");

    let pg = db.client().await;
    let count =
        async || -> i64 { pg.query_one("SELECT count(*) FROM reports", &[]).await.unwrap().get(0) };
    assert_eq!(count().await, 0);
    proxy.restore();
    let until = Instant::now() + WAIT;
    while count().await == 0 {
        assert!(Instant::now() < until, "the replay never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let at_kill = count().await;
    println!("killed with {at_kill} of {N} reports replayed");
    assert!(
        at_kill > 0 && (at_kill as usize) < N,
        "killed in the middle of the replay ({at_kill} of {N})"
    );

    // Started again, straight to the database, on the same spool.
    let second = Serve::start(&env(db.postgres_url(None)));
    let until = Instant::now() + WAIT;
    loop {
        let ready: Value = client
            .get(format!("{}/readyz", second.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["store"]["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < until, "the restarted service never replayed its spool: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = pg
        .query("SELECT id::text FROM reports", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), N, "every answered report once");
    assert_eq!(unique.len(), N);
    assert!(acked.iter().all(|id| unique.contains(id)));
    let dup: i64 = pg
        .query_one("SELECT count(*) - count(DISTINCT event_id) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0, "an event is stored twice");
}

/// What the OTLP receiver got: each request's path and body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A tiny OTLP/HTTP receiver: answers every POST with 200 and keeps the bodies.
fn otlp_receiver() -> (u16, Received) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Default::default();
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path =
                        request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    keep.lock().unwrap().push((path, body));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
                }
            });
        }
    });
    (port, got)
}

/// With an OTLP endpoint configured, the service exports one trace per triage to it: the
/// HTTP span, the coordinator's `triage` span and one `agent` child per agent; and its
/// metrics, with the names `/metrics` gives them.
#[tokio::test]
async fn traces_and_metrics_reach_an_otlp_receiver() {
    let (port, got) = otlp_receiver();
    let mut serve = Serve::start(&[
        ("TRIAGENT__TELEMETRY__OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("TRIAGENT__TELEMETRY__PROTOCOL", "http/json".into()),
        ("TRIAGENT__TELEMETRY__SAMPLE_RATIO", "1.0".into()),
        ("TRIAGENT__AGENTS__DEFAULT__DEADLINE_MS", "30000".into()),
    ]);
    let r =
        post(reqwest::Client::new(), serve.base(), "a headache and a fever since yesterday".into())
            .await
            .1
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("traceparent"), "the trace id is given back");
    // The batch exporter sends what it holds at shutdown.
    serve.signal("TERM");
    assert_eq!(serve.wait_exit().code(), Some(0), "{:#?}", serve.log);

    let all = got.lock().unwrap().clone();
    assert!(!all.is_empty(), "nothing reached the receiver; {:#?}", serve.log);
    assert!(
        all.iter().all(|(path, _)| path == "/v1/traces" || path == "/v1/metrics"),
        "{:?}",
        all.iter().map(|x| &x.0).collect::<Vec<_>>()
    );

    // Metrics: the last reading is sent at shutdown, with the answered request counted.
    let (metric_bodies, bodies): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(path, _)| path == "/v1/metrics");
    let last: Value =
        serde_json::from_slice(&metric_bodies.last().expect("metrics reached the receiver").1)
            .expect("OTLP JSON");
    let exported: Vec<Value> = last["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
        .as_array()
        .expect("metrics")
        .clone();
    let names: Vec<&str> = exported.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.iter().all(|n| metrics::NAMES.contains(n)), "{names:?}");
    for name in [metrics::HTTP_REQUESTS, metrics::AGENT_LATENCY, metrics::TRIAGE_LEVELS] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let latency = exported.iter().find(|m| m["name"] == metrics::AGENT_LATENCY).unwrap();
    let points = latency["histogram"]["dataPoints"].as_array().expect("a histogram");
    assert_eq!(points.len(), 4, "one series per agent: {latency}");
    let requests = exported.iter().find(|m| m["name"] == metrics::HTTP_REQUESTS).unwrap();
    assert!(
        requests["sum"]["dataPoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["asDouble"] == json!(1.0)
                && p["attributes"].to_string().contains("/v1/triage")),
        "the triage request is counted: {requests}"
    );

    let mut spans = Vec::new();
    for (path, body) in &bodies {
        assert_eq!(path, "/v1/traces");
        let doc: Value = serde_json::from_slice(body).expect("OTLP JSON");
        for rs in doc["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].clone());
            assert_eq!(service, Some(json!("triagent")));
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let named = |n: &str| spans.iter().filter(|s| s["name"] == n).cloned().collect::<Vec<Value>>();
    let triage = named("triage");
    assert_eq!(triage.len(), 1, "{spans:#?}");
    let http: Vec<Value> = named("HTTP request")
        .into_iter()
        .filter(|s| s["spanId"] == triage[0]["parentSpanId"])
        .collect();
    assert_eq!(http.len(), 1, "the triage span's parent is the HTTP span: {spans:#?}");
    let agents: Vec<Value> =
        named("agent").into_iter().filter(|s| s["parentSpanId"] == triage[0]["spanId"]).collect();
    assert_eq!(agents.len(), 4, "{spans:#?}");
    assert!(
        spans.iter().all(|s| s["traceId"] == triage[0]["traceId"] || s["name"] == "HTTP request"),
        "one trace per triage"
    );
}

/// An event stream read by hand: each event's JSON; a gap fails the test.
struct EventStream {
    response: reqwest::Response,
    buf: String,
}

impl EventStream {
    async fn open(client: &reqwest::Client, base: &str, last_event_id: Option<u64>) -> EventStream {
        let mut req = client.get(format!("{base}/v1/events"));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.expect("the event stream opens");
        assert_eq!(response.status(), 200);
        EventStream { response, buf: String::new() }
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                assert!(!block.contains("event: gap"), "events were missed: {block}");
                let data = block.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
                return serde_json::from_str(data).expect("an event");
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.response.chunk())
                .await
                .expect("an event within a minute")
                .expect("the stream reads")
                .expect("the stream goes on");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads into `seen` until every report of `ids` has completed there.
    async fn until_completed(&mut self, ids: &[String], seen: &mut Vec<Value>) {
        let done = |seen: &[Value]| {
            ids.iter().all(|id| {
                seen.iter()
                    .any(|e| e["report_id"] == id.as_str() && e["type"] == "triage_completed")
            })
        };
        while !done(seen) {
            seen.push(self.next().await);
        }
    }
}

/// Two `triagent serve` replicas on one PostgreSQL database and one NATS JetStream stream
/// (reached through a proxy the test cuts): a subscriber on replica A receives every event of
/// both, once and in order per report; NATS away for a few seconds under load loses nothing;
/// A killed mid-stream, the subscriber resumes on B with its last id and misses nothing and
/// repeats nothing; every report reads back from B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_every_event_once_through_outage_and_kill() {
    let nats = testkit::require_nats();
    let db = TestDb::create().await;
    let proxy = testkit::Proxy::start(nats.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let stream = format!("TEST_SERVE_{}_{}", std::process::id(), stamp.as_nanos());
    let env = |name: &str| {
        let path = |ext: &str| dir.path().join(format!("{name}.{ext}")).display().to_string();
        vec![
            ("TRIAGENT__SERVER__REPLICA", name.to_owned()),
            ("TRIAGENT__DATABASE__URL", db.postgres_url(None)),
            ("TRIAGENT__DATABASE__SPOOL_PATH", path("spool")),
            ("TRIAGENT__EVENTS__NATS_URL", format!("nats://127.0.0.1:{}", proxy.port)),
            ("TRIAGENT__EVENTS__STREAM", stream.clone()),
            ("TRIAGENT__EVENTS__SUBJECT_PREFIX", format!("{}.events", stream.to_lowercase())),
            ("TRIAGENT__EVENTS__MAX_AGE_HOURS", "1".into()),
            ("TRIAGENT__EVENTS__OUTBOX_PATH", path("outbox")),
            ("TRIAGENT__EVENTS__PUBLISH_TIMEOUT_MS", "500".into()),
            ("TRIAGENT__AGENTS__DEFAULT__DEADLINE_MS", "30000".into()),
        ]
    };
    let mut a = Serve::start(&env("a"));
    let b = Serve::start(&env("b"));
    let client = reqwest::Client::new();
    let texts = ["a dry cough and a sore throat for three days", "crushing chest pain for an hour"];
    let mut ids: Vec<String> = Vec::new();
    let post_to = async |serve: &Serve, ids: &mut Vec<String>| {
        let text = texts[ids.len() % 2];
        let (_, r) = post(client.clone(), serve.base(), text.into()).await;
        let r = r.expect("answered");
        assert_eq!(r.status(), 200);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    };
    let mut sub = EventStream::open(&client, &a.base(), None).await;
    let mut seen = Vec::new();

    // Both replicas, alternately.
    for n in 0..10 {
        post_to(if n % 2 == 0 { &a } else { &b }, &mut ids).await;
    }
    sub.until_completed(&ids, &mut seen).await;

    // NATS unreachable for three seconds under load: every request is still answered.
    proxy.cut();
    let back = Instant::now() + Duration::from_secs(3);
    let before = ids.len();
    while Instant::now() < back {
        post_to(if ids.len().is_multiple_of(2) { &a } else { &b }, &mut ids).await;
    }
    let during_outage = ids.len() - before;
    assert!(during_outage >= 4, "only {during_outage} answers during the outage");
    proxy.restore();
    sub.until_completed(&ids, &mut seen).await;

    // A killed while its events stream; the subscriber moves to B with its last id.
    for n in 0..6 {
        post_to(if n % 2 == 0 { &a } else { &b }, &mut ids).await;
    }
    for _ in 0..5 {
        seen.push(sub.next().await);
    }
    a.signal("KILL");
    a.wait_exit();
    drop(sub);
    for _ in 0..6 {
        post_to(&b, &mut ids).await;
    }
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    let mut sub = EventStream::open(&client, &b.base(), Some(last)).await;
    sub.until_completed(&ids, &mut seen).await;

    // Once each, in order: numbers rise, and each report has its six steps, received first and
    // completed last.
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "an event repeated or out of order: {seqs:?}");
    for id in &ids {
        let steps: Vec<&str> = seen
            .iter()
            .filter(|e| e["report_id"] == id.as_str())
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(steps.len(), 6, "{id}: {steps:?}");
        assert_eq!((steps[0], steps[5]), ("triage_received", "triage_completed"), "{id}");
    }
    let reports: std::collections::HashSet<&str> =
        seen.iter().filter_map(|e| e["report_id"].as_str()).collect();
    assert!(
        reports
            .iter()
            .all(|r| ids.iter().any(|id| id == r) || *r == "00000000-0000-0000-0000-000000000000"),
        "events of a report nobody was answered"
    );
    for id in &ids {
        let r = client.get(format!("{}/v1/triage/{id}", b.base())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }
    // The figures, for the record (the assertions above are what holds them).
    println!(
        "two replicas: {} reports answered, {during_outage} of them during the NATS outage; \
         {} events received (on A, then on B after A was killed), none repeated, none missing",
        ids.len(),
        seen.len()
    );
    // The stream is the test's own; remove it.
    testkit::delete_nats_stream(&stream).await;
}
