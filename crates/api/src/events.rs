//! `GET /v1/events`: the diagnosis event bus as server-sent events.
//!
//! One bus event per SSE message, with `id: <seq>` (so a browser's `EventSource` resumes by
//! itself with `Last-Event-ID`), `event: <type>` and the event as one line of JSON. Query
//! `type` and `level` (comma-separated, repeatable) filter; `Last-Event-ID` or `?after=`
//! resumes from the bus's replay buffer. Lost events (a resume older than the replay buffer, or
//! a client too slow for the bus) become an `event: gap` message with `{"missed": n}`: the bus
//! never waits for a reader, so a slow client can never slow triage. An idle stream gets a
//! `: keep-alive` comment every `server.event_heartbeat_ms`. A resume point older than the
//! replay buffer is served from the report store's events first ([`Backfill`]): the bus
//! continues the store's numbering across restarts, so an id from before a restart still
//! resumes in the right place. With NATS, a resume on a replica that has not yet reached the
//! stream since it started waits (kept alive) until it has ([`Opening`]). When the bus closes
//! (shutdown), the stream ends.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use actix_web::http::header::{CACHE_CONTROL, HeaderName};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, web};
use bus::{DiagnosisEvent, DiagnosisEventKind, Filter, Item, Subscription};
use domain::TriageLevel;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use store::ReportStore;
use store::Scope;
use tokio::time::Instant;
use uuid::Uuid;

const LAST_EVENT_ID: &str = "Last-Event-ID";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// Sent first, so the response head and a first byte go out at once: a client knows it is
/// subscribed (anything published from then on reaches it) without waiting for an event.
const SUBSCRIBED: &[u8] = b": subscribed\n\n";
/// Values echoed back in error messages are cut to this many characters.
const ECHO: usize = 64;

pub(crate) async fn events(
    req: HttpRequest,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (mut filter, after) = parse_request(&req)?;
    // Events belong to tenants: a key with `events:read` follows the events of its own
    // reports; `events:read_all` (operators, bridges) follows everyone's. Without keys
    // (development, `auth.required = false`) an anonymous caller follows everyone's.
    if let Caller::Key(key) = &caller
        && !key.allows(Scope::EventsReadAll)
    {
        filter.owner = Some(key.id);
    }
    let source = match &state.bridge {
        Some(bridge) => Source::Stream(bridge.clone()),
        None => Source::Store(state.store.clone()),
    };
    let opening = Opening::new(state.feed.clone(), filter, after, source);
    let pace = Pace {
        heartbeat: Duration::from_millis(state.settings.server.event_heartbeat_ms),
        gather: Duration::from_millis(state.settings.bus.gather_ms),
        drop_after_missed: state.settings.bus.drop_after_missed,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((CACHE_CONTROL, "no-cache"))
        // Tells nginx-style proxies not to buffer the stream.
        .insert_header((HeaderName::from_static("x-accel-buffering"), "no"))
        .streaming(stream(opening, pace, state.frames.clone())))
}

fn bad(code: ErrorCode, field: &str, message: String) -> ApiError {
    ApiError::new(code, message).field(field)
}

fn echo(s: &str) -> String {
    s.chars().take(ECHO).collect()
}

/// The filter and the resume point. `Last-Event-ID` wins over `?after=`: a browser that
/// reconnects keeps the URL it started with and sends the last id it saw in the header.
fn parse_request(req: &HttpRequest) -> Result<(Filter, Option<u64>), ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| {
            ApiError::new(ErrorCode::InvalidQuery, "the query string is not valid URL encoding")
        })?
        .into_inner();
    let mut filter = Filter::all();
    let mut after = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "type" => {
                let known = DiagnosisEventKind::TYPE_NAMES.map(|name| (name, name));
                add_values(&mut filter.types, "type", value, &known)?
            }
            "level" => {
                let known = TriageLevel::ALL.map(|level| (level.as_str(), level));
                add_values(&mut filter.levels, "level", value, &known)?
            }
            "after" => after = Some(parse_seq("after", value)?),
            other => {
                return Err(bad(
                    ErrorCode::UnknownParameter,
                    &echo(other),
                    format!("unknown query parameter '{}': use type, level or after", echo(other)),
                ));
            }
        }
    }
    if let Some(h) = req.headers().get(LAST_EVENT_ID) {
        let v = h.to_str().map_err(|_| {
            bad(
                ErrorCode::InvalidLastEventId,
                LAST_EVENT_ID,
                "Last-Event-ID must be an event id (a whole number)".into(),
            )
        })?;
        // An empty Last-Event-ID means "no last id" in the SSE model.
        if !v.trim().is_empty() {
            after = Some(parse_seq(LAST_EVENT_ID, v.trim())?);
        }
    }
    Ok((filter, after))
}

