//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` declarations and the
//! wire types' `ToSchema` derives, served at `/openapi.json` and browsed with the Swagger UI
//! at `/docs/`.
//!
//! The closed vocabularies (levels, sex, advice kinds, agent statuses) are schemas built from
//! the code's own lists, so the document cannot drift from what the service sends or accepts.

use actix_web::HttpResponse;
use actix_web::http::header;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};

use crate::ErrorCode;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Triagent",
        description = "Medical triage from what a person says about their symptoms: findings, ranked conditions with ICD-10 codes, care advice and a triage level. Not a diagnosis and not a substitute for a clinician or emergency services."
    ),
    paths(
        crate::post_triage,
        crate::get_triage,
        crate::symptoms,
        crate::conditions,
        crate::healthz,
        crate::readyz,
        crate::http_metrics::metrics_text,
        document,
        docs
    ),
    components(schemas(crate::error::ErrorBody, LevelName, BreakerStateName, SexName, AdviceKindName, AgentStatusName, bus::DiagnosisEvent, bus::DiagnosisEventKind, bus::RankedCode)),
    modifiers(&EventStream, &Security, &ErrorResponses),
    tags(
        (name = "triage", description = "Triage a request and read stored reports."),
        (name = "vocabulary", description = "The symptoms and conditions the service knows."),
        (name = "events", description = "The diagnosis event stream."),
        (name = "operations", description = "Health, readiness, metrics and this documentation.")
    )
)]
pub struct ApiDoc;

/// The document as JSON, for the service's knowledge base: built once, at start.
pub fn document_json(kb: &kb::KnowledgeBase) -> String {
    let mut doc = base_document().clone();
    // A structured finding must be one the knowledge base knows (else 422 `unknown_finding`):
    // the ids are the schema's enum, so a schema-valid request is an accepted one.
    if let Some(id) = doc
        .pointer_mut("/components/schemas/FindingIn/properties/id")
        .and_then(serde_json::Value::as_object_mut)
    {
        id.insert(
            "enum".into(),
            kb.findings.iter().map(|f| serde_json::Value::from(f.id.as_str())).collect(),
        );
    }
    serde_json::to_string(&doc).expect("the OpenAPI document serialises")
}

/// What does not depend on the knowledge base, built once.
fn base_document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
        // Every code the service sends: clients may match on the enum.
        if let Some(code) = doc
            .pointer_mut("/components/schemas/ErrorDetail/properties/code")
            .and_then(serde_json::Value::as_object_mut)
        {
            code.insert(
                "enum".into(),
                ErrorCode::ALL.iter().map(|c| serde_json::Value::from(c.as_str())).collect(),
            );
        }
        // What the derive cannot say: a request gives `text` with something in it, or at least
        // one finding (else 422 `empty_request`), and `text` holds no NUL (422 `invalid_text`).
        if let Some(request) = doc.pointer_mut("/components/schemas/TriageRequest").and_then(serde_json::Value::as_object_mut) {
            request.insert(
                "anyOf".into(),
                serde_json::json!([
                    {"required": ["text"], "properties": {"text": {"type": "string", "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"}}},
                    {"required": ["findings"], "properties": {"findings": {"type": "array", "minItems": 1}}}
                ]),
            );
        }
        doc
    })
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json"))
)]
pub(crate) async fn document(state: actix_web::web::Data<crate::AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.openapi.clone())
}

/// The interactive documentation (Swagger UI), at `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 308, description = "Redirects to the Swagger UI at `/docs/` (its assets are relative to that path).", headers(("Location" = String))))
)]
pub(crate) async fn docs() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/docs/")).finish()
}

/// The Swagger UI's files under `/docs/`, reading the document from `/openapi.json` (served by
/// [`document`], so the UI registers no route of its own for it).
pub(crate) fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"]))
}

/// The route pattern of the Swagger UI's files.
pub(crate) const SWAGGER_UI_ROUTE: &str = "/docs/{_:.*}";

use bus::schema::vocabulary;
pub use bus::schema::{BreakerStateName, LevelName};

/// Sex as the API accepts it (`domain::Sex`).
pub struct SexName;

impl PartialSchema for SexName {
    fn schema() -> RefOr<Schema> {
        vocabulary("Sex.", domain::Sex::ALL.map(domain::Sex::as_str))
    }
}

impl ToSchema for SexName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Sex")
    }
}

/// The kind of a care-advice entry (`kb::AdviceKind`).
pub struct AdviceKindName;

impl PartialSchema for AdviceKindName {
    fn schema() -> RefOr<Schema> {
        vocabulary(
            "The kind of care advice: self_care, otc (over the counter), seek_care, emergency.",
            kb::AdviceKind::ALL.map(kb::AdviceKind::as_str),
        )
    }
}

impl ToSchema for AdviceKindName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AdviceKind")
    }
}

/// How an agent did on a request (`triage::AgentStatus` as the API reports it).
pub struct AgentStatusName;

impl PartialSchema for AgentStatusName {
    fn schema() -> RefOr<Schema> {
        use triage::AgentStatus::*;
        let mut names: Vec<&'static str> = [Ok, Timeout, Failed, CircuitOpen, Overloaded]
            .map(triage::AgentStatus::as_str)
            .to_vec();
        names.dedup();
        vocabulary(
            "How an agent did: ok, timeout (missed its deadline), failed (an error, or its queue was full), circuit_open (refused while its breaker is open).",
            names,
        )
    }
}

impl ToSchema for AgentStatusName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AgentStatus")
    }
}

/// `GET /healthz`.
#[derive(serde::Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process is alive.
    pub status: &'static str,
}

