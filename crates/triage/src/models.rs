//! The four agent models, loaded together.

use condition_matcher::ConditionMatcher;
use emergency_detector::EmergencyDetector;
use kb::KnowledgeBase;
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

/// The four models over one knowledge base. They are run through [`crate::ModelAgent`], by the
/// coordinator or by the sequential [`crate::Runner`].
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
}