/// Adds comma-separated `value` to `list`; every item must be one of `known` (by wire name),
/// so a typo is a 400 naming it rather than a stream that stays silent forever.
fn add_values<T: Copy + PartialEq + Into<F>, F: PartialEq>(
    list: &mut Option<Vec<F>>,
    field: &str,
    value: &str,
    known: &[(&str, T)],
) -> Result<(), ApiError> {
    let list = list.get_or_insert_with(Vec::new);
    for item in value.split(',').map(str::trim) {
        let Some(&(_, v)) = known.iter().find(|(name, _)| *name == item) else {
            let shown = if item.is_empty() {
                "an empty value".to_string()
            } else {
                format!("'{}'", echo(item))
            };
            let names: Vec<&str> = known.iter().map(|(name, _)| *name).collect();
            return Err(bad(
                ErrorCode::InvalidFilter,
                field,
                format!("{field}: {shown} is not one of {}", names.join(", ")),
            ));
        };
        let v = v.into();
        if !list.contains(&v) {
            list.push(v);
        }
    }
    Ok(())
}

fn parse_seq(field: &str, value: &str) -> Result<u64, ApiError> {
    value.parse::<u64>().map_err(|_| {
        bad(
            ErrorCode::InvalidLastEventId,
            field,
            format!("{field} must be an event id (a whole number), got '{}'", echo(value)),
        )
    })
}

/// One SSE message for one bus item.
fn frame(item: &Item, frames: &Frames) -> Bytes {
    match item {
        Item::Event(e) => frames.of(e),
        Item::Gap { missed } => {
            Bytes::from(format!("event: gap\ndata: {{\"missed\":{missed}}}\n\n"))
        }
    }
}

/// The SSE message of one event.
fn render(e: &DiagnosisEvent) -> Bytes {
    match serde_json::to_string(e) {
        Ok(json) => {
            Bytes::from(format!("id: {}\nevent: {}\ndata: {json}\n\n", e.seq, e.type_name()))
        }
        // Cannot happen with the bus's types; if it ever did, the client hears about a hole
        // instead of the stream breaking.
        Err(_) => {
            Bytes::from(format!("event: gap\ndata: {{\"missed\":1,\"unencodable\":{}}}\n\n", e.seq))
        }
    }
}

/// Each event's SSE message, made once however many streams send it: a ring of recent
/// messages in slot `seq % len`, each slot behind its own lock (held for a compare and a
/// reference-count increment). A message is the same for every subscriber (the owner is never
/// on the wire), so two hundred followers of every event cost one encoding per event, not two
/// hundred.
pub(crate) struct Frames {
    slots: Box<[std::sync::Mutex<(u64, Bytes)>]>,
}

impl Frames {
    pub(crate) fn new(len: usize) -> Self {
        Self { slots: (0..len.max(1)).map(|_| std::sync::Mutex::new((0, Bytes::new()))).collect() }
    }

    fn of(&self, e: &DiagnosisEvent) -> Bytes {
        let slot = &self.slots[(e.seq % self.slots.len() as u64) as usize];
        // A poisoned slot only ever held a whole (seq, message) pair.
        let lock = || slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let cached = lock();
            if cached.0 == e.seq && !cached.1.is_empty() {
                return cached.1.clone();
            }
        }
        let made = render(e);
        *lock() = (e.seq, made.clone());
        made
    }
}

