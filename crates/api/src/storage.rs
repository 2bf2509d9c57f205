//! Choosing the report store from the settings: PostgreSQL when `database.url` is set, else
//! the durable embedded store (SQLite) when `store.path` is set, else the in-process memory
//! store; keeping the bus's events in it (under this replica's name in PostgreSQL, which
//! several replicas may share); the key store; and the NATS JetStream bridge when
//! `events.nats_url` is set.

use std::sync::Arc;
use std::time::Duration;

use settings::Settings;
use store::{
    EventSink, FileKeys, KeyStore, MemoryStore, PgConfig, PgKeys, PgStore, ReportStore,
    SqliteConfig, SqliteStore,
};

pub(crate) async fn open(settings: &Settings) -> Result<Arc<dyn ReportStore>, String> {
    let db = &settings.database;
    let store: Arc<dyn ReportStore> = if db.url.is_empty() && !settings.store.path.is_empty() {
        let mut config = SqliteConfig::new(&settings.store.path, settings.store.capacity);
        config.max_age = (settings.store.max_age_hours > 0)
            .then(|| Duration::from_secs(settings.store.max_age_hours.saturating_mul(3600)));
        config.batch_size = db.batch_size;
        Arc::new(SqliteStore::open(config).map_err(|e| e.to_string())?)
    } else if db.url.is_empty() {
        Arc::new(MemoryStore::new(settings.store.capacity).map_err(|e| e.to_string())?)
    } else {
        let mut config = PgConfig::new(db.url.expose(), &db.spool_path);
        config.pool_size = db.pool_size;
        config.batch_size = db.batch_size;
        config.batch_max_delay = Duration::from_millis(db.batch_max_delay_ms);
        config.store_free_text = db.store_free_text;
        config.op_timeout = Duration::from_millis(db.timeout_ms);
        config.replay_batch = db.replay_batch;
        config.spool_max_bytes = db.spool_max_mb.saturating_mul(1 << 20);
        // Replicas share the database: this one numbers and resumes its own events under it.
        config.replica = settings.replica_name();
        Arc::new(PgStore::open(config).await.map_err(|e| e.to_string())?)
    };
    Ok(store)
}

/// The bus, numbering events on from the store's last run, with the store following it.
pub(crate) async fn bus_into(
    settings: &Settings,
    store: &Arc<dyn ReportStore>,
) -> (bus::Bus, EventSink) {
    let bus = bus::Bus::starting_at(
        settings.bus.capacity,
        settings.bus.replay,
        store.next_bus_seq().await,
    );
    let sink = store::spawn_event_sink(&bus, store.clone(), settings.database.batch_size);
    (bus, sink)
}

/// Where API keys are kept: PostgreSQL's `api_keys` when `database.url` is set (the report
/// store has applied the migrations, or will once the database answers), the key file
/// otherwise.
pub(crate) fn open_keys(settings: &Settings) -> Result<Arc<dyn KeyStore>, String> {
    let db = &settings.database;
    if db.url.is_empty() {
        Ok(Arc::new(FileKeys::open(&settings.auth.keys_file).map_err(|e| e.to_string())?))
    } else {
        Ok(Arc::new(
            PgKeys::new(db.url.expose(), Duration::from_millis(db.timeout_ms))
                .map_err(|e| e.to_string())?,
        ))
    }
}

/// The NATS JetStream bridge, when `events.nats_url` is set.
pub(crate) async fn open_bridge(
    settings: &Settings,
) -> Result<Option<Arc<bridge::Bridge>>, String> {
    let e = &settings.events;
    if e.nats_url.is_empty() {
        return Ok(None);
    }
    let mut config = bridge::BridgeConfig::new(e.nats_url.expose(), &e.outbox_path);
    config.stream = e.stream.clone();
    config.subject_prefix = e.subject_prefix.clone();
    config.max_age = Duration::from_secs(e.max_age_hours.saturating_mul(3600));
    config.max_bytes = i64::try_from(e.max_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
    config.duplicate_window = Duration::from_secs(e.duplicate_window_secs);
    config.outbox_max_bytes = e.outbox_max_mb.saturating_mul(1 << 20);
    config.publish_timeout = Duration::from_millis(e.publish_timeout_ms);
    config.feed_replay = settings.bus.replay;
    config.feed_capacity = settings.bus.capacity;
    let bridge = bridge::Bridge::start(config).await.map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(bridge)))
}

/// Publishes the events of no report (a breaker's change of state) through the bridge, as a
/// triage's own events are published with its answer. Like the store's event sink, it never
/// slows triage: it follows the bus and loses its place if it falls behind.
pub(crate) fn spawn_bridge_sink(bus: &bus::Bus, bridge: Arc<bridge::Bridge>) {
    let mut sub = bus.subscribe(bus::Filter::all(), None);
    tokio::spawn(async move {
        while let Some(item) = sub.next().await {
            if let bus::Item::Event(event) = item
                && event.report_id.is_nil()
                && let Err(e) = bridge.publish(&[event]).await
            {
                tracing::warn!(error = %e, "a breaker event could not be published");
            }
        }
    });
}
