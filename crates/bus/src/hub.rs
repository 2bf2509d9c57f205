//! The bus itself: numbering, the replay buffer and per-subscriber delivery.
//!
//! Publishing takes one short lock (number, timestamp, push to the replay ring, hand to the
//! broadcast channel) and never waits for a subscriber: tokio's broadcast channel overwrites the
//! oldest slot when a reader is behind, and that reader learns it on its next receive. Numbering
//! and sending under the same lock is what makes live delivery arrive in `seq` order, which the
//! resume logic relies on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use uuid::Uuid;

use crate::event::{DiagnosisEvent, DiagnosisEventKind};

/// Events are shared, not copied, between the replay buffer and every subscriber's slot: a
/// publish allocates once however many subscribers there are, and a subscriber copies only
/// the events its filter keeps.
type Shared = Arc<DiagnosisEvent>;

/// The handle triage code publishes through and the API subscribes through. Cloning is cheap
/// and every clone is the same bus.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    replay_len: usize,
    /// A mirror of a stream numbered elsewhere ([`Bus::mirror`]): its numbers are never
    /// reused, so a resume point ahead of it is one it has not caught up with yet.
    mirror: bool,
    published: AtomicU64,
    /// Shared with every subscription so lag is counted even after the bus handle is gone.
    dropped: Arc<AtomicU64>,
}

#[derive(Debug)]
struct State {
    /// The `seq` of the next event; starts at 1 so `after = 0` means "from the very start".
    next_seq: u64,
    replay: VecDeque<Shared>,
    /// `None` once closed: dropping the only sender is what ends every subscription.
    sender: Option<broadcast::Sender<Shared>>,
}

impl Bus {
    /// `capacity` is how many events a subscriber may fall behind before it gets a
    /// [`Item::Gap`]; `replay` is how many recent events a resuming subscriber can get back.
    /// A capacity of 0 is raised to 1, as a channel must hold at least one event.
    pub fn new(capacity: usize, replay: usize) -> Self {
        Self::starting_at(capacity, replay, 1)
    }

    /// As [`Bus::new`], numbering events from `first_seq` (at least 1) instead of 1: a service
    /// that keeps events continues the numbering of its previous run, so an event id a client
    /// saw before a restart still names one event (`store::ReportStore::next_bus_seq`).
    /// A bus for events numbered elsewhere, delivered with [`Bus::publish_numbered`]: the
    /// mirror of a broker's stream on one replica. A subscriber resuming from a number this
    /// mirror has not reached yet (it saw it on a replica whose mirror is ahead) gets what
    /// follows that number, not everything from the mirror's present: nothing twice.
    pub fn mirror(capacity: usize, replay: usize) -> Self {
        let mut bus = Self::new(capacity, replay);
        if let Some(inner) = Arc::get_mut(&mut bus.inner) {
            inner.mirror = true;
        }
        bus
    }

