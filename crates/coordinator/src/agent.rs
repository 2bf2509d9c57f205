//! An agent actor: one agent's worker pool behind a deadline and a circuit breaker.

use crate::pool::{Pool, PoolError};
use actix::prelude::*;
use domain::BreakerState;
use failsafe::futures::CircuitBreaker as _;
use failsafe::{Config, Error as BreakerError, StateMachine, failure_policy::ConsecutiveFailures};
use kb::Case;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use triage::{AgentKind, AgentModel, AgentOutput, AgentStatus};
use uuid::Uuid;

/// Per-agent runtime settings (configuration section `agents.NAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub workers: usize,
    pub queue: usize,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub deadline: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open the first time; doubles on each reopening up to the max.
    pub breaker_backoff: Duration,
    pub breaker_backoff_max: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            workers: 1,
            queue: 1024,
            max_batch: 32,
            max_wait: Duration::ZERO,
            deadline: Duration::from_millis(250),
            breaker_failures: 5,
            breaker_backoff: Duration::from_secs(2),
            breaker_backoff_max: Duration::from_secs(60),
        }
    }
}

/// Exponential back-off from `start` to `max` (failsafe's own needs whole seconds).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(d)
    }
}

/// Breaker state for metrics and events, as [`BreakerState::as_u8`] numbers it.
#[derive(Debug, Clone)]
pub struct BreakerWatch {
    kind: AgentKind,
    state: Arc<AtomicU8>,
    bus: bus::Bus,
}

impl BreakerWatch {
    fn set(&self, state: BreakerState) {
        if self.state.swap(state.as_u8(), Ordering::Relaxed) != state.as_u8() {
            self.bus.publish(
                Uuid::nil(),
                bus::DiagnosisEventKind::BreakerStateChanged {
                    agent: self.kind.as_str().into(),
                    state,
                },
            );
        }
    }
}

impl failsafe::Instrument for BreakerWatch {
    fn on_call_rejected(&self) {}
    fn on_open(&self) {
        self.set(BreakerState::Open);
    }
    fn on_half_open(&self) {
        self.set(BreakerState::HalfOpen);
    }
    fn on_closed(&self) {
        self.set(BreakerState::Closed);
    }
}

type Breaker = StateMachine<ConsecutiveFailures<Backoff>, BreakerWatch>;

/// Live numbers about one agent, for metrics and readiness.
#[derive(Clone)]
pub struct AgentStats {
    pub kind: AgentKind,
    pub version: String,
    /// [`BreakerState::as_u8`]; read it with [`AgentStats::breaker`].
    pub breaker_state: Arc<AtomicU8>,
    pub pool: Arc<crate::pool::PoolCounters>,
}

impl AgentStats {
    pub fn breaker(&self) -> BreakerState {
        BreakerState::from_u8(self.breaker_state.load(Ordering::Relaxed))
    }
}

/// One agent's shared parts: its worker pool, its breaker, its deadline and its metrics. Cheap
/// to clone (every part is shared), so each HTTP worker's coordinator can have its own actor
/// for the agent while all of them feed the same pool and trip the same breaker.
#[derive(Clone)]
pub struct Agent {
    kind: AgentKind,
    version: String,
    pool: Arc<Pool>,
    breaker: Breaker,
    deadline: Duration,
    stats: AgentStats,
    metrics: Arc<metrics::AgentMetrics>,
}

impl Agent {
    /// Starts the agent's worker pool.
    pub fn new(
        model: Arc<dyn AgentModel>,
        settings: &AgentSettings,
        bus: bus::Bus,
        metrics: metrics::AgentMetrics,
    ) -> Agent {
        let kind = model.kind();
        let version = model.version();
        let pool = Arc::new(Pool::start(
            model,
            settings.workers,
            settings.queue,
            settings.max_batch,
            settings.max_wait,
            metrics.batch_size.clone(),
        ));
        let state = Arc::new(AtomicU8::new(0));
        let watch = BreakerWatch { kind, state: state.clone(), bus };
        let backoff = Backoff {
            next: settings.breaker_backoff,
            max: settings.breaker_backoff_max.max(settings.breaker_backoff),
        };
        let breaker = Config::new()
            .failure_policy(failsafe::failure_policy::consecutive_failures(
                settings.breaker_failures.max(1),
                backoff,
            ))
            .instrument(watch)
            .build();
        let stats = AgentStats {
            kind,
            version: version.clone(),
            breaker_state: state,
            pool: pool.counters.clone(),
        };
        Agent {
            kind,
            version,
            pool,
            breaker,
            deadline: settings.deadline,
            stats,
            metrics: Arc::new(metrics),
        }
    }

