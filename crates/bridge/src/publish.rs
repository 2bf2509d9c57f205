//! The publisher task: groups what the handlers hand over, publishes each group and waits for
//! JetStream's acknowledgements, or writes it to the outbox; and sends the outbox back, in
//! order, once NATS answers. One task does both, so nothing is published directly while the
//! outbox still holds older events, and no lock is shared.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use store::spool::Spool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::{BridgeConfig, BridgeError, Counters, OWNER_HEADER, Outgoing};

/// Events of one caller (a triage's, in order), and where to say they are kept.
pub(crate) struct Item {
    pub events: Vec<Outgoing>,
    pub ack: oneshot::Sender<Result<(), BridgeError>>,
}

pub(crate) struct Publisher {
    js: jetstream::Context,
    config: BridgeConfig,
    /// Taken out while a blocking write or read runs on it.
    outbox: Option<Spool>,
    counters: Arc<Counters>,
    /// The outbox holds events not yet acknowledged: new ones go behind them.
    spooling: bool,
    /// Where the next outbox record to send starts.
    read_from: u64,
    /// When the outbox may be tried again.
    retry_at: Instant,
}

impl Publisher {
    pub(crate) fn new(
        js: jetstream::Context,
        config: BridgeConfig,
        outbox: Spool,
        counters: Arc<Counters>,
        spooling: bool,
    ) -> Self {
        Publisher {
            js,
            config,
            outbox: Some(outbox),
            counters,
            spooling,
            read_from: 0,
            retry_at: Instant::now(),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Item>,
        mut cancel: watch::Receiver<bool>,
    ) {
        let mut closing = false;
        loop {
            // While the outbox has a backlog, wake up to send it even when nothing arrives.
            let wake = if self.spooling {
                self.retry_at
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            let first = tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => Some(item),
                    None => return self.drain_before_exit().await,
                },
                _ = tokio::time::sleep_until(wake), if self.spooling => None,
                _ = cancel.changed(), if !closing => {
                    // Take nothing new, but publish (or keep) everything already queued.
                    closing = true;
                    rx.close();
                    continue;
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                let mut weight = batch[0].events.len();
                while weight < self.config.batch_size {
                    match rx.try_recv() {
                        Ok(item) => {
                            weight += item.events.len();
                            batch.push(item);
                        }
                        Err(_) => break,
                    }
                }
                self.take(batch).await;
            }
            if self.spooling && Instant::now() >= self.retry_at {
                self.send_outbox().await;
            }
        }
    }

    /// The channel is closed and empty: one last try at the outbox, so a clean stop with NATS
    /// up leaves nothing behind.
    async fn drain_before_exit(mut self) {
        while self.spooling && Instant::now() >= self.retry_at {
            self.send_outbox().await;
        }
    }

    /// Publishes a group, or keeps it in the outbox, then answers each caller.
    async fn take(&mut self, batch: Vec<Item>) {
        if !self.spooling {
            let events: Vec<&Outgoing> = batch.iter().flat_map(|i| i.events.iter()).collect();
            match self.publish_all(&events).await {
                Ok(()) => {
                    for item in batch {
                        let _ = item.ack.send(Ok(()));
                    }
                    return;
                }
                Err(reason) => {
                    tracing::warn!(
                        error = %reason,
                        events = events.len(),
                        "publishing to JetStream failed; keeping events in the outbox"
                    );
                }
            }
        }
        let outcome = self.append(&batch).await;
        for item in batch {
            let _ = item.ack.send(outcome.clone());
        }
    }

    /// Appends every event of `batch` to the outbox with one fsync.
    async fn append(&mut self, batch: &[Item]) -> Result<(), BridgeError> {
        let records: Vec<Vec<u8>> = batch
            .iter()
            .flat_map(|i| i.events.iter())
            .map(|e| serde_json::to_vec(e).unwrap_or_default())
            .collect();
        let n = records.len() as u64;
        let (written, len) =
            self.on_outbox(move |o| (o.append(&records), o.len())).await.ok_or_else(closed)?;
        match written {
            Ok(_) => {
                if !self.spooling {
                    self.spooling = true;
                    self.retry_at = Instant::now() + self.config.retry_interval;
                }
                self.counters.outboxed.fetch_add(n, Ordering::Relaxed);
                self.counters.backlog.fetch_add(n, Ordering::Relaxed);
                self.counters.outbox_bytes.store(len, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the event outbox cannot be written");
                Err(BridgeError::Unavailable(format!("the event outbox cannot be written: {e}")))
            }
        }
    }

    /// Sends one chunk of the outbox, from `read_from`; empties the outbox once everything in
    /// it is acknowledged. One chunk a call, so new events keep being taken (into the outbox)
    /// between chunks. On a failure, tries again after `retry_interval`, from the first chunk
    /// not acknowledged (a repeat is dropped by JetStream as a duplicate).
    async fn send_outbox(&mut self) {
        let (from, chunk) = (self.read_from, self.config.batch_size.max(1));
        let Some(read) = self.on_outbox(move |o| o.read(from, chunk)).await else { return };
        let records = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the event outbox cannot be read");
                self.retry_at = Instant::now() + self.config.retry_interval;
                return;
            }
        };
        if records.is_empty() {
            self.clear().await;
            return;
        }
        let next = records.last().map_or(from, |r| r.next);
        let events: Vec<Outgoing> = records
            .iter()
            .filter_map(|r| match serde_json::from_slice(&r.payload) {
                Ok(e) => Some(e),
                Err(e) => {
                    // Checksummed, so only a bug could make this; the event is skipped.
                    tracing::error!(error = %e, "an outbox record is not an event; skipped");
                    None
                }
            })
            .collect();
        let refs: Vec<&Outgoing> = events.iter().collect();
        match self.publish_all(&refs).await {
            Ok(()) => {
                self.read_from = next;
                // More may wait: the next chunk goes at once.
                self.retry_at = Instant::now();
                self.counters.backlog.fetch_sub(
                    (records.len() as u64).min(self.counters.backlog.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
            Err(reason) => {
                tracing::debug!(error = %reason, "NATS still unreachable; the outbox waits");
                self.retry_at = Instant::now() + self.config.retry_interval;
            }
        }
    }

    async fn clear(&mut self) {
        let Some(cleared) = self.on_outbox(Spool::clear).await else { return };
        match cleared {
            Ok(()) => {
                self.spooling = false;
                self.read_from = 0;
                self.counters.backlog.store(0, Ordering::Relaxed);
                self.counters.outbox_bytes.store(0, Ordering::Relaxed);
                tracing::info!("the event outbox is sent and empty");
            }
            Err(e) => {
                tracing::error!(error = %e, "the event outbox cannot be emptied");
                self.retry_at = Instant::now() + self.config.retry_interval;
            }
        }
    }

    /// Runs `f` on the outbox on the blocking pool (its writes fsync), then puts it back.
    /// `None` when there is no outbox: closed, or lost with a blocking task that panicked.
    async fn on_outbox<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Option<T> {
        let mut outbox = self.outbox.take()?;
        let (outbox, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut outbox);
            (outbox, out)
        })
        .await
        .inspect_err(
            |e| tracing::error!(error = %e, "an outbox task stopped; the outbox is closed"),
        )
        .ok()?;
        self.outbox = Some(outbox);
        Some(out)
    }

    /// Publishes every event, in order, then waits for all the acknowledgements, within
    /// `publish_timeout` in all.
    async fn publish_all(&self, events: &[&Outgoing]) -> Result<(), String> {
        let deadline = Instant::now() + self.config.publish_timeout;
        let sent = async {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
            for e in events {
                let mut message = jetstream::message::PublishMessage::build()
                    .message_id(&e.id)
                    .payload(Bytes::from(e.payload.clone()));
                if let Some(owner) = e.owner {
                    message = message.header(OWNER_HEADER, owner.to_string().as_str());
                }
                acks.push(
                    self.js
                        .send_publish(e.subject.clone(), message)
                        .await
                        .map_err(|err| format!("publish: {err}"))?,
                );
            }
            let mut duplicates = 0;
            for ack in acks {
                let ack = ack.await.map_err(|err| format!("acknowledgement: {err}"))?;
                duplicates += u64::from(ack.duplicate);
            }
            Ok::<_, String>(duplicates)
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(duplicates)) => {
                self.counters.published.fetch_add(events.len() as u64, Ordering::Relaxed);
                self.counters.duplicates.fetch_add(duplicates, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "JetStream did not acknowledge within {:?}",
                self.config.publish_timeout
            )),
        }
    }
}

fn closed() -> BridgeError {
    BridgeError::Unavailable("the event outbox is closed".into())
}
