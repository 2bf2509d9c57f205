//! What one benchmark run measured, and writing it down.

use crate::metrics_text::Histogram;
use crate::{SUSTAINABLE_P99_MS, plot};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The request bodies sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mix {
    pub requests: usize,
    pub with_findings: usize,
    /// Messages of 80 to 120 words (several generated texts run together).
    pub long: usize,
    pub min_words: usize,
    pub max_words: usize,
    pub total_words: usize,
    pub registers: BTreeMap<String, usize>,
}

/// One load step.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub name: String,
    /// Requests a second offered (open loop); None at saturation (closed loop).
    pub offered_rps: Option<u32>,
    pub achieved_rps: f64,
    pub answered: u64,
    /// Answers other than 2xx, and transport errors (requests cut off by the end of the step
    /// are not errors).
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// The service's CPU time (user + system) over the step.
    pub cpu_seconds: f64,
    pub cpu_us_per_request: f64,
    /// Requests per forward pass, all four agents together; None for routes without agents.
    pub batch_sizes: Option<Histogram>,
    /// oha's latency percentiles, seconds, for the plot.
    #[serde(skip)]
    pub percentiles: Vec<(f64, f64)>,
}

fn ms(v: &Value) -> f64 {
    v.as_f64().map_or(f64::NAN, |s| s * 1000.0)
}

impl Run {
    pub fn from_oha(
        name: &str,
        offered: Option<u32>,
        oha: &Value,
        cpu_seconds: f64,
        batches: Option<Histogram>,
    ) -> Result<Run> {
        let codes = oha["statusCodeDistribution"]
            .as_object()
            .context("oha output without statusCodeDistribution")?;
        let mut answered = 0u64;
        let mut errors = 0u64;
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            answered += n;
            if !code.starts_with('2') {
                errors += n;
            }
        }
        if let Some(errs) = oha["errorDistribution"].as_object() {
            for (what, n) in errs {
                if !what.contains("aborted due to deadline") {
                    errors += n.as_u64().unwrap_or(0);
                }
            }
        }
        let total = oha["summary"]["total"].as_f64().unwrap_or(f64::NAN);
        let p = &oha["latencyPercentiles"];
        let percentiles = p
            .as_object()
            .map(|m| {
                let mut v: Vec<(f64, f64)> = m
                    .iter()
                    .filter_map(|(k, s)| {
                        Some((k.trim_start_matches('p').parse::<f64>().ok()?, s.as_f64()?))
                    })
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            })
            .unwrap_or_default();
        let batch_sizes = batches.filter(|h| h.count > 0.0);
        Ok(Run {
            name: name.to_string(),
            offered_rps: offered,
            achieved_rps: answered as f64 / total,
            answered,
            errors,
            p50_ms: ms(&p["p50"]),
            p90_ms: ms(&p["p90"]),
            p99_ms: ms(&p["p99"]),
            p999_ms: ms(&p["p99.9"]),
            cpu_seconds,
            cpu_us_per_request: cpu_seconds * 1e6 / answered.max(1) as f64,
            batch_sizes,
            percentiles,
        })
    }

    /// An open-loop step the service kept up with: at least 99% of the offered rate answered,
    /// no errors, p99 under [`SUSTAINABLE_P99_MS`].
    pub fn sustained(&self) -> bool {
        self.offered_rps.is_some_and(|r| self.achieved_rps >= 0.99 * f64::from(r))
            && self.errors == 0
            && self.p99_ms < SUSTAINABLE_P99_MS
    }
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub smoke: bool,
    pub step_secs: u64,
    pub mix: Mix,
    pub ready_ms: f64,
    pub runs: Vec<Run>,
    pub max_sustainable: Option<u32>,
    pub peak_rss_bytes: u64,
    pub cores: usize,
    pub load_before: String,
    pub date: String,
    pub commit: String,
}

