//! The coordinator actor: fan a request out to the four agents at once, merge, publish.

use crate::agent::{Agent, AgentActor, AgentReply, AgentSettings, AgentStats, Infer};
use actix::prelude::*;
use bus::{Bus, DiagnosisEvent, DiagnosisEventKind, RankedCode};
use domain::ExtractedFinding;
use domain::TriageLevel;
use kb::Case;
use kb::KnowledgeBase;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use triage::{AgentKind, AgentModel, AgentOutput, AgentRun, AgentStatus, Outcome};
use uuid::Uuid;

impl actix::Supervised for AgentActor {}

pub struct Coordinator {
    agents: Vec<Addr<AgentActor>>,
    kb: Arc<KnowledgeBase>,
    bus: Bus,
    outcomes: Arc<OutcomeMetrics>,
}

/// Counters of answers, resolved once: one per level (in `TriageLevel::ALL` order) and degraded.
struct OutcomeMetrics {
    levels: [metrics::IntCounter; 5],
    degraded: metrics::IntCounter,
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

/// Every queue was full: the caller should retry later (HTTP 503 with Retry-After).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every agent queue is full")]
pub struct Overloaded;

/// A triage's answer and the events it published, in the order they were published: the
/// report is stored with these events in one write, so the store never holds one without the
/// other (`store::StoredReport::events`).
#[derive(Debug)]
pub struct Triaged {
    pub outcome: Outcome,
    pub events: Vec<Arc<DiagnosisEvent>>,
}

/// Triage one request under the given report id.
#[derive(Message)]
#[rtype(result = "Result<Triaged, Overloaded>")]
pub struct Triage {
    pub id: Uuid,
    pub input: Arc<Case>,
    /// The caller's span (the HTTP request's), parent of this triage's trace spans;
    /// `Span::none()` when there is none.
    pub span: tracing::Span,
    /// The API key the request came with, which owns the report's events (`None`: no key).
    pub owner: Option<Uuid>,
}

/// What every coordinator shares: the four agents (pools, breakers, metrics), the knowledge
/// base, the bus and the outcome counters. [`Runtime::start_local`] starts a coordinator and
/// its four agent actors on the calling thread's arbiter over these shared parts. The service
/// starts one per HTTP worker thread, so a request's messages, replies and merge stay on the
/// thread that read it: the only thread crossings are to the agents' worker threads and back
/// (one shared coordinator thread cost two more wake-ups per request and was a queue of its own
/// in front of every request; see docs/performance.md).
#[derive(Clone)]
pub struct Runtime {
    agents: Vec<Agent>,
    kb: Arc<KnowledgeBase>,
    bus: Bus,
    outcomes: Arc<OutcomeMetrics>,
}

impl Runtime {
    /// Starts each agent's worker pool and breaker, recording agent, triage and bus metrics in
    /// `metrics` (queue depths, breaker states and the bus's totals are read from the runtime
    /// when the metrics are gathered). No actor runs until [`Runtime::start_local`].
    pub fn new(
        kb: Arc<KnowledgeBase>,
        models: Vec<Arc<dyn AgentModel>>,
        settings: impl Fn(AgentKind) -> AgentSettings,
        bus: Bus,
        metrics: &metrics::Metrics,
    ) -> Runtime {
        let mut agents = Vec::with_capacity(models.len());
        let mut gauges = Vec::with_capacity(models.len());
        for model in models {
            let handles = metrics.agent(model.kind().as_str());
            gauges.push((handles.breaker_state.clone(), handles.queue_depth.clone()));
            agents.push(Agent::new(model.clone(), &settings(model.kind()), bus.clone(), handles));
        }
        let watched: Vec<AgentStats> = agents.iter().map(Agent::stats).collect();
        metrics.on_gather(move |_| {
            for (s, (breaker, depth)) in watched.iter().zip(&gauges) {
                breaker.set(i64::from(s.breaker_state.load(Ordering::Relaxed)));
                depth.set(i64::try_from(s.pool.queued.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
            }
        });
        let b = bus.clone();
        metrics.on_gather(move |m| m.set_bus(b.published(), b.dropped(), b.subscribers()));
        let outcomes = Arc::new(OutcomeMetrics {
            levels: TriageLevel::ALL.map(|l| metrics.level(l.as_str())),
            degraded: metrics.degraded(),
        });
        Runtime { agents, kb, bus, outcomes }
    }

    /// Each agent's live stats.
    pub fn stats(&self) -> Vec<AgentStats> {
        self.agents.iter().map(Agent::stats).collect()
    }

    /// A coordinator and one supervised actor per agent, on the current thread's arbiter, over
    /// the shared agents.
    pub fn start_local(&self) -> Addr<Coordinator> {
        let agents = self
            .agents
            .iter()
            .map(|agent| {
                let agent = agent.clone();
                // Supervised: if the actor itself ever stops, it restarts over the same agent.
                Supervisor::start(move |_| AgentActor::of(agent))
            })
            .collect();
        Coordinator {
            agents,
            kb: self.kb.clone(),
            bus: self.bus.clone(),
            outcomes: self.outcomes.clone(),
        }
        .start()
    }
}

impl Coordinator {
    /// Starts one supervised actor per agent model and the coordinator, in the current actix
    /// system. Returns the coordinator's address and each agent's live stats. Metrics go to a
    /// registry of their own; see [`Coordinator::start_with_metrics`].
    pub fn start(
        kb: Arc<KnowledgeBase>,
        models: Vec<Arc<dyn AgentModel>>,
        settings: impl Fn(AgentKind) -> AgentSettings,
        bus: Bus,
    ) -> (Addr<Coordinator>, Vec<AgentStats>) {
        Self::start_with_metrics(kb, models, settings, bus, &metrics::Metrics::new())
    }

    /// As [`Coordinator::start`], recording agent, triage and bus metrics in `metrics`.
    pub fn start_with_metrics(
        kb: Arc<KnowledgeBase>,
        models: Vec<Arc<dyn AgentModel>>,
        settings: impl Fn(AgentKind) -> AgentSettings,
        bus: Bus,
        metrics: &metrics::Metrics,
    ) -> (Addr<Coordinator>, Vec<AgentStats>) {
        let runtime = Runtime::new(kb, models, settings, bus, metrics);
        (runtime.start_local(), runtime.stats())
    }
}

fn finding_ids(kb: &KnowledgeBase, f: &[ExtractedFinding], present: bool) -> Vec<String> {
    f.iter().filter(|x| x.present == present).map(|x| kb.findings[x.finding].id.clone()).collect()
}

/// The event an agent's answer is published as, the moment it arrives.
fn event_of(kb: &KnowledgeBase, reply: &AgentReply) -> Option<DiagnosisEventKind> {
    let latency_ms = reply.latency_ms;
    Some(match reply.output.as_ref()? {
        AgentOutput::Findings(f) => DiagnosisEventKind::FindingsExtracted {
            present: finding_ids(kb, f, true),
            absent: finding_ids(kb, f, false),
            latency_ms,
        },
        AgentOutput::Conditions(c) => DiagnosisEventKind::ConditionsRanked {
            top: c
                .iter()
                .take(5)
                .map(|r| RankedCode {
                    id: kb.conditions[r.condition].id.clone(),
                    icd10: kb.conditions[r.condition].icd10.clone(),
                    probability: r.probability,
                })
                .collect(),
            latency_ms,
        },
        AgentOutput::Care(a) => DiagnosisEventKind::CareRetrieved {
            advice: a.iter().map(|r| kb.advice[r.advice].id.clone()).collect(),
            latency_ms,
        },
        AgentOutput::Emergency(e) => DiagnosisEventKind::EmergencyAssessed {
            level: e.level,
            red_flags: e.red_flags.iter().map(|&r| kb.rules[r].id.clone()).collect(),
            latency_ms,
        },
    })
}

impl Handler<Triage> for Coordinator {
    type Result = ResponseFuture<Result<Triaged, Overloaded>>;

    fn handle(&mut self, msg: Triage, _ctx: &mut Self::Context) -> Self::Result {
        let agents = self.agents.clone();
        let kb = self.kb.clone();
        let bus = self.bus.clone();
        let outcomes = self.outcomes.clone();
        let Triage { id, input, span: parent, owner } = msg;
        // One span per triage and one child per agent call: no span inside per-item loops. None
        // at all under a disabled parent (no telemetry, or a trace the sampler left out: the
        // caller passes `Span::none()`), as they would not be exported and cost per request.
        let span = if parent.is_disabled() {
            tracing::Span::none()
        } else {
            tracing::info_span!(parent: &parent, "triage", report_id = %id, level = tracing::field::Empty, degraded = tracing::field::Empty)
        };
        let triage_span = span.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let started = Instant::now();
                let mut events = Vec::with_capacity(8);
                events.push(bus.publish_owned(
                    id,
                    owner,
                    DiagnosisEventKind::TriageReceived {
                        text_chars: input.text.chars().count(),
                        structured_findings: input.findings.len(),
                        has_vitals: !input.vitals.is_empty(),
                    },
                ));
                // All four at once; each answer is published as soon as it arrives, so an
                // emergency assessment goes out before the slower agents finish.
                let calls = agents.iter().zip(AgentKind::ALL).map(|(addr, kind)| {
                    let (input, kb, bus) = (input.clone(), kb.clone(), bus.clone());
                    let agent_span = if triage_span.is_disabled() {
                        tracing::Span::none()
                    } else {
                        tracing::info_span!(
                            parent: &triage_span,
                            "agent",
                            agent = kind.as_str(),
                            outcome = tracing::field::Empty,
                            breaker = tracing::field::Empty,
                            batch_size = tracing::field::Empty,
                            queue_wait_us = tracing::field::Empty,
                            inference_us = tracing::field::Empty
                        )
                    };
                    async move {
                        let reply = match addr.send(Infer(input)).await {
                            Ok(r) => r,
                            Err(_) => AgentReply {
                                kind,
                                version: String::new(),
                                status: AgentStatus::Failed,
                                output: None,
                                latency_ms: 0.0,
                                run: None,
                                breaker: domain::BreakerState::Closed,
                            },
                        };
                        agent_span.record("outcome", reply.status.as_str());
                        agent_span.record("breaker", reply.breaker.as_str());
                        if let Some(run) = reply.run {
                            agent_span.record("batch_size", run.batch_size as u64);
                            agent_span.record("queue_wait_us", run.queue_wait.as_micros() as u64);
                            agent_span.record("inference_us", run.inference.as_micros() as u64);
                        }
                        drop(agent_span);
                        let published =
                            event_of(&kb, &reply).map(|ev| bus.publish_owned(id, owner, ev));
                        (reply, published)
                    }
                });
                let mut replies = Vec::with_capacity(AgentKind::ALL.len());
                for (reply, published) in futures::future::join_all(calls).await {
                    replies.push(reply);
                    events.extend(published);
                }
                // In publishing order, as a subscriber saw them.
                events.sort_by_key(|e| e.seq);
                if replies.iter().all(|r| r.status == AgentStatus::Overloaded) {
                    return Err(Overloaded);
                }
                let runs = replies.into_iter().map(|r| {
                    (
                        AgentRun {
                            kind: r.kind,
                            version: r.version,
                            status: r.status,
                            latency_ms: r.latency_ms,
                        },
                        r.output,
                    )
                });
                let mut out = Outcome::merge(&kb, &input, runs);
                for r in out.runs.iter().filter(|r| r.status != AgentStatus::Ok) {
                    events.push(bus.publish_owned(
                        id,
                        owner,
                        DiagnosisEventKind::AgentDegraded {
                            agent: r.kind.as_str().into(),
                            status: r.status.as_str().into(),
                        },
                    ));
                }
                out.total_ms = started.elapsed().as_secs_f64() * 1e3;
                outcomes.levels[out.decision.level.index()].inc();
                if out.degraded {
                    outcomes.degraded.inc();
                }
                events.push(bus.publish_owned(
                    id,
                    owner,
                    DiagnosisEventKind::TriageCompleted {
                        level: out.decision.level,
                        degraded: out.degraded,
                        total_ms: out.total_ms,
                    },
                ));
                triage_span.record("level", out.decision.level.as_str());
                triage_span.record("degraded", out.degraded);
                Ok(Triaged { outcome: out, events })
            },
            span,
        ))
    }
}
