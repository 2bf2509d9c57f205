//! The runtime with test doubles of the agent trait: agents that are slow, fail or panic on
//! purpose. The real models are not needed to test what is around them.

use coordinator::{AgentSettings, Coordinator, Overloaded, Triage};
use domain::{
    CaseInput, EmergencyAssessment, ExtractedFinding, RankedCondition, RetrievedAdvice, TriageLevel,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use triage::{AgentKind, AgentModel, AgentOutput, AgentStatus, Outcome};
use uuid::Uuid;

fn kb() -> Arc<kb::KnowledgeBase> {
    static KB: OnceLock<Arc<kb::KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| Arc::new(kb::load_dir(kb::default_dir()).expect("knowledge base"))).clone()
}

/// A double: answers a fixed, plausible output after `delay`, or fails / panics when told to.
struct Double {
    kind: AgentKind,
    delay: Duration,
    fail: AtomicBool,
    panic_on: Option<&'static str>,
    calls: AtomicUsize,
}

impl Double {
    fn new(kind: AgentKind) -> Arc<Double> {
        Arc::new(Double {
            kind,
            delay: Duration::ZERO,
            fail: AtomicBool::new(false),
            panic_on: None,
            calls: AtomicUsize::new(0),
        })
    }
    fn slow(kind: AgentKind, delay: Duration) -> Arc<Double> {
        Arc::new(Double {
            kind,
            delay,
            fail: AtomicBool::new(false),
            panic_on: None,
            calls: AtomicUsize::new(0),
        })
    }
}

impl AgentModel for Double {
    fn kind(&self) -> AgentKind {
        self.kind
    }
    fn version(&self) -> String {
        "double-1".into()
    }
    fn infer(&self, batch: &[&kb::Case]) -> Vec<AgentOutput> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if let Some(word) = self.panic_on
            && batch.iter().any(|c| c.text.contains(word))
        {
            panic!("a deliberately panicking agent");
        }
        if self.fail.load(Ordering::SeqCst) {
            return Vec::new(); // wrong number of outputs: a failure
        }
        batch
            .iter()
            .map(|_| match self.kind {
                AgentKind::SymptomClassifier => AgentOutput::Findings(vec![ExtractedFinding {
                    finding: 0,
                    present: true,
                    probability: 0.9,
                }]),
                AgentKind::ConditionMatcher => AgentOutput::Conditions(vec![RankedCondition {
                    condition: 0,
                    probability: 0.2,
                }]),
                AgentKind::TreatmentRetriever => {
                    AgentOutput::Care(vec![RetrievedAdvice { advice: 0, score: 0.8 }])
                }
                AgentKind::EmergencyDetector => AgentOutput::Emergency(EmergencyAssessment {
                    level: TriageLevel::SelfCare,
                    model_level: TriageLevel::SelfCare,
                    probabilities: [0.0, 0.0, 0.0, 0.0, 1.0],
                    red_flags: Vec::new(),
                }),
            })
            .collect()
    }
}

fn settings() -> AgentSettings {
    AgentSettings {
        workers: 1,
        queue: 64,
        max_batch: 8,
        max_wait: Duration::ZERO,
        deadline: Duration::from_millis(1000),
        breaker_failures: 3,
        breaker_backoff: Duration::from_millis(150),
        breaker_backoff_max: Duration::from_millis(600),
    }
}

fn input(text: &str) -> Arc<kb::Case> {
    Arc::new(kb().prepare(CaseInput { text: text.into(), ..Default::default() }))
}

async fn triage(addr: &actix::Addr<Coordinator>, text: &str) -> Result<Outcome, Overloaded> {
    addr.send(Triage {
        id: Uuid::new_v4(),
        input: input(text),
        span: tracing::Span::none(),
        owner: None,
    })
    .await
    .expect("coordinator alive")
    .map(|t| t.outcome)
}

fn status(o: &Outcome, kind: AgentKind) -> AgentStatus {
    o.runs.iter().find(|r| r.kind == kind).expect("every agent reports").status
}

fn doubles() -> Vec<Arc<Double>> {
    AgentKind::ALL.iter().map(|&k| Double::new(k)).collect()
}

fn as_models(d: &[Arc<Double>]) -> Vec<Arc<dyn AgentModel>> {
    d.iter().map(|x| x.clone() as Arc<dyn AgentModel>).collect()
}

#[actix_rt::test]
async fn wall_time_is_the_slowest_agent_not_the_sum() {
    let d: Vec<Arc<Double>> =
        AgentKind::ALL.iter().map(|&k| Double::slow(k, Duration::from_millis(200))).collect();
    let (addr, _) =
        Coordinator::start(kb(), as_models(&d), |_| settings(), bus::Bus::new(256, 256));
    let t = Instant::now();
    let o = triage(&addr, "headache").await.unwrap();
    let took = t.elapsed();
    assert!(!o.degraded, "{:?}", o.runs);
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(500), "four 200 ms agents took {took:?}: not parallel");
}

