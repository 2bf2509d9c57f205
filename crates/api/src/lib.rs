//! The REST API (actix-web): the only crate that knows HTTP and the JSON wire format.
//!
//! `Application::build(settings)` loads the knowledge base and the models, starts the agents'
//! worker pools (each HTTP worker gets its own coordinator and agent actors over them), and
//! binds the listener; tests build it on port 0 and read the bound port. Handlers validate,
//! hand the request to their worker's coordinator actor, keep the answer in the report store,
//! and reply; they never run inference themselves.
//! `GET /v1/events` streams the event bus as server-sent events ([`events`]); shutdown drains
//! in-flight requests before ending those streams ([`shutdown`]).

mod answer;
mod auth;
mod connections;
mod error;
mod events;
mod http_metrics;
pub mod openapi;
mod shutdown;
mod storage;
mod wire;

pub use answer::DISCLAIMER;
pub use auth::{Access, Caller};
pub use error::{ApiError, ErrorCode};

use actix::Addr;
use actix_web::dev::{Server, Service as _};
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError as _, guard, web};
use coordinator::{AgentSettings, AgentStats, Coordinator, Runtime, Triage};
use kb::KnowledgeBase;
use serde_json::json;
use settings::Settings;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::{ReportStore, StoreHealth, StoredReport};
use triage::{AgentKind, AgentModel};
use uuid::Uuid;

/// What every handler shares.
pub struct AppState {
    pub kb: Arc<KnowledgeBase>,
    pub store: Arc<dyn ReportStore>,
    /// Where triage publishes its events (numbered by this process).
    pub bus: bus::Bus,
    /// What `GET /v1/events` follows: the bus itself, or, with `events.nats_url`, the mirror of
    /// the JetStream stream that every replica publishes to (numbered by the stream).
    pub feed: bus::Bus,
    /// The NATS JetStream bridge, when `events.nats_url` is set.
    pub bridge: Option<Arc<bridge::Bridge>>,
    pub agents: Vec<AgentStats>,
    pub settings: Settings,
    pub metrics: Arc<metrics::Metrics>,
    pub auth: Arc<auth::Auth>,
    pub advice_texts: answer::AdviceTexts,
    /// The OpenAPI document served at `/openapi.json`, for this knowledge base.
    pub openapi: actix_web::web::Bytes,
    /// Recent events' SSE messages, shared by every event stream.
    pub(crate) frames: Arc<events::Frames>,
}

use store::Scope;

/// Every route the service serves: method, pattern, who may call it, handler (its method is
/// guarded where it is registered, `register_routes`). Registration,
/// the API-key middleware, the metrics' route labels, the OpenAPI document's security and the
/// tests all read this one list.
/// One route: what it answers, who may call it, the errors its handler sends, and the handler.
/// The errors of its access (a key, a scope) and those every route may send are added to the
/// OpenAPI document by [`openapi`]; a route's own are listed here, beside its handler.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub errors: &'static [ErrorCode],
    handler: fn() -> actix_web::Route,
}