impl Report {
    /// Triage requests answered over the whole run (every store write the service made).
    pub fn triage_answered(&self) -> u64 {
        self.runs.iter().filter(|r| r.name.starts_with("POST /v1/triage")).map(|r| r.answered).sum()
    }

    pub fn new(smoke: bool, step: Duration, mix: Mix, ready_after: Duration) -> Report {
        let sh = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        Report {
            smoke,
            step_secs: step.as_secs(),
            mix,
            ready_ms: ready_after.as_secs_f64() * 1000.0,
            runs: Vec::new(),
            max_sustainable: None,
            peak_rss_bytes: 0,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: sh("git", &["rev-parse", "--short", "HEAD"]),
        }
    }

    /// REPORT.md, results.json and latency.png in `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::write(out.join("REPORT.md"), self.markdown())?;
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(self)?)?;
        plot::latency(&out.join("latency.png"), self)
            .map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Load benchmark{}\n",
            if self.smoke {
                " (smoke run: checks the benchmark works, measures nothing)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "{} on commit {}, {} cores (load average before: {}); the load generator (oha, open loop with \
             latency correction) runs on the same cores as the service. {} build, embedded store, \
             default configuration; {} s per step. Made by `scripts/bench{}`.\n",
            self.date,
            self.commit,
            self.cores,
            self.load_before,
            if self.smoke { "Debug" } else { "Release" },
            self.step_secs,
            if self.smoke { " --smoke" } else { "" }
        );
        let m = &self.mix;
        let _ = writeln!(
            s,
            "Requests: {} bodies from the synthetic-patient generator, sent in turn: {} to {} words (mean {:.0}; {} long messages of 80 or more), {} with structured findings; registers {}.\n",
            m.requests,
            m.min_words,
            m.max_words,
            m.total_words as f64 / m.requests.max(1) as f64,
            m.long,
            m.with_findings,
            m.registers.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(
            s,
            "| maximum sustainable `POST /v1/triage` | {} |",
            self.max_sustainable.map_or("not reached in this run".to_string(), |r| format!(
                "**{r} requests/s** (p99 under {SUSTAINABLE_P99_MS} ms, ≥ 99% answered, no errors)"
            ))
        );
        let _ = writeln!(s, "| time from start to ready | {:.0} ms |", self.ready_ms);
        let _ = writeln!(
            s,
            "| peak resident memory | {:.1} MiB, after {} triage requests answered |\n",
            self.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            self.triage_answered()
        );
        let _ = writeln!(
            s,
            "| step | offered/s | answered/s | errors | p50 | p90 | p99 | p99.9 | service CPU per request | mean batch |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} µs | {} |",
                r.name,
                r.offered_rps.map_or("closed loop".to_string(), |x| x.to_string()),
                r.achieved_rps,
                r.errors,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.p999_ms,
                r.cpu_us_per_request,
                r.batch_sizes.as_ref().map_or("-".to_string(), |h| format!("{:.1}", h.mean()))
            );
        }
        let _ = writeln!(
            s,
            "\nMicro-batch sizes (requests per forward pass, the four agents together), share of forward passes:\n"
        );
        let with_batches: Vec<&Run> =
            self.runs.iter().filter(|r| r.batch_sizes.is_some()).collect();
        if let Some(first) = with_batches.first().and_then(|r| r.batch_sizes.as_ref()) {
            let labels: Vec<String> = first.shares().into_iter().map(|x| x.0).collect();
            let _ = writeln!(s, "| step | {} |", labels.join(" | "));
            let _ = writeln!(s, "|---|{}", "---|".repeat(labels.len()));
            for r in with_batches {
                let shares = r.batch_sizes.as_ref().map(Histogram::shares).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "| {} | {} |",
                    r.name,
                    shares
                        .iter()
                        .map(|x| format!("{:.0}%", x.1 * 100.0))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
        let _ = writeln!(s, "\n![latency percentiles](latency.png)");
        s
    }
}
