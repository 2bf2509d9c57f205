//! The emergency-detector agent: text, structured findings, age, sex and vital signs to the
//! five triage levels, with the deterministic red-flag rules running beside the model.
//!
//! The model gives a probability per level; the level chosen is the one with the least
//! expected cost, where sending someone one step too low costs three times as much as one
//! step too high (under-triage is the dangerous error). The red-flag rules may only raise it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use domain::{CaseInput, EmergencyAssessment, TriageLevel};
use kb::{Case, KnowledgeBase, RuleInput};
use ml::batch::{BagBatch, rows};
use ml::encoder::{PooledEncoder, TextEncoder, TextEncoderConfig};
use ml::inputs::{DEMOGRAPHIC_WIDTH, VITAL_WIDTH};
use ml::io::{self, ModelIoError};
use ml::sparse::{SparseLinear, finding_slots};
use ml::train::{Progress, TrainConfig, fit};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use textfeat::{FeatureConfig, Featurizer};

pub const NAME: &str = "emergency-detector";
const LEVELS: usize = 5;
/// Cost of one step of under-triage relative to one step of over-triage.
pub const UNDER_TRIAGE_COST: f32 = 3.0;

pub fn default_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub encoder: TextEncoderConfig,
    pub findings: usize,
    pub structured_dim: usize,
    pub hidden: usize,
}

#[derive(Module, Debug)]
pub struct Net {
    enc: TextEncoder,
    structured: Linear,
    fc: Linear,
    out: Linear,
}

impl NetConfig {
    pub fn init(&self, device: &Device) -> Net {
        Net {
            enc: self.encoder.init(device),
            structured: LinearConfig::new(2 * self.findings, self.structured_dim).init(device),
            fc: LinearConfig::new(
                self.encoder.dim + self.structured_dim + DEMOGRAPHIC_WIDTH + VITAL_WIDTH,
                self.hidden,
            )
            .init(device),
            out: LinearConfig::new(self.hidden, LEVELS).init(device),
        }
    }
}

impl Net {
    pub fn forward(&self, bags: &BagBatch, findings: Tensor<2>, other: Tensor<2>) -> Tensor<2> {
        self.head(self.enc.forward(bags), findings, other)
    }

    /// Everything after the text encoder; inference feeds it bags pooled outside Burn.
    pub fn head(&self, t: Tensor<2>, findings: Tensor<2>, other: Tensor<2>) -> Tensor<2> {
        self.head_projected(t, self.structured.forward(findings), other)
    }

    /// The head with the structured findings already projected (by `SparseLinear` at inference).
    pub fn head_projected(&self, t: Tensor<2>, s: Tensor<2>, other: Tensor<2>) -> Tensor<2> {
        let h = relu(self.fc.forward(Tensor::cat(vec![t, s, other], 1)));
        self.out.forward(h)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub version: String,
    pub buckets: usize,
    pub dim: usize,
    pub structured_dim: usize,
    pub hidden: usize,
    pub max_features: usize,
    pub feature_seed: u64,
    pub finding_ids: Vec<String>,
    pub kb_fingerprint: String,
    pub train: TrainConfig,
}

impl ModelConfig {
    pub fn new(kb: &KnowledgeBase, train: TrainConfig) -> Self {
        ModelConfig {
            version: format!("{NAME}-2"),
            buckets: 1 << 14,
            dim: 32,
            structured_dim: 32,
            hidden: 128,
            max_features: 256,
            feature_seed: 0xe3e7,
            finding_ids: kb.finding_ids(),
            kb_fingerprint: kb.fingerprint.clone(),
            train,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig::new(
            TextEncoderConfig::new(self.buckets, self.dim),
            self.finding_ids.len(),
            self.structured_dim,
            self.hidden,
        )
    }

    fn featurizer(&self) -> Featurizer {
        Featurizer::new(FeatureConfig {
            buckets: self.buckets,
            max_features: self.max_features,
            seed: self.feature_seed,
        })
    }
}

pub struct EmergencyDetector {
    config: ModelConfig,
    net: Net,
    pooled: PooledEncoder,
    structured: SparseLinear,
    featurizer: Featurizer,
    device: Device,
    kb: Arc<KnowledgeBase>,
}

fn batch(
    featurizer: &Featurizer,
    n_findings: usize,
    inputs: &[&CaseInput],
    device: &Device,
) -> (BagBatch, Tensor<2>, Tensor<2>) {
    ml::batch::case_batch(featurizer, n_findings, inputs, true, device)
}

/// The level with the least expected cost under `p` (most urgent first), under-triage
/// weighted by [`UNDER_TRIAGE_COST`].
pub fn least_cost_level(p: &[f32]) -> TriageLevel {
    let cost = |chosen: usize| -> f32 {
        p.iter()
            .enumerate()
            .map(|(gold, &pg)| {
                let d = chosen as f32 - gold as f32;
                pg * if d > 0.0 { UNDER_TRIAGE_COST * d } else { -d }
            })
            .sum()
    };
    let best = (0..LEVELS)
        .min_by(|a, b| cost(*a).total_cmp(&cost(*b)))
        .unwrap_or(0);
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
            featurizer: config.featurizer(),
            pooled: PooledEncoder::new(&net.enc),
            structured: SparseLinear::new(&net.structured),
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
        let bags: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| self.featurizer.features_of_hashes(&c.analysis.hashes))
            .collect();
        let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
        let n = self.config.finding_ids.len();
        let slots: Vec<Vec<usize>> = cases
            .iter()
            .map(|c| finding_slots(&c.known_findings(), n))
            .collect();
        let s = self
            .structured
            .forward(slots.iter().map(Vec::as_slice), &self.device);
        let o = ml::batch::other_inputs(cases, true, &self.device);
        rows(softmax(
            self.net
                .head_projected(self.pooled.pool(&refs, &self.device), s, o),
            1,
        ))
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
        self.assess_batch(&[case])
            .pop()
            .expect("one input, one answer")
    }

