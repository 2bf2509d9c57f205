//! API keys on the `/v1` routes: who is calling, whether the key has the route's scope, and
//! whether it is within its rate.
//!
//! Every route in [`crate::ROUTES`] declares its [`Access`]; one middleware ([`Auth::check`])
//! enforces it before the handler runs, so a route cannot forget to. A request that passes
//! carries its [`Caller`] in the request's extensions for the handler (reports are kept with,
//! and only read back by, the key that created them).
//!
//! Keys are looked up by their SHA-256 hash in the key store and cached for
//! `auth.cache_ttl_ms`, so a revoked key stops working within that time and a burst of
//! requests costs one lookup. While the key store is unreachable (PostgreSQL down), keys seen
//! before keep working from the cache; an unknown key gets a 503 rather than a wrong 401.
//!
//! Nothing here logs or stores a key or its hash: the audit log gets key ids and counts.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::rc::Rc;
use store::{ApiKey, AuditAction, AuditEntry, KeyHash, KeySecret, KeyStore, Scope};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, readiness, metrics and the documentation: no key, ever.
    Public,
    /// Any valid key (the vocabularies).
    AnyKey,
    /// A key with this scope.
    Scoped(Scope),
}

/// Who made a request that passed [`Auth::check`]. A handler takes it as an argument.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No key, on a service that does not require one (`auth.required = false`).
    Anonymous,
    Key(Arc<ApiKey>),
}

impl Caller {
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Caller::Anonymous => None,
            Caller::Key(k) => Some(k.id),
        }
    }

    /// Whether this caller may read a report created by `owner`: a key reads only its own;
    /// anonymous callers exist only where keys are not required, and read every report.
    pub fn may_read(&self, owner: Option<Uuid>) -> bool {
        match self {
            Caller::Anonymous => true,
            Caller::Key(k) => owner == Some(k.id),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Set by the middleware for every route that is not public; a handler of a public route
        // that asks for a caller gets a 500, which a test of each route would show at once.
        std::future::ready(
            req.extensions().get::<Caller>().cloned().ok_or_else(|| {
                ApiError::internal(None, &"a route that is not public has no caller")
            }),
        )
    }
}

struct Cached {
    key: Option<Arc<ApiKey>>,
    fetched: Instant,
}

/// Most keys (and unknown hashes) remembered; past this the cache starts again, which costs
/// one lookup per key.
const CACHE_CAP: usize = 10_000;

pub struct Auth {
    required: bool,
    keys: Arc<dyn KeyStore>,
    ttl: Duration,
    cache: Mutex<HashMap<KeyHash, Cached>>,
    limiter: DefaultKeyedRateLimiter<Uuid>,
    /// Counts since the last flush to the audit log, by key and action.
    usage: Mutex<HashMap<(Option<Uuid>, AuditAction), u64>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("required", &self.required)
            .field("keys", &self.keys.kind())
            .finish_non_exhaustive()
    }
}

fn unauthorized(code: ErrorCode, message: &'static str) -> ApiError {
    ApiError::new(code, message).field("Authorization")
}

