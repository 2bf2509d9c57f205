//! Integration tests: the real service on port 0, spoken to over HTTP. One test binary, so it
//! links once.

mod auth;
mod bad_input;
mod connections;
mod degraded;
mod embedded_store;
mod events;
mod helpers;
mod metrics_text;
mod openapi_doc;
mod pg_outage;
mod replicas;
mod runtime;
mod triage;
mod vignettes;
