//! Typed configuration: `config/base.toml`, then `config/{environment}.toml`, then an optional
//! extra file (`--config`), then `TRIAGENT__SECTION__KEY` environment variables, each layer
//! overriding the one before; command-line flags are applied last by the binary.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: Server,
    pub models: Models,
    pub store: Store,
    pub bus: Bus,
    pub agents: Agents,
    pub database: Database,
    pub auth: Auth,
    pub telemetry: Telemetry,
    pub events: Events,
}

/// Events past one process: the NATS JetStream bridge of the bus (crates/stream).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// `nats://host:4222`. Empty: events stay on the process that made them (the in-process
    /// bus), as without a broker.
    pub nats_url: Secret,
    /// The JetStream stream every replica publishes to and follows.
    pub stream: String,
    /// Subjects are `{subject_prefix}.{type}.{level}` (`none` for an event without a level).
    pub subject_prefix: String,
    /// Hours the stream keeps an event (its retention by age).
    pub max_age_hours: u64,
    /// Megabytes the stream keeps at most, the oldest dropped first (retention by size).
    pub max_mb: u64,
    /// Seconds JetStream remembers a message id: a publish repeated within it (after a lost
    /// acknowledgement, or from the outbox) is stored once.
    pub duplicate_window_secs: u64,
    /// Where events wait, fsynced, while NATS is unreachable. One process per file.
    pub outbox_path: String,
    /// Megabytes the outbox may hold; past it, new triage requests are refused with a 503.
    pub outbox_max_mb: u64,
    /// Milliseconds a group of publishes may wait for JetStream's acknowledgements before
    /// NATS counts as unreachable and the group goes to the outbox.
    pub publish_timeout_ms: u64,
}

/// OpenTelemetry traces (crates/telemetry).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); empty: off, unless the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp_endpoint: String,
    /// `http/protobuf` or `http/json`.
    pub protocol: String,
    /// The share of new traces sampled (0 to 1); a request that arrives with a sampled
    /// `traceparent` is always traced.
    pub sample_ratio: f64,
    /// The `service.name` resource attribute (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
    /// Milliseconds between metric exports over OTLP (`OTEL_METRIC_EXPORT_INTERVAL` wins when
    /// set); 0: metrics only on `/metrics`.
    pub metrics_interval_ms: u64,
}

/// API keys: who may call the `/v1` routes, and how often.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Every `/v1` route needs `Authorization: Bearer <key>` with the route's scope. Off in
    /// development (a request without a key is served, one with a key is still checked), on in
    /// production.
    pub required: bool,
    /// Where the embedded default keeps keys (hashes only) when `database.url` is empty.
    pub keys_file: String,
    /// Requests per second each key may make on average...
    pub rate_per_second: u32,
    /// ...and in one burst; beyond that, 429 with `Retry-After`.
    pub burst: u32,
    /// Milliseconds a looked-up key is trusted before it is read again: a revoked key stops
    /// working within this time.
    pub cache_ttl_ms: u64,
    /// Milliseconds between writes of the key-use counts to the audit log.
    pub audit_flush_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// This process's name among replicas that share one database: it numbers and resumes its
    /// own events there under it. Empty: `{host name}:{port}` ([`Settings::replica_name`]).
    /// Two replicas must never share one.
    #[serde(default)]
    pub replica: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub max_text_chars: usize,
    pub retry_after_secs: u64,
    /// Seconds the server waits, after SIGTERM/SIGINT, for open connections before dropping them.
    pub shutdown_timeout_secs: u64,
    /// Milliseconds between `: keep-alive` comments on an idle event stream.
    pub event_heartbeat_ms: u64,
    /// Milliseconds a request body may take to arrive, from the handler's first read; a body
    /// still incomplete then is a 408 and the connection is closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Milliseconds a request (body read, triage and keeping the report) may take before it is
    /// answered 503 `handler_timeout`; the event stream has none.
    #[serde(default = "default_handler_timeout_ms")]
    pub handler_timeout_ms: u64,
    /// Connections open at once from one client address; a request on a connection past it
    /// is a 503 `too_many_connections` with `Retry-After`, and the connection is closed.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Connections open at once in all (lowered to fit the descriptor limit); past it, as above.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Each connection's kernel send buffer, bytes (`SO_SNDBUF`): what a client that stops
    /// reading can leave queued on the server. 0 keeps the kernel's own sizing.
    #[serde(default = "default_send_buffer_bytes")]
    pub send_buffer_bytes: usize,
    /// Milliseconds a client may accept nothing of what is sent (or leave it unacknowledged)
    /// before the kernel drops the connection (`TCP_USER_TIMEOUT`, Linux). Frees the
    /// connections of event subscribers and downloads that stalled. 0 turns it off.
    #[serde(default = "default_write_stall_timeout_ms")]
    pub write_stall_timeout_ms: u64,
}

