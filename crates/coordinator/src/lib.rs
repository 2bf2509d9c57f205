//! The triage runtime: a coordinator actor that fans each request out to four agent actors in
//! parallel and merges their answers.
//!
//! Each agent actor owns one shared model on a bounded pool of worker threads (inference never
//! runs on an actor's event loop), fed by a bounded queue from which a worker forms a
//! micro-batch of whatever is waiting and runs one forward pass. Every agent call has a
//! deadline and sits behind a `failsafe` circuit breaker; a timed-out, failed or refused call
//! becomes that agent's status and the answer is marked degraded, never lost. A panic inside
//! inference is caught, counted as a failure, and the worker goes on with its (immutable) model.
//! Every step is published on the event bus.
//!
//! The agent trait and kinds, the merge, the outcome type and the limits are the triage core's
//! (crates/triage); this crate only runs the agents in parallel and merges with
//! [`triage::Outcome::merge`], as the sequential runner does.

mod agent;
mod coordinator;
mod pool;

pub use agent::{Agent, AgentActor, AgentReply, AgentSettings, AgentStats, Infer};
pub use coordinator::{Coordinator, Overloaded, Runtime, Triage, Triaged};
pub use pool::{Pool, PoolError, RunStats};
