//! Every metric the service exports, defined in this one place.
//!
//! The coordinator records agent and triage metrics and the API records HTTP metrics through
//! handles resolved once (per agent, per level, per route and status), so the hot path is a few
//! atomic operations with no label hashing or allocation. Values the runtime already keeps
//! (queue depth, breaker state, the bus's counters) are read when the metrics are gathered,
//! through hooks registered with [`Metrics::on_gather`], rather than counted a second time.
//!
//! Labels carry closed vocabularies only (route patterns, status codes, agent names, triage
//! levels), never a person's text or an id. [`NAMES`] lists every exported metric so that other
//! exporters and dashboards can be checked against it.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// The handle types the recorders hold, so they need not depend on `prometheus` themselves.
/// The gathered families ([`Metrics::gather`]), for exporters other than `/metrics`.
pub use prometheus::proto;
pub use prometheus::{Histogram, IntCounter, IntGauge};

pub const HTTP_REQUESTS: &str = "triagent_http_requests_total";
pub const HTTP_DURATION: &str = "triagent_http_request_duration_seconds";
pub const AGENT_LATENCY: &str = "triagent_agent_latency_seconds";
pub const AGENT_FAILURES: &str = "triagent_agent_failures_total";
pub const AGENT_TIMEOUTS: &str = "triagent_agent_timeouts_total";
pub const AGENT_CIRCUIT_OPEN: &str = "triagent_agent_circuit_open_total";
pub const AGENT_QUEUE_FULL: &str = "triagent_agent_queue_full_total";
pub const AGENT_BREAKER_STATE: &str = "triagent_agent_breaker_state";
pub const AGENT_BATCH_SIZE: &str = "triagent_agent_batch_size";
pub const AGENT_QUEUE_DEPTH: &str = "triagent_agent_queue_depth";
pub const TRIAGE_LEVELS: &str = "triagent_triage_levels_total";
pub const DEGRADED_ANSWERS: &str = "triagent_degraded_answers_total";
pub const BUS_PUBLISHED: &str = "triagent_bus_events_published_total";
pub const BUS_DROPPED: &str = "triagent_bus_events_dropped_total";
pub const BUS_SUBSCRIBERS: &str = "triagent_bus_subscribers";
pub const STORE_WRITE: &str = "triagent_store_write_seconds";
pub const STORE_BACKLOG: &str = "triagent_store_backlog";
pub const STORE_SPOOL_BYTES: &str = "triagent_store_spool_bytes";
pub const STORE_SPOOL_LIMIT: &str = "triagent_store_spool_limit_bytes";
pub const STORE_SPOOL_AGE: &str = "triagent_store_spool_age_seconds";
pub const EVENTS_PUBLISHED: &str = "triagent_events_published_total";
pub const EVENTS_OUTBOX: &str = "triagent_events_outbox";
pub const EVENTS_OUTBOX_BYTES: &str = "triagent_events_outbox_bytes";
pub const EVENTS_OUTBOX_LIMIT: &str = "triagent_events_outbox_limit_bytes";
pub const HTTP_CONNECTIONS: &str = "triagent_http_connections";
pub const HTTP_CONNECTIONS_REFUSED: &str = "triagent_http_connections_refused_total";

/// Every metric name exported, as it appears in the Prometheus text (histograms add the
/// `_bucket`, `_sum` and `_count` series).
pub const NAMES: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    AGENT_LATENCY,
    AGENT_FAILURES,
    AGENT_TIMEOUTS,
    AGENT_CIRCUIT_OPEN,
    AGENT_QUEUE_FULL,
    AGENT_BREAKER_STATE,
    AGENT_BATCH_SIZE,
    AGENT_QUEUE_DEPTH,
    TRIAGE_LEVELS,
    DEGRADED_ANSWERS,
    BUS_PUBLISHED,
    BUS_DROPPED,
    BUS_SUBSCRIBERS,
    STORE_WRITE,
    STORE_BACKLOG,
    STORE_SPOOL_BYTES,
    STORE_SPOOL_LIMIT,
    STORE_SPOOL_AGE,
    EVENTS_PUBLISHED,
    EVENTS_OUTBOX,
    EVENTS_OUTBOX_BYTES,
    EVENTS_OUTBOX_LIMIT,
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_REFUSED,
];

