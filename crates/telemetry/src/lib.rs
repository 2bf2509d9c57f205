//! Logs, traces and metrics: the process-wide `tracing` subscriber, OpenTelemetry traces
//! exported over OTLP/HTTP when configured, and the service's metrics pushed over OTLP beside
//! `/metrics` ([`spawn_metrics_export`]).
//!
//! - Log lines (events) go to standard error, filtered by `TRIAGENT_LOG` (`info` by default).
//!   Crates other than Triagent's own are held at `info` whatever the filter says: at `debug`
//!   the PostgreSQL driver prints statement parameters and HTTP crates print headers.
//! - Spans go only to OpenTelemetry, and only Triagent's own: with telemetry off no layer wants
//!   a span, so creating one costs next to nothing.
//! - Telemetry is on when `telemetry.otlp_endpoint` (`TRIAGENT__TELEMETRY__OTLP_ENDPOINT`) or
//!   the standard `OTEL_EXPORTER_OTLP_ENDPOINT`/`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!   Sampling is parent-based with `telemetry.sample_ratio` for new traces, the W3C
//!   `traceparent` propagator is installed, and `OTEL_SERVICE_NAME` and
//!   `OTEL_RESOURCE_ATTRIBUTES` are honoured (the service name defaults to `triagent`).
//!
//! Nothing Triagent records in a span or a log line carries a person's text, an API key or
//! anything else that identifies someone: ids, codes, sizes and timings only.

mod metrics_export;

pub use metrics_export::{MetricsExport, spawn_metrics_export, to_otlp};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use tracing_subscriber::prelude::*;

/// Crates whose `debug` and `trace` lines may be printed, and whose spans are exported:
/// Triagent's own.
pub const OWN_TARGETS: [&str; 19] = [
    "triagent",
    "api",
    "store",
    "coordinator",
    "bus",
    "triage",
    "ml",
    "kb",
    "settings",
    "metrics",
    "textfeat",
    "eval",
    "synth",
    "domain",
    "symptom_classifier",
    "condition_matcher",
    "treatment_retriever",
    "emergency_detector",
    "telemetry",
];

/// Whether `target` (a module path) belongs to one of [`OWN_TARGETS`].
pub fn own(target: &str) -> bool {
    let root = target.split("::").next().unwrap_or(target);
    OWN_TARGETS.contains(&root)
}

/// Keeps the tracer provider; dropping it (or [`Telemetry::shutdown`]) exports what is
/// buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: {0}")]
    Config(String),
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// A tracer provider exporting through `exporter`, batched or one span at a time (tests),
/// sampled as configured.
pub fn provider(
    exporter: impl SpanExporter + 'static,
    settings: &settings::Telemetry,
    batched: bool,
) -> SdkTracerProvider {
    let ratio = settings.sample_ratio.clamp(0.0, 1.0);
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(resource);
    let builder = if batched {
        builder.with_batch_exporter(exporter)
    } else {
        builder.with_simple_exporter(exporter)
    };
    builder.build()
}

/// `telemetry.protocol` read: `http/protobuf` or `http/json`, for traces and metrics alike.
pub(crate) fn protocol(settings: &settings::Telemetry) -> Result<Protocol, TelemetryError> {
    match settings.protocol.as_str() {
        "http/protobuf" => Ok(Protocol::HttpBinary),
        "http/json" => Ok(Protocol::HttpJson),
        other => Err(TelemetryError::Config(format!(
            "telemetry.protocol '{other}': use http/protobuf or http/json"
        ))),
    }
}

/// The OTLP/HTTP span exporter the settings ask for, or `None` when telemetry is off.
pub fn otlp_exporter(
    settings: &settings::Telemetry,
) -> Result<Option<opentelemetry_otlp::SpanExporter>, TelemetryError> {
    let configured = !settings.otlp_endpoint.is_empty();
    if !configured
        && !env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    {
        return Ok(None);
    }
    let protocol = protocol(settings)?;
    let mut builder =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(protocol);
    if configured {
        builder = builder
            .with_endpoint(format!("{}/v1/traces", settings.otlp_endpoint.trim_end_matches('/')));
    }
    builder.build().map(Some).map_err(|e| TelemetryError::Config(e.to_string()))
}

/// Installs the process-wide subscriber: log lines to `writer` (standard error in the
/// service) filtered by `log_filter`, and spans to `provider` when there is one.
pub fn install<W>(
    log_filter: tracing_subscriber::EnvFilter,
    writer: W,
    ansi: bool,
    provider: Option<SdkTracerProvider>,
) -> Telemetry
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // `!is_span` rather than `is_event`: `tracing::enabled!` asks with a hint, which is neither,
    // and the access log is only built when that answer is yes.
    let others_at_info = tracing_subscriber::filter::filter_fn(|m| {
        !m.is_span() && (*m.level() <= tracing::Level::INFO || own(m.target()))
    });
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true)
        .with_filter(log_filter)
        .with_filter(others_at_info);
    let spans = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("triagent"))
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && own(m.target())))
    });
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    Telemetry { provider }
}

/// Log lines to standard error, filtered by `TRIAGENT_LOG`, and spans to `provider`.
fn install_on_stderr(provider: Option<SdkTracerProvider>) -> Telemetry {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIAGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    install(filter, std::io::stderr, ansi, provider)
}

/// The service's set-up: logs to standard error, and OTLP traces when configured.
pub fn init(settings: &settings::Telemetry) -> Result<Telemetry, TelemetryError> {
    let provider = otlp_exporter(settings)?.map(|e| provider(e, settings, true));
    Ok(install_on_stderr(provider))
}

/// Logs only (for commands other than `serve`).
pub fn init_logs() {
    drop(install_on_stderr(None));
}

/// The W3C trace-context headers a request may carry.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Makes `span` continue the trace a request's `traceparent` (and `tracestate`) names; `get`
/// reads a request header. Without telemetry, or without a valid header, nothing changes.
pub fn continue_trace<'h>(span: &tracing::Span, get: impl Fn(&str) -> Option<&'h str>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return;
    }
    let headers: std::collections::HashMap<String, String> = TRACE_HEADERS
        .iter()
        .filter_map(|h| get(h).map(|v| (h.to_string(), v.to_string())))
        .collect();
    if headers.is_empty() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&headers));
    let _ = span.set_parent(cx);
}

/// Whether `span` belongs to a trace that is exported: false without telemetry and for the
/// traces the sampler leaves out. Spans below an unsampled one would be dropped at export
/// anyway (sampling is parent-based), so callers create them only when this is true: the
/// OpenTelemetry layer's bookkeeping per span is most of telemetry's cost per request. Asks
/// the sampler now if it was not asked yet; the decision then holds for the span's life.
pub fn is_sampled(span: &tracing::Span) -> bool {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    !span.is_disabled() && span.context().span().span_context().is_sampled()
}

/// The `traceparent` header naming `span`, to send back so a caller can find its trace; `None`
/// without telemetry.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return None;
    }
    let mut headers: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&span.context(), &mut headers)
    });
    headers.remove("traceparent")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_our_own_crates_may_log_below_info() {
        assert!(super::own("triagent::access"));
        assert!(super::own("store::postgres"));
        assert!(!super::own("tokio_postgres::query"));
        assert!(!super::own("actix_web::middleware"));
    }
}
