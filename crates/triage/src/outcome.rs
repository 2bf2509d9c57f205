//! The one outcome type: what the four agents answered for one request, how each did, and the
//! merged decision. The coordinator and the sequential runner both give it.

use crate::agent::{AgentKind, AgentOutput};
use crate::merge::{Decision, SAFETY_FLOOR, decide_level};
use domain::{EmergencyAssessment, ExtractedFinding, RankedCondition, RetrievedAdvice};
use kb::{Case, KnowledgeBase};

/// The outcome of one agent call, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Ok,
    Timeout,
    Failed,
    CircuitOpen,
    /// The queue was full: the call never started (the API reports it as `failed`; when every
    /// agent is full the service answers 503).
    Overloaded,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Ok => "ok",
            AgentStatus::Timeout => "timeout",
            AgentStatus::Failed | AgentStatus::Overloaded => "failed",
            AgentStatus::CircuitOpen => "circuit_open",
        }
    }
}

/// How one agent did on one request.
#[derive(Debug, Clone)]
pub struct AgentRun {
    pub kind: AgentKind,
    pub version: String,
    pub status: AgentStatus,
    pub latency_ms: f64,
}

/// Everything an answer is made from: each agent's output (None when it was not ok), how each
/// agent did, and the merged decision.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub runs: Vec<AgentRun>,
    pub findings: Option<Vec<ExtractedFinding>>,
    pub conditions: Option<Vec<RankedCondition>>,
    pub care: Option<Vec<RetrievedAdvice>>,
    pub emergency: Option<EmergencyAssessment>,
    pub decision: Decision,
    /// True when any agent is not ok.
    pub degraded: bool,
    /// From the request's arrival to the decision (for the sequential runner: the whole batch).
    pub total_ms: f64,
}

impl Outcome {
    /// Each agent's run and output, merged with [`decide_level`] over the outputs of the agents
    /// that answered. `total_ms` is left at zero for the caller to set.
    pub fn merge(
        kb: &KnowledgeBase,
        case: &Case,
        replies: impl IntoIterator<Item = (AgentRun, Option<AgentOutput>)>,
    ) -> Outcome {
        let mut out = Outcome {
            runs: Vec::new(),
            findings: None,
            conditions: None,
            care: None,
            emergency: None,
            decision: Decision { level: SAFETY_FLOOR, red_flags: Vec::new(), floor_applied: true },
            degraded: false,
            total_ms: 0.0,
        };
        for (run, output) in replies {
            if run.status != AgentStatus::Ok {
                out.degraded = true;
            }
            out.runs.push(run);
            match output {
                Some(AgentOutput::Findings(f)) => out.findings = Some(f),
                Some(AgentOutput::Conditions(c)) => out.conditions = Some(c),
                Some(AgentOutput::Care(a)) => out.care = Some(a),
                Some(AgentOutput::Emergency(e)) => out.emergency = Some(e),
                None => {}
            }
        }
        out.decision = decide_level(kb, case, out.emergency.as_ref(), out.conditions.as_deref());
        out
    }
}