/// The route label of requests that matched no route: unknown paths must not each become a
/// label value.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Status codes whose handles are cached per route; any other code still counts, through a
/// label lookup.
const CACHED_STATUSES: [u16; 11] = [200, 400, 401, 404, 405, 413, 415, 422, 429, 500, 503];

// Seconds. HTTP spans a cached vocabulary read to a slow triage; agents run in tens of
// microseconds to a deadline of seconds.
const HTTP_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const AGENT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

type Hook = Box<dyn Fn(&Metrics) + Send + Sync>;

/// The service's metrics and the registry that exports them. One per running service, so tests
/// that start several services in one process do not share counts.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    agent_latency: HistogramVec,
    agent_failures: IntCounterVec,
    agent_timeouts: IntCounterVec,
    agent_circuit_open: IntCounterVec,
    agent_queue_full: IntCounterVec,
    agent_breaker_state: IntGaugeVec,
    agent_batch_size: HistogramVec,
    agent_queue_depth: IntGaugeVec,
    triage_levels: IntCounterVec,
    degraded: IntCounter,
    bus_published: IntCounter,
    bus_dropped: IntCounter,
    bus_subscribers: IntGauge,
    store_write: Histogram,
    store_backlog: IntGauge,
    store_spool_bytes: IntGauge,
    store_spool_limit: IntGauge,
    store_spool_age: Gauge,
    events_published: IntCounter,
    events_outbox: IntGauge,
    events_outbox_bytes: IntGauge,
    events_outbox_limit: IntGauge,
    http_connections: IntGauge,
    http_connections_refused: IntCounter,
    /// Run before each gather; the lock also serialises gathers, which the counters read from
    /// elsewhere rely on (see [`Metrics::set_bus`]).
    hooks: Mutex<Vec<Hook>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn histogram_vec(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        .expect("valid metric definition")
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let m = Metrics {
            registry: Registry::new(),
            http_requests: counter_vec(HTTP_REQUESTS, "HTTP requests answered, by route pattern and status code.", &["route", "status"]),
            http_duration: histogram_vec(HTTP_DURATION, "Time to answer an HTTP request (to the response head), by route pattern and status code.", HTTP_BUCKETS, &["route", "status"]),
            agent_latency: histogram_vec(AGENT_LATENCY, "Time of one agent call that reached the agent's queue (answered, failed or timed out), by agent.", AGENT_BUCKETS, &["agent"]),
            agent_failures: counter_vec(AGENT_FAILURES, "Agent calls that failed (an error or a panic in inference), by agent.", &["agent"]),
            agent_timeouts: counter_vec(AGENT_TIMEOUTS, "Agent calls that missed their deadline, by agent.", &["agent"]),
            agent_circuit_open: counter_vec(AGENT_CIRCUIT_OPEN, "Agent calls refused because the agent's circuit breaker was open, by agent.", &["agent"]),
            agent_queue_full: counter_vec(AGENT_QUEUE_FULL, "Agent calls refused because the agent's queue was full, by agent.", &["agent"]),
            agent_breaker_state: gauge_vec(AGENT_BREAKER_STATE, "Circuit breaker state by agent: 0 closed, 1 open, 2 half-open.", &["agent"]),
            agent_batch_size: histogram_vec(AGENT_BATCH_SIZE, "Requests per forward pass (micro-batch size), by agent.", BATCH_BUCKETS, &["agent"]),
            agent_queue_depth: gauge_vec(AGENT_QUEUE_DEPTH, "Requests waiting in the agent's queue, by agent.", &["agent"]),
            triage_levels: counter_vec(TRIAGE_LEVELS, "Triage answers by final level.", &["level"]),
            degraded: IntCounter::new(DEGRADED_ANSWERS, "Triage answers in which at least one agent was not ok.").expect("valid metric definition"),
            bus_published: IntCounter::new(BUS_PUBLISHED, "Events published on the diagnosis event bus.").expect("valid metric definition"),
            bus_dropped: IntCounter::new(BUS_DROPPED, "Events lost by lagging bus subscribers, summed over subscribers.").expect("valid metric definition"),
            bus_subscribers: IntGauge::new(BUS_SUBSCRIBERS, "Live subscribers of the diagnosis event bus.").expect("valid metric definition"),
            store_write: Histogram::with_opts(HistogramOpts::new(STORE_WRITE, "Time to keep one triage report (committed to PostgreSQL or fsynced to the spool; in memory for the embedded store) before its answer is sent.").buckets(HTTP_BUCKETS.to_vec())).expect("valid metric definition"),
            store_backlog: IntGauge::new(STORE_BACKLOG, "Reports and events acknowledged but not yet in the database (the PostgreSQL store's spool backlog; 0 for the embedded store).").expect("valid metric definition"),
            store_spool_bytes: IntGauge::new(STORE_SPOOL_BYTES, "Bytes in the PostgreSQL store's spool (0 for the embedded store).").expect("valid metric definition"),
            store_spool_limit: IntGauge::new(STORE_SPOOL_LIMIT, "The most bytes the spool may hold (database.spool_max_mb); past it new reports are refused with 503. 0 for the embedded store.").expect("valid metric definition"),
            events_published: IntCounter::new(EVENTS_PUBLISHED, "Events NATS JetStream acknowledged since start, repeats inside the duplicate window included (0 without events.nats_url).").expect("valid metric definition"),
            events_outbox: IntGauge::new(EVENTS_OUTBOX, "Events waiting in the outbox for NATS (0 without events.nats_url).").expect("valid metric definition"),
            events_outbox_bytes: IntGauge::new(EVENTS_OUTBOX_BYTES, "Bytes in the event outbox.").expect("valid metric definition"),
            events_outbox_limit: IntGauge::new(EVENTS_OUTBOX_LIMIT, "The most bytes the event outbox may hold (events.outbox_max_mb); past it new triage requests are refused with 503 events_unavailable. 0 without events.nats_url.").expect("valid metric definition"),
            store_spool_age: Gauge::new(STORE_SPOOL_AGE, "Seconds since the PostgreSQL store's spool began holding writes that wait for the database (0 when empty, and for the embedded store).").expect("valid metric definition"),
            http_connections: IntGauge::new(HTTP_CONNECTIONS, "HTTP connections open now.").expect("valid metric definition"),
            http_connections_refused: IntCounter::new(HTTP_CONNECTIONS_REFUSED, "Requests answered 503 too_many_connections because their connection was over the per-address or the global connection limit.").expect("valid metric definition"),
            hooks: Mutex::new(Vec::new()),
        };
        let collectors: [Box<dyn Collector>; 26] = [
            Box::new(m.http_requests.clone()),
            Box::new(m.http_duration.clone()),
            Box::new(m.agent_latency.clone()),
            Box::new(m.agent_failures.clone()),
            Box::new(m.agent_timeouts.clone()),
            Box::new(m.agent_circuit_open.clone()),
            Box::new(m.agent_queue_full.clone()),
            Box::new(m.agent_breaker_state.clone()),
            Box::new(m.agent_batch_size.clone()),
            Box::new(m.agent_queue_depth.clone()),
            Box::new(m.triage_levels.clone()),
            Box::new(m.degraded.clone()),
            Box::new(m.bus_published.clone()),
            Box::new(m.bus_dropped.clone()),
            Box::new(m.bus_subscribers.clone()),
            Box::new(m.store_write.clone()),
            Box::new(m.store_backlog.clone()),
            Box::new(m.store_spool_bytes.clone()),
            Box::new(m.store_spool_limit.clone()),
            Box::new(m.store_spool_age.clone()),
            Box::new(m.events_published.clone()),
            Box::new(m.events_outbox.clone()),
            Box::new(m.events_outbox_bytes.clone()),
            Box::new(m.events_outbox_limit.clone()),
            Box::new(m.http_connections.clone()),
            Box::new(m.http_connections_refused.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        Arc::new(m)
    }

    /// Handles for one agent (label `agent` = `name`), resolved now. The counters appear at
    /// zero from the start, so a dashboard can tell "no failures" from "not running".
    pub fn agent(&self, name: &str) -> AgentMetrics {
        let l = &[name];
        AgentMetrics {
            latency: self.agent_latency.with_label_values(l),
            failures: self.agent_failures.with_label_values(l),
            timeouts: self.agent_timeouts.with_label_values(l),
            circuit_open: self.agent_circuit_open.with_label_values(l),
            queue_full: self.agent_queue_full.with_label_values(l),
            batch_size: self.agent_batch_size.with_label_values(l),
            breaker_state: self.agent_breaker_state.with_label_values(l),
            queue_depth: self.agent_queue_depth.with_label_values(l),
        }
    }

    /// The counter of answers at one triage level.
    pub fn level(&self, level: &str) -> IntCounter {
        self.triage_levels.with_label_values(&[level])
    }

    pub fn degraded(&self) -> IntCounter {
        self.degraded.clone()
    }

    /// Handles for the given route patterns (plus [`UNMATCHED_ROUTE`]), resolved per status on
    /// first use.
    pub fn http(self: &Arc<Self>, routes: impl IntoIterator<Item = &'static str>) -> HttpMetrics {
        let routes: Vec<RouteMetrics> = routes
            .into_iter()
            .chain([UNMATCHED_ROUTE])
            .map(|route| RouteMetrics {
                route,
                by_status: std::array::from_fn(|_| OnceLock::new()),
            })
            .collect();
        HttpMetrics { metrics: self.clone(), routes: routes.into() }
    }

    /// The bus's own running totals, read at gather time. Gathers are serialised and only this
    /// moves these counters, so adding the difference keeps them equal to the bus's numbers.
    pub fn set_bus(&self, published: u64, dropped: u64, subscribers: usize) {
        self.bus_published.inc_by(published.saturating_sub(self.bus_published.get()));
        self.bus_dropped.inc_by(dropped.saturating_sub(self.bus_dropped.get()));
        self.bus_subscribers.set(i64::try_from(subscribers).unwrap_or(i64::MAX));
    }

    /// The histogram of report writes.
    pub fn store_write(&self) -> Histogram {
        self.store_write.clone()
    }

    /// The store's backlog, read at gather time.
    pub fn set_store_backlog(&self, backlog: u64) {
        self.store_backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }

    /// The spool's size and limit in bytes, read at gather time.
    pub fn set_store_spool(&self, bytes: u64, limit: u64) {
        self.store_spool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.store_spool_limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// The event bridge's counters, read at gather time: events published, events in the
    /// outbox, and the outbox's bytes and limit.
    pub fn set_events(&self, published: u64, outbox: u64, bytes: u64, limit: u64) {
        let set = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        self.events_published.inc_by(published.saturating_sub(self.events_published.get()));
        set(&self.events_outbox, outbox);
        set(&self.events_outbox_bytes, bytes);
        set(&self.events_outbox_limit, limit);
    }

    /// How long the spool has held writes, read at gather time.
    pub fn set_store_spool_age(&self, age: std::time::Duration) {
        self.store_spool_age.set(age.as_secs_f64());
    }

    /// Open connections and the running total of requests refused for connection limits, read
    /// at gather time (added as a difference, as in [`Metrics::set_bus`]).
    pub fn set_connections(&self, open: usize, refused: u64) {
        self.http_connections.set(i64::try_from(open).unwrap_or(i64::MAX));
        self.http_connections_refused
            .inc_by(refused.saturating_sub(self.http_connections_refused.get()));
    }

    /// Runs `hook` before every gather, to copy values kept elsewhere into gauges.
    pub fn on_gather(&self, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(hook));
    }

    /// Every metric family, hooks run first.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        for h in hooks.iter() {
            h(self);
        }
        self.registry.gather()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.gather(), &mut out)
            .expect("text encoding into memory does not fail");
        String::from_utf8(out).expect("the text encoder writes UTF-8")
    }

    /// The content type of [`Metrics::render`]'s output.
    pub fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }
}