    pub fn starting_at(capacity: usize, replay: usize, first_seq: u64) -> Self {
        // tokio panics above usize::MAX / 2; no sensible configuration gets near it.
        let capacity = capacity.clamp(1, usize::MAX / 2);
        let (sender, _) = broadcast::channel(capacity);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    next_seq: first_seq.max(1),
                    // Allocated up front so a publish never grows it.
                    replay: VecDeque::with_capacity(replay.min(1 << 16)),
                    sender: Some(sender),
                }),
                replay_len: replay,
                mirror: false,
                published: AtomicU64::new(0),
                dropped: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// Numbers, timestamps and delivers an event, and returns it (shared, not copied) so the
    /// caller can log its `seq`. Never waits for a subscriber. After [`Bus::close`] the event
    /// is still numbered and kept for replay, but no live subscriber remains to receive it.
    pub fn publish(&self, report_id: Uuid, kind: DiagnosisEventKind) -> Arc<DiagnosisEvent> {
        self.publish_owned(report_id, None, kind)
    }

    /// As [`Bus::publish`], for an event of a report made with the API key `owner`.
    pub fn publish_owned(
        &self,
        report_id: Uuid,
        owner: Option<Uuid>,
        kind: DiagnosisEventKind,
    ) -> Arc<DiagnosisEvent> {
        let state = self.inner.lock();
        let event = DiagnosisEvent { seq: state.next_seq, report_id, at: Utc::now(), kind, owner };
        self.deliver(state, event)
    }

    /// Delivers an event numbered elsewhere, as it is: a mirror of a broker's stream (see the
    /// `bridge` crate) numbers its events by the stream's sequence, so an id means the same
    /// event on every replica. Numbers must rise; one at or below the last delivered is
    /// dropped (a repeat) and `None` returned. Numbers may skip (the stream forgot some):
    /// resuming inside a skip starts at the next number held.
    pub fn publish_numbered(&self, event: DiagnosisEvent) -> Option<Arc<DiagnosisEvent>> {
        let state = self.inner.lock();
        if event.seq < state.next_seq {
            return None;
        }
        Some(self.deliver(state, event))
    }

    /// Sets the number the next event will carry, when it is above the current one: a mirror
    /// that learns where its stream stands, before any event of it arrives, so a client that
    /// resumes from an older id is told what it missed instead of being taken for a newcomer.
    pub fn advance_to(&self, next_seq: u64) {
        let mut state = self.inner.lock();
        state.next_seq = state.next_seq.max(next_seq);
    }

    /// The number the next event will carry (the last delivered one's, plus one).
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }

    fn deliver(
        &self,
        mut state: MutexGuard<'_, State>,
        event: DiagnosisEvent,
    ) -> Arc<DiagnosisEvent> {
        let shared = Arc::new(event);
        state.next_seq = shared.seq + 1;
        if self.inner.replay_len > 0 {
            if state.replay.len() == self.inner.replay_len {
                state.replay.pop_front();
            }
            state.replay.push_back(Arc::clone(&shared));
        }
        if let Some(sender) = &state.sender {
            // An error only means nobody is listening right now, which is normal.
            let _ = sender.send(Arc::clone(&shared));
        }
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        shared
    }

    /// Follows the bus from now on (`after = None`), or resumes after the event numbered
    /// `after`: first whatever the replay buffer still holds past it, then live events, with
    /// neither a repeat nor a hole at the seam. If the buffer no longer reaches back to
    /// `after + 1`, the first item is a [`Item::Gap`] saying how many events are gone.
    ///
    /// An `after` beyond the last published event (a client that saw an earlier run of the
    /// process) is treated as "from now", so it is not left waiting for numbers already reused;
    /// on a [`Bus::mirror`], whose numbers are never reused, it is the client's place: events
    /// up to it are skipped when they arrive.
    pub fn subscribe(&self, filter: Filter, after: Option<u64>) -> Subscription {
        let state = self.inner.lock();
        // Subscribing and copying the replay under the same lock as publish gives an exact
        // seam: everything up to `last` is in the copy, everything after reaches `live`.
        let live = state.sender.as_ref().map(broadcast::Sender::subscribe);
        let last = state.next_seq - 1;
        let mut gap = None;
        let mut replay = VecDeque::new();
        let seen = match after {
            None => last,
            Some(after) if after >= last && self.inner.mirror => after,
            Some(after) if after >= last => last,
            Some(after) => {
                let oldest = state.replay.front().map_or(state.next_seq, |e| e.seq);
                if oldest > after + 1 {
                    gap = Some(oldest - (after + 1));
                }
                // Numbers in the buffer rise (a mirror's may skip), so the start is a search.
                let skip = state.replay.partition_point(|e| e.seq <= after);
                replay.extend(state.replay.iter().skip(skip).cloned());
                after
            }
        };
        drop(state);
        Subscription { filter, gap, replay, live, seen, dropped: Arc::clone(&self.inner.dropped) }
    }

    /// Stops live delivery: subscriptions receive what is already queued for them, then
    /// `None`. Lets shutdown end every SSE stream without tracking them.
    pub fn close(&self) {
        self.inner.lock().sender = None;
    }

    /// Live subscriptions, for metrics.
    pub fn subscribers(&self) -> usize {
        self.inner.lock().sender.as_ref().map_or(0, broadcast::Sender::receiver_count)
    }

    /// Events published since the bus was made, for metrics.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Events lost by lagging subscribers, summed over subscribers: a rising value means
    /// some consumer cannot keep up, or the capacity is too small.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Nothing panics while the lock is held with the state half-updated, so a poisoned lock
    /// still guards consistent data, and triage must not fail because a subscriber panicked.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which events a subscriber wants. Filtering runs in the subscriber, so a selective