impl Auth {
    pub fn new(settings: &settings::Auth, keys: Arc<dyn KeyStore>) -> Auth {
        let rate = NonZeroU32::new(settings.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(rate);
        Auth {
            required: settings.required,
            keys,
            ttl: Duration::from_millis(settings.cache_ttl_ms),
            cache: Mutex::new(HashMap::new()),
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            usage: Mutex::new(HashMap::new()),
        }
    }

    pub fn required(&self) -> bool {
        self.required
    }

    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    fn count(&self, key: Option<Uuid>, action: AuditAction) {
        *self
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((key, action))
            .or_insert(0) += 1;
    }

    /// Decides a request to a route with `access`; the caller on success.
    pub async fn check(&self, req: &HttpRequest, access: Access) -> Result<Caller, ApiError> {
        if access == Access::Public {
            return Ok(Caller::Anonymous);
        }
        let header = match req.headers().get(actix_web::http::header::AUTHORIZATION) {
            None if !self.required => return Ok(Caller::Anonymous),
            None => {
                self.count(None, AuditAction::AuthFailed);
                return Err(unauthorized(
                    ErrorCode::MissingApiKey,
                    "this route needs an API key: send Authorization: Bearer <key>",
                ));
            }
            Some(h) => h,
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            self.count(None, AuditAction::AuthFailed);
            return Err(unauthorized(
                ErrorCode::InvalidAuthorization,
                "the Authorization header must be: Bearer <key>",
            ));
        };
        // Anything not shaped like a key is refused without a lookup.
        let well_formed = token.len() == KeySecret::PREFIX.len() + 64
            && token.starts_with(KeySecret::PREFIX)
            && token[KeySecret::PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit());
        let key = if well_formed { self.lookup(KeySecret::new(token).hash()).await? } else { None };
        let Some(key) = key.filter(|k| k.is_active()) else {
            self.count(None, AuditAction::AuthFailed);
            return Err(unauthorized(
                ErrorCode::InvalidApiKey,
                "the API key is not valid (unknown or revoked)",
            ));
        };
        if let Access::Scoped(scope) = access
            && !key.allows(scope)
        {
            self.count(Some(key.id), AuditAction::ScopeDenied);
            return Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("this API key lacks the {scope} scope this route needs"),
            )
            .field("Authorization"));
        }
        if let Err(not_until) = self.limiter.check_key(&key.id) {
            self.count(Some(key.id), AuditAction::RateLimited);
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            // Whole seconds, rounded up: never tell a client to come back before it may.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "this API key is over its request rate; retry after the given seconds",
            )
            .retry_after(secs.max(1)));
        }
        self.count(Some(key.id), AuditAction::KeyUsed);
        Ok(Caller::Key(key))
    }

    async fn lookup(&self, hash: KeyHash) -> Result<Option<Arc<ApiKey>>, ApiError> {
        let stale = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            match cache.get(&hash) {
                Some(c) if c.fetched.elapsed() < self.ttl => return Ok(c.key.clone()),
                Some(c) => Some(c.key.clone()),
                None => None,
            }
        };
        match self.keys.find(&hash).await {
            Ok(found) => {
                let key = found.map(Arc::new);
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_CAP {
                    cache.clear();
                }
                cache.insert(hash, Cached { key: key.clone(), fetched: Instant::now() });
                Ok(key)
            }
            // The key store is unreachable: a key seen before keeps its last known state.
            Err(e) if stale.is_some() => {
                tracing::debug!(error = %e, "the key store failed a lookup; the cached state serves");
                Ok(stale.flatten())
            }
            // The cause goes to the log once; the client is told only to retry.
            Err(e) => {
                tracing::warn!(error = %e, "the key store failed a lookup");
                Err(ApiError::new(
                    ErrorCode::AuthUnavailable,
                    "API keys cannot be checked right now; retry shortly",
                )
                .retry_after(1))
            }
        }
    }

    /// Writes the counts gathered since the last call to the audit log. Counts that cannot be
    /// written are kept for the next call.
    pub async fn flush(&self) {
        let taken: Vec<((Option<Uuid>, AuditAction), u64)> =
            std::mem::take(&mut *self.usage.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if taken.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let entries = taken
            .iter()
            .map(|&((key, action), n)| AuditEntry {
                at: now,
                api_key_id: key,
                action,
                detail: serde_json::json!({"requests": n}),
            })
            .collect();
        if let Err(e) = self.keys.audit(entries).await {
            tracing::warn!(error = %e, entries = taken.len(), "cannot write the audit log; keeping the counts for the next try");
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, n) in taken {
                *usage.entry(k).or_insert(0) += n;
            }
        }
    }
}

/// The middleware that enforces each route's [`Access`] (from [`crate::ROUTES`]) and writes the
/// access log: method, route pattern, status, time and key id at `debug` (target
/// `triagent::access`); never the path's values, a header, or a body.
pub struct RequireKey(pub Arc<Auth>);

impl<S> Transform<S, ServiceRequest> for RequireKey
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = RequireKeyService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(RequireKeyService {
            service: Rc::new(service),
            auth: self.0.clone(),
        }))
    }
}

pub struct RequireKeyService<S> {
    service: Rc<S>,
    auth: Arc<Auth>,
}

impl<S> Service<ServiceRequest> for RequireKeyService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let auth = self.auth.clone();
        // One lookup of the matched route for the access check, the span and the access log.
        let (route, access) = crate::route_of(req.match_name());
        // The request's span: the root of its trace, or a child of the caller's `traceparent`.
        // Only the method, the route pattern and the status: never the path's values.
        let span = tracing::info_span!(
            "HTTP request",
            otel.kind = "server",
            http.request.method = %req.method(),
            http.route = route.unwrap_or("unmatched"),
            http.response.status_code = tracing::field::Empty
        );
        telemetry::continue_trace(&span, |h| req.headers().get(h).and_then(|v| v.to_str().ok()));
        let in_span = span.clone();
        Box::pin(async move {
            let log = tracing::enabled!(target: "triagent::access", tracing::Level::DEBUG).then(|| (Instant::now(), req.method().clone(), route.unwrap_or("-")));
            let (key, res) = match auth.check(req.request(), access).await {
                Ok(caller) => {
                    let key = caller.key_id();
                    req.extensions_mut().insert(caller);
                    (key, service.call(req).await)
                }
                Err(e) => (None, Ok(req.error_response(e))),
            };
            if let (Some((started, method, route)), Ok(r)) = (log, &res) {
                tracing::debug!(target: "triagent::access", %method, route, status = r.status().as_u16(), micros = started.elapsed().as_micros() as u64, key = ?key, "request");
            }
            let mut res = res;
            if let Ok(r) = &mut res {
                in_span.record("http.response.status_code", r.status().as_u16());
                if let Some(tp) = telemetry::traceparent(&in_span)
                    && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&tp)
                {
                    r.headers_mut().insert(actix_web::http::header::HeaderName::from_static("traceparent"), v);
                }
            }
            res
        }.instrument(span))
    }
}
