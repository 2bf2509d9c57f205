//! The operators' files in `observability/` against what the service exports: every metric a
//! Grafana dashboard or a Prometheus alert rule queries is one of `metrics::NAMES` (a renamed
//! metric would otherwise leave a panel silently empty), every exported metric is on some
//! dashboard, and the Prometheus and Grafana wiring points at files and ports that exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../observability")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `triagent_…` metric names an expression mentions, with a histogram's `_bucket`, `_sum`
/// and `_count` series mapped to the histogram.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("triagent_") {
        let tail = &rest[i..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && metrics::NAMES.contains(&base)
            {
                name = base;
            }
        }
        out.insert(name.to_string());
        rest = &tail[end..];
    }
    out
}

/// Every string under an `expr` key, anywhere in a JSON document.
fn json_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => json_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_exprs(v, out)),
        _ => {}
    }
}

/// The `expr:` values of a Prometheus rule file: inline, or a `|` block of deeper-indented
/// lines.
fn yaml_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else { continue };
        let indent = line.len() - line.trim_start().len();
        let value = value.trim();
        if value == "|" || value == ">" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            out.push(block.join(" "));
        } else {
            out.push(value.to_string());
        }
    }
    out
}

fn known() -> BTreeSet<String> {
    metrics::NAMES.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_name_extraction_finds_unknown_names() {
    let names = metric_names(
        r#"sum(rate(triagent_http_requests_total[1m])) / triagent_agent_latency_seconds_bucket + triagent_made_up_total"#,
    );
    assert_eq!(
        names,
        [
            "triagent_agent_latency_seconds",
            "triagent_http_requests_total",
            "triagent_made_up_total"
        ]
        .map(String::from)
        .into()
    );
    assert!(!known().contains("triagent_made_up_total"));
    assert_eq!(
        yaml_exprs(
            "  - alert: A\n    expr: up == 0\n  - alert: B\n    expr: |\n      sum(x)\n        / y\n    for: 1m\n"
        ),
        vec!["up == 0".to_string(), "sum(x) / y".to_string()]
    );
}

#[test]
fn every_dashboard_queries_only_exported_metrics_and_covers_them_all() {
    let dir = root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "service overview, agents and breakers, triage outcomes: {files:?}");
    let mut used = BTreeSet::new();
    for file in &files {
        let doc: serde_json::Value =
            serde_json::from_str(&read(file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            doc["uid"].as_str().is_some_and(|u| !u.is_empty()) && doc["title"].is_string(),
            "{}",
            file.display()
        );
        let panels =
            doc["panels"].as_array().unwrap_or_else(|| panic!("{} has no panels", file.display()));
        for p in panels {
            assert_eq!(
                p["datasource"]["uid"],
                "prometheus",
                "{}: panel {}",
                file.display(),
                p["title"]
            );
        }
        let mut exprs = Vec::new();
        json_exprs(&doc, &mut exprs);
        assert!(exprs.len() >= panels.len(), "{}: a panel without a query", file.display());
        for e in &exprs {
            let names = metric_names(e);
            assert!(!names.is_empty(), "{}: a query on no Triagent metric: {e}", file.display());
            for n in names {
                assert!(
                    known().contains(&n),
                    "{}: {n} is not exported by the service (metrics::NAMES): {e}",
                    file.display()
                );
                used.insert(n);
            }
        }
    }
    let unused: Vec<String> = known().difference(&used).cloned().collect();
    assert!(unused.is_empty(), "exported but on no dashboard: {unused:?}");
}

#[test]
fn every_alert_rule_queries_only_exported_metrics() {
    let text = read(&root().join("prometheus/alerts.yml"));
    let exprs = yaml_exprs(&text);
    assert!(
        exprs.len() >= 5,
        "breaker open, error rate, latency, spool backlog, emergency rate: {exprs:?}"
    );
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "a rule on no Triagent metric: {e}");
        for n in names {
            assert!(
                known().contains(&n),
                "{n} is not exported by the service (metrics::NAMES): {e}"
            );
            used.insert(n);
        }
    }
    for needed in [
        metrics::AGENT_BREAKER_STATE,
        metrics::HTTP_REQUESTS,
        metrics::HTTP_DURATION,
        metrics::STORE_BACKLOG,
        metrics::TRIAGE_LEVELS,
    ] {
        assert!(used.contains(needed), "no alert on {needed}");
    }
}

#[test]
fn prometheus_and_grafana_wiring_points_at_what_exists() {
    let prom = read(&root().join("prometheus/prometheus.yml"));
    for line in prom.lines().map(str::trim).filter(|l| l.starts_with("- /etc/prometheus/")) {
        let file = line.trim_start_matches("- /etc/prometheus/");
        assert!(
            root().join("prometheus").join(file).is_file(),
            "rule file {file} is not in observability/prometheus"
        );
    }
    // The service's port, as config/base.toml sets it.
    let base = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/base.toml"));
    let port = base
        .lines()
        .find_map(|l| l.trim().strip_prefix("port = "))
        .expect("server.port in base.toml")
        .trim();
    // Every Triagent target (one per replica; crates/settings/tests/deployment.rs holds them to
    // the compose services) is on that port.
    let targets: Vec<&str> =
        prom.split('"').filter(|t| t.starts_with("triagent") && t.contains(':')).collect();
    assert!(!targets.is_empty(), "Prometheus scrapes no triagent target");
    for target in targets {
        assert!(
            target.ends_with(&format!(":{port}")),
            "Prometheus scrapes {target}, not the port the service listens on ({port})"
        );
    }
    let sources = read(&root().join("grafana/provisioning/datasources/datasources.yaml"));
    assert!(sources.contains("uid: prometheus"), "the dashboards' data source uid is provisioned");
    let collector = read(&root().join("otel-collector.yaml"));
    for needed in ["otlp:", "4317", "4318", "prometheus:", "otlp/jaeger"] {
        assert!(collector.contains(needed), "collector config lacks {needed}");
    }
}
