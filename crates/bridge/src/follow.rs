//! Following the stream: the task that mirrors it into the local feed, and reading a stretch
//! of it back for a subscriber that resumes from an id older than the feed's buffer.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bus::DiagnosisEvent;
use futures_util::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{BridgeConfig, BridgeError, OWNER_HEADER};

/// Creates the stream when it does not exist yet (an existing one is used as it is) and
/// returns its last sequence.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    config: &BridgeConfig,
) -> Result<u64, String> {
    let mut stream =
        js.get_or_create_stream(config.stream_config()).await.map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    Ok(info.state.last_sequence)
}

/// An event read from the stream, numbered by the stream and with its owner restored.
fn event_of(message: &jetstream::Message) -> Result<DiagnosisEvent, String> {
    let info = message.info().map_err(|e| e.to_string())?;
    let mut event: DiagnosisEvent =
        serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
    event.seq = info.stream_sequence;
    event.owner = message
        .headers
        .as_ref()
        .and_then(|h| h.get(OWNER_HEADER))
        .and_then(|v| Uuid::parse_str(v.as_str()).ok());
    Ok(event)
}

fn ordered_from(start_sequence: u64) -> consumer::pull::OrderedConfig {
    consumer::pull::OrderedConfig {
        deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
        ..Default::default()
    }
}

pub(crate) struct Follower {
    pub js: jetstream::Context,
    pub config: BridgeConfig,
    pub feed: bus::Bus,
    /// Whether the feed already starts where the stream stood: set by the bridge when NATS
    /// answered at start, else here once it first does.
    pub positioned: watch::Sender<bool>,
}

impl Follower {
    /// Mirrors the stream into the feed from where the feed stands, until cancelled; after any
    /// failure (NATS gone, the consumer lost) starts again from the next number the feed
    /// expects, so nothing is skipped or repeated.
    pub(crate) async fn run(mut self, mut cancel: watch::Receiver<bool>) {
        let retry = self.config.retry_interval;
        loop {
            if *cancel.borrow() {
                return;
            }
            match self.follow(&mut cancel).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "following the event stream; trying again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = cancel.changed() => return,
            }
        }
    }

    /// `Ok` when cancelled, `Err` when the stream could not be read.
    async fn follow(&mut self, cancel: &mut watch::Receiver<bool>) -> Result<(), String> {
        let last = ensure_stream(&self.js, &self.config).await?;
        // A feed that never heard of the stream (NATS was down at start) begins at its end:
        // what came before is read back on demand, not replayed into memory.
        if !*self.positioned.borrow() {
            self.feed.advance_to(last + 1);
            self.positioned.send_replace(true);
        }
        let stream = self.js.get_stream(&self.config.stream).await.map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(ordered_from(self.feed.next_seq()))
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(m)) => match event_of(&m) {
                        Ok(event) => {
                            self.feed.publish_numbered(event);
                        }
                        Err(e) => tracing::warn!(error = %e, "a stream message is not an event; skipped"),
                    },
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the consumer ended".into()),
                },
                _ = cancel.changed() => return Ok(()),
            }
        }
    }
}

/// The stream's events numbered above `after` and below `before`, at most `limit`, in order.
pub(crate) async fn range(
    js: &jetstream::Context,
    config: &BridgeConfig,
    after: u64,
    before: u64,
    limit: usize,
) -> Result<Vec<DiagnosisEvent>, BridgeError> {
    let failed = |e: String| BridgeError::Unavailable(format!("reading the event stream: {e}"));
    let wait = config.publish_timeout;
    let mut stream = tokio::time::timeout(wait, js.get_stream(&config.stream))
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let last = tokio::time::timeout(wait, stream.info())
        .await
        .map_err(|_| failed("timed out".into()))?
        .map_err(|e| failed(e.to_string()))?
        .state
        .last_sequence;
    let upto = last.min(before.saturating_sub(1));
    let mut out = Vec::new();
    if after >= upto || limit == 0 {
        return Ok(out);
    }
    let consumer =
        stream.create_consumer(ordered_from(after + 1)).await.map_err(|e| failed(e.to_string()))?;
    let mut messages = consumer.messages().await.map_err(|e| failed(e.to_string()))?;
    while out.len() < limit {
        let Ok(Some(Ok(m))) =
            tokio::time::timeout(wait.max(Duration::from_millis(100)), messages.next()).await
        else {
            break;
        };
        let Ok(event) = event_of(&m) else { continue };
        if event.seq > upto {
            break;
        }
        let done = event.seq == upto;
        out.push(event);
        if done {
            break;
        }
    }
    Ok(out)
}
