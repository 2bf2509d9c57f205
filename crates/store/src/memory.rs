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
        let inner = Inner { reports: HashMap::with_capacity(room), order: VecDeque::with_capacity(room), ..Inner::default() };
        Ok(Self {
            capacity,
            inner: Mutex::new(inner),
        })
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
        let id = report.id;
        let report = Arc::new(report);
        let (existing, evicted) = {
            let mut inner = self.lock();
            if let Some(existing) = inner.reports.get(&id) {
                (Some(Arc::clone(existing)), None)
            } else {
                inner.reports.insert(id, report.clone());
                inner.order.push_back(id);
                let evicted = if inner.order.len() > self.capacity {
                    let oldest = inner.order.pop_front();
                    inner.evicted += 1;
                    oldest.and_then(|old| inner.reports.remove(&old))
                } else {
                    None
                };
                (None, evicted)
            }
        };
        // Dropped here, outside the lock: freeing a large body is not O(1).
        drop(evicted);
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
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            for event in events {
                inner.next_event_seq = inner.next_event_seq.max(1);
                let seq = inner.next_event_seq;
                inner.next_event_seq += 1;
                inner.events.push_back(Arc::new(StoredEvent { seq, event }));
                if inner.events.len() > self.capacity {
                    dropped.extend(inner.events.pop_front());
                }
            }
        }
        drop(dropped);
        Ok(())
    }

    async fn events_by_bus_seq(&self, after: u64, before: u64, limit: usize) -> Result<Vec<DiagnosisEvent>, StoreError> {
        let inner = self.lock();
        // Appended in bus order (one process, one sink), so the ring is sorted by bus seq.
        let start = inner.events.partition_point(|e| e.event.seq <= after);
        Ok(inner.events.iter().skip(start).take_while(|e| e.event.seq < before).take(limit).map(|e| e.event.clone()).collect())
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let found: Vec<Arc<StoredEvent>> = {
            let inner = self.lock();
            // Sequence numbers in the ring are contiguous, so the start is arithmetic.
            let oldest = inner.events.front().map_or(0, |e| e.seq);
            let skip = usize::try_from(after.saturating_add(1).saturating_sub(oldest)).unwrap_or(usize::MAX);
            inner.events.iter().skip(skip).take(limit).cloned().collect()
        };
        Ok(found.iter().map(|e| StoredEvent::clone(e)).collect())
    }
}
