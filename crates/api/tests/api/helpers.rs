//! Starting the service for a test.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use triage::{AgentKind, AgentModel, AgentOutput};

pub fn kb() -> Arc<kb::KnowledgeBase> {
    static KB: OnceLock<Arc<kb::KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"))).clone()
}

/// The committed models, loaded once for the whole test binary.
pub fn models() -> Arc<triage::Models> {
    static M: OnceLock<Arc<triage::Models>> = OnceLock::new();
    M.get_or_init(|| {
        let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
        Arc::new(
            triage::Models::load(kb(), &triage::ModelDirs::default(), &device)
                .expect("committed models"),
        )
    })
    .clone()
}

pub fn test_settings() -> settings::Settings {
    let mut s =
        settings::Settings::load(&settings::default_dir(), Some("test"), None).expect("settings");
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.workers = 2;
    // Debug builds on a busy CI machine: generous deadlines, so only the doubles time out.
    s.agents.default.deadline_ms = 5000;
    // The memory store: tests run at once must not share the default file under data/. The
    // durable store has its own tests (embedded_store.rs), each with its own folder.
    s.store.path = String::new();
    s
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn post_json(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/triage", self.base))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.expect("request")
    }
}

pub async fn spawn_with(settings: settings::Settings, agents: Vec<Arc<dyn AgentModel>>) -> TestApp {
    let app =
        api::Application::build_with_agents(settings, kb(), agents).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    // Not `run_until_stopped`: a test binary should not take over SIGINT/SIGTERM.
    actix_rt::spawn(app.run_until(std::future::pending()));
    TestApp { base, client: reqwest::Client::new() }
}

/// The service, with a trigger that starts a graceful shutdown (as SIGTERM does) and the
/// handle of the server task, which ends when the shutdown is complete.
pub async fn spawn_stoppable(
    settings: settings::Settings,
    agents: Vec<Arc<dyn AgentModel>>,
) -> (TestApp, tokio::sync::oneshot::Sender<()>, actix_rt::task::JoinHandle<std::io::Result<()>>) {
    let app =
        api::Application::build_with_agents(settings, kb(), agents).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = actix_rt::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    (TestApp { base, client: reqwest::Client::new() }, stop, server)
}

/// The real service with the committed models.
pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings(), triage::ModelAgent::all(models())).await
}

/// A test double around a real agent: it fails, or is slow, on purpose.
pub struct Faulty {
    pub inner: Arc<dyn AgentModel>,
    pub fail: bool,
    pub delay: Duration,
}

impl AgentModel for Faulty {
    fn kind(&self) -> AgentKind {
        self.inner.kind()
    }
    fn version(&self) -> String {
        self.inner.version()
    }
    fn infer(&self, batch: &[&kb::Case]) -> Vec<AgentOutput> {
        std::thread::sleep(self.delay);
        if self.fail { Vec::new() } else { self.inner.infer(batch) }
    }
}

/// The real agents, with `kind` replaced by a failing double.
pub fn with_failing(kind: AgentKind) -> Vec<Arc<dyn AgentModel>> {
    triage::ModelAgent::all(models())
        .into_iter()
        .map(|a| {
            if a.kind() == kind {
                Arc::new(Faulty { inner: a, fail: true, delay: Duration::ZERO })
                    as Arc<dyn AgentModel>
            } else {
                a
            }
        })
        .collect()
}

/// A double around a real agent whose failure can be switched on and off, and that panics on
/// any request whose text contains `panic_on`.
pub struct Flaky {
    pub inner: Arc<dyn AgentModel>,
    pub fail: Arc<AtomicBool>,
    pub panic_on: Option<&'static str>,
}

impl AgentModel for Flaky {
    fn kind(&self) -> AgentKind {
        self.inner.kind()
    }
    fn version(&self) -> String {
        self.inner.version()
    }
    fn infer(&self, batch: &[&kb::Case]) -> Vec<AgentOutput> {
        if let Some(word) = self.panic_on
            && batch.iter().any(|c| c.text.contains(word))
        {
            panic!("a deliberately panicking agent");
        }
        if self.fail.load(Ordering::SeqCst) { Vec::new() } else { self.inner.infer(batch) }
    }
}

/// The real agents with `kind` replaced by `double(real agent)`.
pub fn replacing(
    kind: AgentKind,
    double: impl Fn(Arc<dyn AgentModel>) -> Arc<dyn AgentModel>,
) -> Vec<Arc<dyn AgentModel>> {
    triage::ModelAgent::all(models())
        .into_iter()
        .map(|a| if a.kind() == kind { double(a) } else { a })
        .collect()
}

/// Generous: a debug build on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// One server-sent-events message.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    /// A `: comment` line (`subscribed`, `keep-alive`).
    Comment(String),
    Message {
        id: Option<u64>,
        event: String,
        data: Value,
    },
}

/// A minimal SSE reader over a streaming reqwest response.
pub struct SseStream {
    response: reqwest::Response,
    buf: String,
}

impl SseStream {
    /// `GET /v1/events{query}`, optionally with `Last-Event-ID`; waits for the `: subscribed`
    /// comment, after which every event published reaches this stream.
    pub async fn open(app: &TestApp, query: &str, last_event_id: Option<u64>) -> SseStream {
        Self::open_as(app, query, last_event_id, None).await
    }

    /// As [`SseStream::open`], with an API key.
    pub async fn open_as(
        app: &TestApp,
        query: &str,
        last_event_id: Option<u64>,
        key: Option<&str>,
    ) -> SseStream {
        let mut req = app.client.get(format!("{}/v1/events{query}", app.base));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = tokio::time::timeout(WAIT, req.send())
            .await
            .expect("event stream headers in time")
            .expect("request");
        assert_eq!(response.status(), 200, "{query}");
        let ctype = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ctype.starts_with("text/event-stream"), "{ctype}");
        let mut s = SseStream { response, buf: String::new() };
        assert_eq!(s.next().await, Some(Sse::Comment("subscribed".into())));
        s
    }

    /// The next message; `None` when the stream has ended. Panics if nothing comes in `WAIT`.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse_block(block.trim_end_matches('\n')));
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an SSE message in time")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buf.push_str(std::str::from_utf8(&bytes).expect("utf-8")),
                None => {
                    assert!(
                        self.buf.is_empty(),
                        "the stream ended inside a message: {:?}",
                        self.buf
                    );
                    return None;
                }
            }
        }
    }

    /// The next message that is not a comment.
    pub async fn next_message(&mut self) -> Option<Sse> {
        loop {
            match self.next().await? {
                Sse::Comment(_) => continue,
                m => return Some(m),
            }
        }
    }

    /// The next event (not a gap, not a comment) as its JSON, checking the `id:` and `event:`
    /// lines agree with it.
    pub async fn next_event(&mut self) -> Value {
        match self.next_message().await {
            Some(Sse::Message { id, event, data }) => {
                assert_eq!(id, data["seq"].as_u64(), "{data}");
                assert_eq!(event, data["type"], "{data}");
                data
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

fn parse_block(block: &str) -> Sse {
    let (mut id, mut event, mut data) = (None, String::new(), None);
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            return Sse::Comment(c.trim().to_string());
        }
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => id = Some(value.parse().expect("a numeric id")),
            "event" => event = value.to_string(),
            "data" => data = Some(serde_json::from_str(value).expect("one line of JSON")),
            other => panic!("unexpected SSE field {other}"),
        }
    }
    Sse::Message { id, event, data: data.expect("a data line") }
}
