//! One error type for every route, with a stable code, an HTTP status and the field at fault,
//! rendered in docs/api.md's shape: `{"error": {"code", "message", "field"}}`.
//!
//! Every code a client can get is an [`ErrorCode`]: its status, its wire name and the sentence
//! the OpenAPI document gives for it come from the one declaration below, so a handler cannot
//! send a code the document does not describe, or a status that does not go with its code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

macro_rules! error_codes {
    ($($(#[$attr:meta])* $variant:ident = ($status:ident, $code:literal, $description:literal),)*) => {
        /// Every error code the service sends, with its status and what it means.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$attr])* #[doc = $description] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order (grouped by status).
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),*];

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            /// The wire name: stable, snake_case; clients match on it.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// When it is sent, in one sentence, for the OpenAPI document.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $description,)* }
            }
        }
    };
}

error_codes! {
    MalformedJson = (BAD_REQUEST, "malformed_json", "The body is not one JSON value."),
    BadPayload = (BAD_REQUEST, "bad_payload", "The body could not be read as sent (its Content-Length or transfer encoding)."),
    InvalidQuery = (BAD_REQUEST, "invalid_query", "The query string is not valid URL encoding."),
    UnknownParameter = (BAD_REQUEST, "unknown_parameter", "A query parameter the route does not take; `field` names it."),
    InvalidFilter = (BAD_REQUEST, "invalid_filter", "A filter value no event has; `field` names the parameter."),
    InvalidLastEventId = (BAD_REQUEST, "invalid_last_event_id", "`after` or `Last-Event-ID` is not a whole number."),
    /// Written by the HTTP layer (vendor/actix-http), not by a handler.
    BadRequest = (BAD_REQUEST, "bad_request", "The request is not valid HTTP/1.1."),
    MissingApiKey = (UNAUTHORIZED, "missing_api_key", "No API key was sent."),
    InvalidAuthorization = (UNAUTHORIZED, "invalid_authorization", "The Authorization header is not `Bearer` and a key."),
    InvalidApiKey = (UNAUTHORIZED, "invalid_api_key", "The API key is unknown or revoked."),
    InsufficientScope = (FORBIDDEN, "insufficient_scope", "The API key lacks the scope this route needs."),
    NotFound = (NOT_FOUND, "not_found", "No such report, or no such route."),
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed", "The route does not take this method; `Allow` lists those it takes."),
    BodyTimeout = (REQUEST_TIMEOUT, "body_timeout", "The body did not arrive within `server.body_timeout_ms`; the connection is closed."),
    /// Written by the HTTP layer (vendor/actix-http), not by a handler.
    RequestTimeout = (REQUEST_TIMEOUT, "request_timeout", "The request line and headers did not arrive in time; the connection is closed."),
    PayloadTooLarge = (PAYLOAD_TOO_LARGE, "payload_too_large", "The body is over `server.max_body_bytes`."),
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body is not `application/json` in UTF-8."),
    NotAnObject = (UNPROCESSABLE_ENTITY, "not_an_object", "The body is JSON but not an object."),
    UnknownField = (UNPROCESSABLE_ENTITY, "unknown_field", "A field the request does not have; `field` is its JSON path."),
    DuplicateField = (UNPROCESSABLE_ENTITY, "duplicate_field", "A field given twice; `field` is its JSON path."),
    InvalidValue = (UNPROCESSABLE_ENTITY, "invalid_value", "A value of the wrong type or out of range; `field` is its JSON path."),
    InvalidText = (UNPROCESSABLE_ENTITY, "invalid_text", "`text` holds a NUL character."),
    EmptyRequest = (UNPROCESSABLE_ENTITY, "empty_request", "Neither `text` with something in it nor a finding was given."),
    TextTooLong = (UNPROCESSABLE_ENTITY, "text_too_long", "`text` is over `server.max_text_chars` characters."),
    AgeOutOfRange = (UNPROCESSABLE_ENTITY, "age_out_of_range", "`age` is not from 0 to 120 years."),
    VitalOutOfRange = (UNPROCESSABLE_ENTITY, "vital_out_of_range", "A vital sign is outside what can be measured; `field` names it."),
    UnknownFinding = (UNPROCESSABLE_ENTITY, "unknown_finding", "A finding id the knowledge base does not have (see `GET /v1/symptoms`)."),
    RateLimited = (TOO_MANY_REQUESTS, "rate_limited", "The API key is over its request rate; `Retry-After` says when to retry."),
    /// Written by the HTTP layer (vendor/actix-http), not by a handler.
    HeadersTooLarge = (REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", "The request line or headers are too large."),
    Internal = (INTERNAL_SERVER_ERROR, "internal", "The service failed; the cause is in its log, under the report id when there is one."),
    Overloaded = (SERVICE_UNAVAILABLE, "overloaded", "Every agent queue is full; `Retry-After` says when to retry."),
    StoreUnavailable = (SERVICE_UNAVAILABLE, "store_unavailable", "Reports cannot be kept or read right now; `Retry-After` says when to retry."),
    EventsUnavailable = (SERVICE_UNAVAILABLE, "events_unavailable", "NATS has been unreachable long enough to fill the event outbox (`events.outbox_max_mb`); `Retry-After` says when to retry."),
    AuthUnavailable = (SERVICE_UNAVAILABLE, "auth_unavailable", "API keys cannot be checked right now; `Retry-After` says when to retry."),
    HandlerTimeout = (SERVICE_UNAVAILABLE, "handler_timeout", "The request was not answered within `server.handler_timeout_ms`; `Retry-After` says when to retry."),
    TooManyConnections = (SERVICE_UNAVAILABLE, "too_many_connections", "The connection is over `server.max_connections_per_client` or `server.max_connections`; it is closed, and `Retry-After` says when to retry."),
}

impl ErrorCode {
    /// Whether the connection is closed after the answer: a body that stopped arriving leaves
    /// the connection in an unknown state, and a connection over its limit is the problem.
    pub fn closes_connection(self) -> bool {
        matches!(self, ErrorCode::BodyTimeout | ErrorCode::TooManyConnections)
    }

    /// What the OpenAPI document says of an answer that may carry any of `codes` (all of one
    /// status): a Markdown list, each code with its sentence.
    pub fn describe(codes: &[ErrorCode]) -> String {
        codes
            .iter()
            .map(|c| format!("- `{}`: {}", c.as_str(), c.description()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// For people; may change. Never a cause's own text (a database's, the system's): those go
    /// to the log.
    pub message: Cow<'static, str>,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError { code, message: message.into(), field: None, retry_after: None }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A 422: the request is well-formed JSON but the value at `field` is not acceptable.
    pub fn invalid(
        code: ErrorCode,
        field: impl Into<String>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        debug_assert_eq!(code.status(), StatusCode::UNPROCESSABLE_ENTITY, "{code}");
        Self::new(code, message).field(field)
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn overloaded(retry_after: u64) -> Self {
        Self::new(ErrorCode::Overloaded, "the service is at capacity; retry shortly")
            .retry_after(retry_after)
    }

    /// The request was not answered within `server.handler_timeout_ms`: a 503 with
    /// `Retry-After`. Whatever it had started (a report being kept) carries on.
    pub fn handler_timeout(limit: std::time::Duration, retry_after: u64) -> Self {
        Self::new(
            ErrorCode::HandlerTimeout,
            format!("the request was not answered within {} ms; retry shortly", limit.as_millis()),
        )
        .retry_after(retry_after)
    }

    /// The store could not keep or read a report: a generic message and a `Retry-After`. What
    /// went wrong (a database's or the operating system's own text) goes to the log with the
    /// report id, never to the client.
    pub fn store_unavailable(
        retry_after: u64,
        report: Option<uuid::Uuid>,
        cause: &dyn fmt::Display,
    ) -> Self {
        tracing::warn!(report_id = ?report, error = %cause, "the store failed a request");
        Self::new(
            ErrorCode::StoreUnavailable,
            "reports cannot be kept or read right now; retry shortly",
        )
        .retry_after(retry_after)
    }

    /// A failure of the service itself: logged once here, with the report id when there is
    /// one (and, through the request's span, its trace); the client gets a generic message.
    pub fn internal(report: Option<uuid::Uuid>, cause: &dyn fmt::Display) -> Self {
        tracing::error!(report_id = ?report, error = %cause, "a request failed inside the service");
        Self::new(ErrorCode::Internal, "the service failed to answer; the cause is in its log")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The body of every 4xx and 5xx answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, snake_case: clients match on it.
    #[schema(example = "unknown_finding")]
    pub code: &'a str,
    /// For people; may change.
    pub message: &'a str,
    /// The JSON path of the request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "findings[1].id")]
    pub field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.code.status());
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        // A 401 says how to authenticate.
        if self.code.status() == StatusCode::UNAUTHORIZED {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"triagent\""));
        }
        if self.code.closes_connection() {
            r.force_close();
        }
        r.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_store_failure_says_retry_and_keeps_its_cause_to_the_log() {
        let cause =
            "could not write to /var/lib/triagent/spool: No space left on device (os error 28)";
        let r = ApiError::store_unavailable(2, None, &cause).error_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get("Retry-After").and_then(|v| v.to_str().ok()), Some("2"));
        let body = actix_web::body::to_bytes(r.into_body()).await.unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("\"code\":\"store_unavailable\""), "{text}");
        assert!(
            !text.contains("os error") && !text.contains("spool") && !text.contains("space"),
            "{text}"
        );
    }
}
