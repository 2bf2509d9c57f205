//! Traces, in a test binary of their own (it installs the process-wide subscriber): one trace
//! per triage, continued from the caller's `traceparent` and given back, with the HTTP span,
//! the coordinator's span, one child per agent and the store write; a request whose text
//! holds a unique canary string leaves it in no span name, span attribute, log line or metric;
//! and a trace the caller did not sample is answered with nothing exported.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::*;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn text_of(span: &SpanData) -> String {
    let mut s = format!("{} ", span.name);
    for kv in &span.attributes {
        s.push_str(&format!("{}={} ", kv.key, kv.value));
    }
    for e in span.events.iter() {
        s.push_str(&format!("{} ", e.name));
        for kv in &e.attributes {
            s.push_str(&format!("{}={} ", kv.key, kv.value));
        }
    }
    s
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

#[actix_rt::test]
async fn one_trace_per_triage_with_agent_children_and_no_patient_text_anywhere() {
    let mut s = test_settings();
    s.telemetry.sample_ratio = 1.0;
    let exporter = InMemorySpanExporter::default();
    let logs = Logs::default();
    let writer = logs.clone();
    let _telemetry = telemetry::install(
        tracing_subscriber::EnvFilter::new("debug"),
        move || writer.clone(),
        false,
        Some(telemetry::provider(exporter.clone(), &s.telemetry, false)),
    );
    let app = spawn_with(s, triage::ModelAgent::all(models())).await;

    let canary = format!("zq{}", uuid::Uuid::new_v4().simple());
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = app
        .client
        .post(format!("{}/v1/triage", app.base))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"text": format!("crushing chest pain and sweating, my name is {canary}"), "age": 58}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back = r
        .headers()
        .get("traceparent")
        .expect("traceparent given back")
        .to_str()
        .unwrap()
        .to_string();
    assert!(back.starts_with(&format!("00-{trace_id}-")), "{back}");
    let body: Value = r.json().await.unwrap();
    let report = body["id"].as_str().unwrap().to_string();

    // The HTTP span ends just after the answer is written: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = exporter.get_finished_spans().unwrap();
        if spans.iter().any(|s| {
            s.name == "HTTP request" && attr(s, "http.route").as_deref() == Some("/v1/triage")
        }) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "no HTTP span: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ours: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == TraceId::from_hex(trace_id).unwrap())
        .collect();
    let http = ours
        .iter()
        .find(|s| s.name == "HTTP request")
        .expect("the HTTP span joins the caller's trace");
    assert_eq!(http.parent_span_id, SpanId::from_hex(caller_span).unwrap());
    assert_eq!(attr(http, "http.response.status_code").as_deref(), Some("200"));
    let triage = ours.iter().find(|s| s.name == "triage").expect("the coordinator's span");
    assert_eq!(triage.parent_span_id, http.span_context.span_id());
    assert_eq!(attr(triage, "report_id").as_deref(), Some(report.as_str()));
    assert!(attr(triage, "level").is_some());
    let agents: Vec<&&SpanData> = ours.iter().filter(|s| s.name == "agent").collect();
    let mut names: Vec<String> = agents.iter().map(|a| attr(a, "agent").unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        ["condition_matcher", "emergency_detector", "symptom_classifier", "treatment_retriever"]
    );
    for a in &agents {
        assert_eq!(a.parent_span_id, triage.span_context.span_id(), "{}", text_of(a));
        assert_eq!(attr(a, "outcome").as_deref(), Some("ok"));
        assert_eq!(attr(a, "breaker").as_deref(), Some("closed"));
        for k in ["batch_size", "queue_wait_us", "inference_us"] {
            assert!(attr(a, k).is_some_and(|v| v.parse::<u64>().is_ok()), "{k}: {}", text_of(a));
        }
    }
    let put = ours.iter().find(|s| s.name == "store.put").expect("the store write's span");
    assert_eq!(put.parent_span_id, http.span_context.span_id());

    // The canary is nowhere: spans, log lines (the access log is on, at debug), metrics.
    for s in &spans {
        assert!(!text_of(s).contains(&canary), "patient text in a span: {}", text_of(s));
    }
    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("triagent::access"), "the access log is on: {log}");
    assert!(!log.contains(&canary), "patient text in a log line");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains(&canary), "patient text in a metric");

    // A trace the caller did not sample (flags 00; sampling is parent-based): answered as
    // ever, its traceparent given back unsampled, and no span of it exported (the service
    // makes none below the HTTP span). A sampled request after it is the barrier: once its
    // HTTP span is exported, the unsampled request's spans, all closed before, would be too.
    let send = |trace: String| {
        app.client
            .post(format!("{}/v1/triage", app.base))
            .header("traceparent", trace)
            .json(&json!({"text": "a sore throat for two days", "age": 30}))
            .send()
    };
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = send(format!("00-{unsampled}-{caller_span}-00")).await.unwrap();
    assert_eq!(r.status(), 200);
    let back = r
        .headers()
        .get("traceparent")
        .expect("traceparent given back")
        .to_str()
        .unwrap()
        .to_string();
    assert!(back.starts_with(&format!("00-{unsampled}-")) && back.ends_with("-00"), "{back}");
    let barrier = "6bf92f3577b34da6a3ce929d0e0e4738";
    assert_eq!(send(format!("00-{barrier}-{caller_span}-01")).await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = exporter.get_finished_spans().unwrap();
        let of_barrier: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.span_context.trace_id() == TraceId::from_hex(barrier).unwrap())
            .collect();
        if of_barrier.iter().any(|s| s.name == "HTTP request") {
            assert!(
                of_barrier.iter().any(|s| s.name == "triage"),
                "a sampled trace still has its children"
            );
            break spans;
        }
        assert!(Instant::now() < deadline, "no HTTP span for the barrier request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let leaked: Vec<&str> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == TraceId::from_hex(unsampled).unwrap())
        .map(|s| s.name.as_ref())
        .collect();
    assert!(leaked.is_empty(), "spans of an unsampled trace exported: {leaked:?}");
}