/// `GET /readyz` (200 when ready, 503 when not). Described here; the handler builds it.
#[derive(ToSchema)]
pub struct Readiness {
    pub status: ReadyStatus,
    /// `loaded`: the service only starts once its models are loaded.
    pub models: String,
    pub store: StoreReadiness,
    /// Each agent by name (`symptom_classifier`, ...).
    pub agents: BTreeMap<String, AgentReadiness>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

#[derive(ToSchema)]
pub struct StoreReadiness {
    /// The report store in use (`memory`).
    pub kind: String,
    /// `ok`, `degraded` (still ready) or `down` (not ready).
    pub status: String,
    /// Why the store is degraded or down.
    pub reason: Option<String>,
}

#[derive(ToSchema)]
pub struct AgentReadiness {
    /// The model version loaded.
    pub model: String,
    #[schema(value_type = BreakerStateName)]
    pub breaker: domain::BreakerState,
}

/// `GET /v1/events`, declared by path only: its handler lives with the event stream, and a
/// declaration there takes precedence over this one.
struct EventStream;

impl Modify for EventStream {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if openapi.paths.get_path_operation("/v1/events", HttpMethod::Get).is_some() {
            return;
        }
        let last_event_id = ParameterBuilder::new()
            .name("Last-Event-ID")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Resume after this event `seq` (sent by browsers on reconnection); events the replay buffer still holds are sent first."))
            .schema(Some(RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))).minimum(Some(0)).build()))))
            .build();
        let list = |name: &str, description: &str, values: &[&str]| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(format!("{description} Comma-separated; repeatable. Each one of: {}. Anything else is a 400 `invalid_filter`.", values.join(", "))))
                .schema(Some(RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).build()))))
                .build()
        };
        let after = ParameterBuilder::new()
            .name("after")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("Resume after this event `seq`, as `Last-Event-ID` (which wins when both are given)."))
            .schema(Some(RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))).minimum(Some(0)).build()))))
            .build();
        let stream = ResponseBuilder::new()
            .description("Server-sent events: one JSON `DiagnosisEvent` per message, with `id:` set to its `seq`. A subscriber that falls behind is told how many events it missed.")
            .content("text/event-stream", ContentBuilder::new().schema(Some(Ref::from_schema_name("DiagnosisEvent"))).build())
            .build();
        let op = OperationBuilder::new()
            .tag("events")
            .summary(Some("The diagnosis event stream."))
            .operation_id(Some("events"))
            .parameter(last_event_id)
            .parameter(list("type", "Only events of these types.", &bus::DiagnosisEventKind::TYPE_NAMES))
            .parameter(list("level", "Only events with one of these levels (`emergency_assessed` and `triage_completed` carry one).", &domain::TriageLevel::ALL.map(domain::TriageLevel::as_str)))
            .parameter(after)
            .response("200", stream)
            .build();
        openapi.paths.add_path_operation("/v1/events", vec![HttpMethod::Get], op);
    }
}

/// The API keys: a bearer security scheme, and on every `/v1` operation the scope it needs
/// (from [`crate::ROUTES`], the table the middleware enforces).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use crate::Access;
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `triagent keys create`, as `Authorization: Bearer tri_...`. Required on /v1 routes when auth.required is on (production); without it, a request with no key is served and one with a key is still checked."))
                    .build(),
            ),
        );
        for route in crate::ROUTES {
            let scopes: Vec<String> = match route.access {
                Access::Public => continue,
                Access::AnyKey => Vec::new(),
                Access::Scoped(s) => vec![s.as_str().to_string()],
            };
            if let Some(op) = operation(openapi, &route.method, route.path) {
                op.security = Some(vec![SecurityRequirement::new("api_key", scopes)]);
            }
        }
    }
}

/// Every error answer of every operation, from [`crate::ErrorCode`]: the route's own codes
/// (from [`crate::ROUTES`]), those of its access, and those any route may send, one response
/// per status, its description made of each code's. A status the handler already documents
/// with a body of its own (the readiness probe's 503) keeps it.
struct ErrorResponses;

/// What a request to a route with `access` may be refused with before its handler runs.
fn access_errors(access: crate::Access) -> Vec<ErrorCode> {
    use crate::Access;
    let mut codes = match access {
        Access::Public => return Vec::new(),
        Access::AnyKey | Access::Scoped(_) => vec![
            ErrorCode::MissingApiKey,
            ErrorCode::InvalidAuthorization,
            ErrorCode::InvalidApiKey,
            ErrorCode::RateLimited,
            ErrorCode::AuthUnavailable,
        ],
    };
    if matches!(access, Access::Scoped(_)) {
        codes.push(ErrorCode::InsufficientScope);
    }
    codes
}

/// What any request may be answered with, whatever its route: its connection is over a limit,
/// or it was not answered in time.
const EVERY_ROUTE: &[ErrorCode] = &[ErrorCode::TooManyConnections, ErrorCode::HandlerTimeout];

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for route in crate::ROUTES {
            let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
            for &code in route.errors.iter().chain(&access_errors(route.access)).chain(EVERY_ROUTE)
            {
                let codes = by_status.entry(code.status().as_u16()).or_default();
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
            let Some(op) = operation(openapi, &route.method, route.path) else { continue };
            for (status, codes) in by_status {
                let mut response =
                    ResponseBuilder::new().description(ErrorCode::describe(&codes)).content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    );
                if status == 429 || status == 503 {
                    response = response.header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(u64::schema())
                            .description(Some("Seconds to wait before retrying."))
                            .build(),
                    );
                }
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(response.build()));
            }
        }
    }
}

/// The operation a route's method and path name in the document, if it is there.
fn operation<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    method: &actix_web::http::Method,
    path: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    match method.as_str() {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        _ => None,
    }
}
