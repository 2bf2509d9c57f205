//! The bus past one process: every diagnosis event published to a NATS JetStream stream, and
//! each replica's event feed following that stream.
//!
//! **Publishing** ([`Bridge::publish`]). A triage's events are handed over once its report is
//! kept, and the request is answered only when JetStream has acknowledged them or they are
//! fsynced in the local **outbox** (a [`store::spool::Spool`] file). One task publishes: it
//! groups what is waiting, publishes the group (each event with the JetStream `Nats-Msg-Id`
//! header, `{process}.{bus seq}`, made once per event) and waits for every acknowledgement,
//! up to `publish_timeout`. A group that fails, or any group while the outbox holds something,
//! goes to the outbox; the same task sends the outbox back in order, a chunk at a time, once
//! NATS answers, and empties it once all of it is acknowledged. A chunk sent twice (the
//! acknowledgement was lost) is stored once: JetStream drops a message id it has seen within
//! the stream's duplicate window. So delivery into the stream is at least once, and
//! effectively once inside that window; and since one task publishes, in order, on one
//! connection, a report's events reach the stream in the order they were published.
//!
//! **Following** ([`Bridge::feed`]). A task reads the stream with an ordered consumer (the
//! client recreates it from the last sequence seen after any loss) and delivers each event
//! into a local [`bus::Bus`] numbered by the stream's sequence: `GET /v1/events` on any
//! replica follows that bus, and an event's id (`Last-Event-ID`) names the same event on every
//! replica. A resume point older than the local buffer is read back from the stream itself
//! ([`Bridge::range`]).
//!
//! Events hold ids, codes, levels and timings, never a person's text (see `bus`); the API key
//! that made a report's events travels in the `Triagent-Owner` header, so a replica can keep
//! each tenant to its own events.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bus::DiagnosisEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

mod follow;
mod publish;

/// The header that carries the API key id of a report's events.
pub const OWNER_HEADER: &str = "Triagent-Owner";

/// How the bridge reaches NATS and what its stream keeps.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `nats://host:4222`.
    pub url: String,
    pub stream: String,
    /// Subjects are `{subject_prefix}.{type}.{level}` (`none` without a level).
    pub subject_prefix: String,
    pub max_age: Duration,
    pub max_bytes: i64,
    pub duplicate_window: Duration,
    pub outbox_path: PathBuf,
    pub outbox_max_bytes: u64,
    pub publish_timeout: Duration,
    /// Events per publish group, at most.
    pub batch_size: usize,
    /// How often the outbox is tried again while NATS does not answer.
    pub retry_interval: Duration,
    /// Events the local feed keeps for resuming, and how far a subscriber may fall behind it.
    pub feed_replay: usize,
    pub feed_capacity: usize,
}

impl BridgeConfig {
    /// The service's defaults for everything but where NATS and the outbox are.
    pub fn new(url: impl Into<String>, outbox_path: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            stream: "TRIAGENT_EVENTS".into(),
            subject_prefix: "triagent.events".into(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(600),
            outbox_path: outbox_path.into(),
            outbox_max_bytes: 1 << 30,
            publish_timeout: Duration::from_secs(2),
            batch_size: 1024,
            retry_interval: Duration::from_millis(500),
            feed_replay: 10_000,
            feed_capacity: 4096,
        }
    }

    /// The subject of one event.
    pub fn subject(&self, event: &DiagnosisEvent) -> String {
        let level = event.level().map_or("none", |l| l.as_str());
        format!("{}.{}.{}", self.subject_prefix, event.type_name(), level)
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            duplicate_window: self.duplicate_window,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: 1,
            ..Default::default()
        }
    }
}

/// Why the bridge cannot take or give events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// The outbox is full or cannot be written (NATS has been unreachable long enough to fill
    /// it), or the bridge is shutting down: worth retrying later.
    #[error("events cannot be kept now: {0}")]
    Unavailable(String),
    /// A configuration or start-up failure.
    #[error("event bridge: {0}")]
    Other(String),
}

/// One event as the outbox keeps it and JetStream receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Outgoing {
    /// The `Nats-Msg-Id`.
    pub id: String,
    pub subject: String,
    pub owner: Option<Uuid>,
    /// The event's JSON.
    pub payload: String,
}

/// What the bridge has done since it started, for metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub outboxed: AtomicU64,
    pub backlog: AtomicU64,
    pub outbox_bytes: AtomicU64,
    pub connected: AtomicBool,
}

/// Counters since the bridge started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Events JetStream acknowledged (duplicates included).
    pub published: u64,
    /// Of those, acknowledged as already stored (a repeat inside the duplicate window).
    pub duplicates: u64,
    /// Events written to the outbox.
    pub outboxed: u64,
    /// Events in the outbox now, waiting for NATS.
    pub backlog: u64,
}

/// The running bridge: a publisher task, a follower task and the local feed.
pub struct Bridge {
    config: BridgeConfig,
    /// Names this process in message ids, so two processes never give one id.
    process: Uuid,
    tx: mpsc::Sender<publish::Item>,
    js: jetstream::Context,
    feed: bus::Bus,
    counters: Arc<Counters>,
    /// True once the feed knows where the stream stands (see [`Bridge::positioned`]).
    is_positioned: watch::Receiver<bool>,
    cancel: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("stream", &self.config.stream).finish_non_exhaustive()
    }
}