pub(crate) const ROUTES: &[Route] = &[
    Route {
        method: Method::POST,
        path: "/v1/triage",
        access: Access::Scoped(Scope::TriageWrite),
        errors: &[
            ErrorCode::MalformedJson,
            ErrorCode::BadPayload,
            ErrorCode::BodyTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::NotAnObject,
            ErrorCode::UnknownField,
            ErrorCode::DuplicateField,
            ErrorCode::InvalidValue,
            ErrorCode::InvalidText,
            ErrorCode::EmptyRequest,
            ErrorCode::TextTooLong,
            ErrorCode::AgeOutOfRange,
            ErrorCode::VitalOutOfRange,
            ErrorCode::UnknownFinding,
            ErrorCode::Overloaded,
            ErrorCode::StoreUnavailable,
            ErrorCode::EventsUnavailable,
        ],
        handler: || web::route().to(post_triage),
    },
    Route {
        method: Method::GET,
        path: "/v1/triage/{id}",
        access: Access::Scoped(Scope::ReportsRead),
        errors: &[ErrorCode::NotFound, ErrorCode::StoreUnavailable],
        handler: || web::route().to(get_triage),
    },
    Route {
        method: Method::GET,
        path: "/v1/symptoms",
        access: Access::AnyKey,
        errors: &[],
        handler: || web::route().to(symptoms),
    },
    Route {
        method: Method::GET,
        path: "/v1/conditions",
        access: Access::AnyKey,
        errors: &[],
        handler: || web::route().to(conditions),
    },
    Route {
        method: Method::GET,
        path: "/v1/events",
        access: Access::Scoped(Scope::EventsRead),
        errors: &[
            ErrorCode::InvalidQuery,
            ErrorCode::UnknownParameter,
            ErrorCode::InvalidFilter,
            ErrorCode::InvalidLastEventId,
        ],
        handler: || web::route().to(events::events),
    },
    Route {
        method: Method::GET,
        path: "/healthz",
        access: Access::Public,
        errors: &[],
        handler: || web::route().to(healthz),
    },
    Route {
        method: Method::GET,
        path: "/readyz",
        access: Access::Public,
        errors: &[],
        handler: || web::route().to(readyz),
    },
    Route {
        method: Method::GET,
        path: "/metrics",
        access: Access::Public,
        errors: &[],
        handler: || web::route().to(http_metrics::metrics_text),
    },
    Route {
        method: Method::GET,
        path: "/openapi.json",
        access: Access::Public,
        errors: &[],
        handler: || web::route().to(openapi::document),
    },
    Route {
        method: Method::GET,
        path: "/docs",
        access: Access::Public,
        errors: &[],
        handler: || web::route().to(openapi::docs),
    },
];

/// `(method, pattern)` of every route in [`ROUTES`], plus the Swagger UI's files.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    ROUTES
        .iter()
        .map(|r| (r.method.as_str(), r.path))
        .chain([("GET", openapi::SWAGGER_UI_ROUTE)])
        .collect()
}

/// `(method, pattern, access)` of every route in [`ROUTES`].
pub fn route_access() -> Vec<(&'static str, &'static str, Access)> {
    ROUTES.iter().map(|r| (r.method.as_str(), r.path, r.access)).collect()
}

/// The route a resource name (its pattern) belongs to, as `ROUTES` has it, and the access it
/// asks for. Everything not in [`ROUTES`] (the Swagger UI's files, the 404 for unknown paths)
/// has no route and is public.
fn route_of(name: Option<&str>) -> (Option<&'static str>, Access) {
    name.and_then(|r| ROUTES.iter().find(|x| x.path == r))
        .map_or((None, Access::Public), |x| (Some(x.path), x.access))
}

/// Whether the route also answers HEAD (with the GET's head alone): every GET route but the
/// endless event stream.
fn answers_head(method: &Method, path: &str) -> bool {
    *method == Method::GET && path != "/v1/events"
}

fn register_routes(cfg: &mut web::ServiceConfig) {
    for Route { method, path, handler, .. } in ROUTES {
        // Named by its pattern so the metrics read the route label without allocating; the
        // method guard sits on the resource, as `App::route` puts it.
        let resource = web::resource(*path).name(path);
        let resource = if answers_head(method, path) {
            resource.guard(guard::Any(guard::Get()).or(guard::Head()))
        } else {
            resource.guard(guard::Method(method.clone()))
        };
        cfg.service(resource.route(handler()));
    }
    cfg.service(openapi::swagger_ui());
}

