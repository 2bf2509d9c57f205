//! One error type for every route, with a stable code, an HTTP status and the field at fault,
//! rendered in docs/api.md's shape: `{"error": {"code", "message", "field"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
    /// Adds `WWW-Authenticate: Bearer` (a 401 says how to authenticate).
    pub www_authenticate: bool,
    /// Closes the connection after the answer. On for a 408: a body that stopped arriving
    /// leaves the connection in an unknown state.
    pub close_connection: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            www_authenticate: false,
            close_connection: status == StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422: the request is well-formed JSON but a value is not acceptable.
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
    }

    pub fn overloaded(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the service is at capacity; retry shortly",
            )
        }
    }

    /// The request was not answered within `server.handler_timeout_ms`: a 503 with
    /// `Retry-After`. Whatever it had started (a report being kept) carries on.
    pub fn handler_timeout(limit: std::time::Duration, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "handler_timeout",
                format!(
                    "the request was not answered within {} ms; retry shortly",
                    limit.as_millis()
                ),
            )
        }
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
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "reports cannot be kept or read right now; retry shortly",
            )
        }
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
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        if self.www_authenticate {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"triagent\""));
        }
        if self.close_connection {
            r.force_close();
        }
        r.json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
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
