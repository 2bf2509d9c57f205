//! The service's metrics over OTLP/HTTP, with the names and labels `/metrics` gives them.
//!
//! The metrics are defined once, in `crates/metrics` (Prometheus instruments read by
//! `/metrics`); this module reads the same registry every `telemetry.metrics_interval_ms` and
//! pushes it as OTLP (cumulative sums, gauges and explicit-bucket histograms) to
//! `{otlp_endpoint}/v1/metrics`, so a dashboard built on either source sees the same series.
//! It runs on a thread of its own: a slow or absent collector never holds a request back.

use crate::TelemetryError;
use metrics::proto::{MetricFamily, MetricType};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The Prometheus families as one OTLP export: counters as cumulative monotonic sums, gauges
/// as gauges, histograms as cumulative explicit-bucket histograms; names, help and labels
/// unchanged. `start` is when the counters started (the process start).
pub fn to_otlp(
    families: &[MetricFamily],
    service_name: &str,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (nanos(start), nanos(now));
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut out = Vec::with_capacity(families.len());
    for f in families {
        let attrs = |m: &metrics::proto::Metric| {
            m.get_label().iter().map(|l| attr(l.name(), l.value())).collect::<Vec<_>>()
        };
        let number = |m: &metrics::proto::Metric, v: f64| NumberDataPoint {
            attributes: attrs(m),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let data = match f.get_field_type() {
            MetricType::COUNTER => metric::Data::Sum(Sum {
                data_points: f
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_counter().get_value()))
                    .collect(),
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
            MetricType::GAUGE => metric::Data::Gauge(Gauge {
                data_points: f
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_gauge().get_value()))
                    .collect(),
            }),
            MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
                data_points: f
                    .get_metric()
                    .iter()
                    .map(|m| {
                        let h = m.get_histogram();
                        // Prometheus counts are cumulative and end at the last finite bound;
                        // OTLP wants one count per bucket, the last one above every bound.
                        let mut bounds = Vec::new();
                        let mut counts = Vec::new();
                        let mut below = 0u64;
                        for b in h.get_bucket().iter().filter(|b| b.upper_bound().is_finite()) {
                            bounds.push(b.upper_bound());
                            counts.push(b.cumulative_count().saturating_sub(below));
                            below = b.cumulative_count();
                        }
                        counts.push(h.get_sample_count().saturating_sub(below));
                        HistogramDataPoint {
                            attributes: attrs(m),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: h.get_sample_count(),
                            sum: Some(h.get_sample_sum()),
                            bucket_counts: counts,
                            explicit_bounds: bounds,
                            ..Default::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            }),
            // The service defines no summaries or untyped metrics.
            _ => continue,
        };
        out.push(Metric {
            name: f.name().to_string(),
            description: f.help().to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attr("service.name", service_name)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "triagent".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The running exporter; dropping it sends the last reading and stops the thread.
#[derive(Debug)]
pub struct MetricsExport {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MetricsExport {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where metrics go: `{otlp_endpoint}/v1/metrics`, else the standard
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`.
fn endpoint(settings: &settings::Telemetry) -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if !settings.otlp_endpoint.is_empty() {
        Some(format!("{}/v1/metrics", settings.otlp_endpoint.trim_end_matches('/')))
    } else if let Some(full) = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        Some(full)
    } else {
        var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/metrics", base.trim_end_matches('/')))
    }
}

/// Starts pushing `gather()` every `telemetry.metrics_interval_ms` (or `OTEL_METRIC_EXPORT_INTERVAL`
/// milliseconds) when an OTLP endpoint is configured; `None` when it is not, or the interval is 0.
pub fn spawn_metrics_export<F>(
    settings: &settings::Telemetry,
    gather: F,
) -> Result<Option<MetricsExport>, TelemetryError>
where
    F: Fn() -> Vec<MetricFamily> + Send + 'static,
{
    let Some(url) = endpoint(settings) else { return Ok(None) };
    let interval_ms = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(settings.metrics_interval_ms);
    if interval_ms == 0 {
        return Ok(None);
    }
    let json = crate::protocol(settings)? == opentelemetry_otlp::Protocol::HttpJson;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| settings.service_name.clone());
    let started = SystemTime::now();
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("otlp-metrics".into())
        .spawn(move || {
            let client = reqwest013::blocking::Client::builder().timeout(Duration::from_secs(10)).build();
            let Ok(client) = client else { return };
            let export = || {
                let request = to_otlp(&gather(), &service, started, SystemTime::now());
                let (body, content_type) = if json {
                    (serde_json::to_vec(&request).unwrap_or_default(), "application/json")
                } else {
                    (prost::Message::encode_to_vec(&request), "application/x-protobuf")
                };
                let sent = client.post(&url).header("content-type", content_type).body(body).send().and_then(|r| r.error_for_status());
                if let Err(e) = sent {
                    // Only where and why: a metrics payload holds nothing about a person,
                    // but the log line need not hold it either.
                    tracing::warn!(target: "triagent::telemetry", error = %e, "OTLP metrics export failed");
                }
            };
            loop {
                match stopped.recv_timeout(Duration::from_millis(interval_ms)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => export(),
                    // Stopping: the last reading, so the final counts are not lost.
                    _ => {
                        export();
                        return;
                    }
                }
            }
        })
        .map_err(|e| TelemetryError::Config(format!("starting the metrics exporter: {e}")))?;
    Ok(Some(MetricsExport { stop: Some(stop), thread: Some(thread) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_families_become_otlp_with_the_same_names() {
        let m = metrics::Metrics::new();
        let agent = m.agent("condition_matcher");
        agent.latency.observe(0.003);
        agent.latency.observe(0.2);
        m.level("emergency").inc();
        let t0 = UNIX_EPOCH + Duration::from_secs(1);
        let req = to_otlp(&m.gather(), "triagent", t0, t0 + Duration::from_secs(5));
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<&str> = metrics.iter().map(|x| x.name.as_str()).collect();
        for n in names.iter() {
            assert!(metrics::NAMES.contains(n), "{n} is not a name /metrics exports");
        }
        let latency =
            metrics.iter().find(|x| x.name == metrics::AGENT_LATENCY).expect("agent latency");
        let Some(metric::Data::Histogram(h)) = &latency.data else { panic!("a histogram") };
        let p = h.data_points.iter().find(|p| p.count == 2).expect("the observed agent");
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 2);
        assert!((p.sum.unwrap() - 0.203).abs() < 1e-9);
        assert_eq!(p.attributes[0].key, "agent");
        let levels = metrics.iter().find(|x| x.name == metrics::TRIAGE_LEVELS).expect("levels");
        let Some(metric::Data::Sum(s)) = &levels.data else { panic!("a sum") };
        assert!(
            s.is_monotonic
                && s.aggregation_temporality == AggregationTemporality::Cumulative as i32
        );
        assert!(
            s.data_points.iter().any(|p| p.value == Some(number_data_point::Value::AsDouble(1.0)))
        );
    }
}
