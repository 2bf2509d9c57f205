//! The bus's promises, end to end: ordering, filtering, resuming, lag and the wire shape.

use std::collections::BTreeSet;
use std::time::Duration;

use bus::event::AGENT_STATUSES;
use bus::{Bus, DiagnosisEvent, DiagnosisEventKind, Filter, Item, RankedCode, Subscription};
use domain::{BreakerState, TriageLevel};
use serde_json::Value;
use uuid::Uuid;

/// Long enough for a healthy test, short enough that a hang fails instead of stalling CI.
const PATIENCE: Duration = Duration::from_secs(10);

async fn next(sub: &mut Subscription) -> Option<Item> {
    tokio::time::timeout(PATIENCE, sub.next()).await.expect("subscription stalled")
}

async fn next_event(sub: &mut Subscription) -> DiagnosisEvent {
    match next(sub).await {
        Some(Item::Event(e)) => DiagnosisEvent::clone(&e),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Everything until the bus closes.
async fn drain(sub: &mut Subscription) -> Vec<Item> {
    let mut items = Vec::new();
    while let Some(item) = next(sub).await {
        items.push(item);
    }
    items
}

fn seqs(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .map(|i| match i {
            Item::Event(e) => e.seq,
            Item::Gap { missed } => panic!("unexpected gap of {missed}"),
        })
        .collect()
}

fn received(n: usize) -> DiagnosisEventKind {
    DiagnosisEventKind::TriageReceived { text_chars: n, structured_findings: 0, has_vitals: false }
}

fn completed(level: TriageLevel) -> DiagnosisEventKind {
    DiagnosisEventKind::TriageCompleted { level, degraded: false, total_ms: 12.5 }
}

/// One event of every kind. The match below has no wildcard, so a new variant does not compile
/// until it is added here, and the free-text test then covers it.
fn one_of_each() -> Vec<DiagnosisEventKind> {
    use DiagnosisEventKind as K;
    let all = vec![
        K::TriageReceived { text_chars: 120, structured_findings: 2, has_vitals: true },
        K::FindingsExtracted {
            present: vec!["chest_pain".into()],
            absent: vec!["fever".into()],
            latency_ms: 1.5,
        },
        K::ConditionsRanked {
            top: vec![RankedCode {
                id: "acute_coronary_syndrome".into(),
                icd10: "I24.9".into(),
                probability: 0.7,
            }],
            latency_ms: 2.0,
        },
        K::CareRetrieved { advice: vec!["call_ambulance".into()], latency_ms: 0.8 },
        K::EmergencyAssessed {
            level: TriageLevel::EmergencyAmbulance,
            red_flags: vec!["chest_pain_with_sweating".into()],
            latency_ms: 1.1,
        },
        K::TriageCompleted {
            level: TriageLevel::EmergencyAmbulance,
            degraded: true,
            total_ms: 9.0,
        },
        K::AgentDegraded { agent: "condition-matcher".into(), status: "timeout".into() },
        K::BreakerStateChanged { agent: "condition-matcher".into(), state: BreakerState::HalfOpen },
    ];
    for kind in &all {
        match kind {
            K::TriageReceived { .. }
            | K::FindingsExtracted { .. }
            | K::ConditionsRanked { .. }
            | K::CareRetrieved { .. }
            | K::EmergencyAssessed { .. }
            | K::TriageCompleted { .. }
            | K::AgentDegraded { .. }
            | K::BreakerStateChanged { .. } => {}
        }
    }
    all
}

#[test]
fn sequence_numbers_strictly_increase_across_concurrent_publishers() {
    const THREADS: usize = 8;
    const EACH: usize = 500;
    let bus = Bus::new(THREADS * EACH, 0);
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let bus = bus.clone();
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| bus.publish(Uuid::new_v4(), received(i)).seq)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("publisher panicked")).collect()
    });
    for seqs in &per_thread {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "a publisher saw seq go back");
    }
    let all: BTreeSet<u64> = per_thread.iter().flatten().copied().collect();
    let expected: BTreeSet<u64> = (1..=(THREADS * EACH) as u64).collect();
    assert_eq!(all, expected, "every seq used exactly once, none skipped");
    assert_eq!(bus.published(), (THREADS * EACH) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscriber_sees_concurrent_publishers_in_seq_order() {
    const THREADS: usize = 4;
    const EACH: usize = 250;
    let bus = Bus::new(THREADS * EACH, 0);
    let mut sub = bus.subscribe(Filter::all(), None);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let bus = bus.clone();
            s.spawn(move || {
                for i in 0..EACH {
                    bus.publish(Uuid::new_v4(), received(i));
                }
            });
        }
    });
    bus.close();
    let got = seqs(&drain(&mut sub).await);
    assert_eq!(got, (1..=(THREADS * EACH) as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn filter_by_type() {
    let bus = Bus::new(64, 0);
    let filter = Filter {
        types: Some(vec!["agent_degraded".into(), "triage_completed".into()]),
        levels: None,
        owner: None,
    };
    let mut sub = bus.subscribe(filter, None);
    for kind in one_of_each() {
        bus.publish(Uuid::new_v4(), kind);
    }
    bus.close();
    let types: Vec<&str> = drain(&mut sub)
        .await
        .iter()
        .map(|i| match i {
            Item::Event(e) => e.type_name(),
            Item::Gap { .. } => "gap",
        })
        .collect();
    assert_eq!(types, ["triage_completed", "agent_degraded"]);
}

#[tokio::test]
async fn filter_by_level_keeps_only_events_carrying_a_listed_level() {
    let bus = Bus::new(64, 0);
    let filter = Filter {
        types: None,
        levels: Some(vec![TriageLevel::Emergency, TriageLevel::EmergencyAmbulance]),
        owner: None,
    };
    let mut sub = bus.subscribe(filter, None);
    for kind in one_of_each() {
        bus.publish(Uuid::new_v4(), kind);
    }
    for level in TriageLevel::ALL {
        bus.publish(Uuid::new_v4(), completed(level));
    }
    bus.close();
    let got: Vec<(String, String)> = drain(&mut sub)
        .await
        .into_iter()
        .map(|i| match i {
            Item::Event(e) => {
                (e.type_name().to_owned(), e.level().map_or("-", TriageLevel::as_str).to_owned())
            }
            Item::Gap { missed } => panic!("gap of {missed}"),
        })
        .collect();
    let expect = |t: &str, l: &str| (t.to_owned(), l.to_owned());
    assert_eq!(
        got,
        [
            expect("emergency_assessed", "emergency_ambulance"),
            expect("triage_completed", "emergency_ambulance"),
            expect("triage_completed", "emergency_ambulance"),
            expect("triage_completed", "emergency"),
        ]
    );
}

#[tokio::test]
async fn type_and_level_filters_combine() {
    let bus = Bus::new(64, 0);
    let filter = Filter {
        types: Some(vec!["triage_completed".into()]),
        levels: Some(vec![TriageLevel::SelfCare]),
        owner: None,
    };
    let mut sub = bus.subscribe(filter, None);
    bus.publish(Uuid::new_v4(), completed(TriageLevel::Emergency));
    let wanted = bus.publish(Uuid::new_v4(), completed(TriageLevel::SelfCare));
    bus.publish(
        Uuid::new_v4(),
        DiagnosisEventKind::EmergencyAssessed {
            level: TriageLevel::SelfCare,
            red_flags: vec![],
            latency_ms: 1.0,
        },
    );
    bus.close();
    assert_eq!(drain(&mut sub).await, [Item::Event(wanted.clone())]);
}

#[test]
fn unknown_filter_values_are_reported() {
    let filter = Filter {
        types: Some(vec!["triage_completed".into(), "triage_complete".into()]),
        levels: Some(vec![TriageLevel::SelfCare]),
        owner: None,
    };
    assert_eq!(filter.unknown_values(), ["triage_complete"]);
    assert!(Filter::all().unknown_values().is_empty());
}

#[tokio::test]
async fn resume_replays_what_came_after_then_follows_live() {
    let bus = Bus::new(64, 64);
    for i in 0..10 {
        bus.publish(Uuid::new_v4(), received(i));
    }
    let mut sub = bus.subscribe(Filter::all(), Some(6));
    bus.publish(Uuid::new_v4(), received(10));
    bus.close();
    assert_eq!(seqs(&drain(&mut sub).await), [7, 8, 9, 10, 11]);
}

#[tokio::test]
async fn resume_from_zero_replays_from_the_start_and_without_after_only_live() {
    let bus = Bus::new(8, 8);
    for i in 0..3 {
        bus.publish(Uuid::new_v4(), received(i));
    }
    let mut from_start = bus.subscribe(Filter::all(), Some(0));
    let mut live = bus.subscribe(Filter::all(), None);
    bus.publish(Uuid::new_v4(), received(3));
    bus.close();
    assert_eq!(seqs(&drain(&mut from_start).await), [1, 2, 3, 4]);
    assert_eq!(seqs(&drain(&mut live).await), [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_has_no_duplicate_and_no_hole_at_the_replay_live_seam() {
    const TOTAL: u64 = 20_000;
    let bus = Bus::new(TOTAL as usize, TOTAL as usize);
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for i in 0..TOTAL as usize {
                bus.publish(Uuid::new_v4(), received(i));
                if i % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    // Subscribe repeatedly while the publisher runs, each time a little behind it, so the seam
    // falls at many different points of a moving stream.
    let mut subs = Vec::new();
    loop {
        let after = bus.published().saturating_sub(5);
        subs.push((after, bus.subscribe(Filter::all(), Some(after))));
        if publisher.is_finished() || subs.len() >= 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    publisher.join().expect("publisher panicked");
    bus.close();
    for (after, mut sub) in subs {
        let got = seqs(&drain(&mut sub).await);
        let expected: Vec<u64> = (after + 1..=TOTAL).collect();
        assert!(got == expected, "resume after {after}: not exactly {}..={TOTAL}", after + 1);
    }
}

#[tokio::test]
async fn resume_older_than_the_replay_buffer_starts_with_a_gap() {
    let bus = Bus::new(64, 4);
    for i in 0..10 {
        bus.publish(Uuid::new_v4(), received(i));
    }
    // Holds 7..=10; 3..=6 are gone.
    let mut sub = bus.subscribe(Filter::all(), Some(2));
    assert_eq!(next(&mut sub).await, Some(Item::Gap { missed: 4 }));
    bus.close();
    assert_eq!(seqs(&drain(&mut sub).await), [7, 8, 9, 10]);
}

#[tokio::test]
async fn resume_without_a_replay_buffer_reports_everything_since_as_a_gap() {
    let bus = Bus::new(64, 0);
    for i in 0..5 {
        bus.publish(Uuid::new_v4(), received(i));
    }
    let mut sub = bus.subscribe(Filter::all(), Some(1));
    assert_eq!(next(&mut sub).await, Some(Item::Gap { missed: 4 }));
    let sixth = bus.publish(Uuid::new_v4(), received(5));
    assert_eq!(next_event(&mut sub).await, *sixth);
}

#[tokio::test]
async fn resume_after_a_seq_from_the_future_follows_live_from_now() {
    let bus = Bus::new(8, 8);
    bus.publish(Uuid::new_v4(), received(0));
    let mut sub = bus.subscribe(Filter::all(), Some(1_000));
    let next_one = bus.publish(Uuid::new_v4(), received(1));
    assert_eq!(next_event(&mut sub).await, *next_one);
}

#[tokio::test]
async fn a_slow_subscriber_gets_a_gap_and_never_blocks_publishers() {
    const CAPACITY: usize = 16;
    let bus = Bus::new(CAPACITY, 0);
    let mut slow = bus.subscribe(Filter::all(), None);
    // On its own thread with a deadline: if publish ever waited for the reader, this would
    // time out rather than hang the test.
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            for i in 0..CAPACITY * 10 {
                bus.publish(Uuid::new_v4(), received(i));
            }
        })
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !publisher.is_finished() {
        assert!(std::time::Instant::now() < deadline, "publisher blocked on a slow subscriber");
        std::thread::sleep(Duration::from_millis(1));
    }
    publisher.join().expect("publisher panicked");
    assert_eq!(bus.published(), (CAPACITY * 10) as u64);

    let missed = (CAPACITY * 9) as u64;
    assert_eq!(next(&mut slow).await, Some(Item::Gap { missed }));
    assert_eq!(bus.dropped(), missed);
    bus.close();
    let rest = seqs(&drain(&mut slow).await);
    assert_eq!(rest, (missed + 1..=(CAPACITY * 10) as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn close_ends_subscriptions_after_they_drain() {
    let bus = Bus::new(8, 8);
    let mut sub = bus.subscribe(Filter::all(), None);
    let first = bus.publish(Uuid::new_v4(), received(0));
    bus.close();
    assert_eq!(next(&mut sub).await, Some(Item::Event(first.clone())));
    assert_eq!(next(&mut sub).await, None);
    assert_eq!(next(&mut sub).await, None, "stays ended");

    // After close a resuming subscriber still gets the replay, then the end.
    bus.publish(Uuid::new_v4(), received(1));
    let mut late = bus.subscribe(Filter::all(), Some(0));
    assert_eq!(seqs(&drain(&mut late).await), [1, 2]);
    assert_eq!(bus.subscribers(), 0);
}

#[tokio::test]
async fn dropping_every_bus_handle_ends_subscriptions() {
    let bus = Bus::new(8, 0);
    let mut sub = bus.subscribe(Filter::all(), None);
    let other = bus.clone();
    let event = other.publish(Uuid::new_v4(), received(0));
    drop(bus);
    drop(other);
    assert_eq!(drain(&mut sub).await, [Item::Event(event.clone())]);
}

#[tokio::test]
async fn subscriber_count_follows_subscriptions() {
    let bus = Bus::new(8, 0);
    assert_eq!(bus.subscribers(), 0);
    let a = bus.subscribe(Filter::all(), None);
    let b = bus.subscribe(Filter::all(), Some(0));
    assert_eq!(bus.subscribers(), 2);
    drop(a);
    assert_eq!(bus.subscribers(), 1);
    drop(b);
    assert_eq!(bus.subscribers(), 0);
}

#[test]
fn zero_capacity_is_usable() {
    let bus = Bus::new(0, 0);
    assert_eq!(bus.publish(Uuid::nil(), received(0)).seq, 1);
}

#[test]
fn bus_is_shareable_across_threads() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send + 'static>() {}
    check::<Bus>();
    send::<Subscription>();
}

#[test]
fn serialisation_shape() {
    let bus = Bus::new(8, 0);
    let report = Uuid::new_v4();
    let event = bus.publish(report, completed(TriageLevel::Emergency));
    let json = serde_json::to_value(&*event).expect("serialises");
    let obj = json.as_object().expect("an object");
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["seq", "report_id", "at", "type", "level", "degraded", "total_ms"])
    );
    assert_eq!(json["seq"], 1);
    assert_eq!(json["report_id"], report.hyphenated().to_string());
    assert_eq!(json["type"], "triage_completed");
    assert_eq!(json["level"], "emergency");
    assert_eq!(json["degraded"], false);
    assert_eq!(json["total_ms"], 12.5);
    let at = json["at"].as_str().expect("at is a string");
    chrono::DateTime::parse_from_rfc3339(at).expect("at is RFC 3339");

    let back: DiagnosisEvent = serde_json::from_value(json).expect("deserialises");
    assert_eq!(back, *event);

    let breaker = bus.publish(
        Uuid::nil(),
        DiagnosisEventKind::BreakerStateChanged {
            agent: "emergency-detector".into(),
            state: BreakerState::Open,
        },
    );
    let json = serde_json::to_value(&*breaker).expect("serialises");
    assert_eq!(json["report_id"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(json["type"], "breaker_state_changed");
}

#[test]
fn type_names_are_the_serialised_tags_and_levels_are_where_expected() {
    let all = one_of_each();
    let names: Vec<&str> = all.iter().map(DiagnosisEventKind::type_name).collect();
    assert_eq!(names, DiagnosisEventKind::TYPE_NAMES);
    for kind in &all {
        let json = serde_json::to_value(kind).expect("serialises");
        assert_eq!(json["type"], kind.type_name());
        let carries_level = matches!(
            kind,
            DiagnosisEventKind::EmergencyAssessed { .. }
                | DiagnosisEventKind::TriageCompleted { .. }
        );
        assert_eq!(kind.level().is_some(), carries_level, "{}", kind.type_name());
    }
}

/// Every field name any event can serialise with. Each is an id, a code, a closed-vocabulary
/// value, a count, a flag or a timing. A new field must be added here on purpose, after
/// checking it cannot carry what a person wrote.
const ALLOWED_FIELDS: &[&str] = &[
    // envelope
    "seq",
    "report_id",
    "at",
    "type",
    // counts, flags, timings
    "text_chars",
    "structured_findings",
    "has_vitals",
    "degraded",
    "latency_ms",
    "total_ms",
    "probability",
    // knowledge-base ids and codes
    "present",
    "absent",
    "top",
    "id",
    "icd10",
    "advice",
    "red_flags",
    "agent",
    // closed vocabularies
    "level",
    "status",
    "state",
];

fn field_names(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                field_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| field_names(v, out)),
        _ => {}
    }
}

#[test]
fn no_event_has_a_field_that_could_hold_free_text() {
    let bus = Bus::new(16, 0);
    let mut fields = BTreeSet::new();
    for kind in one_of_each() {
        let event = bus.publish(Uuid::new_v4(), kind);
        let json = serde_json::to_value(&*event).expect("serialises");
        field_names(&json, &mut fields);

        // The closed vocabularies really are closed in what we publish.
        if let Some(level) = json.get("level").and_then(Value::as_str) {
            assert!(TriageLevel::parse(level).is_some(), "{level}");
        }
        if let Some(status) = json.get("status").and_then(Value::as_str) {
            assert!(AGENT_STATUSES.contains(&status), "{status}");
        }
        if let Some(state) = json.get("state").and_then(Value::as_str) {
            assert!(BreakerState::ALL.iter().any(|s| s.as_str() == state), "{state}");
        }
    }
    let unexpected: Vec<&String> =
        fields.iter().filter(|f| !ALLOWED_FIELDS.contains(&f.as_str())).collect();
    assert!(unexpected.is_empty(), "fields outside the allow-list: {unexpected:?}");
}

#[test]
fn openapi_schema_documents_every_event_type() {
    use utoipa::{PartialSchema, ToSchema};
    // The API registers `DiagnosisEvent` alone; the kinds and ranked codes must come with it.
    let mut referenced = Vec::new();
    DiagnosisEvent::schemas(&mut referenced);
    let names: BTreeSet<String> = referenced.iter().map(|(name, _)| name.clone()).collect();
    assert!(names.contains("DiagnosisEventKind"), "{names:?}");
    assert!(names.contains("RankedCode"), "{names:?}");

    let kinds = serde_json::to_string(&DiagnosisEventKind::schema()).expect("schema serialises");
    for name in DiagnosisEventKind::TYPE_NAMES {
        assert!(kinds.contains(&format!("\"{name}\"")), "schema lacks {name}");
    }
}

#[tokio::test]
async fn a_filter_with_an_owner_keeps_only_that_keys_events() {
    let bus = Bus::new(64, 0);
    let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    let mut sub = bus.subscribe(Filter { owner: Some(mine), ..Filter::all() }, None);
    bus.publish_owned(Uuid::new_v4(), Some(theirs), one_of_each().remove(0));
    bus.publish_owned(Uuid::new_v4(), Some(mine), one_of_each().remove(0));
    bus.publish(Uuid::nil(), one_of_each().remove(0));
    bus.close();
    let got = drain(&mut sub).await;
    assert_eq!(got.len(), 1, "{got:?}");
}

/// An event as a mirror receives it: numbered by the stream it mirrors.
fn numbered(seq: u64) -> DiagnosisEvent {
    DiagnosisEvent {
        seq,
        report_id: Uuid::new_v4(),
        at: chrono::Utc::now(),
        kind: received(1),
        owner: None,
    }
}

#[tokio::test]
async fn a_mirror_keeps_the_stream_numbers_and_a_resume_ahead_of_it_repeats_nothing() {
    let bus = Bus::mirror(16, 16);
    bus.advance_to(10);
    for seq in [10, 11, 13] {
        assert!(bus.publish_numbered(numbered(seq)).is_some());
    }
    assert!(bus.publish_numbered(numbered(11)).is_none(), "a repeat is dropped");
    // Resuming inside a skip of the stream starts at the next number held.
    let mut inside = bus.subscribe(Filter::all(), Some(11));
    assert_eq!(next_event(&mut inside).await.seq, 13);
    // A client that saw 15 on a replica whose mirror is ahead gets only what follows 15.
    let mut ahead = bus.subscribe(Filter::all(), Some(15));
    for seq in [14, 15, 16] {
        bus.publish_numbered(numbered(seq));
    }
    assert_eq!(next_event(&mut ahead).await.seq, 16);
    // The process's own bus instead takes such a client for one of an earlier run: from now.
    let own = Bus::new(16, 16);
    own.publish(Uuid::nil(), received(1));
    let mut from_now = own.subscribe(Filter::all(), Some(99));
    own.publish(Uuid::nil(), received(1));
    assert_eq!(next_event(&mut from_now).await.seq, 2);
}
