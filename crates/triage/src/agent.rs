//! The agent trait, the four kinds, and the real models behind the trait.

use crate::limits::{MAX_CARE, MAX_CONDITIONS};
use crate::models::Models;
use domain::{EmergencyAssessment, ExtractedFinding, RankedCondition, RetrievedAdvice};
use kb::Case;
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
    pub const ALL: [AgentKind; 4] = [
        AgentKind::SymptomClassifier,
        AgentKind::ConditionMatcher,
        AgentKind::TreatmentRetriever,
        AgentKind::EmergencyDetector,
    ];

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
/// models implement it through [`ModelAgent`]; tests implement it with agents that are slow,
/// fail or panic on purpose. The coordinator and the sequential [`crate::Runner`] both call
/// the agents only through it.
pub trait AgentModel: Send + Sync + 'static {
    fn kind(&self) -> AgentKind;
    fn version(&self) -> String;
    fn infer(&self, batch: &[&Case]) -> Vec<AgentOutput>;
}

/// One of the four real models, shared with the others through one `Arc<Models>`.
pub struct ModelAgent {
    models: Arc<Models>,
    kind: AgentKind,
}

impl ModelAgent {
    /// The four real agents over one set of loaded models, in [`AgentKind::ALL`] order.
    pub fn all(models: Arc<Models>) -> Vec<Arc<dyn AgentModel>> {
        AgentKind::ALL
            .iter()
            .map(|&kind| {
                Arc::new(ModelAgent { models: models.clone(), kind }) as Arc<dyn AgentModel>
            })
            .collect()
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
            AgentKind::SymptomClassifier => {
                m.symptoms.refine_batch(batch).into_iter().map(AgentOutput::Findings).collect()
            }
            AgentKind::ConditionMatcher => m
                .conditions
                .predict_batch(batch, MAX_CONDITIONS)
                .into_iter()
                .map(AgentOutput::Conditions)
                .collect(),
            AgentKind::TreatmentRetriever => {
                m.care.retrieve_batch(batch, MAX_CARE).into_iter().map(AgentOutput::Care).collect()
            }
            AgentKind::EmergencyDetector => {
                m.emergency.assess_batch(batch).into_iter().map(AgentOutput::Emergency).collect()
            }
        }
    }
}
