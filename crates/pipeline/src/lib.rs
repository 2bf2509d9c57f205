//! The four agent models loaded together, and the rules that merge their answers.
//!
//! The merge is the one place that decides the final triage level, so the evaluation, the
//! benchmarks and the service (the coordinator runs the same merge after its parallel fan-out)
//! all give the same answer for the same agent outputs. This crate runs the agents one after
//! another; it never spawns threads.

use condition_matcher::ConditionMatcher;
use domain::{
    CaseInput, EmergencyAssessment, ExtractedFinding, RankedCondition, RetrievedAdvice, TriageLevel,
};
use emergency_detector::EmergencyDetector;
use kb::{Case, KnowledgeBase};
use ml::burn::tensor::Device;
use ml::io::ModelIoError;
use std::path::PathBuf;
use std::sync::Arc;
use symptom_classifier::SymptomClassifier;
use treatment_retriever::TreatmentRetriever;

/// Where each agent's model lives.
#[derive(Debug, Clone)]
pub struct ModelDirs {
    pub symptom_classifier: PathBuf,
    pub condition_matcher: PathBuf,
    pub treatment_retriever: PathBuf,
    pub emergency_detector: PathBuf,
}

impl Default for ModelDirs {
    /// The committed models in the agents' own folders.
    fn default() -> Self {
        ModelDirs {
            symptom_classifier: symptom_classifier::default_model_dir(),
            condition_matcher: condition_matcher::default_model_dir(),
            treatment_retriever: treatment_retriever::default_model_dir(),
            emergency_detector: emergency_detector::default_model_dir(),
        }
    }
}

pub struct Models {
    pub kb: Arc<KnowledgeBase>,
    pub symptoms: SymptomClassifier,
    pub conditions: ConditionMatcher,
    pub care: TreatmentRetriever,
    pub emergency: EmergencyDetector,
}

impl Models {
    pub fn load(
        kb: Arc<KnowledgeBase>,
        dirs: &ModelDirs,
        device: &Device,
    ) -> Result<Self, ModelIoError> {
        Ok(Models {
            symptoms: SymptomClassifier::load(&dirs.symptom_classifier, &kb, device)?,
            conditions: ConditionMatcher::load(&dirs.condition_matcher, &kb, device)?,
            care: TreatmentRetriever::load(&dirs.treatment_retriever, kb.clone(), device)?,
            emergency: EmergencyDetector::load(&dirs.emergency_detector, kb.clone(), device)?,
            kb,
        })
    }

    /// All four agents on a batch, one after another, then the merge; each text is read once
    /// ([`KnowledgeBase::prepare`]) for all four.
    pub fn run_batch(
        &self,
        inputs: &[&CaseInput],
        max_conditions: usize,
        max_care: usize,
    ) -> Vec<Triage> {
        let cases: Vec<Case> = inputs
            .iter()
            .map(|i| self.kb.prepare((*i).clone()))
            .collect();
        let refs: Vec<&Case> = cases.iter().collect();
        self.run_cases(&refs, max_conditions, max_care)
    }

    /// As [`Models::run_batch`], on cases already prepared.
    pub fn run_cases(
        &self,
        inputs: &[&Case],
        max_conditions: usize,
        max_care: usize,
    ) -> Vec<Triage> {
        let findings = self.symptoms.refine_batch(inputs);
        let conditions = self.conditions.predict_batch(inputs, max_conditions);
        let care = self.care.retrieve_batch(inputs, max_care);
        let emergency = self.emergency.assess_batch(inputs);
        findings
            .into_iter()
            .zip(conditions)
            .zip(care)
            .zip(emergency)
            .zip(inputs)
            .map(|((((f, c), a), e), input)| {
                let decision = decide_level(&self.kb, input, Some(&e), Some(&c));
                Triage {
                    findings: f,
                    conditions: c,
                    care: a,
                    emergency: Some(e),
                    decision,
                }
            })
            .collect()
    }

    pub fn run(&self, input: &CaseInput, max_conditions: usize, max_care: usize) -> Triage {
        self.run_batch(&[input], max_conditions, max_care)
            .pop()
            .expect("one input, one answer")
    }
}

/// The four answers and the final decision for one request.
#[derive(Debug, Clone)]
pub struct Triage {
    pub findings: Vec<ExtractedFinding>,
    pub conditions: Vec<RankedCondition>,
    pub care: Vec<RetrievedAdvice>,
    pub emergency: Option<EmergencyAssessment>,
    pub decision: Decision,
}

/// The final level and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub level: TriageLevel,
    /// Red-flag rules (indices) that fired, most urgent first.
    pub red_flags: Vec<usize>,
    /// True when the emergency detector was not available and the safety floor applied.
    pub floor_applied: bool,
}

/// The lowest level a degraded answer may give: without the emergency detector, the service
/// never says less than "see a clinician soon".
pub const SAFETY_FLOOR: TriageLevel = TriageLevel::Consultation;

/// A condition this probable raises the level to its usual urgency.
pub const CONFIDENT_CONDITION: f32 = 0.35;

/// The final triage level.
///
/// With the emergency detector's assessment: its level (its model, raised by the red-flag
/// rules it ran), raised by the usual urgency of any condition the matcher is confident about.
/// Without it: the red-flag rules and confident conditions, and never less urgent than
/// [`SAFETY_FLOOR`]. The rules read only what the request asserts: findings sent, findings the
/// reading of the text asserts for the patient, and vitals; never the symptom classifier's
/// own findings, which can name what the text does not say.
pub fn decide_level(
    kb: &KnowledgeBase,
    case: &Case,
    emergency: Option<&EmergencyAssessment>,
    conditions: Option<&[RankedCondition]>,
) -> Decision {
    let hits: Vec<kb::RuleHit> = match emergency {
        Some(e) => e.red_flags.iter().map(|&r| kb::RuleHit { rule: r, level: kb.rules[r].level }).collect(),
        None => emergency_detector::red_flags(kb, case, &[]),
    };
    // A condition the matcher is confident about brings its usual urgency with it.
    let confident = conditions
        .unwrap_or(&[])
        .iter()
        .filter(|r| r.probability >= CONFIDENT_CONDITION)
        .map(|r| kb.conditions[r.condition].urgency)
        .min();
    let rules_level = match (hits.iter().map(|h| h.level).min(), confident) {
        (Some(a), Some(b)) => Some(a.most_urgent(b)),
        (a, b) => a.or(b),
    };
    let red_flags: Vec<usize> = hits.iter().map(|h| h.rule).collect();
    match emergency {
        Some(e) => Decision {
            level: rules_level.map_or(e.level, |r| r.most_urgent(e.level)),
            red_flags,
            floor_applied: false,
        },
        None => {
            let level = rules_level.map_or(SAFETY_FLOOR, |r| r.most_urgent(SAFETY_FLOOR));
            Decision {
                level,
                red_flags,
                floor_applied: true,
            }
        }
    }
}
