//! The four agent models, their inference and loading; `Models` loads them together. Each
//! model's training, its evaluation on synthetic splits and its model card are in its `train`
//! submodule, compiled only with the `train` feature (the `triagent-train` binary), never
//! into the service.

pub mod care;
pub mod conditions;
pub mod emergency;
pub mod symptoms;

use burn::tensor::Device;
use conditions::ConditionMatcher;
use emergency::EmergencyDetector;
use kb::KnowledgeBase;
use ml::io::ModelIoError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use symptoms::SymptomClassifier;
use care::TreatmentRetriever;

/// The committed model of agent `name` (`agents/NAME/model/`: `config.json`, `weights.bpk`,
/// `MODEL_CARD.md`).
pub fn committed_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents").join(name).join("model")
}

/// Where each agent's model lives.
#[derive(Debug, Clone)]
pub struct ModelDirs {
    pub symptom_classifier: PathBuf,
    pub condition_matcher: PathBuf,
    pub treatment_retriever: PathBuf,
    pub emergency_detector: PathBuf,
}

impl Default for ModelDirs {
    /// The committed models ([`committed_dir`]).
    fn default() -> Self {
        ModelDirs {
            symptom_classifier: symptoms::default_model_dir(),
            condition_matcher: conditions::default_model_dir(),
            treatment_retriever: care::default_model_dir(),
            emergency_detector: emergency::default_model_dir(),
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