pub struct Application {
    port: u16,
    server: Server,
    bus: bus::Bus,
    feed: bus::Bus,
    bridge: Option<Arc<bridge::Bridge>>,
    in_flight: shutdown::InFlight,
    auth: Arc<auth::Auth>,
    audit_task: tokio::task::JoinHandle<()>,
    metrics: Arc<metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Kb(#[from] kb::KbError),
    #[error(transparent)]
    Model(#[from] ml::io::ModelIoError),
    #[error("device: {0}")]
    Device(#[from] ml::DeviceError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Events(String),
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
        let kb_dir = if settings.models.kb_dir.is_empty() {
            kb::default_dir()
        } else {
            PathBuf::from(&settings.models.kb_dir)
        };
        let kb = Arc::new(kb::load_dir(kb_dir)?);
        let device = ml::select_device(settings.models.device.parse()?)?;
        // The agents already run in parallel; a product split over the cores would compete with them.
        ml::serial_matrix_products();
        let dirs = if settings.models.dir.is_empty() {
            triage::ModelDirs::default()
        } else {
            triage::ModelDirs::under(Path::new(&settings.models.dir))
        };
        let models = Arc::new(triage::Models::load(kb.clone(), &dirs, &device)?);
        Self::build_with_agents(settings, kb, triage::ModelAgent::all(models)).await
    }

    /// Builds around the given agents (the real models, or test doubles of the agent trait).
    pub async fn build_with_agents(
        settings: Settings,
        kb: Arc<KnowledgeBase>,
        agents: Vec<Arc<dyn AgentModel>>,
    ) -> Result<Application, BuildError> {
        let store = storage::open(&settings).await.map_err(BuildError::Store)?;
        let (bus, _event_sink) = storage::bus_into(&settings, &store).await;
        let bridge = storage::open_bridge(&settings).await.map_err(BuildError::Events)?;
        let feed = match &bridge {
            Some(bridge) => {
                storage::spawn_bridge_sink(&bus, bridge.clone());
                bridge.feed().clone()
            }
            None => bus.clone(),
        };
        let keys = storage::open_keys(&settings).map_err(BuildError::Store)?;
        let auth = Arc::new(auth::Auth::new(&settings.auth, keys));
        let flush_every = Duration::from_millis(settings.auth.audit_flush_ms);
        let flusher = auth.clone();
        let audit_task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                flusher.flush().await;
            }
        });
        let metrics = metrics::Metrics::new();
        let runtime = Runtime::new(
            kb.clone(),
            agents,
            |k| agent_settings(&settings, k),
            bus.clone(),
            &metrics,
        );
        let stats = runtime.stats();
        let backlog_of = store.clone();
        metrics.on_gather(move |m| {
            m.set_store_backlog(backlog_of.backlog());
            let (bytes, limit) = backlog_of.spool_bytes();
            m.set_store_spool(bytes, limit);
            m.set_store_spool_age(backlog_of.spool_age());
        });
        if let Some(bridge) = bridge.clone() {
            metrics.on_gather(move |m| {
                let stats = bridge.stats();
                let (bytes, limit) = bridge.outbox_bytes();
                m.set_events(stats.published, stats.backlog, bytes, limit);
            });
        }
        let http = metrics.http(ROUTES.iter().map(|r| r.path).chain([openapi::SWAGGER_UI_ROUTE]));
        if settings.auth.required {
            tracing::info!(keys = auth.keys().kind(), "API keys required on /v1 routes");
        }
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr)
            .map_err(|e| BuildError::Bind { addr: addr.clone(), source: e })?;
        let port = listener.local_addr().map_err(|e| BuildError::Bind { addr, source: e })?.port();
        let workers = settings.server.workers;
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        let in_flight = shutdown::InFlight::default();
        let metrics_handle = metrics.clone();
        let state = web::Data::new(AppState {
            advice_texts: answer::AdviceTexts::of(&kb),
            openapi: openapi::document_json(&kb).into(),
            frames: Arc::new(events::Frames::new(settings.bus.capacity)),
            kb,
            store,
            bus: bus.clone(),
            feed: feed.clone(),
            bridge: bridge.clone(),
            agents: stats,
            settings,
            metrics,
            auth: auth.clone(),
        });
        let gate = auth.clone();
        let tracker = in_flight.clone();
        let limits = connections::Limits::new(
            state.settings.server.max_connections_per_client,
            state.settings.server.max_connections,
        );
        tracing::info!(
            global = limits.global(),
            per_client = state.settings.server.max_connections_per_client,
            "connection limits"
        );
        let counted = limits.clone();
        state.metrics.on_gather(move |m| m.set_connections(counted.open(), counted.refused()));
        let retry_after = state.settings.server.retry_after_secs;
        let handler_timeout = Duration::from_millis(state.settings.server.handler_timeout_ms);
        let on_connect = limits.clone();
        let sockets = connections::SocketOptions::of(&state.settings.server);
        let server = HttpServer::new(move || {
            let tracker = tracker.clone();
            // Called once on each worker thread: that worker's own coordinator and agent actors
            // (over the shared pools and breakers), so a request never leaves its thread but for
            // the agents' worker threads.
            let coordinator = web::Data::new(runtime.start_local());
            App::new()
                // Innermost: the API key is checked after routing is known and before any
                // handler runs; a refusal is an ordinary response the layers above count.
                .wrap(auth::RequireKey(gate.clone()))
                .wrap(http_metrics::RecordRequests(http.clone()))
                .app_data(state.clone())
                .app_data(coordinator)
                .wrap_fn(move |req, srv| {
                    let guard = tracker.track(&req);
                    // Every request but the endless event stream has a deadline.
                    let deadline = guard.is_some().then_some(handler_timeout);
                    let response = srv.call(req);
                    async move {
                        let response = match deadline {
                            Some(d) => {
                                tokio::time::timeout(d, response).await.unwrap_or_else(|_| {
                                    Err(ApiError::handler_timeout(d, retry_after).into())
                                })
                            }
                            None => response.await,
                        };
                        drop(guard);
                        response
                    }
                })
                // Outermost: a connection over its limit costs one cheap answer, and nothing
                // below runs for it.
                .wrap_fn(move |req, srv| {
                    let refusal = req
                        .conn_data::<connections::Slot>()
                        .and_then(|slot| slot.refusal(retry_after));
                    match refusal {
                        None => futures_util::future::Either::Left(srv.call(req)),
                        Some(e) => {
                            futures_util::future::Either::Right(std::future::ready(Err(e.into())))
                        }
                    }
                })
                .app_data(web::PathConfig::default().error_handler(|_, _| {
                    ApiError::new(ErrorCode::NotFound, "no such report").into()
                }))
                .configure(register_routes)
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .on_connect(move |conn, data| {
            let tcp = conn.downcast_ref::<actix_web::rt::net::TcpStream>();
            if let Some(tcp) = tcp {
                connections::tune(tcp, &sockets);
            }
            data.insert(on_connect.admit(tcp.and_then(|s| s.peer_addr().ok()).map(|a| a.ip())));
        })
        // The hard ceiling under the limits above: past it the server stops accepting.
        .max_connections(limits.hard_per_worker(workers))
        // Signals are handled in `run_until_stopped`, which orders the shutdown.
        .disable_signals()
        .shutdown_timeout(shutdown_timeout)
        .listen(listener)
        .map_err(|e| BuildError::Bind { addr: "listener".into(), source: e })?
        .run();
        Ok(Application {
            port,
            server,
            bus,
            feed,
            bridge,
            in_flight,
            auth,
            audit_task,
            metrics: metrics_handle,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's metrics, for exporters beside `GET /metrics` (OTLP).
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.metrics.clone()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully (see [`Application::run_until`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown::os_signal()).await
    }

    /// Serves until `shutdown` resolves, then: stops accepting connections, lets every request
    /// in flight finish (the agents and the coordinator keep running for them), closes the bus
    /// so event streams end instead of holding the workers for `server.shutdown_timeout_secs`,
    /// and returns once the workers have let go of their connections.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let result = shutdown::serve(
            self.server,
            vec![self.bus, self.feed],
            self.bridge,
            self.in_flight,
            shutdown,
        )
        .await;
        // The last key-use counts, once no request can add to them.
        self.audit_task.abort();
        self.auth.flush().await;
        result
    }
}

/// No route: a 404, or a 405 with `Allow` when the path is a route's and only the method is
/// wrong; both with the JSON error body.
async fn not_found(req: HttpRequest) -> HttpResponse {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|r| path_matches(r.path, req.path()))
        .flat_map(|r| {
            if answers_head(&r.method, r.path) {
                vec!["GET", "HEAD"]
            } else {
                vec![r.method.as_str()]
            }
        })
        .collect();
    if allowed.is_empty() {
        return ApiError::new(ErrorCode::NotFound, "no such route").error_response();
    }
    let allow = allowed.join(", ");
    let message = format!("{} is not served here; use {allow}", req.method());
    let mut response = ApiError::new(ErrorCode::MethodNotAllowed, message).error_response();
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_str(&allow)
            .expect("route methods are header-safe"),
    );
    response
}