    pub fn evaluate(&self, cases: &[synth::Case]) -> Metrics {
        let prepared: Vec<Case> = cases.iter().map(|c| self.kb.prepare(c.input())).collect();
        let mut pred = Vec::with_capacity(cases.len());
        for chunk in prepared.chunks(512) {
            let refs: Vec<&Case> = chunk.iter().collect();
            pred.extend(self.assess_batch(&refs).into_iter().map(|a| a.level));
        }
        let gold: Vec<TriageLevel> = cases.iter().map(|c| c.patient.level).collect();
        Metrics::of(&pred, &gold)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    /// Share of gold emergencies (either emergency level) given a non-emergency level.
    pub under_triaged_emergencies: f64,
    /// Share of all cases given a more urgent level than gold.
    pub over_triage: f64,
    /// Share of all cases given a less urgent level than gold.
    pub under_triage: f64,
}

impl Metrics {
    pub fn of(pred: &[TriageLevel], gold: &[TriageLevel]) -> Metrics {
        let n = gold.len().max(1) as f64;
        let acc = pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / n;
        let emerg: Vec<(&TriageLevel, &TriageLevel)> = pred
            .iter()
            .zip(gold)
            .filter(|(_, g)| g.is_emergency())
            .collect();
        let missed = emerg.iter().filter(|(p, _)| !p.is_emergency()).count() as f64
            / emerg.len().max(1) as f64;
        let over = pred.iter().zip(gold).filter(|(p, g)| p < g).count() as f64 / n;
        let under = pred.iter().zip(gold).filter(|(p, g)| p > g).count() as f64 / n;
        Metrics {
            accuracy: acc,
            under_triaged_emergencies: missed,
            over_triage: over,
            under_triage: under,
        }
    }
}

pub fn train(
    kb: Arc<KnowledgeBase>,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (EmergencyDetector, Metrics) {
    let config = ModelConfig::new(&kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed.wrapping_add(3));
    let featurizer = config.featurizer();
    let nf = config.finding_ids.len();
    let inputs: Vec<CaseInput> = data.train.iter().map(synth::Case::input).collect();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let net = config.net().init(&device);
    let (net, _) = fit(
        net,
        inputs.len(),
        &train,
        progress,
        NAME,
        |net: &Net, idx: &[usize]| {
            let refs: Vec<&CaseInput> = idx.iter().map(|&i| &inputs[i]).collect();
            let (b, f, o) = batch(&featurizer, nf, &refs, &device);
            let gold: Vec<i64> = idx
                .iter()
                .map(|&i| data.train[i].patient.level.index() as i64)
                .collect();
            let gold = Tensor::<1, Int>::from_data(TensorData::new(gold, [idx.len()]), &device);
            ce.forward(net.forward(&b, f, o), gold)
        },
    );
    let infer = Device::flex();
    let model = EmergencyDetector::from_parts(config, net.valid().to_device(&infer), &infer, kb);
    let metrics = model.evaluate(&data.test);
    (model, metrics)
}

pub fn model_card(model: &EmergencyDetector, m: &Metrics, data: &synth::Splits) -> String {
    let c = &model.config;
    format!(
        "# {NAME} model card\n\n\
         **What it does.** From free text, structured findings, age, sex and vital signs, a \
         probability for each of the five triage levels; the level chosen has the least \
         expected cost with under-triage weighted {UNDER_TRIAGE_COST}x per step. The \
         knowledge base's {} deterministic red-flag rules run beside it and may only raise the \
         level.\n\n\
         **Model.** Its own hashed n-gram embedding bag ({} buckets, {} dimensions), a {}-unit \
         projection of structured findings, age band, sex and vital signs (centred, with \
         measured flags), one {}-unit ReLU layer, a softmax over five levels. Version `{}`.\n\n\
         **Data.** Synthetic patients (knowledge base `{}`), seed {}: {} training, {} \
         validation, {} test cases. The gold level is the condition's usual urgency raised by \
         every red-flag rule the patient's facts meet.\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying to a tenth, \
         cross-entropy. Reproduce with `triagent train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split, model and rules together).** accuracy {:.3}, \
         under-triaged emergencies {:.3}, over-triage {:.3}, under-triage {:.3}.\n\n\
         **Limits.** A condition's urgency in the knowledge base is its usual level; real \
         severity varies. Vital-sign thresholds are adult ones (a baby's normal breathing rate \
         reads as fast). It does not replace a clinician's judgement or emergency services.\n",
        model.kb.rules.len(),
        c.buckets,
        c.dim,
        c.structured_dim,
        c.hidden,
        c.version,
        c.kb_fingerprint,
        c.train.seed,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        c.train.epochs,
        c.train.batch_size,
        c.train.learning_rate,
        m.accuracy,
        m.under_triaged_emergencies,
        m.over_triage,
        m.under_triage,
    )
}
