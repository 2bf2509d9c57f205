//! The load benchmark behind `triagent bench` (and `scripts/bench`): starts the service, drives
//! it with oha, an open-loop load generator that corrects for coordinated omission, and writes
//! what it measured as markdown, JSON and a PNG latency plot.
//!
//! One run measures, against one freshly started service with the embedded store:
//!
//! * the time from starting the process to `GET /readyz` answering 200;
//! * `GET /healthz` at saturation (the HTTP ceiling);
//! * `POST /v1/triage` at saturation (closed loop), then open loop at fixed rates (1,000 and
//!   5,000 a second) and at the maximum sustainable rate: the highest rate tried, going down
//!   from the saturation throughput, that the service answers in full (at least 99% of the
//!   offered rate, no errors) with p99 under [`SUSTAINABLE_P99_MS`];
//! * per run: latency percentiles (p50, p90, p99, p99.9), CPU time of the service per request
//!   (from `/proc/PID/stat`), and the agents' micro-batch size distribution (from `/metrics`);
//! * the service's peak resident memory (`VmHWM`).
//!
//! The request bodies are a fixed, seeded mix from the synthetic-patient generator: lay,
//! terse and clinical texts of 5 to 120 words, some with structured findings, age, sex and
//! vitals. Nothing here is timed inside the service's own process, so the figures are what a
//! client sees; the load generator shares the machine's cores with the service and says so.

mod metrics_text;
mod plot;
mod report;

pub use report::{Report, Run};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An open-loop rate counts as sustained only with p99 under this many milliseconds.
pub const SUSTAINABLE_P99_MS: f64 = 50.0;

/// What to run and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `triagent` binary to start (`serve`).
    pub binary: PathBuf,
    /// The oha binary.
    pub oha: PathBuf,
    /// Where REPORT.md, results.json, latency.png and requests.jsonl go.
    pub out: PathBuf,
    /// 0: any free port.
    pub port: u16,
    /// A few seconds in all, low rates: checks that the benchmark works, measures nothing.
    pub smoke: bool,
    /// Seconds per load step (default 10; the smoke run uses 1).
    pub step_secs: u64,
    /// Knowledge-base folder the request mix is generated from.
    pub kb_dir: PathBuf,
    /// Extra `KEY=VALUE` environment for the service (e.g. TRIAGENT__SERVER__WORKERS=1).
    pub service_env: Vec<(String, String)>,
}

/// Fixed open-loop rates, requests a second.
const RATES: [u32; 2] = [1000, 5000];
const SMOKE_RATES: [u32; 2] = [50, 100];
/// Connections for saturation (closed loop) and for open-loop runs (enough that the rate,
/// not the connections, limits what is sent).
const SATURATE_CONNECTIONS: usize = 64;
const OPEN_CONNECTIONS: usize = 256;
/// Event subscribers that never read, for the run that shows they cannot slow triage.
const STALLED_SUBSCRIBERS: usize = 200;

/// CPU time (user and system) the process `pid` has used so far, in seconds, from
/// `/proc/PID/stat` (Linux; 10 ms ticks).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at its closing ')'.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in
    // USER_HZ, which is 100 on Linux.
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Ok(ticks as f64 / 100.0)
}

