//! The REST API (actix-web): the only crate that knows HTTP and the JSON wire format.
//!
//! `Application::build(settings)` loads the knowledge base and the models, starts the
//! coordinator and its agent actors, and binds the listener; tests build it on port 0 and read
//! the bound port. Handlers validate, hand the request to the coordinator actor, keep the
//! answer in the report store, and reply; they never run inference themselves.
//! `GET /v1/events` streams the event bus as server-sent events ([`events`]); shutdown drains
//! in-flight requests before ending those streams ([`shutdown`]).

mod answer;
mod error;
mod events;
mod shutdown;
mod wire;

pub use answer::DISCLAIMER;
pub use error::ApiError;

use actix::Addr;
use actix_web::dev::{Server, Service as _};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use coordinator::{AgentKind, AgentModel, AgentSettings, AgentStats, Coordinator, Triage};
use kb::KnowledgeBase;
use serde_json::json;
use settings::Settings;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::{MemoryStore, ReportStore, StoreHealth, StoredReport};
use uuid::Uuid;

/// What every handler shares.
pub struct AppState {
    pub kb: Arc<KnowledgeBase>,
    pub coordinator: Addr<Coordinator>,
    pub store: Arc<dyn ReportStore>,
    pub bus: bus::Bus,
    pub agents: Vec<AgentStats>,
    pub settings: Settings,
}

pub struct Application {
    port: u16,
    server: Server,
    bus: bus::Bus,
    in_flight: shutdown::InFlight,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Kb(#[from] kb::KbError),
    #[error(transparent)]
    Model(#[from] ml::io::ModelIoError),
    #[error("device: {0}")]
    Device(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Store(String),
}

fn agent_settings(s: &Settings, kind: AgentKind) -> AgentSettings {
    let a = s.agents.get(kind.as_str());
    AgentSettings {
        workers: a.workers,
        queue: a.queue,
        max_batch: a.max_batch,
        max_wait: Duration::from_micros(a.max_wait_us),
        deadline: Duration::from_millis(a.deadline_ms),
        breaker_failures: a.breaker_failures,
        breaker_backoff: Duration::from_millis(a.breaker_backoff_ms),
        breaker_backoff_max: Duration::from_millis(a.breaker_backoff_max_ms),
    }
}

impl Application {
    /// Loads the knowledge base and the four models named by `settings`, then builds.
    pub async fn build(settings: Settings) -> Result<Application, BuildError> {
        let kb_dir = if settings.models.kb_dir.is_empty() { kb::default_dir() } else { PathBuf::from(&settings.models.kb_dir) };
        let kb = Arc::new(kb::load_dir(kb_dir)?);
        let device = ml::select_device(settings.models.device.parse().map_err(BuildError::Device)?).map_err(BuildError::Device)?;
        let dirs = if settings.models.dir.is_empty() {
            pipeline::ModelDirs::default()
        } else {
            let r = PathBuf::from(&settings.models.dir);
            pipeline::ModelDirs {
                symptom_classifier: r.join("symptom-classifier"),
                condition_matcher: r.join("condition-matcher"),
                treatment_retriever: r.join("treatment-retriever"),
                emergency_detector: r.join("emergency-detector"),
            }
        };
        let models = Arc::new(pipeline::Models::load(kb.clone(), &dirs, &device)?);
        Self::build_with_agents(settings, kb, coordinator::ModelAgent::all(models)).await
    }

    /// Builds around the given agents (the real models, or test doubles of the agent trait).
    pub async fn build_with_agents(settings: Settings, kb: Arc<KnowledgeBase>, agents: Vec<Arc<dyn AgentModel>>) -> Result<Application, BuildError> {
        let bus = bus::Bus::new(settings.bus.capacity, settings.bus.replay);
        let store: Arc<dyn ReportStore> = Arc::new(MemoryStore::new(settings.store.capacity).map_err(|e| BuildError::Store(e.to_string()))?);
        let (coordinator, stats) = Coordinator::start(kb.clone(), agents, |k| agent_settings(&settings, k), bus.clone());
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|e| BuildError::Bind { addr: addr.clone(), source: e })?;
        let port = listener.local_addr().map_err(|e| BuildError::Bind { addr, source: e })?.port();
        let workers = settings.server.workers;
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let in_flight = shutdown::InFlight::default();
        let state = web::Data::new(AppState { kb, coordinator, store, bus: bus.clone(), agents: stats, settings });
        let tracker = in_flight.clone();
        let server = HttpServer::new(move || {
            let tracker = tracker.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, srv| {
                    let guard = tracker.track(&req);
                    let response = srv.call(req);
                    async move {
                        let response = response.await;
                        drop(guard);
                        response
                    }
                })
                .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such report").into()))
                .route("/v1/triage", web::post().to(post_triage))
                .route("/v1/triage/{id}", web::get().to(get_triage))
                .route("/v1/symptoms", web::get().to(symptoms))
                .route("/v1/conditions", web::get().to(conditions))
                .route("/v1/events", web::get().to(events::events))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .default_service(web::to(not_found))
        })
        .workers(workers)
        // Signals are handled in `run_until_stopped`, which orders the shutdown.
        .disable_signals()
        .shutdown_timeout(shutdown_timeout)
        .listen(listener)
        .map_err(|e| BuildError::Bind { addr: "listener".into(), source: e })?
        .run();
        Ok(Application { port, server, bus, in_flight })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully (see [`Application::run_until`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown::os_signal()).await
    }

    /// Serves until `shutdown` resolves, then: stops accepting connections, lets every request
    /// in flight finish (the agents and the coordinator keep running for them), closes the bus
    /// so event streams end instead of holding the workers for `server.shutdown_timeout_secs`,
    /// and returns once the workers have let go of their connections.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        shutdown::serve(self.server, self.bus, self.in_flight, shutdown).await
    }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))
}

