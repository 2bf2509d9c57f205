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

mod agent;
mod coordinator;
mod pool;

pub use agent::{Agent, AgentActor, AgentReply, AgentSettings, AgentStats, AgentStatus, Infer};
pub use coordinator::{AgentRun, Coordinator, Overloaded, Runtime, Triage, TriageOutcome};
pub use pool::{Pool, PoolError, RunStats};

use kb::Case;
use domain::{EmergencyAssessment, ExtractedFinding, RankedCondition, RetrievedAdvice};
use pipeline::Models;
use std::sync::Arc;

/// The four agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    SymptomClassifier,
    ConditionMatcher,
    TreatmentRetriever,
    EmergencyDetector,
}

impl AgentKind {
    pub const ALL: [AgentKind; 4] = [AgentKind::SymptomClassifier, AgentKind::ConditionMatcher, AgentKind::TreatmentRetriever, AgentKind::EmergencyDetector];

    /// The name used in the API (`agents.symptom_classifier`), events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::SymptomClassifier => "symptom_classifier",
            AgentKind::ConditionMatcher => "condition_matcher",
            AgentKind::TreatmentRetriever => "treatment_retriever",
            AgentKind::EmergencyDetector => "emergency_detector",
        }
    }
}

/// One agent's answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutput {
    Findings(Vec<ExtractedFinding>),
    Conditions(Vec<RankedCondition>),
    Care(Vec<RetrievedAdvice>),
    Emergency(EmergencyAssessment),
}

/// What an agent does: a batch of requests in, one output per request, in order. The real
/// models implement it below; tests implement it with agents that are slow, fail or panic on
/// purpose.
pub trait AgentModel: Send + Sync + 'static {
    fn kind(&self) -> AgentKind;
    fn version(&self) -> String;
    fn infer(&self, batch: &[&Case]) -> Vec<AgentOutput>;
}

/// How many conditions and advice entries the agents return; the API shows fewer on request.
/// The merge weighs the same conditions as the sequential pipeline.
pub const MAX_CONDITIONS: usize = pipeline::DECISION_CONDITIONS;
pub const MAX_CARE: usize = 5;

/// One of the four real models, shared with the others through one `Arc<Models>`.
pub struct ModelAgent {
    models: Arc<Models>,
    kind: AgentKind,
}

impl ModelAgent {
    /// The four real agents over one set of loaded models.
    pub fn all(models: Arc<Models>) -> Vec<Arc<dyn AgentModel>> {
        AgentKind::ALL.iter().map(|&kind| Arc::new(ModelAgent { models: models.clone(), kind }) as Arc<dyn AgentModel>).collect()
    }
}

impl AgentModel for ModelAgent {
    fn kind(&self) -> AgentKind {
        self.kind
    }

    fn version(&self) -> String {
        let m = &self.models;
        match self.kind {
            AgentKind::SymptomClassifier => m.symptoms.version(),
            AgentKind::ConditionMatcher => m.conditions.version(),
            AgentKind::TreatmentRetriever => m.care.version(),
            AgentKind::EmergencyDetector => m.emergency.version(),
        }
        .to_string()
    }

    fn infer(&self, batch: &[&Case]) -> Vec<AgentOutput> {
        let m = &self.models;
        match self.kind {
            AgentKind::SymptomClassifier => m.symptoms.refine_batch(batch).into_iter().map(AgentOutput::Findings).collect(),
            AgentKind::ConditionMatcher => m.conditions.predict_batch(batch, MAX_CONDITIONS).into_iter().map(AgentOutput::Conditions).collect(),
            AgentKind::TreatmentRetriever => m.care.retrieve_batch(batch, MAX_CARE).into_iter().map(AgentOutput::Care).collect(),
            AgentKind::EmergencyDetector => m.emergency.assess_batch(batch).into_iter().map(AgentOutput::Emergency).collect(),
        }
    }
}