/// What a stream subscribes with. A client resuming from an id on a replica whose feed does not
/// yet know where the stream stands (NATS has not answered since the start) must wait for it:
/// subscribed now, its id would be taken as its place, and whatever the stream holds between
/// that id and the stream's end would be skipped without a gap. It gets keep-alives meanwhile.
pub(crate) struct Opening {
    feed: bus::Bus,
    filter: Filter,
    after: Option<u64>,
    source: Source,
    /// Set while the resume must wait: turns true once the feed is positioned.
    wait: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Opening {
    pub(crate) fn new(feed: bus::Bus, filter: Filter, after: Option<u64>, source: Source) -> Self {
        let wait = match (&source, after) {
            (Source::Stream(bridge), Some(_)) => Some(bridge.positioned()),
            _ => None,
        };
        Opening { feed, filter, after, source, wait: wait.filter(|w| !*w.borrow()) }
    }

    /// Subscribes; a resume point older than the feed's buffer reads what the stream (with
    /// NATS) or the store kept of the missing stretch first.
    fn open(self) -> (Subscription, Option<Backfill>) {
        let mut sub = self.feed.subscribe(self.filter.clone(), self.after);
        let backfill = match (self.after, sub.take_gap()) {
            (Some(after), Some(missed)) => {
                Some(Backfill::new(self.source, self.filter, after, missed))
            }
            _ => None,
        };
        (sub, backfill)
    }
}

/// Where a resuming client's missed events are read back from.
pub(crate) enum Source {
    /// The report store's events, by this process's bus numbers.
    Store(Arc<dyn ReportStore>),
    /// The JetStream stream, by its sequence.
    Stream(Arc<bridge::Bridge>),
}

/// Events a resuming client missed that the bus no longer holds, read from the store a page at
/// a time (bus numbers `after + 1 .. after + 1 + missed`), filtered as the bus would. Whatever
/// the store does not have either (evicted, or dropped by a sink that fell behind) becomes one
/// `gap` message with its count after the events found.
pub(crate) struct Backfill {
    source: Source,
    filter: Filter,
    after: u64,
    before: u64,
    missed: u64,
    found: u64,
    page: VecDeque<DiagnosisEvent>,
    exhausted: bool,
    /// Each report's key, looked up once, for a subscriber that follows only its own: the
    /// store keeps events without their owner.
    owners: HashMap<Uuid, Option<Uuid>>,
}

const BACKFILL_PAGE: usize = 500;

impl Backfill {
    pub(crate) fn new(source: Source, filter: Filter, after: u64, missed: u64) -> Self {
        Backfill {
            source,
            filter,
            after,
            before: after.saturating_add(1).saturating_add(missed),
            missed,
            found: 0,
            page: VecDeque::new(),
            exhausted: false,
            owners: HashMap::new(),
        }
    }

    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(mut event) = self.page.pop_front() {
                self.after = event.seq;
                self.found += 1;
                if self.filter.owner.is_some() && event.owner.is_none() && !event.report_id.is_nil()
                {
                    event.owner = match self.owners.get(&event.report_id) {
                        Some(o) => *o,
                        None => {
                            // A report the store cannot show now is nobody's: not shown.
                            let Source::Store(store) = &self.source else {
                                // The stream's events carry their owner.
                                continue;
                            };
                            let o = store
                                .get(event.report_id)
                                .await
                                .ok()
                                .flatten()
                                .and_then(|r| r.api_key_id);
                            self.owners.insert(event.report_id, o);
                            o
                        }
                    };
                }
                if self.filter.matches(&event) {
                    return Some(Item::Event(Arc::new(event)));
                }
                continue;
            }
            if self.exhausted {
                let lost = self.missed.saturating_sub(self.found);
                self.found = self.missed;
                return (lost > 0).then_some(Item::Gap { missed: lost });
            }
            let page = match &self.source {
                Source::Store(store) => store
                    .events_by_bus_seq(self.after, self.before, BACKFILL_PAGE)
                    .await
                    .map_err(|e| e.to_string()),
                Source::Stream(bridge) => bridge
                    .range(self.after, self.before, BACKFILL_PAGE)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match page {
                Ok(page) => {
                    self.exhausted = page.len() < BACKFILL_PAGE;
                    self.page.extend(page);
                }
                // The store cannot answer now: the client hears how many it missed.
                Err(_) => self.exhausted = true,
            }
        }
    }
}