    pub fn stats(&self) -> AgentStats {
        self.stats.clone()
    }
}

/// The actor in front of an [`Agent`], on the arbiter of whoever started it.
pub struct AgentActor(Agent);

impl AgentActor {
    /// An actor in front of an agent others may share.
    pub fn of(agent: Agent) -> AgentActor {
        AgentActor(agent)
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// Run one request through this agent.
#[derive(Message)]
#[rtype(result = "AgentReply")]
pub struct Infer(pub Arc<Case>);

#[derive(Debug, Clone)]
pub struct AgentReply {
    pub kind: AgentKind,
    pub version: String,
    pub status: AgentStatus,
    pub output: Option<AgentOutput>,
    pub latency_ms: f64,
    /// How the call went through the agent's pool, when it reached a forward pass.
    pub run: Option<crate::pool::RunStats>,
    /// The agent's breaker after the call.
    pub breaker: BreakerState,
}

#[derive(Debug)]
enum CallError {
    Timeout,
    Failed,
    Overloaded,
}

impl Handler<Infer> for AgentActor {
    type Result = ResponseFuture<AgentReply>;

    fn handle(&mut self, msg: Infer, _ctx: &mut Self::Context) -> Self::Result {
        // Nothing here blocks: submitting never waits and the answer is awaited off the loop.
        let a = &self.0;
        let (kind, version, pool, breaker, deadline, metrics) = (
            a.kind,
            a.version.clone(),
            a.pool.clone(),
            a.breaker.clone(),
            a.deadline,
            a.metrics.clone(),
        );
        let breaker_state = a.stats.breaker_state.clone();
        Box::pin(async move {
            let started = Instant::now();
            let call = async {
                let rx = pool.submit(msg.0).map_err(|e| match e {
                    PoolError::QueueFull => CallError::Overloaded,
                    _ => CallError::Failed,
                })?;
                match tokio::time::timeout(deadline, rx).await {
                    Err(_) => Err(CallError::Timeout),
                    Ok(Err(_)) | Ok(Ok(Err(_))) => Err(CallError::Failed),
                    Ok(Ok(Ok(out))) => Ok(out),
                }
            };
            // A full queue says nothing about the agent's health: it does not trip the breaker.
            let result =
                breaker.call_with(|e: &CallError| !matches!(e, CallError::Overloaded), call).await;
            let (status, output, run) = match result {
                Ok((out, run)) => (AgentStatus::Ok, Some(out), Some(run)),
                Err(BreakerError::Rejected) => (AgentStatus::CircuitOpen, None, None),
                Err(BreakerError::Inner(CallError::Timeout)) => (AgentStatus::Timeout, None, None),
                Err(BreakerError::Inner(CallError::Failed)) => (AgentStatus::Failed, None, None),
                Err(BreakerError::Inner(CallError::Overloaded)) => {
                    (AgentStatus::Overloaded, None, None)
                }
            };
            let elapsed = started.elapsed().as_secs_f64();
            match status {
                // Refused calls never reached the model: their time says nothing about it.
                AgentStatus::CircuitOpen => metrics.circuit_open.inc(),
                AgentStatus::Overloaded => metrics.queue_full.inc(),
                AgentStatus::Ok => metrics.latency.observe(elapsed),
                AgentStatus::Timeout => {
                    metrics.timeouts.inc();
                    metrics.latency.observe(elapsed);
                }
                AgentStatus::Failed => {
                    metrics.failures.inc();
                    metrics.latency.observe(elapsed);
                }
            }
            AgentReply {
                kind,
                version,
                status,
                output,
                latency_ms: elapsed * 1e3,
                run,
                breaker: BreakerState::from_u8(breaker_state.load(Ordering::Relaxed)),
            }
        })
    }
}