#[actix_rt::test]
async fn one_agent_down_at_a_time_keeps_the_safety_floor() {
    for down in AgentKind::ALL {
        let d = doubles();
        d.iter().find(|x| x.kind == down).unwrap().fail.store(true, Ordering::SeqCst);
        let (addr, _) =
            Coordinator::start(kb(), as_models(&d), |_| settings(), bus::Bus::new(256, 256));
        let o = triage(&addr, "a mild cold").await.unwrap();
        assert!(o.degraded, "{down:?}");
        assert_eq!(status(&o, down), AgentStatus::Failed, "{down:?}");
        for other in AgentKind::ALL.iter().filter(|k| **k != down) {
            assert_eq!(status(&o, *other), AgentStatus::Ok);
        }
        match down {
            // The doubles' emergency detector says self-care; without it the floor applies.
            AgentKind::EmergencyDetector => {
                assert!(o.emergency.is_none());
                assert!(o.decision.floor_applied);
                assert!(o.decision.level <= TriageLevel::Consultation, "{}", o.decision.level);
            }
            AgentKind::ConditionMatcher => {
                assert!(o.conditions.is_none(), "no guessing without the matcher")
            }
            AgentKind::SymptomClassifier => assert!(o.findings.is_none()),
            AgentKind::TreatmentRetriever => assert!(o.care.is_none()),
        }
        if down != AgentKind::EmergencyDetector {
            assert_eq!(o.decision.level, TriageLevel::SelfCare, "{down:?}");
        }
    }
}

#[actix_rt::test]
async fn red_flag_rules_still_run_without_the_emergency_detector() {
    let d = doubles();
    d[3].fail.store(true, Ordering::SeqCst);
    let (addr, _) =
        Coordinator::start(kb(), as_models(&d), |_| settings(), bus::Bus::new(256, 256));
    let o =
        triage(&addr, "her face has dropped on one side and her speech is slurred").await.unwrap();
    assert_eq!(o.decision.level, TriageLevel::EmergencyAmbulance);
    assert!(!o.decision.red_flags.is_empty());
}

#[actix_rt::test]
async fn a_slow_agent_times_out_and_the_answer_is_degraded() {
    let mut d = doubles();
    d[1] = Double::slow(AgentKind::ConditionMatcher, Duration::from_millis(400));
    let (addr, _) = Coordinator::start(
        kb(),
        as_models(&d),
        |k| AgentSettings {
            deadline: if k == AgentKind::ConditionMatcher {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            },
            ..settings()
        },
        bus::Bus::new(256, 256),
    );
    let t = Instant::now();
    let o = triage(&addr, "cough").await.unwrap();
    assert_eq!(status(&o, AgentKind::ConditionMatcher), AgentStatus::Timeout);
    assert!(o.degraded && o.conditions.is_none());
    assert!(
        t.elapsed() < Duration::from_millis(350),
        "the deadline bounds the wait: {:?}",
        t.elapsed()
    );
}

#[actix_rt::test]
async fn breaker_opens_after_failures_and_closes_after_recovery() {
    let d = doubles();
    let bus = bus::Bus::new(1024, 1024);
    let mut sub = bus.subscribe(
        bus::Filter {
            types: Some(vec!["breaker_state_changed".into()]),
            levels: None,
            owner: None,
        },
        None,
    );
    let (addr, stats) = Coordinator::start(kb(), as_models(&d), |_| settings(), bus.clone());
    d[0].fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let o = triage(&addr, "x").await.unwrap();
        assert_eq!(status(&o, AgentKind::SymptomClassifier), AgentStatus::Failed);
    }
    let calls_before = d[0].calls.load(Ordering::SeqCst);
    let o = triage(&addr, "x").await.unwrap();
    assert_eq!(status(&o, AgentKind::SymptomClassifier), AgentStatus::CircuitOpen);
    assert_eq!(
        d[0].calls.load(Ordering::SeqCst),
        calls_before,
        "an open breaker does not call the agent"
    );
    assert_eq!(stats[0].breaker_state.load(Ordering::SeqCst), 1);
    // The agent recovers; after the back-off the breaker lets a trial call through and closes.
    d[0].fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = triage(&addr, "x").await.unwrap();
    assert_eq!(status(&o, AgentKind::SymptomClassifier), AgentStatus::Ok);
    assert_eq!(stats[0].breaker_state.load(Ordering::SeqCst), 0);
    let mut states = Vec::new();
    while states.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
            Ok(Some(bus::Item::Event(e))) => {
                if let bus::DiagnosisEventKind::BreakerStateChanged { agent, state } = &e.kind {
                    assert_eq!(agent, "symptom_classifier");
                    states.push(*state);
                }
            }
            other => panic!("expected breaker events, got {other:?} after {states:?}"),
        }
    }
    assert_eq!(states[0], domain::BreakerState::Open);
    assert!(
        states.contains(&domain::BreakerState::Closed)
            || states.contains(&domain::BreakerState::HalfOpen),
        "{states:?}"
    );
}