fn default_send_buffer_bytes() -> usize {
    65_536
}

fn default_write_stall_timeout_ms() -> u64 {
    30_000
}

fn default_body_timeout_ms() -> u64 {
    10_000
}

fn default_handler_timeout_ms() -> u64 {
    30_000
}

fn default_max_connections_per_client() -> usize {
    1024
}

fn default_max_connections() -> usize {
    16_384
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Models {
    pub device: String,
    /// Empty: the committed models.
    pub dir: String,
    /// Empty: the knowledge base in the repository.
    pub kb_dir: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Most reports kept (the embedded stores forget the oldest first).
    pub capacity: usize,
    /// The durable embedded store's SQLite file (`data/triagent.db` by default); empty keeps
    /// reports in memory only, lost at restart.
    pub path: String,
    /// Hours a report and its events are kept by the durable embedded store; 0: until
    /// `capacity` pushes them out.
    pub max_age_hours: u64,
}

/// PostgreSQL persistence. An empty `url` keeps the embedded in-process store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: Secret,
    pub pool_size: usize,
    /// Most reports and events committed in one transaction.
    pub batch_size: usize,
    /// Milliseconds the writer waits for more writes to group with the first; 0 = only those
    /// already waiting.
    pub batch_max_delay_ms: u64,
    /// The local spool that takes writes while PostgreSQL is unreachable.
    pub spool_path: String,
    /// Keep the person's text in its own column of `reports`.
    pub store_free_text: bool,
    /// Milliseconds connecting or one transaction may take before the database counts as down.
    pub timeout_ms: u64,
    /// Spool records written back per transaction when the database returns.
    pub replay_batch: usize,
    /// The most megabytes the spool may hold; past it, new reports are refused with a 503 and
    /// `Retry-After` until the database takes the backlog.
    #[serde(default = "default_spool_max_mb")]
    pub spool_max_mb: u64,
}

fn default_spool_max_mb() -> u64 {
    1024
}

/// A configuration value that must not be printed (a database URL may hold a password).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"[redacted]\"" })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bus {
    pub capacity: usize,
    pub replay: usize,
    /// Milliseconds an event stream lets events gather in the bus after sending, so that a
    /// subscriber is woken once per batch rather than once per event.
    #[serde(default = "default_gather_ms")]
    pub gather_ms: u64,
    /// An event stream that has lost more than this many events (it read too slowly for the
    /// bus) is told `event: dropped` and ended; it may reconnect with `Last-Event-ID`.
    #[serde(default = "default_drop_after_missed")]
    pub drop_after_missed: u64,
}

fn default_gather_ms() -> u64 {
    20
}

fn default_drop_after_missed() -> u64 {
    4096
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub workers: usize,
    pub queue: usize,
    pub max_batch: usize,
    pub max_wait_us: u64,
    pub deadline_ms: u64,
    pub breaker_failures: u32,
    pub breaker_backoff_ms: u64,
    pub breaker_backoff_max_ms: u64,
}

/// Per-agent overrides: any key left out takes the default's value.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentOverride {
    pub workers: Option<usize>,
    pub queue: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_wait_us: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_backoff_ms: Option<u64>,
    pub breaker_backoff_max_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    pub default: Agent,
    #[serde(default)]
    pub symptom_classifier: AgentOverride,
    #[serde(default)]
    pub condition_matcher: AgentOverride,
    #[serde(default)]
    pub treatment_retriever: AgentOverride,
    #[serde(default)]
    pub emergency_detector: AgentOverride,
}

