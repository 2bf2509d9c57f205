//! The bridge against the NATS JetStream server of the machine (127.0.0.1:4222, or
//! TEST_NATS_URL), each test on a stream and subjects of its own: events published reach the
//! feed in order, numbered by the stream; a stretch reads back; an outage fills the outbox and
//! everything arrives once NATS is back, each event once; an outbox left by a stopped process
//! is sent by the next.

use std::sync::Arc;
use std::time::Duration;

use bridge::{Bridge, BridgeConfig};
use bus::{DiagnosisEvent, DiagnosisEventKind, Filter, Item};
use chrono::Utc;
use domain::TriageLevel;
use testkit::{Proxy, delete_nats_stream, nats_host_port};
use uuid::Uuid;

/// A configuration with a stream and subjects of this test's own.
fn config(url: String, dir: &tempfile::TempDir) -> BridgeConfig {
    testkit::require_nats();
    let tag = Uuid::new_v4().simple().to_string();
    let mut c = BridgeConfig::new(url, dir.path().join("outbox"));
    c.stream = format!("TEST_{tag}");
    c.subject_prefix = format!("test{tag}.events");
    c.max_bytes = 64 << 20;
    // Gone within the hour even if a failed test does not delete it.
    c.max_age = Duration::from_secs(3600);
    c.publish_timeout = Duration::from_millis(500);
    c.retry_interval = Duration::from_millis(100);
    c
}

/// A triage's events, numbered as a process's bus numbers them from `first`.
fn triage(first: u64, owner: Option<Uuid>) -> Vec<Arc<DiagnosisEvent>> {
    let report_id = Uuid::new_v4();
    let kinds = [
        DiagnosisEventKind::TriageReceived {
            text_chars: 40,
            structured_findings: 0,
            has_vitals: false,
        },
        DiagnosisEventKind::EmergencyAssessed {
            level: TriageLevel::Consultation,
            red_flags: vec![],
            latency_ms: 0.5,
        },
        DiagnosisEventKind::TriageCompleted {
            level: TriageLevel::Consultation,
            degraded: false,
            total_ms: 1.0,
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            Arc::new(DiagnosisEvent {
                seq: first + i as u64,
                report_id,
                at: Utc::now(),
                kind,
                owner,
            })
        })
        .collect()
}

/// The next `n` events of the feed, failing after a generous wait.
async fn take(sub: &mut bus::Subscription, n: usize) -> Vec<Arc<DiagnosisEvent>> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
            Ok(Some(Item::Event(e))) => out.push(e),
            Ok(Some(Item::Gap { missed })) => panic!("a gap of {missed} in the feed"),
            Ok(None) => panic!("the feed closed after {} events", out.len()),
            Err(_) => panic!("only {} of {n} events arrived", out.len()),
        }
    }
    out
}

