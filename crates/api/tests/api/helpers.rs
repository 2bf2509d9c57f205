//! Starting the service for a test.

use coordinator::{AgentKind, AgentModel, AgentOutput};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub fn kb() -> Arc<kb::KnowledgeBase> {
    static KB: OnceLock<Arc<kb::KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"))).clone()
}

/// The committed models, loaded once for the whole test binary.
pub fn models() -> Arc<pipeline::Models> {
    static M: OnceLock<Arc<pipeline::Models>> = OnceLock::new();
    M.get_or_init(|| {
        let device = ml::select_device(ml::DeviceChoice::Cpu).unwrap();
        Arc::new(pipeline::Models::load(kb(), &pipeline::ModelDirs::default(), &device).expect("committed models"))
    })
    .clone()
}

pub fn test_settings() -> settings::Settings {
    let mut s = settings::Settings::load(&settings::default_dir(), Some("test"), None).expect("settings");
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.workers = 2;
    // Debug builds on a busy CI machine: generous deadlines, so only the doubles time out.
    s.agents.default.deadline_ms = 5000;
    s
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn post_json(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(format!("{}/v1/triage", self.base)).json(body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.expect("request")
    }
}

pub async fn spawn_with(settings: settings::Settings, agents: Vec<Arc<dyn AgentModel>>) -> TestApp {
    let app = api::Application::build_with_agents(settings, kb(), agents).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until_stopped());
    TestApp { base, client: reqwest::Client::new() }
}

/// The real service with the committed models.
pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings(), coordinator::ModelAgent::all(models())).await
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
    coordinator::ModelAgent::all(models())
        .into_iter()
        .map(|a| if a.kind() == kind { Arc::new(Faulty { inner: a, fail: true, delay: Duration::ZERO }) as Arc<dyn AgentModel> } else { a })
        .collect()
}
