//! The emergency-detector model: the findings a request asserts, age, sex, vital signs and
//! the urgency the knowledge base expects of them to the five triage levels, with the
//! deterministic red-flag rules running beside the model.
//!
//! It reads no text: its inputs are the case's evidence (`kb::Case::evidence`), demographics,
//! vitals, and the share of the naive-Bayes differential (`kb::Bayes`) at each usual urgency
//! (how urgent the conditions that explain these findings usually are). It is trained on
//! synthetic patients cut to the few findings people name, each labelled with the level its
//! *known* facts warrant (the condition's urgency raised by the rules those facts meet), so a
//! red flag the patient did not mention does not teach it to fear plain words. The model gives a
//! probability per level; the level chosen is the one with the least expected cost, where
//! sending someone one step too low costs [`UNDER_TRIAGE_COST`] times as much as one step too
//! high (under-triage is the dangerous error). The red-flag rules may only raise it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use domain::{EmergencyAssessment, Sex, TriageLevel, Vitals};
use kb::{Case, KnowledgeBase, RuleInput};
use ml::batch::rows;
use ml::inputs::{DEMOGRAPHIC_WIDTH, VITAL_WIDTH, demographics, vitals};
use ml::io::{self, ModelIoError};
use ml::sparse::SparseLinear;
use ml::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const NAME: &str = "emergency-detector";
const LEVELS: usize = 5;
/// Width of the inputs beside the findings: demographics, vitals, the differential's share at
/// each urgency.
const OTHER_WIDTH: usize = DEMOGRAPHIC_WIDTH + VITAL_WIDTH + LEVELS;
/// Cost of one step of under-triage relative to one step of over-triage.
pub const UNDER_TRIAGE_COST: f32 = 3.0;

pub fn default_model_dir() -> PathBuf {
    super::committed_dir(NAME)
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub findings: usize,
    pub hidden: usize,
}

/// Its layers are the condition matcher's ([`super::findings_head`]); the struct is its own
/// because the weight file names the layer beside the findings `other`.
#[derive(Module, Debug)]
pub struct Net {
    structured: Linear,
    other: Linear,
    out: Linear,
}

impl NetConfig {
    pub fn init(&self, device: &Device) -> Net {
        Net {
            structured: LinearConfig::new(2 * self.findings, self.hidden).init(device),
            other: LinearConfig::new(OTHER_WIDTH, self.hidden).init(device),
            out: LinearConfig::new(self.hidden, LEVELS).init(device),
        }
    }
}

impl Net {
    pub fn forward(&self, findings: Tensor<2>, other: Tensor<2>) -> Tensor<2> {
        self.head_projected(self.structured.forward(findings), other)
    }