/// Reads the body up to `limit` bytes; anything larger is a 413 without reading the rest.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    use futures_util::StreamExt;
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is limited to {limit} bytes"));
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_payload", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn post_triage(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.server.max_body_bytes;
    if req.headers().get(actix_web::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n > limit) {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is limited to {limit} bytes")));
    }
    let json_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json_type {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the request as application/json"));
    }
    let body = read_body(payload, limit).await?;
    let parsed = wire::parse(&body)?;
    let v = wire::validate(parsed, &state.kb, state.settings.server.max_text_chars)?;
    let id = Uuid::new_v4();
    let outcome = state
        .coordinator
        .send(Triage { id, input: Arc::new(v.input.clone()) })
        .await
        .map_err(|_| ApiError::overloaded(state.settings.server.retry_after_secs))?
        .map_err(|_| ApiError::overloaded(state.settings.server.retry_after_secs))?;
    let body = answer::build(&state.kb, &v, &outcome);
    let report = StoredReport {
        id,
        created_at: chrono::Utc::now(),
        level: outcome.decision.level.as_str().into(),
        top_condition: outcome.conditions.as_ref().and_then(|c| c.first()).map(|r| state.kb.conditions[r.condition].icd10.clone()),
        degraded: outcome.degraded,
        api_key_id: None,
        body: body.clone(),
    };
    // Acknowledged means kept: the answer is only returned once the store has it.
    state.store.put(report).await.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string()))?;
    Ok(HttpResponse::Ok().json(body))
}

async fn get_triage(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path.into_inner()).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such report"))?;
    match state.store.get(id).await {
        Ok(Some(r)) => Ok(HttpResponse::Ok().json(r.body)),
        Ok(None) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such report")),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())),
    }
}

async fn symptoms(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<_> = state
        .kb
        .findings
        .iter()
        .map(|f| json!({"id": f.id, "name": f.name, "red_flag": f.red_flag, "phrases": f.lay.iter().chain(&f.clinical).collect::<Vec<_>>()}))
        .collect();
    HttpResponse::Ok().json(json!({"symptoms": list}))
}

async fn conditions(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<_> = state
        .kb
        .conditions
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "icd10": c.icd10, "urgency": c.urgency.as_str(), "source": c.source}))
        .collect();
    HttpResponse::Ok().json(json!({"conditions": list}))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.health().await;
    let agents: serde_json::Map<String, serde_json::Value> = state
        .agents
        .iter()
        .map(|a| {
            let breaker = match a.breaker_state.load(std::sync::atomic::Ordering::Relaxed) {
                0 => "closed",
                1 => "open",
                _ => "half_open",
            };
            (a.kind.as_str().to_string(), json!({"model": a.version, "breaker": breaker}))
        })
        .collect();
    let (ok, store_json) = match store {
        StoreHealth::Ok => (true, json!({"kind": state.store.kind(), "status": "ok"})),
        StoreHealth::Degraded { reason } => (true, json!({"kind": state.store.kind(), "status": "degraded", "reason": reason})),
        StoreHealth::Down { reason } => (false, json!({"kind": state.store.kind(), "status": "down", "reason": reason})),
    };
    let body = json!({"status": if ok { "ready" } else { "not_ready" }, "models": "loaded", "store": store_json, "agents": agents});
    if ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