/// How a stream sends: see `server.event_heartbeat_ms`, `bus.gather_ms` and
/// `bus.drop_after_missed`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub heartbeat: Duration,
    pub gather: Duration,
    pub drop_after_missed: u64,
}

/// The most bytes of events sent as one chunk.
const CHUNK: usize = 64 * 1024;

struct State {
    /// `None` only while `opening` waits.
    sub: Option<Subscription>,
    opening: Option<Opening>,
    frames: Arc<Frames>,
    backfill: Option<Backfill>,
    pace: Pace,
    /// When the next keep-alive is due: `heartbeat` after the last thing sent.
    due: Instant,
    started: bool,
    /// The last chunk held events: let the next ones gather before waiting again.
    sent_events: bool,
    /// Events this subscriber lost by reading too slowly.
    missed: u64,
    /// Told it is dropped: end after this chunk.
    ended: bool,
}

impl State {
    fn push(&mut self, out: &mut BytesMut, item: &Item) {
        out.extend_from_slice(&frame(item, &self.frames));
        if let Item::Gap { missed } = item {
            self.missed += missed;
            if self.missed > self.pace.drop_after_missed {
                out.extend_from_slice(
                    format!(
                        "event: dropped\ndata: {{\"missed\":{},\"limit\":{}}}\n\n",
                        self.missed, self.pace.drop_after_missed
                    )
                    .as_bytes(),
                );
                self.ended = true;
            }
        }
    }
}