/// Does `path` match a route pattern, where `{name}` stands for one path segment?
fn path_matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') && !b.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Reads the body up to `limit` bytes; anything larger is a 413 without reading the rest.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<web::BytesMut, ApiError> {
    use futures_util::StreamExt;
    let too_large = || {
        ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is limited to {limit} bytes"))
    };
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::debug!(error = %e, "request body could not be read");
                ApiError::new(ErrorCode::BadPayload, "the body could not be read as sent (check Content-Length and the transfer encoding)")
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    // Headers have their own timeout in actix; a body that starts and then stalls would hold
    // the connection (and its memory) for as long as the client likes without this one.
    tokio::time::timeout(deadline, read).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorCode::BodyTimeout,
            format!("the body did not arrive within {} ms", deadline.as_millis()),
        ))
    })
}

/// Is this Content-Type JSON in UTF-8: `application/json`, with no charset or a UTF-8 one?
/// (`None`: not JSON; `Some(false)`: JSON in another charset.)
fn json_in_utf8(content_type: &str) -> Option<bool> {
    let mut parts = content_type.split(';');
    if !parts.next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        return None;
    }
    Some(parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    }))
}

/// Triage what a person says: findings, ranked conditions, care advice and a level.
#[utoipa::path(
    post,
    path = "/v1/triage",
    tag = "triage",
    request_body(content = wire::TriageRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer, kept: `GET /v1/triage/{id}` returns it. A degraded answer (some agent not ok) is still a 200.", body = answer::TriageAnswer),
    )
)]
async fn post_triage(
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
    state: web::Data<AppState>,
    coordinator: web::Data<Addr<Coordinator>>,
) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.server.max_body_bytes;
    if req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is limited to {limit} bytes"),
        ));
    }
    match req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(json_in_utf8)
    {
        Some(true) => {}
        Some(false) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body in UTF-8 (charset=utf-8, or no charset)",
            ));
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the request as application/json",
            ));
        }
    }
    let body = read_body(
        payload,
        limit,
        std::time::Duration::from_millis(state.settings.server.body_timeout_ms),
    )
    .await?;
    let parsed = wire::parse(&body)?;
    let v = wire::validate(parsed, &state.kb, state.settings.server.max_text_chars)?;
    // An answer is only given once its events can be kept: with NATS away long enough to
    // fill the outbox, new requests wait outside rather than lose their events.
    if state.bridge.as_ref().is_some_and(|b| b.full()) {
        return Err(ApiError::new(
            ErrorCode::EventsUnavailable,
            "events cannot be kept right now; retry shortly",
        )
        .retry_after(state.settings.server.retry_after_secs));
    }
    let id = store::new_report_id();
    // The spans below the request's are made only for a trace that is exported (see
    // `telemetry::is_sampled`); the coordinator makes none under a disabled parent.
    let current = tracing::Span::current();
    let traced = telemetry::is_sampled(&current);
    let parent = if traced { current } else { tracing::Span::none() };
    let case = Arc::new(state.kb.prepare(v.input.clone()));
    let coordinator::Triaged { outcome, events } = coordinator
        .send(Triage { id, input: case.clone(), span: parent, owner: caller.key_id() })
        .await
        .map_err(|_| ApiError::overloaded(state.settings.server.retry_after_secs))?
        .map_err(|_| ApiError::overloaded(state.settings.server.retry_after_secs))?;
    // Serialised once: the same text is kept and sent, so a stored report reads back identical.
    let body = store::JsonBody::new(&answer::wire(
        id,
        &triage::assemble(&state.kb, &v.request(), &case.reading, &outcome),
        &state.advice_texts,
    ))
    .map_err(|e| ApiError::internal(Some(id), &e))?;
    let report = StoredReport {
        id,
        created_at: chrono::Utc::now(),
        level: outcome.decision.level,
        top_condition: outcome
            .conditions
            .as_ref()
            .and_then(|c| c.first())
            .map(|r| state.kb.conditions[r.condition].icd10.clone()),
        degraded: outcome.degraded,
        api_key_id: caller.key_id(),
        body: body.clone(),
        free_text: Some(v.input.text.clone()).filter(|t| !t.is_empty()).map(store::FreeText::new),
        events: events.iter().map(|e| bus::DiagnosisEvent::clone(e)).collect(),
    };
    // Acknowledged means kept: the answer is only returned once the store has it.
    let started = std::time::Instant::now();
    let store_span = if traced {
        tracing::info_span!("store.put", store = state.store.kind())
    } else {
        tracing::Span::none()
    };
    let kept = tracing::Instrument::instrument(state.store.put(report), store_span).await;
    state.metrics.store_write().observe(started.elapsed().as_secs_f64());
    kept.map_err(|e| {
        ApiError::store_unavailable(state.settings.server.retry_after_secs, Some(id), &e)
    })?;
    // With NATS: answered once JetStream or the outbox has the events, so an answer a client
    // got always has its events in the stream, sooner or later.
    if let Some(bridge) = &state.bridge {
        bridge.publish(&events).await.map_err(|e| {
            tracing::warn!(report_id = %id, error = %e, "the events of a kept report could not be published");
            ApiError::new(ErrorCode::EventsUnavailable, "events cannot be kept right now; retry shortly")
                .retry_after(state.settings.server.retry_after_secs)
        })?;
    }
    Ok(json_response(&body))
}

