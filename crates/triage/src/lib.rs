//! The triage core: the agent trait and its four kinds, the four models loaded together, the
//! merge that decides the final level, the one outcome type, the limits, the sequential
//! runner, and answer assembly ([`answer`]: the typed answer the API only serialises).
//!
//! The merge is the one place that decides the final triage level, and both ways of running
//! the agents go through the same trait ([`AgentModel`]) and the same merge: the service's
//! coordinator (crates/coordinator) fans a request out to the four agents in parallel, and the
//! sequential [`Runner`] here (evaluation, benchmarks) calls them one after another. Both give
//! an [`Outcome`], so the evaluation, the benchmarks and the service give the same answer for
//! the same agent outputs. Nothing in this crate spawns threads.

pub mod agent;
pub mod answer;
pub mod limits;
pub mod merge;
pub mod models;
pub mod outcome;
pub mod runner;
pub mod scores;

pub use agent::{AgentKind, AgentModel, AgentOutput, ModelAgent};
pub use answer::{Answer, DISCLAIMER, assemble};
pub use limits::{DECISION_CONDITIONS, MAX_CARE, MAX_CONDITIONS};
pub use merge::{Decision, SAFETY_FLOOR, decide_level, expected_urgency};
pub use models::{ModelDirs, Models};
pub use outcome::{AgentRun, AgentStatus, Outcome};
/// The shared reading the core builds on (made once per request by `kb::KnowledgeBase::prepare`).
pub use reading::Reading;
pub use runner::Runner;
