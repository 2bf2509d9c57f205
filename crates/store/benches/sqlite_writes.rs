//! What the embedded store's writer costs per triage report: `cargo bench -p store --bench
//! sqlite_writes [-- sqlite|memory [REPORTS [IN_FLIGHT [BODY]]]]`.
//!
//! Puts `REPORTS` reports (default 150,000, past the default capacity of 100,000, so retention
//! runs too) through `SqliteStore::put` from `IN_FLIGHT` concurrent tasks (default 64) on a
//! two-thread runtime, as the service's request handlers do. Each report has the six events a
//! triage publishes, with ids made as the service makes them, and a body: `BODY` is either a
//! size in bytes (default 6,000) for a made-up answer, which compresses far better than a real
//! one, or the path of a real answer (`curl -d '{"text": "..."}' .../v1/triage > answer.json`).
//! Prints reports per second, the process's CPU time (user and system, so the fsyncs count)
//! per report, which is what a triage request pays for the store whatever else the machine
//! does, and the bytes the process wrote per report (`wchar` of `/proc/self/io`: WAL frames and
//! checkpoints). `memory` runs the same loop against the memory store: the difference is the
//! durable store's cost.

use std::sync::Arc;
use std::time::Instant;

use bus::{DiagnosisEvent, DiagnosisEventKind, RankedCode};
use chrono::Utc;
use domain::TriageLevel;
use store::{JsonBody, MemoryStore, ReportStore, SqliteConfig, SqliteStore, StoredReport};
use uuid::Uuid;

/// CPU time of this process so far, in seconds.
fn cpu_secs() -> f64 {
    loadbench::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn body(id: Uuid, bytes: usize) -> JsonBody {
    let mut conditions = Vec::new();
    let mut size = 0;
    let mut k = 0;
    while size < bytes {
        let c = serde_json::json!({
            "id": format!("condition_{k}"),
            "icd10": format!("J06.{k}"),
            "probability": 0.05,
            "why": ["fever present", "cough for three days", "no shortness of breath"],
        });
        size += c.to_string().len();
        conditions.push(c);
        k += 1;
    }
    JsonBody::new(&serde_json::json!({ "id": id, "conditions": conditions })).unwrap()
}

fn events(id: Uuid) -> Vec<DiagnosisEvent> {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let kinds = vec![
        DiagnosisEventKind::TriageReceived {
            text_chars: 212,
            structured_findings: 0,
            has_vitals: false,
        },
        DiagnosisEventKind::FindingsExtracted {
            present: strings(&["fever", "cough", "sore_throat", "headache"]),
            absent: strings(&["dyspnoea"]),
            latency_ms: 0.4,
        },
        DiagnosisEventKind::ConditionsRanked {
            top: (0..5)
                .map(|k| RankedCode {
                    id: format!("condition_{k}"),
                    icd10: format!("J06.{k}"),
                    probability: 0.2,
                })
                .collect(),
            latency_ms: 0.6,
        },
        DiagnosisEventKind::CareRetrieved {
            advice: strings(&["rest_fluids", "paracetamol_fever", "seek_help_if_worse"]),
            latency_ms: 0.2,
        },
        DiagnosisEventKind::EmergencyAssessed {
            level: TriageLevel::SelfCare,
            red_flags: Vec::new(),
            latency_ms: 0.1,
        },
        DiagnosisEventKind::TriageCompleted {
            level: TriageLevel::SelfCare,
            degraded: false,
            total_ms: 1.3,
        },
    ];
    kinds
        .into_iter()
        .map(|kind| DiagnosisEvent { seq: 0, report_id: id, at: Utc::now(), kind, owner: None })
        .collect()
}

/// Bytes this process has handed to `write` so far (Linux; 0 elsewhere).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| l.strip_prefix("wchar:").and_then(|n| n.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let kind = args.next().unwrap_or_else(|| "sqlite".into());
    let mut arg = |default: usize| args.next().and_then(|a| a.parse().ok()).unwrap_or(default);
    let (reports, in_flight) = (arg(150_000), arg(64));
    let body_arg = args.next().unwrap_or_else(|| "6000".into());
    let dir = tempfile::tempdir().unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store: Arc<dyn ReportStore> = match kind.as_str() {
        "memory" => Arc::new(MemoryStore::new(100_000).unwrap()),
        _ => Arc::new(
            SqliteStore::open(SqliteConfig::new(dir.path().join("t.db"), 100_000)).unwrap(),
        ),
    };
    // One body for all: making it is not the store's work.
    let template = match body_arg.parse() {
        Ok(bytes) => body(Uuid::nil(), bytes),
        Err(_) => {
            let text = std::fs::read(&body_arg).expect("BODY is a size or a readable file");
            let value: serde_json::Value = serde_json::from_slice(&text).expect("a JSON answer");
            JsonBody::from(value)
        }
    };
    let body_bytes = template.len();
    let seq = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (cpu, written, started) = (cpu_secs(), written_bytes(), Instant::now());
    runtime.block_on(async {
        let tasks: Vec<_> = (0..in_flight)
            .map(|_| {
                let (store, seq, next) = (store.clone(), seq.clone(), next.clone());
                let template = template.clone();
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < reports {
                        let id = store::new_report_id();
                        let mut events = events(id);
                        for e in &mut events {
                            e.seq = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let report = StoredReport {
                            id,
                            created_at: Utc::now(),
                            level: TriageLevel::SelfCare,
                            top_condition: Some("J06.9".into()),
                            degraded: false,
                            api_key_id: None,
                            body: template.clone(),
                            free_text: None,
                            events,
                        };
                        store.put(report).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_secs() - cpu);
    drop(store);
    let written = written_bytes() - written;
    let size: u64 = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    println!(
        "{kind}: {reports} reports of {body_bytes} bytes, {in_flight} in flight: \
         {:.0} reports/s, {:.1} µs CPU and {:.1} KiB written per report, {:.0} MiB on disk",
        reports as f64 / wall,
        cpu * 1e6 / reports as f64,
        written as f64 / 1024.0 / reports as f64,
        size as f64 / f64::from(1 << 20)
    );
}
