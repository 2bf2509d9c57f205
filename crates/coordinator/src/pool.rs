//! A bounded pool of worker threads that owns one agent's model and runs micro-batches.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use kb::Case;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use triage::{AgentModel, AgentOutput};

/// Why a job did not produce an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the agent's queue is full")]
    QueueFull,
    #[error("inference failed: {0}")]
    Failed(String),
    #[error("the agent's workers have stopped")]
    Stopped,
}

/// What a request gets back from the pool: the agent's output and how its run went.
pub type Reply = Result<(AgentOutput, RunStats), PoolError>;

struct Job {
    input: Arc<Case>,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

/// How one request went through the pool, for its trace span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunStats {
    /// Requests in the forward pass this one was part of.
    pub batch_size: usize,
    /// From queueing to the start of its forward pass.
    pub queue_wait: Duration,
    /// The forward pass.
    pub inference: Duration,
}

/// Counters the metrics read.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub batches: AtomicU64,
    pub items: AtomicU64,
    pub panics: AtomicU64,
    pub queued: AtomicUsize,
}

pub struct Pool {
    tx: Sender<Job>,
    pub counters: Arc<PoolCounters>,
}

impl Pool {
    /// Starts `workers` threads sharing `model`, a queue of `queue` jobs, batches of at most
    /// `max_batch` gathered for at most `max_wait` after the first job arrives. Each batch's
    /// size is observed in `batch_sizes`.
    pub fn start(
        model: Arc<dyn AgentModel>,
        workers: usize,
        queue: usize,
        max_batch: usize,
        max_wait: Duration,
        batch_sizes: metrics::Histogram,
    ) -> Pool {
        let (tx, rx) = bounded::<Job>(queue.max(1));
        let counters = Arc::new(PoolCounters::default());
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let model = model.clone();
            let counters = counters.clone();
            let batch_sizes = batch_sizes.clone();
            std::thread::Builder::new()
                .name(format!("{}-{i}", model.kind().as_str()))
                .spawn(move || worker(model, rx, max_batch.max(1), max_wait, counters, batch_sizes))
                .expect("spawning an agent worker thread");
        }
        Pool { tx, counters }
    }

    /// Queues one request; the answer arrives on the returned receiver. Never blocks: a full
    /// queue is an immediate error, so callers can answer 503 instead of waiting.
    pub fn submit(&self, input: Arc<Case>) -> Result<oneshot::Receiver<Reply>, PoolError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { input, enqueued: Instant::now(), reply }) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(PoolError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Stopped),
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.tx.len()
    }
}

fn worker(
    model: Arc<dyn AgentModel>,
    rx: Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    counters: Arc<PoolCounters>,
    batch_sizes: metrics::Histogram,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let until = Instant::now() + max_wait;
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) if max_wait.is_zero() => break,
                Err(_) => match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(j) => jobs.push(j),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                },
            }
        }
        counters.queued.fetch_sub(jobs.len(), Ordering::Relaxed);
        // A caller that has given up (deadline passed) no longer needs an answer.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.items.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        batch_sizes.observe(jobs.len() as f64);
        let inputs: Vec<&Case> = jobs.iter().map(|j| j.input.as_ref()).collect();
        // The model is immutable, so after a panic the same worker safely goes on with it: that
        // is the restart. The panic is counted and every job in the batch fails.
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| model.infer(&inputs)));
        let inference = started.elapsed();
        drop(inputs);
        let batch_size = jobs.len();
        match result {
            Ok(outputs) if outputs.len() == jobs.len() => {
                for (job, out) in jobs.into_iter().zip(outputs) {
                    let stats = RunStats {
                        batch_size,
                        queue_wait: started.saturating_duration_since(job.enqueued),
                        inference,
                    };
                    let _ = job.reply.send(Ok((out, stats)));
                }
            }
            Ok(outputs) => {
                let msg = format!("{} outputs for {} inputs", outputs.len(), jobs.len());
                for job in jobs {
                    let _ = job.reply.send(Err(PoolError::Failed(msg.clone())));
                }
            }
            Err(_) => {
                counters.panics.fetch_add(1, Ordering::Relaxed);
                for job in jobs {
                    let _ = job.reply.send(Err(PoolError::Failed("inference panicked".into())));
                }
            }
        }
    }
}