/// subscriber costs publishers nothing more than any other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep only these [`DiagnosisEventKind::type_name`]s; `None` keeps every type.
    pub types: Option<Vec<String>>,
    /// Keep only events whose [`DiagnosisEventKind::level`] is one of these; events without a
    /// level are dropped. `None` keeps everything.
    pub levels: Option<Vec<domain::TriageLevel>>,
    /// Keep only the events of reports made with this API key (a tenant's own); `None` keeps
    /// every key's.
    pub owner: Option<Uuid>,
}

impl Filter {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn matches(&self, event: &DiagnosisEvent) -> bool {
        let type_ok =
            self.types.as_ref().is_none_or(|types| types.iter().any(|t| t == event.type_name()));
        let level_ok = self
            .levels
            .as_ref()
            .is_none_or(|levels| event.level().is_some_and(|l| levels.contains(&l)));
        let owner_ok = self.owner.is_none_or(|o| event.owner == Some(o));
        type_ok && level_ok && owner_ok
    }

    /// Types named in the filter that no event can have, so the API can reject a typo instead
    /// of serving a stream that stays silent forever. (Levels are typed: a typo cannot be one.)
    pub fn unknown_values(&self) -> Vec<&str> {
        self.types
            .iter()
            .flatten()
            .filter(|t| !DiagnosisEventKind::TYPE_NAMES.contains(&t.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Shared with the bus and every other subscriber, not copied.
    Event(Arc<DiagnosisEvent>),
    /// The subscriber lost its place: `missed` events (counted before filtering, since the
    /// lost events were never seen) are gone and delivery continues after them.
    Gap { missed: u64 },
}

/// One subscriber's view of the bus. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    filter: Filter,
    gap: Option<u64>,
    replay: VecDeque<Shared>,
    live: Option<broadcast::Receiver<Shared>>,
    /// The highest `seq` already handed out or filtered away: live events at or below it are
    /// repeats of the replay and are skipped.
    seen: u64,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Takes the gap this subscription starts with (its resume point is older than the
    /// replay buffer), so a caller that can fill it from elsewhere (the store) does, and the
    /// subscription then starts with the buffer's oldest event.
    pub fn take_gap(&mut self) -> Option<u64> {
        self.gap.take()
    }

    /// The next matching event or gap if one is already there, without waiting: `None` when
    /// nothing is (or the bus is closed; [`Subscription::next`] tells the two apart). Lets a
    /// subscriber that was woken take everything waiting in one go.
    pub fn try_next(&mut self) -> Option<Item> {
        if let Some(item) = self.pending() {
            return Some(item);
        }
        loop {
            match self.live.as_mut()?.try_recv() {
                Ok(event) => {
                    if let Some(item) = self.keep(&event) {
                        return Some(item);
                    }
                }
                Err(TryRecvError::Lagged(missed)) => return Some(self.lagged(missed)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// The next matching event or gap; `None` once the bus is closed (or every handle to it is
    /// dropped) and everything queued has been delivered.
    ///
    /// Cancel-safe: if the future is dropped before it completes (say, in a `select!` with a
    /// shutdown signal), no event is lost.
    pub async fn next(&mut self) -> Option<Item> {
        if let Some(item) = self.pending() {
            return Some(item);
        }
        loop {
            match self.live.as_mut()?.recv().await {
                Ok(event) => {
                    if let Some(item) = self.keep(&event) {
                        return Some(item);
                    }
                }
                Err(RecvError::Lagged(missed)) => return Some(self.lagged(missed)),
                Err(RecvError::Closed) => {
                    self.live = None;
                    return None;
                }
            }
        }
    }

    /// The starting gap, then what is left of the replay.
    fn pending(&mut self) -> Option<Item> {
        if let Some(missed) = self.gap.take() {
            return Some(Item::Gap { missed });
        }
        while let Some(event) = self.replay.pop_front() {
            if let Some(item) = self.keep(&event) {
                return Some(item);
            }
        }
        None
    }

    /// A live or replayed event, unless it repeats one already passed or the filter drops it.
    fn keep(&mut self, event: &Shared) -> Option<Item> {
        if event.seq <= self.seen {
            return None;
        }
        self.seen = event.seq;
        self.filter.matches(event).then(|| Item::Event(Arc::clone(event)))
    }

    fn lagged(&self, missed: u64) -> Item {
        self.dropped.fetch_add(missed, Ordering::Relaxed);
        Item::Gap { missed }
    }
}