/// One agent's handles.
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    pub latency: Histogram,
    pub failures: IntCounter,
    pub timeouts: IntCounter,
    pub circuit_open: IntCounter,
    pub queue_full: IntCounter,
    pub batch_size: Histogram,
    pub breaker_state: IntGauge,
    pub queue_depth: IntGauge,
}

struct RouteMetrics {
    route: &'static str,
    by_status: [OnceLock<(IntCounter, Histogram)>; CACHED_STATUSES.len()],
}

/// HTTP handles per route pattern and status code.
pub struct HttpMetrics {
    metrics: Arc<Metrics>,
    routes: Arc<[RouteMetrics]>,
}

impl Clone for HttpMetrics {
    fn clone(&self) -> Self {
        HttpMetrics { metrics: self.metrics.clone(), routes: self.routes.clone() }
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.iter().map(|r| r.route)).finish()
    }
}

impl HttpMetrics {
    /// Counts one answered request. `route` is the matched route pattern as registered (never
    /// the raw path), None when no route matched. Patterns given to [`Metrics::http`] and the
    /// status codes most answers have are counted through cached handles; others (routes
    /// registered elsewhere, rare codes) through a label lookup.
    pub fn observe(&self, route: Option<&str>, status: u16, status_str: &str, elapsed: Duration) {
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let secs = elapsed.as_secs_f64();
        let cached = self
            .routes
            .iter()
            .find(|r| r.route == route)
            .zip(CACHED_STATUSES.iter().position(|&s| s == status));
        match cached {
            Some((r, i)) => {
                let (count, time) = r.by_status[i].get_or_init(|| {
                    let l = &[r.route, status_str];
                    (
                        self.metrics.http_requests.with_label_values(l),
                        self.metrics.http_duration.with_label_values(l),
                    )
                });
                count.inc();
                time.observe(secs);
            }
            None => {
                let l = &[route, status_str];
                self.metrics.http_requests.with_label_values(l).inc();
                self.metrics.http_duration.with_label_values(l).observe(secs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_family_is_named_and_every_name_is_registered() {
        let m = Metrics::new();
        // Vectors only show up once they have a child; touch one of each.
        let a = m.agent("symptom_classifier");
        a.latency.observe(0.001);
        m.level("self_care").inc();
        m.http(["/v1/triage"]).observe(Some("/v1/triage"), 200, "200", Duration::from_millis(3));
        let mut got: Vec<String> = m.gather().iter().map(|f| f.name().to_string()).collect();
        got.sort();
        let mut want: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(NAMES.iter().all(|n| n.starts_with("triagent_")));
    }

    #[test]
    fn cached_and_uncached_routes_and_statuses_count_alike() {
        let m = Metrics::new();
        let h = m.http(["/v1/triage", "/v1/triage/{id}"]);
        h.observe(Some("/v1/triage/{id}"), 404, "404", Duration::from_millis(1));
        h.observe(Some("/v1/triage/{id}"), 404, "404", Duration::from_millis(1));
        h.observe(None, 404, "404", Duration::from_millis(1));
        h.observe(None, 418, "418", Duration::from_millis(1));
        h.observe(Some("/v1/elsewhere"), 200, "200", Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                "triagent_http_requests_total{route=\"/v1/triage/{id}\",status=\"404\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("triagent_http_requests_total{route=\"unmatched\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("triagent_http_requests_total{route=\"unmatched\",status=\"418\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("triagent_http_requests_total{route=\"/v1/elsewhere\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("triagent_http_request_duration_seconds_count{route=\"/v1/triage/{id}\",status=\"404\"} 2"), "{text}");
    }

    #[test]
    fn bus_totals_follow_the_source_exactly_across_gathers() {
        let m = Metrics::new();
        let source = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s = source.clone();
        m.on_gather(move |m| m.set_bus(s.load(std::sync::atomic::Ordering::Relaxed), 2, 3));
        for total in [5, 5, 12] {
            source.store(total, std::sync::atomic::Ordering::Relaxed);
            let text = m.render();
            assert!(
                text.contains(&format!("triagent_bus_events_published_total {total}\n")),
                "{text}"
            );
            assert!(text.contains("triagent_bus_events_dropped_total 2\n"), "{text}");
            assert!(text.contains("triagent_bus_subscribers 3\n"), "{text}");
        }
    }
}
