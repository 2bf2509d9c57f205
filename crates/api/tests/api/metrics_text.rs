//! `/metrics`: valid Prometheus text, the counts a triage leaves behind, and never the
//! person's text or an id.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use triage::AgentKind;

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Parses `{k="v",...}` (with the format's escapes); returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no '{'")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = &rest[..eq];
        if !is_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars =
            rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &rest[eq + 2 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the text exposition format: every line is a HELP, a TYPE or a sample of
/// a family whose TYPE came first, with a valid name, labels and value.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, arg) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if !is_name(name) {
                return Err(err("bad metric name".into()));
            }
            match kind {
                "HELP" => {}
                "TYPE"
                    if ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) =>
                {
                    if types.insert(name.to_string(), arg.to_string()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                }
                _ => return Err(err("unknown comment".into())),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value = rest.trim().split(' ').next().unwrap_or_default();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| err(format!("bad value {v:?}")))?,
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(err("sample before its TYPE".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
}

async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"), "{ctype}");
    let text = r.text().await.unwrap();
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, samples)
}

#[actix_rt::test]
async fn a_triage_shows_up_in_the_metrics_without_its_text() {
    let app = spawn_app().await;
    let canary = format!("zqxcanary{}", uuid::Uuid::new_v4().simple());
    let r = app.post_json(&json!({"text": format!("{canary} I have had a sore throat and a runny nose for two days")})).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let id = answer["id"].as_str().unwrap().to_string();
    let level = answer["triage"]["level"].as_str().unwrap().to_string();
    // A stored report by id, and a path no route matches, both carrying the canary or the id.
    assert_eq!(app.get(&format!("/v1/triage/{id}")).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/{canary}")).await.status(), 404);

    let (text, samples) = scrape(&app).await;
    assert!(!text.contains(&canary), "the request's text leaked into /metrics");
    assert!(!text.contains(&id), "a report id leaked into /metrics");

    assert_eq!(
        value(
            &samples,
            "triagent_http_requests_total",
            &[("route", "/v1/triage"), ("status", "200")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "triagent_http_request_duration_seconds_count",
            &[("route", "/v1/triage"), ("status", "200")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "triagent_http_requests_total",
            &[("route", "/v1/triage/{id}"), ("status", "200")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "triagent_http_requests_total",
            &[("route", ::metrics::UNMATCHED_ROUTE), ("status", "404")]
        ),
        Some(1.0),
        "{text}"
    );
    for agent in AgentKind::ALL {
        let a = agent.as_str();
        assert!(
            value(&samples, "triagent_agent_latency_seconds_count", &[("agent", a)])
                .is_some_and(|n| n >= 1.0),
            "{a}: {text}"
        );
        assert!(
            value(&samples, "triagent_agent_batch_size_count", &[("agent", a)])
                .is_some_and(|n| n >= 1.0),
            "{a}: {text}"
        );
        assert_eq!(
            value(&samples, "triagent_agent_failures_total", &[("agent", a)]),
            Some(0.0),
            "{a}"
        );
        assert_eq!(
            value(&samples, "triagent_agent_breaker_state", &[("agent", a)]),
            Some(0.0),
            "{a}"
        );
        assert_eq!(
            value(&samples, "triagent_agent_queue_depth", &[("agent", a)]),
            Some(0.0),
            "{a}"
        );
    }
    assert_eq!(
        value(&samples, "triagent_triage_levels_total", &[("level", &level)]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&samples, "triagent_degraded_answers_total", &[]), Some(0.0));
    assert!(
        value(&samples, "triagent_bus_events_published_total", &[]).is_some_and(|n| n >= 6.0),
        "received, four agents, completed: {text}"
    );
    // The store's event sink is always subscribed; no client is.
    assert_eq!(value(&samples, "triagent_bus_subscribers", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "triagent_store_write_seconds_count", &[]),
        Some(1.0),
        "one report kept: {text}"
    );
    assert_eq!(value(&samples, "triagent_store_backlog", &[]), Some(0.0));

    // Every label value comes from a closed vocabulary.
    let routes: BTreeSet<&str> =
        api::routes().into_iter().map(|(_, p)| p).chain([::metrics::UNMATCHED_ROUTE]).collect();
    let agents: BTreeSet<&str> = AgentKind::ALL.iter().map(|a| a.as_str()).collect();
    let levels: BTreeSet<&str> = domain::TriageLevel::ALL.iter().map(|l| l.as_str()).collect();
    for s in &samples {
        for (k, v) in &s.labels {
            let ok = match k.as_str() {
                "route" => routes.contains(v.as_str()),
                "status" => v.len() == 3 && v.parse::<u16>().is_ok(),
                "agent" => agents.contains(v.as_str()),
                "level" => levels.contains(v.as_str()),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                _ => false,
            };
            assert!(ok, "label {k}={v:?} on {}", s.name);
        }
    }
}

#[actix_rt::test]
async fn every_family_is_a_listed_name_and_every_listed_name_is_exported() {
    let app = spawn_app().await;
    assert_eq!(app.post_json(&json!({"text": "headache since this morning"})).await.status(), 200);
    let (text, _) = scrape(&app).await;
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let names: BTreeSet<&str> = ::metrics::NAMES.iter().copied().collect();
    assert_eq!(families, names, "{text}");
}

#[actix_rt::test]
async fn agent_failures_and_degraded_answers_are_counted() {
    let app = spawn_with(test_settings(), with_failing(AgentKind::ConditionMatcher)).await;
    for _ in 0..2 {
        let r = app.post_json(&json!({"text": "a cough for three days"})).await;
        assert_eq!(r.status(), 200);
    }
    let (text, samples) = scrape(&app).await;
    assert_eq!(
        value(&samples, "triagent_agent_failures_total", &[("agent", "condition_matcher")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "triagent_agent_failures_total", &[("agent", "symptom_classifier")]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value(&samples, "triagent_degraded_answers_total", &[]), Some(2.0), "{text}");
    let levels: f64 =
        samples.iter().filter(|s| s.name == "triagent_triage_levels_total").map(|s| s.value).sum();
    assert_eq!(levels, 2.0, "{text}");
}

#[test]
fn the_reader_rejects_what_is_not_prometheus_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let s = parse_prometheus(good).unwrap();
    assert_eq!(s[0].labels["x"], "1\"2");
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na{x=1} 2\n",
        "# TYPE a counter\na one\n",
        "# TYPE 1a counter\n",
        "# TYPE a counter\na{x=\"1\" 2\n",
        "<html>\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "{bad:?}");
    }
}