impl Agents {
    /// The settings of one agent (`symptom_classifier`, ...): its overrides over the default.
    pub fn get(&self, name: &str) -> Agent {
        let o = match name {
            "symptom_classifier" => self.symptom_classifier,
            "condition_matcher" => self.condition_matcher,
            "treatment_retriever" => self.treatment_retriever,
            "emergency_detector" => self.emergency_detector,
            _ => AgentOverride::default(),
        };
        let d = self.default;
        Agent {
            workers: o.workers.unwrap_or(d.workers),
            queue: o.queue.unwrap_or(d.queue),
            max_batch: o.max_batch.unwrap_or(d.max_batch),
            max_wait_us: o.max_wait_us.unwrap_or(d.max_wait_us),
            deadline_ms: o.deadline_ms.unwrap_or(d.deadline_ms),
            breaker_failures: o.breaker_failures.unwrap_or(d.breaker_failures),
            breaker_backoff_ms: o.breaker_backoff_ms.unwrap_or(d.breaker_backoff_ms),
            breaker_backoff_max_ms: o.breaker_backoff_max_ms.unwrap_or(d.breaker_backoff_max_ms),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(String);

/// The configuration folder: `TRIAGENT_CONFIG_DIR` when set (an installed binary, such as the
/// Docker image's, lives far from the source tree), the repository's `config/` otherwise.
pub fn default_dir() -> PathBuf {
    std::env::var_os("TRIAGENT_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config"))
}

impl Settings {
    /// Loads `dir/base.toml`, `dir/{environment}.toml` (when present), `extra` (when given) and
    /// the `TRIAGENT__…` environment variables. `environment` defaults to `TRIAGENT_ENV` or
    /// "development".
    pub fn load(
        dir: &Path,
        environment: Option<&str>,
        extra: Option<&Path>,
    ) -> Result<Settings, SettingsError> {
        let env = environment
            .map(str::to_string)
            .or_else(|| std::env::var("TRIAGENT_ENV").ok())
            .unwrap_or_else(|| "development".into());
        if !["development", "production", "test"].contains(&env.as_str()) {
            return Err(SettingsError(format!(
                "unknown environment '{env}': use development, production or test"
            )));
        }
        let mut b = config::Config::builder()
            .add_source(config::File::from(dir.join("base.toml")).required(true))
            .add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false));
        if let Some(extra) = extra {
            b = b.add_source(config::File::from(extra).required(true));
        }
        b = b.add_source(
            config::Environment::with_prefix("TRIAGENT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let settings: Settings = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The name this process numbers and resumes its events under in a shared database:
    /// `server.replica` when set, else `{host name}:{server.port}`, which tells apart replicas
    /// on different hosts or ports without configuring each.
    pub fn replica_name(&self) -> String {
        if self.server.replica.is_empty() {
            format!("{}:{}", host_name(), self.server.port)
        } else {
            self.server.replica.clone()
        }
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: &str| Err(SettingsError(m.to_string()));
        if self.server.workers == 0 {
            return bad("server.workers must be at least 1");
        }
        if self.server.event_heartbeat_ms == 0 {
            return bad("server.event_heartbeat_ms must be at least 1");
        }
        if self.store.capacity == 0 || self.bus.capacity == 0 {
            return bad("store.capacity and bus.capacity must be at least 1");
        }
        let db = &self.database;
        if !db.url.is_empty()
            && (db.pool_size == 0
                || db.batch_size == 0
                || db.timeout_ms == 0
                || db.replay_batch == 0
                || db.spool_path.is_empty())
        {
            return bad(
                "database: pool_size, batch_size, timeout_ms and replay_batch must be at least 1 and spool_path must be set",
            );
        }
        let e = &self.events;
        if !e.nats_url.is_empty()
            && (e.stream.is_empty()
                || e.subject_prefix.is_empty()
                || e.outbox_path.is_empty()
                || e.max_mb == 0
                || e.outbox_max_mb == 0
                || e.publish_timeout_ms == 0)
        {
            return bad(
                "events: stream, subject_prefix and outbox_path must be set and max_mb, outbox_max_mb and publish_timeout_ms be at least 1 with a nats_url",
            );
        }
        if e.stream.contains(['.', '*', '>', ' ']) || e.subject_prefix.contains(['*', '>', ' ']) {
            return bad(
                "events: the stream name may not contain '.', '*', '>' or spaces, nor the subject prefix '*', '>' or spaces",
            );
        }
        let t = &self.telemetry;
        if !(0.0..=1.0).contains(&t.sample_ratio)
            || !["http/protobuf", "http/json"].contains(&t.protocol.as_str())
        {
            return bad(
                "telemetry: sample_ratio must be between 0 and 1 and protocol http/protobuf or http/json",
            );
        }
        let a = &self.auth;
        if a.rate_per_second == 0
            || a.burst == 0
            || a.audit_flush_ms == 0
            || (self.database.url.is_empty() && a.keys_file.is_empty())
        {
            return bad(
                "auth: rate_per_second, burst and audit_flush_ms must be at least 1 and keys_file must be set without a database",
            );
        }
        for name in
            ["symptom_classifier", "condition_matcher", "treatment_retriever", "emergency_detector"]
        {
            let a = self.agents.get(name);
            if a.workers == 0
                || a.queue == 0
                || a.max_batch == 0
                || a.deadline_ms == 0
                || a.breaker_failures == 0
            {
                return Err(SettingsError(format!(
                    "agents.{name}: workers, queue, max_batch, deadline_ms and breaker_failures must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// The machine's host name (Linux's `/proc/sys/kernel/hostname`: a container's own), or
/// `localhost` where it cannot be read.
fn host_name() -> String {
    host_name_from(std::fs::read_to_string("/proc/sys/kernel/hostname"))
}

fn host_name_from(read: std::io::Result<String>) -> String {
    match read {
        Ok(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => "localhost".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_load_and_layer() {
        let dev = Settings::load(&default_dir(), Some("development"), None).unwrap();
        assert_eq!(dev.server.host, "127.0.0.1");
        assert_eq!(dev.server.port, 8080);
        let prod = Settings::load(&default_dir(), Some("production"), None).unwrap();
        assert_eq!(prod.server.host, "0.0.0.0");
        assert_eq!(prod.agents.get("emergency_detector").deadline_ms, 500);
        assert!(prod.auth.required, "production requires API keys");
        assert!(!dev.auth.required, "development does not");
    }

    #[test]
    fn extra_file_and_per_agent_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.toml");
        std::fs::write(
            &extra,
            "[agents.condition_matcher]\ndeadline_ms = 900\n[server]\nport = 9999\n",
        )
        .unwrap();
        let s = Settings::load(&default_dir(), Some("development"), Some(&extra)).unwrap();
        assert_eq!(s.server.port, 9999);
        assert_eq!(s.agents.get("condition_matcher").deadline_ms, 900);
        assert_eq!(s.agents.get("symptom_classifier").deadline_ms, 250);
    }

    #[test]
    fn database_is_off_by_default_and_its_url_never_prints() {
        let s = Settings::load(&default_dir(), Some("development"), None).unwrap();
        assert!(s.database.url.is_empty());
        assert!(!s.database.store_free_text);
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.toml");
        std::fs::write(&extra, "[database]\nurl = \"postgres://u:hunter2@db/triagent\"\n").unwrap();
        let s = Settings::load(&default_dir(), Some("development"), Some(&extra)).unwrap();
        assert_eq!(s.database.url.expose(), "postgres://u:hunter2@db/triagent");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    /// `TRIAGENT__DATABASE__URL` selects PostgreSQL. Environment variables cannot be set in this
    /// process (no unsafe), so a child process (this test binary, filtered to the probe below)
    /// gets it.
    #[test]
    fn database_url_comes_from_the_environment() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::env_probe", "--ignored", "--nocapture"])
            .env("TRIAGENT__DATABASE__URL", "postgres://postgres@127.0.0.1:5432/x")
            .env("TRIAGENT__DATABASE__BATCH_SIZE", "7")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("probe url=postgres://postgres@127.0.0.1:5432/x batch=7"),
            "{stdout}"
        );
    }

    #[test]
    #[ignore = "run by database_url_comes_from_the_environment in a child process"]
    fn env_probe() {
        let s = Settings::load(&default_dir(), Some("development"), None).unwrap();
        println!("probe url={} batch={}", s.database.url.expose(), s.database.batch_size);
    }

    #[test]
    fn the_replica_name_is_the_setting_or_the_host_name_and_port() {
        let mut s = Settings::load(&default_dir(), Some("development"), None).unwrap();
        assert_eq!(s.server.replica, "", "unset in the shipped files");
        s.server.port = 8181;
        let name = s.replica_name();
        let (host, port) = name.rsplit_once(':').expect("host:port");
        assert_eq!(port, "8181");
        assert_eq!(host, host_name());
        assert!(!host.is_empty() && !host.contains(char::is_whitespace), "{name:?}");
        s.server.replica = "triage-a".into();
        assert_eq!(s.replica_name(), "triage-a");

        assert_eq!(host_name_from(Ok("web-1\n".into())), "web-1");
        assert_eq!(host_name_from(Ok(" \n".into())), "localhost");
        assert_eq!(host_name_from(Err(std::io::ErrorKind::NotFound.into())), "localhost");
    }

    #[test]
    fn the_replica_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.toml");
        std::fs::write(&extra, "[server]\nreplica = \"eu-2\"\n").unwrap();
        let s = Settings::load(&default_dir(), Some("development"), Some(&extra)).unwrap();
        assert_eq!(s.replica_name(), "eu-2");
    }

    #[test]
    fn unknown_keys_and_environments_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.toml");
        std::fs::write(&extra, "[server]\nprot = 1\n").unwrap();
        let e = Settings::load(&default_dir(), Some("development"), Some(&extra)).unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        assert!(Settings::load(&default_dir(), Some("staging"), None).is_err());
    }
}