/// What each event of a triage is: its report and type, the identity the test compares.
fn identity(events: &[Arc<DiagnosisEvent>]) -> Vec<(Uuid, &'static str)> {
    events.iter().map(|e| (e.report_id, e.type_name())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_feed_in_order_numbered_by_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(format!("nats://{}", nats_host_port()), &dir);
    let bridge = Bridge::start(config.clone()).await.expect("the bridge starts");
    let mut sub = bridge.feed().subscribe(Filter::all(), None);
    let owner = Uuid::new_v4();
    let mut sent = Vec::new();
    for t in 0..20u64 {
        let events = triage(t * 3 + 1, t.is_multiple_of(2).then_some(owner));
        bridge.publish(&events).await.expect("kept");
        sent.extend(events);
    }
    let got = take(&mut sub, sent.len()).await;
    assert_eq!(identity(&got), identity(&sent));
    // Numbered by the stream, from 1, with no hole.
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=60).collect::<Vec<u64>>());
    // The owner travels in a header, so a tenant's filter works on any replica.
    assert!(got.iter().zip(&sent).all(|(g, s)| g.owner == s.owner));
    assert_eq!(bridge.stats().published, 60);

    // A stretch older than what a subscriber holds reads back from the stream itself.
    let back = bridge.range(10, 20, 100).await.expect("the stream reads back");
    assert_eq!(back.iter().map(|e| e.seq).collect::<Vec<_>>(), (11..20).collect::<Vec<u64>>());
    assert_eq!(
        identity(&back.into_iter().map(Arc::new).collect::<Vec<_>>()),
        identity(&got[10..19])
    );

    // A second bridge (another replica) on the same stream sees the same numbers, and a
    // subscriber resuming there from an id it got here misses nothing and repeats nothing.
    let other =
        Bridge::start(BridgeConfig { outbox_path: dir.path().join("outbox-b"), ..config.clone() })
            .await
            .unwrap();
    let mut resumed = other.feed().subscribe(Filter::all(), Some(60));
    assert!(resumed.take_gap().is_none(), "the other replica starts where the stream stands");
    let more = triage(1, None);
    other.publish(&more).await.unwrap();
    let next = take(&mut resumed, 3).await;
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [61, 62, 63]);
    assert_eq!(identity(&next), identity(&more));
    // And the first replica's feed has them too.
    assert_eq!(identity(&take(&mut sub, 3).await), identity(&more));
    bridge.shutdown().await;
    other.shutdown().await;
    delete_nats_stream(&config.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fills_the_outbox_and_everything_arrives_once_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(nats_host_port()).await;
    let config = config(format!("nats://127.0.0.1:{}", proxy.port), &dir);
    let bridge = Bridge::start(config.clone()).await.expect("the bridge starts");
    // A second bridge straight to NATS follows the stream, as another replica would.
    let watcher = Bridge::start(BridgeConfig {
        url: format!("nats://{}", nats_host_port()),
        outbox_path: dir.path().join("outbox-watcher"),
        ..config.clone()
    })
    .await
    .unwrap();
    let mut sub = watcher.feed().subscribe(Filter::all(), None);

    let mut sent = Vec::new();
    let mut seq = 1;
    let mut publish = async |bridge: &Bridge, n: usize, sent: &mut Vec<Arc<DiagnosisEvent>>| {
        for _ in 0..n {
            let events = triage(seq, None);
            seq += 3;
            bridge.publish(&events).await.expect("kept, in JetStream or the outbox");
            sent.extend(events);
        }
    };
    publish(&bridge, 10, &mut sent).await;
    proxy.cut();
    publish(&bridge, 30, &mut sent).await;
    assert!(bridge.stats().outboxed > 0, "the outage went to the outbox: {:?}", bridge.stats());
    assert!(bridge.stats().backlog > 0);
    proxy.restore();
    publish(&bridge, 10, &mut sent).await;

    let got = take(&mut sub, sent.len()).await;
    assert_eq!(identity(&got), identity(&sent), "every event, once, in the order published");
    // Nothing more: a repeat of the outbox would show here as extra events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sub.try_next().is_none(), "an event arrived twice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bridge.stats().backlog > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bridge.stats().backlog, 0, "the outbox emptied");
    assert_eq!(bridge.outbox_bytes().0, 0);
    bridge.shutdown().await;
    watcher.shutdown().await;
    delete_nats_stream(&config.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_left_by_a_stopped_process_is_sent_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(nats_host_port()).await;
    proxy.cut();
    let config = config(format!("nats://127.0.0.1:{}", proxy.port), &dir);
    let mut sent = Vec::new();
    {
        let bridge = Bridge::start(config.clone()).await.expect("starts without NATS");
        for t in 0..5u64 {
            let events = triage(t * 3 + 1, None);
            bridge.publish(&events).await.expect("kept in the outbox");
            sent.extend(events);
        }
        assert_eq!(bridge.stats().backlog, 15);
        bridge.shutdown().await;
    }
    proxy.restore();
    let bridge = Bridge::start(config.clone()).await.unwrap();
    let back = async {
        loop {
            if let Ok(events) = bridge.range(0, u64::MAX, 100).await
                && events.len() >= sent.len()
            {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let got =
        tokio::time::timeout(Duration::from_secs(20), back).await.expect("the outbox is sent");
    assert_eq!(identity(&got.into_iter().map(Arc::new).collect::<Vec<_>>()), identity(&sent));
    bridge.shutdown().await;
    delete_nats_stream(&config.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_says_so_until_nats_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(nats_host_port()).await;
    let mut config = config(format!("nats://127.0.0.1:{}", proxy.port), &dir);
    config.outbox_max_bytes = 1;
    let bridge = Bridge::start(config.clone()).await.unwrap();
    bridge.publish(&triage(1, None)).await.unwrap();
    assert!(!bridge.full(), "nothing waits while NATS answers");
    proxy.cut();
    bridge.publish(&triage(4, None)).await.expect("kept in the outbox");
    assert!(bridge.full(), "past its limit, the outbox says so: {:?}", bridge.outbox_bytes());
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bridge.full() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!bridge.full(), "sent, the outbox is empty again");
    bridge.shutdown().await;
    delete_nats_stream(&config.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_started_without_nats_says_when_its_feed_knows_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(format!("nats://{}", nats_host_port()), &dir);
    let direct = Bridge::start(config.clone()).await.unwrap();
    assert!(*direct.positioned().borrow(), "NATS answered at start");
    direct.publish(&triage(1, None)).await.unwrap();
    let proxy = Proxy::start(nats_host_port()).await;
    proxy.cut();
    let late = Bridge::start(BridgeConfig {
        url: format!("nats://127.0.0.1:{}", proxy.port),
        outbox_path: dir.path().join("outbox-late"),
        ..config.clone()
    })
    .await
    .expect("starts without NATS");
    let mut positioned = late.positioned();
    assert!(!*positioned.borrow(), "it cannot know where the stream stands yet");
    proxy.restore();
    tokio::time::timeout(Duration::from_secs(20), positioned.wait_for(|p| *p))
        .await
        .expect("positioned once NATS answers")
        .unwrap();
    assert_eq!(late.feed().next_seq(), 4, "its feed continues after the stream's 3 events");
    direct.shutdown().await;
    late.shutdown().await;
    delete_nats_stream(&config.stream).await;
}
