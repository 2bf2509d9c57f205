//! Integration tests: the real service on port 0, spoken to over HTTP. One test binary, so it
//! links once.

mod helpers;
mod auth;
mod pg_outage;
mod bad_input;
mod connections;
mod degraded;
mod metrics_text;
mod openapi_doc;
mod events;
mod runtime;
mod triage;
mod vignettes;