/// Runs the whole benchmark and writes the report; returns it.
pub fn run(opts: &Options) -> Result<Report> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut opts = opts.clone();
    if opts.port == 0 {
        // Any free port: asked of the kernel, then released for the service to take.
        opts.port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    }
    let opts = &opts;
    let bodies = opts.out.join("requests.jsonl");
    let mix = write_request_mix(&opts.kb_dir, &bodies)?;
    let step = Duration::from_secs(if opts.smoke { 1 } else { opts.step_secs.max(1) });

    let mut service = Service::start(opts)?;
    let base = format!("http://127.0.0.1:{}", opts.port);
    let mut report = Report::new(opts.smoke, step, mix, service.ready_after);
    let oha = Oha { bin: &opts.oha, bodies: &bodies, step };

    // The ceiling: a route that does no work.
    let healthz = format!("{base}/healthz");
    report.runs.push(service.measure_around("GET /healthz, saturation", None, || {
        oha.run(&healthz, false, None, SATURATE_CONNECTIONS)
    })?);
    eprintln!("  healthz: {:.0} requests/s", report.runs.last().map_or(0.0, |r| r.achieved_rps));

    let triage = format!("{base}/v1/triage");
    let sat = service.measure_around("POST /v1/triage, saturation", None, || {
        oha.run(&triage, true, None, SATURATE_CONNECTIONS)
    })?;
    let saturation = sat.achieved_rps;
    eprintln!("  triage saturation: {saturation:.0} requests/s");
    report.runs.push(sat);

    for &rate in if opts.smoke { &SMOKE_RATES[..] } else { &RATES[..] } {
        let run =
            service.measure_around(&format!("POST /v1/triage, {rate}/s"), Some(rate), || {
                oha.run(&triage, true, Some(rate), OPEN_CONNECTIONS)
            })?;
        eprintln!("  triage at {rate}/s: p99 {:.2} ms", run.p99_ms);
        report.runs.push(run);
    }

    // The top fixed rate again with event subscribers that never read: triage must not notice
    // them (the bus never waits for a subscriber, and a stalled stream costs nothing).
    let (rate, stalled) =
        if opts.smoke { (SMOKE_RATES[1], 5) } else { (RATES[1], STALLED_SUBSCRIBERS) };
    let subscribers = stalled_subscribers(opts.port, stalled)?;
    let run = service.measure_around(
        &format!("POST /v1/triage, {rate}/s, {stalled} stalled event subscribers"),
        Some(rate),
        || oha.run(&triage, true, Some(rate), OPEN_CONNECTIONS),
    )?;
    eprintln!("  triage at {rate}/s with {stalled} stalled subscribers: p99 {:.2} ms", run.p99_ms);
    report.runs.push(run);
    drop(subscribers);

    // The maximum sustainable rate: down from saturation in 5% steps until one holds.
    let candidates: Vec<u32> = if opts.smoke {
        vec![150]
    } else {
        (0..8)
            .map(|i| ((saturation * (1.0 - 0.05 * f64::from(i))) / 100.0).floor() as u32 * 100)
            .filter(|&r| r > 0)
            .collect()
    };
    for rate in candidates {
        let run =
            service.measure_around(&format!("POST /v1/triage, {rate}/s"), Some(rate), || {
                oha.run(&triage, true, Some(rate), OPEN_CONNECTIONS)
            })?;
        let held = run.sustained();
        eprintln!(
            "  triage at {rate}/s: {:.0} answered/s, p99 {:.2} ms{}",
            run.achieved_rps,
            run.p99_ms,
            if held { " (sustained)" } else { "" }
        );
        report.runs.push(run);
        if held {
            report.max_sustainable = Some(rate);
            break;
        }
    }

    report.peak_rss_bytes = service.peak_rss().unwrap_or(0);
    service.stop();
    // The reports it kept are of no use after the run, and can be hundreds of megabytes.
    let _ = std::fs::remove_dir_all(opts.out.join("service-data"));
    report.write(&opts.out)?;
    Ok(report)
}

/// Opens `n` event streams (`GET /v1/events`, everyone's events: the benchmark's service runs
/// without keys) that never read a byte, and waits until the service counts them.
fn stalled_subscribers(port: u16, n: usize) -> Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).context("opening an event stream")?;
        s.write_all(
            b"GET /v1/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        )?;
        streams.push(s);
    }
    // Long enough for every request to be read and subscribed.
    std::thread::sleep(Duration::from_millis(500));
    Ok(streams)
}

/// The request mix: `requests.jsonl`, one JSON body per line, from a fixed seed.
fn write_request_mix(kb_dir: &Path, path: &Path) -> Result<report::Mix> {
    let kb = kb::load_dir(kb_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut generator = synth::Generator::new(&kb, 20261204);
    let mut lines = String::new();
    let mut mix = report::Mix::default();
    while mix.requests < 512 {
        let mut case = generator.case();
        if mix.requests % 8 == 7 {
            // A long message: the generator writes at most about 60 words, so every eighth
            // request runs several of its texts together, 80 to 120 words.
            while case.text.split_whitespace().count() < 80 {
                let more = generator.case();
                case.text = format!("{} {}", case.text, more.text);
            }
            case.text = case.text.split_whitespace().take(120).collect::<Vec<_>>().join(" ");
            mix.long += 1;
        }
        let words = case.text.split_whitespace().count();
        if !(5..=120).contains(&words) {
            continue;
        }
        let mut body = serde_json::Map::new();
        body.insert("text".into(), Value::String(case.text.clone()));
        if let Some(age) = case.age {
            body.insert("age".into(), json!((age * 10.0).round() / 10.0));
        }
        if let Some(sex) = case.sex {
            body.insert("sex".into(), serde_json::to_value(sex)?);
        }
        if !case.findings.is_empty() {
            let f: Vec<Value> = case
                .findings
                .iter()
                .map(|&(i, present)| json!({"id": kb.findings[i].id, "present": present}))
                .collect();
            body.insert("findings".into(), Value::Array(f));
            mix.with_findings += 1;
        }
        if case.vitals != domain::Vitals::default() {
            body.insert("vitals".into(), serde_json::to_value(case.vitals)?);
        }
        *mix.registers.entry(case.register.as_str().to_string()).or_default() += 1;
        mix.requests += 1;
        mix.min_words = if mix.requests == 1 { words } else { mix.min_words.min(words) };
        mix.max_words = mix.max_words.max(words);
        mix.total_words += words;
        lines.push_str(&Value::Object(body).to_string());
        lines.push('\n');
    }
    std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    Ok(mix)
}

struct Oha<'a> {
    bin: &'a Path,
    bodies: &'a Path,
    step: Duration,
}