    /// The head with the structured findings already projected (by `SparseLinear` at inference).
    pub fn head_projected(&self, s: Tensor<2>, other: Tensor<2>) -> Tensor<2> {
        super::findings_head(&self.other, &self.out, s, other)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub version: String,
    pub hidden: usize,
    /// Share of training patients reduced to a few of their findings (`synth::sparse_view`).
    pub sparse_share: f32,
    pub finding_ids: Vec<String>,
    pub kb_fingerprint: String,
    pub train: TrainConfig,
}

impl ModelConfig {
    pub fn new(kb: &KnowledgeBase, train: TrainConfig) -> Self {
        ModelConfig {
            version: format!("{NAME}-3"),
            hidden: 64,
            sparse_share: 0.8,
            finding_ids: kb.finding_ids(),
            kb_fingerprint: kb.fingerprint.clone(),
            train,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig::new(self.finding_ids.len(), self.hidden)
    }
}

pub struct EmergencyDetector {
    config: ModelConfig,
    net: Net,
    structured: SparseLinear,
    /// Each condition's usual urgency, as a level index.
    urgency: Vec<usize>,
    device: Device,
    kb: Arc<KnowledgeBase>,
}

/// What the detector knows of one person.
struct Evidence<'a> {
    known: &'a [(usize, bool)],
    age: Option<f32>,
    sex: Sex,
    vitals: &'a Vitals,
    /// The naive-Bayes posterior of every condition.
    posterior: &'a [f32],
}

/// The inputs beside the findings, one row per person: demographics, vitals, and the
/// naive-Bayes differential summed by each condition's usual urgency.
fn other_rows(urgency: &[usize], batch: &[Evidence]) -> Vec<f32> {
    let mut flat = Vec::with_capacity(batch.len() * OTHER_WIDTH);
    for e in batch {
        flat.extend_from_slice(&demographics(e.age, e.sex));
        flat.extend_from_slice(&vitals(e.vitals));
        let mut by_level = [0f32; LEVELS];
        for (p, &u) in e.posterior.iter().zip(urgency) {
            by_level[u] += p;
        }
        flat.extend_from_slice(&by_level);
    }
    flat
}

/// The level with the least expected cost under `p` (most urgent first), under-triage
/// weighted by [`UNDER_TRIAGE_COST`].
pub fn least_cost_level(p: &[f32]) -> TriageLevel {
    least_cost_level_at(p, UNDER_TRIAGE_COST)
}

/// The level with the least expected cost under `p` (most urgent first) when one step too low
/// costs `under_cost` times one step too high.
pub fn least_cost_level_at(p: &[f32], under_cost: f32) -> TriageLevel {
    let cost = |chosen: usize| -> f32 {
        p.iter()
            .enumerate()
            .map(|(gold, &pg)| {
                let d = chosen as f32 - gold as f32;
                pg * if d > 0.0 { under_cost * d } else { -d }
            })
            .sum()
    };
    let best = (0..LEVELS).min_by(|a, b| cost(*a).total_cmp(&cost(*b))).unwrap_or(0);
    TriageLevel::from_index(best).expect("five levels")
}

/// The deterministic red-flag rules alone: what the service falls back on when this agent is
/// down. `extra` are findings from elsewhere (the symptom classifier) that may also count.
pub fn red_flags(kb: &KnowledgeBase, case: &Case, extra: &[usize]) -> Vec<kb::RuleHit> {
    let mask = kb.case_mask(case, extra);
    kb.red_flags(&RuleInput {
        present: &mask,
        age: case.input.age,
        sex: case.input.sex,
        vitals: &case.input.vitals,
    })
}

impl EmergencyDetector {
    pub fn load(dir: &Path, kb: Arc<KnowledgeBase>, device: &Device) -> Result<Self, ModelIoError> {
        let config: ModelConfig = io::load_config(dir)?;
        io::check_vocab(dir, "findings", &config.finding_ids, &kb.finding_ids())?;
        let net = io::load_weights(dir, config.net().init(device))?;
        Ok(Self::from_parts(config, net, device, kb))
    }

    fn from_parts(config: ModelConfig, net: Net, device: &Device, kb: Arc<KnowledgeBase>) -> Self {
        EmergencyDetector {
            structured: SparseLinear::new(&net.structured),
            urgency: kb.conditions.iter().map(|c| c.urgency.index()).collect(),
            config,
            net,
            device: device.clone(),
            kb,
        }
    }

    pub fn version(&self) -> &str {
        &self.config.version
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelIoError> {
        io::save_config(dir, &self.config)?;
        io::save_weights(dir, self.net.clone())
    }

    /// Probability of each level, most urgent first.
    pub fn probabilities(&self, cases: &[&Case]) -> Vec<Vec<f32>> {
        if cases.is_empty() {
            return Vec::new();
        }
        let batch: Vec<Evidence> = cases
            .iter()
            .map(|c| Evidence {
                known: &c.evidence,
                age: c.input.age,
                sex: c.input.sex,
                vitals: &c.input.vitals,
                posterior: &c.posterior,
            })
            .collect();
        let s = super::project_findings(
            &self.structured,
            batch.iter().map(|e| e.known),
            self.config.finding_ids.len(),
            &self.device,
        );
        let o = Tensor::from_data(
            TensorData::new(other_rows(&self.urgency, &batch), [batch.len(), OTHER_WIDTH]),
            &self.device,
        );
        rows(softmax(self.net.head_projected(s, o), 1))
    }

    pub fn assess_batch(&self, cases: &[&Case]) -> Vec<EmergencyAssessment> {
        self.probabilities(cases)
            .into_iter()
            .zip(cases)
            .map(|(p, case)| {
                let model_level = least_cost_level(&p);
                let hits = red_flags(&self.kb, case, &[]);
                let level = hits.iter().fold(model_level, |l, h| l.most_urgent(h.level));
                let mut probabilities = [0f32; LEVELS];
                probabilities.copy_from_slice(&p);
                EmergencyAssessment {
                    level,
                    model_level,
                    probabilities,
                    red_flags: hits.iter().map(|h| h.rule).collect(),
                }
            })
            .collect()
    }

    pub fn assess(&self, case: &Case) -> EmergencyAssessment {
        self.assess_batch(&[case]).pop().expect("one input, one answer")
    }
}

#[cfg(feature = "train")]
pub mod card;
#[cfg(feature = "train")]
pub mod train;