/// A kept answer as a 200 with its JSON text.
fn json_response(body: &store::JsonBody) -> HttpResponse {
    HttpResponse::Ok().content_type(actix_web::http::header::ContentType::json()).body(body.bytes())
}

/// A stored report: the same answer `POST /v1/triage` gave.
#[utoipa::path(
    get,
    path = "/v1/triage/{id}",
    tag = "triage",
    params(("id" = Uuid, Path, description = "The report id of the answer.")),
    responses(
        (status = 200, description = "The stored answer.", body = answer::TriageAnswer),
    )
)]
async fn get_triage(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path.into_inner())
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "no such report"))?;
    match state.store.get(id).await {
        // Another key's report is "not found", not "forbidden": a key cannot even learn which
        // ids exist.
        Ok(Some(r)) if caller.may_read(r.api_key_id) => Ok(json_response(&r.body)),
        Ok(_) => Err(ApiError::new(ErrorCode::NotFound, "no such report")),
        Err(e) => {
            Err(ApiError::store_unavailable(state.settings.server.retry_after_secs, Some(id), &e))
        }
    }
}

/// Every symptom (finding) the service knows, with the phrasings it recognises.
#[utoipa::path(get, path = "/v1/symptoms", tag = "vocabulary", responses((status = 200, description = "The symptom vocabulary.", body = wire::SymptomList)))]
async fn symptoms(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(wire::SymptomList::of(&state.kb))
}