impl Oha<'_> {
    /// One oha run; its JSON summary.
    fn run(&self, url: &str, post: bool, rate: Option<u32>, connections: usize) -> Result<Value> {
        let mut cmd = Command::new(self.bin);
        cmd.args(["--no-tui", "--output-format", "json", "-z"])
            .arg(format!("{}s", self.step.as_secs()));
        cmd.arg("-c").arg(connections.to_string());
        if let Some(q) = rate {
            cmd.arg("-q").arg(q.to_string()).arg("--latency-correction");
        }
        if post {
            cmd.args(["-m", "POST", "-T", "application/json", "-Z"]).arg(self.bodies);
        }
        cmd.arg(url).stdin(Stdio::null()).stderr(Stdio::inherit());
        let out = cmd.output().with_context(|| format!("running {}", self.bin.display()))?;
        if !out.status.success() {
            bail!("oha failed ({}): {}", out.status, String::from_utf8_lossy(&out.stdout));
        }
        serde_json::from_slice(&out.stdout).context("reading oha's JSON output")
    }
}

/// The service under test: its process, and what it reads from /proc.
struct Service {
    child: Child,
    port: u16,
    ready_after: Duration,
}

impl Service {
    fn start(opts: &Options) -> Result<Service> {
        let log = std::fs::File::create(opts.out.join("service.log"))?;
        let t0 = Instant::now();
        let mut cmd = Command::new(&opts.binary);
        cmd.args(["serve", "--port"]).arg(opts.port.to_string());
        // The default store (a SQLite file), in a folder of this run: a fresh one each time, so
        // a run neither reads an earlier run's reports nor leaves them in the working directory.
        let data = opts.out.join("service-data");
        let _ = std::fs::remove_dir_all(&data);
        cmd.env("TRIAGENT_ENV", "development")
            .env_remove("TRIAGENT__DATABASE__URL")
            .env("TRIAGENT__STORE__PATH", data.join("triagent.db"))
            .env("TRIAGENT_LOG", "warn");
        for (k, v) in &opts.service_env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", opts.binary.display()))?;
        let mut service = Service { child, port: opts.port, ready_after: Duration::ZERO };
        loop {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "the service exited before it was ready ({status}); see {}",
                    opts.out.join("service.log").display()
                );
            }
            if matches!(http_get(service.port, "/readyz"), Ok((200, _))) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(120) {
                service.stop();
                bail!("the service was not ready after 120 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        service.ready_after = t0.elapsed();
        Ok(service)
    }

    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.child.id())
    }

    fn peak_rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("no VmHWM")?;
        Ok(kb * 1024)
    }

    fn batch_sizes(&self) -> Result<metrics_text::Histogram> {
        let (status, body) = http_get(self.port, "/metrics")?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        Ok(metrics_text::histogram(&body, ::metrics::AGENT_BATCH_SIZE))
    }

    /// A run with CPU time and batch sizes measured around it.
    fn measure_around(
        &mut self,
        name: &str,
        rate: Option<u32>,
        f: impl FnOnce() -> Result<Value>,
    ) -> Result<Run> {
        let batches = self.batch_sizes()?;
        let cpu = self.cpu_seconds()?;
        let oha = f()?;
        let cpu = self.cpu_seconds()? - cpu;
        let batches = self.batch_sizes()?.minus(&batches);
        Run::from_oha(name, rate, &oha, cpu, Some(batches))
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// A bare HTTP/1.1 GET on 127.0.0.1: (status, body).
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    Ok((status, body))
}