#[actix_rt::test]
async fn a_panic_in_inference_is_a_failure_and_the_agent_goes_on() {
    let mut d = doubles();
    d[2] = Arc::new(Double {
        kind: AgentKind::TreatmentRetriever,
        delay: Duration::ZERO,
        fail: AtomicBool::new(false),
        panic_on: Some("boom"),
        calls: AtomicUsize::new(0),
    });
    // A long deadline: with RUST_BACKTRACE set, printing the panic's backtrace from a debug
    // build on a loaded machine can take longer than the usual one, and this test is about
    // the panic, not the deadline.
    let (addr, stats) = Coordinator::start(
        kb(),
        as_models(&d),
        |_| AgentSettings { deadline: Duration::from_secs(30), ..settings() },
        bus::Bus::new(256, 256),
    );
    let o = triage(&addr, "boom").await.unwrap();
    assert_eq!(status(&o, AgentKind::TreatmentRetriever), AgentStatus::Failed);
    let o = triage(&addr, "fine now").await.unwrap();
    assert_eq!(status(&o, AgentKind::TreatmentRetriever), AgentStatus::Ok);
    assert_eq!(stats[2].pool.panics.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn full_queues_everywhere_is_overloaded() {
    let d: Vec<Arc<Double>> =
        AgentKind::ALL.iter().map(|&k| Double::slow(k, Duration::from_millis(300))).collect();
    let (addr, _) = Coordinator::start(
        kb(),
        as_models(&d),
        |_| AgentSettings { queue: 1, max_batch: 1, ..settings() },
        bus::Bus::new(256, 256),
    );
    // One request busy in each worker, one waiting in each queue: the next finds them all full.
    let a = addr.send(Triage {
        id: Uuid::new_v4(),
        input: input("a"),
        span: tracing::Span::none(),
        owner: None,
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = addr.send(Triage {
        id: Uuid::new_v4(),
        input: input("b"),
        span: tracing::Span::none(),
        owner: None,
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = triage(&addr, "c").await;
    assert_eq!(c.err(), Some(Overloaded));
    assert!(a.await.unwrap().is_ok());
    assert!(b.await.unwrap().is_ok());
}

#[actix_rt::test]
async fn micro_batches_form_from_waiting_requests() {
    let d: Vec<Arc<Double>> =
        AgentKind::ALL.iter().map(|&k| Double::slow(k, Duration::from_millis(50))).collect();
    let (addr, stats) =
        Coordinator::start(kb(), as_models(&d), |_| settings(), bus::Bus::new(4096, 256));
    let calls: Vec<_> = (0..16)
        .map(|i| {
            addr.send(Triage {
                id: Uuid::new_v4(),
                input: input(&format!("req {i}")),
                span: tracing::Span::none(),
                owner: None,
            })
        })
        .collect();
    for c in futures::future::join_all(calls).await {
        assert!(!c.unwrap().unwrap().outcome.degraded);
    }
    let batches = stats[0].pool.batches.load(Ordering::SeqCst);
    let items = stats[0].pool.items.load(Ordering::SeqCst);
    assert_eq!(items, 16);
    assert!(batches < 16, "16 waiting requests ran in {batches} batches: no batching");
}

/// The value of one series in Prometheus text, by its exact name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[actix_rt::test]
async fn agent_outcomes_levels_and_breaker_states_reach_the_metrics() {
    let mut d = doubles();
    d[1] = Double::slow(AgentKind::ConditionMatcher, Duration::from_millis(400));
    let metrics = metrics::Metrics::new();
    let deadline = |k| {
        if k == AgentKind::ConditionMatcher {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        }
    };
    let (addr, _) = Coordinator::start_with_metrics(
        kb(),
        as_models(&d),
        |k| AgentSettings {
            deadline: deadline(k),
            breaker_backoff: Duration::from_secs(30),
            breaker_backoff_max: Duration::from_secs(30),
            ..settings()
        },
        bus::Bus::new(256, 256),
        &metrics,
    );
    d[0].fail.store(true, Ordering::SeqCst);
    // Three failures (and three timeouts) open both breakers; the fourth call is refused.
    for _ in 0..4 {
        assert!(triage(&addr, "x").await.unwrap().degraded);
    }
    let text = metrics.render();
    let at =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(at("triagent_agent_failures_total{agent=\"symptom_classifier\"}"), 3.0);
    assert_eq!(at("triagent_agent_circuit_open_total{agent=\"symptom_classifier\"}"), 1.0);
    assert_eq!(at("triagent_agent_breaker_state{agent=\"symptom_classifier\"}"), 1.0);
    assert_eq!(at("triagent_agent_timeouts_total{agent=\"condition_matcher\"}"), 3.0);
    assert_eq!(at("triagent_agent_circuit_open_total{agent=\"condition_matcher\"}"), 1.0);
    assert_eq!(at("triagent_agent_breaker_state{agent=\"condition_matcher\"}"), 1.0);
    // Refused calls are not timed: they never reached the agent.
    assert_eq!(at("triagent_agent_latency_seconds_count{agent=\"symptom_classifier\"}"), 3.0);
    assert_eq!(at("triagent_agent_latency_seconds_count{agent=\"treatment_retriever\"}"), 4.0);
    assert_eq!(at("triagent_agent_batch_size_count{agent=\"treatment_retriever\"}"), 4.0);
    assert_eq!(at("triagent_agent_failures_total{agent=\"treatment_retriever\"}"), 0.0);
    assert_eq!(at("triagent_agent_breaker_state{agent=\"treatment_retriever\"}"), 0.0);
    assert_eq!(at("triagent_agent_queue_depth{agent=\"treatment_retriever\"}"), 0.0);
    assert_eq!(at("triagent_degraded_answers_total"), 4.0);
    // The doubles' emergency detector says self-care, and no confident condition raises it.
    assert_eq!(at("triagent_triage_levels_total{level=\"self_care\"}"), 4.0);
    assert!(at("triagent_bus_events_published_total") >= 4.0 * 2.0);
}

#[actix_rt::test]
async fn coordinators_on_two_threads_share_each_agents_pool_and_breaker() {
    // As the service runs: one coordinator per HTTP worker thread over the same agents.
    let d = doubles();
    let runtime = coordinator::Runtime::new(
        kb(),
        as_models(&d),
        |_| settings(),
        bus::Bus::new(256, 256),
        &metrics::Metrics::new(),
    );
    let here = runtime.start_local();
    let arbiter = actix_rt::Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let other = runtime.clone();
    assert!(arbiter.spawn_fn(move || {
        let _ = tx.send((other.start_local(), std::thread::current().id()));
    }));
    let (there, thread) = rx.await.expect("the other thread starts its coordinator");
    assert_ne!(thread, std::thread::current().id());
    d[0].fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let o = triage(&here, "x").await.unwrap();
        assert_eq!(status(&o, AgentKind::SymptomClassifier), AgentStatus::Failed);
    }
    // The breaker that calls through one coordinator opened is the one the other's calls meet.
    let o = triage(&there, "x").await.unwrap();
    assert_eq!(status(&o, AgentKind::SymptomClassifier), AgentStatus::CircuitOpen);
    assert_eq!(status(&o, AgentKind::ConditionMatcher), AgentStatus::Ok);
    // One pool per agent: the condition matcher's counted all four requests, from both threads.
    let stats = runtime.stats();
    assert_eq!(stats[1].pool.items.load(Ordering::SeqCst), 4);
    assert_eq!(stats[0].breaker_state.load(Ordering::SeqCst), 1);
    arbiter.stop();
}

#[actix_rt::test]
async fn a_triage_hands_back_every_event_it_published_in_order() {
    let d = doubles();
    // One agent fails, so the answer also carries an `agent_degraded` event.
    d.iter()
        .find(|x| x.kind == AgentKind::TreatmentRetriever)
        .unwrap()
        .fail
        .store(true, Ordering::SeqCst);
    let bus = bus::Bus::new(256, 256);
    let (addr, _) = Coordinator::start(kb(), as_models(&d), |_| settings(), bus.clone());
    let id = Uuid::new_v4();
    let t = addr
        .send(Triage { id, input: input("headache"), span: tracing::Span::none(), owner: None })
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = t.events.iter().map(|e| e.type_name()).collect();
    assert_eq!(kinds.first(), Some(&"triage_received"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"triage_completed"), "{kinds:?}");
    assert!(kinds.contains(&"agent_degraded"), "{kinds:?}");
    // Three agents answered (one event each), plus received, degraded and completed.
    assert_eq!(t.events.len(), 6, "{kinds:?}");
    assert!(t.events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(t.events.iter().all(|e| e.report_id == id));
    // Exactly what the bus carried: the report is stored with what subscribers saw.
    assert_eq!(bus.published(), 6);
}