impl Bridge {
    /// Opens the outbox, connects (in the background when NATS does not answer yet: the
    /// service starts anyway, and the outbox takes the events), and starts both tasks.
    pub async fn start(config: BridgeConfig) -> Result<Bridge, BridgeError> {
        let path = config.outbox_path.clone();
        let (outbox, recovered) =
            tokio::task::spawn_blocking(move || store::spool::Spool::open(&path))
                .await
                .map_err(|e| BridgeError::Other(format!("outbox: {e}")))?
                .map_err(|e| {
                    BridgeError::Other(format!("outbox {}: {e}", config.outbox_path.display()))
                })?;
        if recovered.discarded_bytes > 0 {
            tracing::warn!(
                bytes = recovered.discarded_bytes,
                "event outbox had a torn tail; cut off and kept aside"
            );
        }
        let counters = Arc::new(Counters::default());
        counters.backlog.store(recovered.records, Ordering::Relaxed);
        counters.outbox_bytes.store(outbox.len(), Ordering::Relaxed);
        let events = counters.clone();
        let client = async_nats::ConnectOptions::new()
            .name("triagent")
            .retry_on_initial_connect()
            .connection_timeout(config.publish_timeout)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            events.connected.store(true, Ordering::Relaxed);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            events.connected.store(false, Ordering::Relaxed);
                            tracing::warn!("NATS connection lost; events go to the outbox");
                        }
                        _ => {}
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| BridgeError::Other(format!("NATS url: {e}")))?;
        let js = jetstream::ContextBuilder::new().timeout(config.publish_timeout).build(client);
        let feed = bus::Bus::mirror(config.feed_capacity, config.feed_replay);
        // Where the stream stands now, when NATS answers at once: a subscriber resuming from
        // an older id is then told what it missed, and read it back from the stream.
        let positioned =
            match tokio::time::timeout(config.publish_timeout, follow::ensure_stream(&js, &config))
                .await
            {
                Ok(Ok(last)) => {
                    feed.advance_to(last + 1);
                    true
                }
                _ => false,
            };
        let (positioned, is_positioned) = watch::channel(positioned);
        let (tx, rx) = mpsc::channel(config.batch_size.max(1) * 4);
        let (cancel, cancelled) = watch::channel(false);
        let publisher = publish::Publisher::new(
            js.clone(),
            config.clone(),
            outbox,
            counters.clone(),
            recovered.records > 0,
        );
        let follower = follow::Follower {
            js: js.clone(),
            config: config.clone(),
            feed: feed.clone(),
            positioned,
        };
        let tasks = vec![
            tokio::spawn(publisher.run(rx, cancelled.clone())),
            tokio::spawn(follower.run(cancelled)),
        ];
        Ok(Bridge {
            config,
            process: Uuid::new_v4(),
            tx,
            js,
            feed,
            counters,
            is_positioned,
            cancel,
            tasks: tokio::sync::Mutex::new(tasks),
        })
    }

    /// Publishes `events` in order and returns once JetStream has them or the outbox does.
    /// Fails only when neither can take them ([`BridgeError::Unavailable`]).
    pub async fn publish(&self, events: &[Arc<DiagnosisEvent>]) -> Result<(), BridgeError> {
        if events.is_empty() {
            return Ok(());
        }
        let outgoing = events
            .iter()
            .map(|e| {
                let payload = serde_json::to_string(&**e)
                    .map_err(|err| BridgeError::Other(format!("event {}: {err}", e.seq)))?;
                Ok(Outgoing {
                    id: format!("{}.{}", self.process, e.seq),
                    subject: self.config.subject(e),
                    owner: e.owner,
                    payload,
                })
            })
            .collect::<Result<Vec<_>, BridgeError>>()?;
        let (ack, done) = oneshot::channel();
        let closed = || BridgeError::Unavailable("the event bridge is shutting down".into());
        self.tx.send(publish::Item { events: outgoing, ack }).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }

    /// Whether the outbox is past its limit: new triage requests should be refused until NATS
    /// takes the backlog, rather than acknowledged with events that could not be kept.
    pub fn full(&self) -> bool {
        self.counters.outbox_bytes.load(Ordering::Relaxed) >= self.config.outbox_max_bytes
    }

    /// The local feed: the stream's events, numbered by the stream's sequence.
    pub fn feed(&self) -> &bus::Bus {
        &self.feed
    }

    /// Turns true once the feed knows where the stream stands: at start when NATS answered
    /// then, else when it first does. Until then the feed cannot tell an id the stream already
    /// passed from one it has not reached, so a subscriber resuming from an id must wait for
    /// this before subscribing, or it would skip what it missed without being told.
    pub fn positioned(&self) -> watch::Receiver<bool> {
        self.is_positioned.clone()
    }

    /// Whether the client is connected to NATS now.
    pub fn connected(&self) -> bool {
        self.counters.connected.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> BridgeStats {
        let c = &self.counters;
        BridgeStats {
            published: c.published.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            outboxed: c.outboxed.load(Ordering::Relaxed),
            backlog: c.backlog.load(Ordering::Relaxed),
        }
    }

    /// The outbox's size and its limit in bytes.
    pub fn outbox_bytes(&self) -> (u64, u64) {
        (self.counters.outbox_bytes.load(Ordering::Relaxed), self.config.outbox_max_bytes)
    }

    /// The stream's events numbered above `after` and below `before`, in order, at most
    /// `limit`: what a subscriber resuming from an id older than the feed's buffer missed.
    pub async fn range(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DiagnosisEvent>, BridgeError> {
        follow::range(&self.js, &self.config, after, before, limit).await
    }

    /// Publishes what is queued (to JetStream or the outbox), then stops both tasks and closes
    /// the feed, so every event stream that follows it ends.
    pub async fn shutdown(&self) {
        let _ = self.cancel.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
        self.feed.close();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.cancel.send(true);
    }
}