/// Every condition the service knows, with its ICD-10 code.
#[utoipa::path(get, path = "/v1/conditions", tag = "vocabulary", responses((status = 200, description = "The condition vocabulary.", body = wire::ConditionList)))]
async fn conditions(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(wire::ConditionList::of(&state.kb))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive.", body = openapi::Health)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(openapi::Health { status: "ok" })
}

/// The models are loaded and the store is reachable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready (the store may be degraded).", body = openapi::Readiness),
        (status = 503, description = "Not ready: the store is down.", body = openapi::Readiness),
    )
)]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.health().await;
    let agents: serde_json::Map<String, serde_json::Value> = state
        .agents
        .iter()
        .map(|a| (a.kind.as_str().to_string(), json!({"model": a.version, "breaker": a.breaker()})))
        .collect();
    let (ok, store_json) = match store {
        StoreHealth::Ok => (true, json!({"kind": state.store.kind(), "status": "ok"})),
        StoreHealth::Degraded { reason } => {
            (true, json!({"kind": state.store.kind(), "status": "degraded", "reason": reason}))
        }
        StoreHealth::Down { reason } => {
            (false, json!({"kind": state.store.kind(), "status": "down", "reason": reason}))
        }
    };
    let body = json!({"status": if ok { "ready" } else { "not_ready" }, "models": "loaded", "store": store_json, "agents": agents});
    if ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
