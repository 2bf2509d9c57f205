//! The four agent models, their inference and loading; `Models` loads them together. Each
//! model's module holds its network, its configuration, loading and inference; its training
//! and evaluation on synthetic splits are in its `train` submodule and its model card in its
//! `card` submodule, both compiled only with the `train` feature (the `triagent-train`
//! binary), never into the service.

pub mod care;
pub mod conditions;
pub mod emergency;
pub mod symptoms;

use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use care::TreatmentRetriever;
use conditions::ConditionMatcher;
use emergency::EmergencyDetector;
use kb::KnowledgeBase;
use ml::io::ModelIoError;
use ml::sparse::{SparseLinear, finding_slots};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use symptoms::SymptomClassifier;

/// The committed model of agent `name` (`agents/NAME/model/`: `config.json`, `weights.bpk`,
/// `MODEL_CARD.md`).
pub fn committed_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents").join(name).join("model")
}

/// The layers after the findings that the condition matcher and the emergency detector share:
/// `out(relu(s + side(x)))`, where `s` is the findings through their first layer
/// ([`project_findings`] at inference) and `x` the inputs beside them. One function for both
/// models; each keeps its own `Net` struct only because the weight files name `side`
/// differently (`demo`, `other`).
fn findings_head(side: &Linear, out: &Linear, s: Tensor<2>, x: Tensor<2>) -> Tensor<2> {
    out.forward(relu(s + side.forward(x)))
}

/// Each case's known findings (a present and an absent slot each) through the first layer,
/// `[batch, hidden]`, as a sparse product.
fn project_findings<'a>(
    layer: &SparseLinear,
    known: impl Iterator<Item = &'a [(usize, bool)]>,
    findings: usize,
    device: &Device,
) -> Tensor<2> {
    let slots: Vec<Vec<usize>> = known.map(|k| finding_slots(k, findings)).collect();
    layer.forward(slots.iter().map(Vec::as_slice), device)
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

impl ModelDirs {
    /// Each agent's model in a folder of its name under `root` (as `triagent-train --out`
    /// writes them).
    pub fn under(root: &Path) -> Self {
        ModelDirs {
            symptom_classifier: root.join(symptoms::NAME),
            condition_matcher: root.join(conditions::NAME),
            treatment_retriever: root.join(care::NAME),
            emergency_detector: root.join(emergency::NAME),
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
