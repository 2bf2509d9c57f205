//! The condition-matcher model: the findings a request asserts (present or absent), age and
//! sex to a calibrated probability over every condition in the knowledge base.
//!
//! The text reaches it only as findings (the shared reading, [`kb::Case::evidence`]). Its
//! logits are the knowledge base read as naive Bayes ([`kb::Bayes`]: prevalence, who gets the
//! condition, how often each finding occurs with it) plus a learned correction: the structured
//! findings and demographics through one hidden layer. The correction starts at zero and is
//! trained on synthetic patients with realistic sparsity (most people name a few findings and
//! deny fewer), so the model starts from the knowledge base and learns only what the data shows
//! beyond it. A softmax temperature fitted on the validation split calibrates it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use domain::{RankedCondition, Sex};
use kb::{Case, KnowledgeBase};
use ml::inputs::{DEMOGRAPHIC_WIDTH, demographics};
use ml::io::{self, ModelIoError};
use ml::sparse::SparseLinear;
use ml::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const NAME: &str = "condition-matcher";

pub fn default_model_dir() -> PathBuf {
    super::committed_dir(NAME)
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub findings: usize,
    pub hidden: usize,
    pub conditions: usize,
}

/// Its layers are the emergency detector's ([`super::findings_head`]); the struct is its own
/// because the weight file names the layer beside the findings `demo`.
#[derive(Module, Debug)]
pub struct Net {
    structured: Linear,
    demo: Linear,
    out: Linear,
}

impl NetConfig {
    pub fn init(&self, device: &Device) -> Net {
        Net {
            structured: LinearConfig::new(2 * self.findings, self.hidden).init(device),
            demo: LinearConfig::new(DEMOGRAPHIC_WIDTH, self.hidden).init(device),
            // Zero at the start: the untrained model is the knowledge base's naive Bayes.
            out: LinearConfig::new(self.hidden, self.conditions)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }
}

impl Net {
    /// Logits over conditions, [batch, conditions]: the prior plus the learned correction.
    pub fn forward(&self, findings: Tensor<2>, demo: Tensor<2>, prior: Tensor<2>) -> Tensor<2> {
        self.head_projected(self.structured.forward(findings), demo, prior)
    }

    /// The same with the structured findings already projected (by `SparseLinear` at inference).
    pub fn head_projected(&self, s: Tensor<2>, demo: Tensor<2>, prior: Tensor<2>) -> Tensor<2> {
        prior + self.correction(s, demo)
    }

    /// The learned correction alone, [batch, conditions].
    fn correction(&self, s: Tensor<2>, demo: Tensor<2>) -> Tensor<2> {
        super::findings_head(&self.demo, &self.out, s, demo)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub version: String,
    pub hidden: usize,
    /// Weight of the mean squared correction in the training loss: the correction moves the
    /// knowledge base's answer only as far as the training patients clearly ask. Chosen on the
    /// hand-written vignettes, never the development ones: a smaller weight lets the correction
    /// learn the generator (top-1 falls), a larger one gains little top-1 and loses top-10
    /// (measurements in docs/performance.md).
    pub shrink: f32,
    /// Share of training patients reduced to a few of their findings (see [`synth::sparse_view`]).
    pub sparse_share: f32,
    /// Softmax temperature fitted on the validation split.
    pub temperature: f32,
    pub finding_ids: Vec<String>,
    pub condition_ids: Vec<String>,
    pub kb_fingerprint: String,
    pub train: TrainConfig,
}

impl ModelConfig {
    pub fn new(kb: &KnowledgeBase, train: TrainConfig) -> Self {
        ModelConfig {
            version: format!("{NAME}-2"),
            hidden: 128,
            sparse_share: 0.8,
            shrink: 3.0,
            temperature: 1.0,
            finding_ids: kb.finding_ids(),
            condition_ids: kb.condition_ids(),
            kb_fingerprint: kb.fingerprint.clone(),
            train,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig::new(self.finding_ids.len(), self.hidden, self.condition_ids.len())
    }
}

pub struct ConditionMatcher {
    config: ModelConfig,
    net: Net,
    structured: SparseLinear,
    /// The knowledge base's naive Bayes, for the presenting complaint's weight.
    bayes: kb::Bayes,
    device: Device,
}

/// How many times more the presenting complaint ([`kb::Case::chief`]) counts in the prior
/// than a finding named in passing: counted twice in all. A clinician explains first the
/// complaint the person came with; a history lists the others whether or not they fit. Set
/// from that reasoning, not fitted: the synthetic patients mark no presenting complaint.
pub const CHIEF_WEIGHT: f32 = 1.0;

/// What the differential knows of one person, with its naive-Bayes log-scores.
struct Evidence<'a> {
    known: &'a [(usize, bool)],
    age: Option<f32>,
    sex: Sex,
    prior: &'a [f32],
    chief: Option<usize>,
}

/// The naive-Bayes log-scores of a batch, [batch, conditions], the presenting complaint
/// counted again ([`CHIEF_WEIGHT`]).
fn priors(batch: &[Evidence], bayes: &kb::Bayes, device: &Device) -> Tensor<2> {
    let nc = batch.first().map_or(0, |e| e.prior.len());
    let mut flat = Vec::with_capacity(batch.len() * nc);
    for e in batch {
        let at = flat.len();
        flat.extend_from_slice(e.prior);
        if let Some(f) = e.chief {
            bayes.emphasise(&mut flat[at..], f, CHIEF_WEIGHT);
        }
    }
    Tensor::from_data(TensorData::new(flat, [batch.len(), nc]), device)
}

fn demo_batch(batch: &[Evidence], device: &Device) -> Tensor<2> {
    let mut flat = Vec::with_capacity(batch.len() * DEMOGRAPHIC_WIDTH);
    for e in batch {
        flat.extend_from_slice(&demographics(e.age, e.sex));
    }
    Tensor::from_data(TensorData::new(flat, [batch.len(), DEMOGRAPHIC_WIDTH]), device)
}

impl ConditionMatcher {
    pub fn load(dir: &Path, kb: &KnowledgeBase, device: &Device) -> Result<Self, ModelIoError> {
        let config: ModelConfig = io::load_config(dir)?;
        io::check_vocab(dir, "findings", &config.finding_ids, &kb.finding_ids())?;
        io::check_vocab(dir, "conditions", &config.condition_ids, &kb.condition_ids())?;
        let net = io::load_weights(dir, config.net().init(device))?;
        Ok(Self::from_parts(config, net, device, kb))
    }

