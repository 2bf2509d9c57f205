//! Keeps the bus's events that belong to no report (a breaker's change of state) in a store,
//! without ever slowing triage. A report's own events are kept with the report
//! (`StoredReport::events`), so that a report and its events are stored together or not at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus::{Bus, Filter, Item};
use tokio::task::JoinHandle;

use crate::ReportStore;

/// The task that follows the bus and appends its events to a store; dropping the handle leaves
/// it running until the bus closes.
#[derive(Debug)]
pub struct EventSink {
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counts {
    stored: AtomicU64,
    dropped: AtomicU64,
}

impl EventSink {
    /// Events the store acknowledged.
    pub fn stored(&self) -> u64 {
        self.counts.stored.load(Ordering::Relaxed)
    }

    /// Events that never reached the store: missed because the sink fell behind the bus (the
    /// bus never waits for it), or refused by the store.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Whether the task ended (the bus closed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the bus is closed and every event it delivered has been appended, for an
    /// orderly shutdown.
    pub async fn finished(self) -> (u64, u64) {
        let _ = self.task.await;
        (self.counts.stored.load(Ordering::Relaxed), self.counts.dropped.load(Ordering::Relaxed))
    }
}

/// How long the sink leaves events to gather in the bus after each append. An event is kept at
/// most this much later than without the pause; at 10,000 triages a second (70,000 events) that
/// is about 140 events, against a bus capacity of thousands.
const PAUSE: Duration = Duration::from_millis(2);

/// Subscribes to `bus` from now on and appends every event of no report to `store`, taking whatever has
/// arrived (up to `batch`) per append so a slow store gets fewer, larger appends. Publishing
/// never waits for this task: if it falls more than the bus's capacity behind, the events it
/// missed are counted as dropped. Must be called within a tokio runtime.
pub fn spawn_event_sink(bus: &Bus, store: Arc<dyn ReportStore>, batch: usize) -> EventSink {
    let counts = Arc::new(Counts::default());
    let mut sub = bus.subscribe(Filter::all(), None);
    let batch = batch.max(1);
    let c = counts.clone();
    let task = tokio::spawn(async move {
        let mut events = Vec::with_capacity(batch);
        loop {
            // Wait for one, then take what is already there without waiting.
            let mut next = sub.next().await;
            let mut closed = false;
            let mut full = false;
            loop {
                match next {
                    None => {
                        closed = true;
                        break;
                    }
                    // A report's events are kept with it, by `put`, in one write.
                    Some(Item::Event(e)) if e.report_id.is_nil() => {
                        events.push(bus::DiagnosisEvent::clone(&e))
                    }
                    Some(Item::Event(_)) => {}
                    Some(Item::Gap { missed }) => {
                        c.dropped.fetch_add(missed, Ordering::Relaxed);
                    }
                }
                if events.len() >= batch {
                    full = true;
                    break;
                }
                match sub.try_next() {
                    Some(item) => next = Some(item),
                    None => break,
                }
            }
            if !events.is_empty() {
                let n = events.len() as u64;
                match store.append_events(std::mem::take(&mut events)).await {
                    Ok(()) => c.stored.fetch_add(n, Ordering::Relaxed),
                    Err(_) => c.dropped.fetch_add(n, Ordering::Relaxed),
                };
            }
            if closed {
                return;
            }
            // Caught up: not listening for a moment (after a full batch it goes straight on).
            // While the sink waits on the channel, every publish wakes it: a system call on the
            // publishing thread (an HTTP worker) and a thread switch here, seven times a request.
            // Pausing lets the events of that moment queue in the bus (far below its capacity at
            // any rate the service reaches) and go in one batch; under load the wake-ups took a
            // fifth of the HTTP workers' time.
            if !full {
                tokio::time::sleep(PAUSE).await;
            }
        }
    });
    EventSink { counts, task }
}