/// The response body: `: subscribed`, then bus items and keep-alives, until the bus closes.
/// Waiting on the subscription under a timeout is safe because `Subscription::next` is
/// cancel-safe: a heartbeat never loses an event. Once woken, a stream takes every event
/// already waiting into one chunk, then pauses for `gather` so the next ones queue in the bus
/// (which never waits for it): a subscriber costs the workers a wake-up per batch, not per
/// event. One that loses more than `drop_after_missed` events is sent `event: dropped` and ended.
fn stream(
    opening: Opening,
    pace: Pace,
    frames: Arc<Frames>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    // Subscribed before `: subscribed` goes out, unless the resume must wait.
    let (sub, backfill, opening) = if opening.wait.is_some() {
        (None, None, Some(opening))
    } else {
        let (sub, backfill) = opening.open();
        (Some(sub), backfill, None)
    };
    let state = State {
        sub,
        opening,
        frames,
        backfill,
        pace,
        due: Instant::now() + pace.heartbeat,
        started: false,
        sent_events: false,
        missed: 0,
        ended: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        if !s.started {
            s.started = true;
            return Some((Ok::<_, Infallible>(Bytes::from_static(SUBSCRIBED)), s));
        }
        if let Some(mut opening) = s.opening.take() {
            if let Some(wait) = opening.wait.as_mut() {
                // A bridge that stopped (`Err`) closed the feed too: the stream then ends.
                let ready = tokio::time::timeout_at(s.due, wait.wait_for(|p| *p)).await.is_ok();
                if !ready {
                    s.opening = Some(opening);
                    s.due = Instant::now() + s.pace.heartbeat;
                    return Some((Ok(Bytes::from_static(KEEP_ALIVE)), s));
                }
            }
            let (sub, backfill) = opening.open();
            s.sub = Some(sub);
            s.backfill = backfill;
        }
        if let Some(backfill) = s.backfill.as_mut() {
            match backfill.next().await {
                Some(item) => {
                    s.due = Instant::now() + s.pace.heartbeat;
                    return Some((Ok(frame(&item, &s.frames)), s));
                }
                None => s.backfill = None,
            }
        }
        if s.sent_events && !s.pace.gather.is_zero() {
            tokio::time::sleep(s.pace.gather.min(s.due.saturating_duration_since(Instant::now())))
                .await;
        }
        let sub = s.sub.as_mut()?;
        let first = match tokio::time::timeout_at(s.due, sub.next()).await {
            Err(_) => {
                s.sent_events = false;
                s.due = Instant::now() + s.pace.heartbeat;
                return Some((Ok(Bytes::from_static(KEEP_ALIVE)), s));
            }
            Ok(Some(item)) => item,
            Ok(None) => return None,
        };
        let mut out = BytesMut::new();
        s.push(&mut out, &first);
        while out.len() < CHUNK && !s.ended {
            match s.sub.as_mut().and_then(Subscription::try_next) {
                Some(item) => s.push(&mut out, &item),
                None => break,
            }
        }
        s.sent_events = true;
        s.due = Instant::now() + s.pace.heartbeat;
        Some((Ok(out.freeze()), s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use bus::Bus;
    use futures_util::StreamExt;
    use uuid::Uuid;

    fn parse(uri: &str, last: Option<&str>) -> Result<(Filter, Option<u64>), ApiError> {
        let mut r = TestRequest::get().uri(uri);
        if let Some(l) = last {
            r = r.insert_header((LAST_EVENT_ID, l));
        }
        parse_request(&r.to_http_request())
    }

    #[test]
    fn filters_and_resume_points_parse() {
        let (f, after) = parse("/v1/events?type=triage_completed,emergency_assessed&level=emergency&type=triage_completed", None).unwrap();
        assert_eq!(f.types.unwrap(), ["triage_completed", "emergency_assessed"]);
        assert_eq!(f.levels.unwrap(), [TriageLevel::Emergency]);
        assert_eq!(after, None);
        assert_eq!(parse("/v1/events?after=7", None).unwrap().1, Some(7));
        assert_eq!(parse("/v1/events?after=7", Some("12")).unwrap().1, Some(12), "the header wins");
        assert_eq!(parse("/v1/events", Some(" ")).unwrap().1, None);
    }

    #[test]
    fn bad_filters_name_their_field() {
        for (uri, last, code, field) in [
            ("/v1/events?type=nope", None, "invalid_filter", "type"),
            ("/v1/events?type=", None, "invalid_filter", "type"),
            ("/v1/events?type=triage_completed,,", None, "invalid_filter", "type"),
            ("/v1/events?level=urgent", None, "invalid_filter", "level"),
            ("/v1/events?after=-1", None, "invalid_last_event_id", "after"),
            ("/v1/events", Some("abc"), "invalid_last_event_id", LAST_EVENT_ID),
            ("/v1/events?colour=blue", None, "unknown_parameter", "colour"),
        ] {
            let e = parse(uri, last).unwrap_err();
            assert_eq!(
                (e.status(), e.code.as_str(), e.field.as_deref()),
                (actix_web::http::StatusCode::BAD_REQUEST, code, Some(field)),
                "{uri}"
            );
        }
    }

    fn pace(heartbeat_ms: u64, drop_after_missed: u64) -> Pace {
        Pace {
            heartbeat: Duration::from_millis(heartbeat_ms),
            gather: Duration::from_millis(5),
            drop_after_missed,
        }
    }

    fn opening(bus: &Bus, after: Option<u64>) -> Opening {
        let store = store::MemoryStore::new(16).unwrap();
        Opening::new(bus.clone(), Filter::all(), after, Source::Store(Arc::new(store)))
    }

    fn degraded(bus: &Bus) {
        bus.publish(
            Uuid::nil(),
            DiagnosisEventKind::AgentDegraded {
                agent: "condition_matcher".into(),
                status: "timeout".into(),
            },
        );
    }

    #[tokio::test]
    async fn the_stream_frames_events_gaps_and_keep_alives_and_ends_with_the_bus() {
        let bus = Bus::new(16, 2);
        for _ in 0..3 {
            degraded(&bus);
        }
        // The replay buffer holds 2 of 3: resuming from the start is a gap of one (the store,
        // which would be read for it, has none), then two events, all waiting already, so
        // they go as one chunk.
        let mut s =
            std::pin::pin!(stream(opening(&bus, Some(0)), pace(50, 100), Arc::new(Frames::new(8))));
        let mut next =
            async || String::from_utf8(s.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(next().await, ": subscribed\n\n");
        assert_eq!(next().await, "event: gap\ndata: {\"missed\":1}\n\n");
        let chunk = next().await;
        let messages: Vec<&str> = chunk.split_inclusive("\n\n").collect();
        assert_eq!(messages.len(), 2, "{chunk}");
        assert!(
            messages[0].starts_with("id: 2\nevent: agent_degraded\ndata: {\"seq\":2,"),
            "{chunk}"
        );
        assert!(
            messages[0].ends_with("}\n\n") && messages[0].matches('\n').count() == 4,
            "{chunk}"
        );
        assert!(messages[1].starts_with("id: 3\n"), "{chunk}");
        assert_eq!(next().await, ": keep-alive\n\n");
        bus.close();
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_too_far_behind_is_told_and_dropped() {
        let bus = Bus::new(4, 0);
        let mut s =
            std::pin::pin!(stream(opening(&bus, None), pace(10_000, 8), Arc::new(Frames::new(8))));
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(SUBSCRIBED));
        // It reads nothing while 20 events pass a buffer of 4: 16 lost, over its limit of 8.
        for _ in 0..20 {
            degraded(&bus);
        }
        let last = String::from_utf8(s.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(last.starts_with("event: gap\ndata: {\"missed\":16}\n\n"), "{last}");
        assert!(last.ends_with("event: dropped\ndata: {\"missed\":16,\"limit\":8}\n\n"), "{last}");
        assert!(s.next().await.is_none(), "the stream ends");
        assert_eq!(bus.subscribers(), 0, "and unsubscribes");
    }

    #[tokio::test]
    async fn a_resume_waits_until_the_feed_knows_where_the_stream_stands() {
        // Events 1..=7 as the stream numbered them; the backfill source holds 1..=6.
        let origin = Bus::new(16, 16);
        for _ in 0..7 {
            degraded(&origin);
        }
        let mut taken = origin.subscribe(Filter::all(), Some(0));
        let events: Vec<DiagnosisEvent> = std::iter::from_fn(|| match taken.try_next() {
            Some(Item::Event(e)) => Some((*e).clone()),
            _ => None,
        })
        .collect();
        assert_eq!(events.len(), 7);
        let store = store::MemoryStore::new(16).unwrap();
        store.append_events(events[..6].to_vec()).await.unwrap();
        // A replica started while NATS was down: its mirror has not heard of the stream.
        let feed = Bus::mirror(16, 4);
        let (positioned, wait) = tokio::sync::watch::channel(false);
        let opening = Opening {
            feed: feed.clone(),
            filter: Filter::all(),
            after: Some(2),
            source: Source::Store(Arc::new(store)),
            wait: Some(wait),
        };
        let mut s = std::pin::pin!(stream(opening, pace(30, 100), Arc::new(Frames::new(8))));
        let mut next =
            async || String::from_utf8(s.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(next().await, ": subscribed\n\n");
        assert_eq!(next().await, ": keep-alive\n\n", "it waits, kept alive");
        // NATS answers: the stream stood at 6, and 7 follows.
        feed.advance_to(7);
        positioned.send_replace(true);
        feed.publish_numbered(events[6].clone());
        let mut ids = Vec::new();
        while ids.len() < 5 {
            let chunk = next().await;
            assert!(!chunk.contains("event: gap"), "{chunk}");
            ids.extend(
                chunk
                    .lines()
                    .filter_map(|l| l.strip_prefix("id: "))
                    .map(|n| n.parse::<u64>().unwrap()),
            );
        }
        assert_eq!(ids, [3, 4, 5, 6, 7], "what it missed, read back, then live");
    }
}
