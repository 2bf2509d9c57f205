//! The embedded, bounded, in-process store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use uuid::Uuid;

use bus::DiagnosisEvent;

use crate::{ReportStore, StoreError, StoreHealth, StoredEvent, StoredReport};

/// Keeps the most recent `capacity` reports in memory and forgets the oldest first.
///
/// It is the default so the service needs no database to run, and bounded so a long-running
/// service cannot run out of memory: reports are a convenience to fetch again, not a record.
/// Everything is lost on restart. It also keeps the most recent `capacity` diagnosis events,
/// numbered from 1 in append order.
///
/// An evicted id is forgotten entirely (remembering it would be unbounded again), so a write
/// retried after its report was evicted stores it once more, as the newest.
///
/// Every method runs on the async executor's threads, so the lock is a plain `std::sync::Mutex`
/// held only for O(1) (amortised) work on the index: reports are kept behind `Arc`, so deep
/// clones, content comparisons and the drop of an evicted report all happen after the lock is
/// released, and no task waits on another's large JSON body.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reports: HashMap<Uuid, Arc<StoredReport>>,
    /// Ids in first-insertion order, oldest at the front; always the same ids as `reports`.
    order: VecDeque<Uuid>,
    evicted: u64,
    events: VecDeque<Arc<StoredEvent>>,
    /// The `seq` the next appended event gets.
    next_event_seq: u64,
}

impl Inner {
    /// Numbers `events` in arrival order and puts them into the ring in bus order (reports
    /// finish out of order, but only by a few events, so the place is found from the back),
    /// forgetting the oldest past `capacity`. Returns the forgotten, to be dropped unlocked.
    fn keep_events(
        &mut self,
        events: Vec<DiagnosisEvent>,
        capacity: usize,
    ) -> Vec<Arc<StoredEvent>> {
        let mut dropped = Vec::new();
        for event in events {
            self.next_event_seq = self.next_event_seq.max(1);
            let seq = self.next_event_seq;
            self.next_event_seq += 1;
            let at =
                self.events.iter().rposition(|e| e.event.seq <= event.seq).map_or(0, |i| i + 1);
            self.events.insert(at, Arc::new(StoredEvent { seq, event }));
            if self.events.len() > capacity {
                dropped.extend(self.events.pop_front());
            }
        }
        dropped
    }
}

impl MemoryStore {
    /// A store that keeps at most `capacity` reports.
    ///
    /// A capacity of 0 is refused rather than accepted as "keep nothing": every put would
    /// succeed and every get would miss, which looks like a bug elsewhere.
    pub fn new(capacity: usize) -> Result<Self, StoreError> {
        if capacity == 0 {
            return Err(StoreError::Other(
                "memory store capacity must be at least 1 report, got 0".to_owned(),
            ));
        }
        // The index is sized for the capacity up front (24 bytes a report, 40 with the order),
        // so it never rehashes under the lock while requests wait; beyond a million reports it
        // grows as it fills.
        let room = capacity.min(1 << 20);
        let inner = Inner {
            reports: HashMap::with_capacity(room),
            order: VecDeque::with_capacity(room),
            ..Inner::default()
        };
        Ok(Self { capacity, inner: Mutex::new(inner) })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reports kept now; never more than [`capacity`](Self::capacity).
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many reports were forgotten to make room since start-up, so an operator can tell
    /// whether the capacity is too small for how long reports should stay fetchable.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// A poisoned lock is reused rather than turned into an error: the only work under it is map
    /// and queue operations, which cannot panic halfway short of running out of memory (which
    /// aborts), so the index is still consistent and one failed request must not take the store
    /// down for every other.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn put(&self, mut report: StoredReport) -> Result<(), StoreError> {
        // Nothing here outlives the process, so the person's words have no reason to be kept.
        report.free_text = None;
        let events = std::mem::take(&mut report.events);
        let id = report.id;
        let report = Arc::new(report);
        let (existing, evicted, dropped_events) = {
            let mut inner = self.lock();
            if let Some(existing) = inner.reports.get(&id) {
                (Some(Arc::clone(existing)), None, Vec::new())
            } else {
                // The report and its events under one lock: a reader sees both or neither.
                let dropped_events = inner.keep_events(events, self.capacity);
                inner.reports.insert(id, report.clone());
                inner.order.push_back(id);
                let evicted = if inner.order.len() > self.capacity {
                    let oldest = inner.order.pop_front();
                    inner.evicted += 1;
                    oldest.and_then(|old| inner.reports.remove(&old))
                } else {
                    None
                };
                (None, evicted, dropped_events)
            }
        };
        // Dropped here, outside the lock: freeing a large body is not O(1).
        drop(evicted);
        drop(dropped_events);
        match existing {
            // A retry does not move the report back: eviction follows the first insertion.
            Some(existing) if existing.same_content(&report) => Ok(()),
            Some(_) => Err(StoreError::Conflict(id)),
            None => Ok(()),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<StoredReport>, StoreError> {
        let found = self.lock().reports.get(&id).cloned();
        Ok(found.map(|report| StoredReport::clone(&report)))
    }

    async fn health(&self) -> StoreHealth {
        // Nothing outside the process can fail; a full store is working as designed.
        StoreHealth::Ok
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn append_events(&self, events: Vec<DiagnosisEvent>) -> Result<(), StoreError> {
        let dropped = self.lock().keep_events(events, self.capacity);
        drop(dropped);
        Ok(())
    }

    async fn events_by_bus_seq(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<DiagnosisEvent>, StoreError> {
        let inner = self.lock();
        // The ring is kept sorted by bus seq (`keep_events`).
        let start = inner.events.partition_point(|e| e.event.seq <= after);
        Ok(inner
            .events
            .iter()
            .skip(start)
            .take_while(|e| e.event.seq < before)
            .take(limit)
            .map(|e| e.event.clone())
            .collect())
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        // The ring is in bus order, and the store's numbers follow arrival, which concurrent
        // reports may interleave: a scan, which is fine for a ring this size read this rarely.
        let mut found: Vec<Arc<StoredEvent>> =
            self.lock().events.iter().filter(|e| e.seq > after).cloned().collect();
        found.sort_unstable_by_key(|e| e.seq);
        found.truncate(limit);
        Ok(found.iter().map(|e| StoredEvent::clone(e)).collect())
    }
}
