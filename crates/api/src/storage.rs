//! Choosing the report store from the settings: PostgreSQL when `database.url` is set, else
//! the durable embedded store (SQLite) when `store.path` is set, else the in-process memory
//! store; keeping the bus's events in it (under this replica's name in PostgreSQL, which
//! several replicas may share); and the key store.

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