    fn from_parts(config: ModelConfig, net: Net, device: &Device, kb: &KnowledgeBase) -> Self {
        ConditionMatcher {
            structured: SparseLinear::new(&net.structured),
            config,
            net,
            bayes: kb.bayes().clone(),
            device: device.clone(),
        }
    }

    pub fn version(&self) -> &str {
        &self.config.version
    }

    pub fn temperature(&self) -> f32 {
        self.config.temperature
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelIoError> {
        io::save_config(dir, &self.config)?;
        io::save_weights(dir, self.net.clone())
    }

    fn logits_of(&self, batch: &[Evidence]) -> Tensor<2> {
        let s = super::project_findings(
            &self.structured,
            batch.iter().map(|e| e.known),
            self.config.finding_ids.len(),
            &self.device,
        );
        self.net.head_projected(
            s,
            demo_batch(batch, &self.device),
            priors(batch, &self.bayes, &self.device),
        )
    }

    fn logits(&self, cases: &[&Case]) -> Tensor<2> {
        let batch: Vec<Evidence> = cases
            .iter()
            .map(|c| Evidence {
                known: &c.evidence,
                age: c.input.age,
                sex: c.input.sex,
                prior: &c.prior,
                chief: c.chief,
            })
            .collect();
        self.logits_of(&batch)
    }

    /// Calibrated probabilities over every condition, per case.
    pub fn probabilities(&self, cases: &[&Case]) -> Vec<Vec<f32>> {
        self.each_probabilities(cases, |p| p.to_vec())
    }

    /// The `k` most probable conditions per case, most probable first.
    pub fn predict_batch(&self, cases: &[&Case], k: usize) -> Vec<Vec<RankedCondition>> {
        self.each_probabilities(cases, |p| top_k(p, k))
    }

    /// `f` of each case's calibrated probabilities (the temperature-scaled softmax of its
    /// logits), read from one buffer for the whole batch.
    fn each_probabilities<T>(&self, cases: &[&Case], f: impl Fn(&[f32]) -> T) -> Vec<T> {
        if cases.is_empty() {
            return Vec::new();
        }
        // The softmax runs on the logits read back, in place (`ml::softmax`: Burn's
        // probabilities but for the last bits, with an exponential that vectorises).
        let logits = self.logits(cases);
        let [b, w] = logits.dims();
        let mut data = logits.into_data();
        let flat: &mut [f32] = data.as_mut_slice().expect("float logits");
        ml::softmax::softmax_rows(flat, w, self.config.temperature);
        (0..b).map(|r| f(&flat[r * w..(r + 1) * w])).collect()
    }

    pub fn predict(&self, case: &Case, k: usize) -> Vec<RankedCondition> {
        self.predict_batch(&[case], k).pop().unwrap_or_default()
    }
}

/// The `k` most probable conditions, most probable first (equal probabilities: lower index
/// first).
pub fn top_k(p: &[f32], k: usize) -> Vec<RankedCondition> {
    ml::rank::top_k(p, k, |_| true)
        .into_iter()
        .map(|(condition, probability)| RankedCondition { condition, probability })
        .collect()
}

#[cfg(feature = "train")]
pub mod card;
#[cfg(feature = "train")]
pub mod train;
