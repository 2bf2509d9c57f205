//! The emergency-detector agent: the findings a request asserts, age, sex, vital signs and
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
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use domain::{EmergencyAssessment, Sex, TriageLevel, Vitals};
use kb::{Case, KnowledgeBase, RuleInput};
use ml::batch::{dense, rows};
use ml::inputs::{DEMOGRAPHIC_WIDTH, VITAL_WIDTH, demographics, structured_findings, vitals};
use ml::io::{self, ModelIoError};
use ml::sparse::{SparseLinear, finding_slots};
use ml::train::{Progress, TrainConfig, fit};
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub findings: usize,
    pub hidden: usize,
}

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
        self.out.forward(relu(s + self.other.forward(other)))
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
    /// The naive-Bayes log-scores of every condition.
    prior: &'a [f32],
}

/// The inputs beside the findings, one row per person: demographics, vitals, and the
/// naive-Bayes differential summed by each condition's usual urgency.
fn other_rows(urgency: &[usize], batch: &[Evidence]) -> Vec<f32> {
    let mut flat = Vec::with_capacity(batch.len() * OTHER_WIDTH);
    for e in batch {
        flat.extend_from_slice(&demographics(e.age, e.sex));
        flat.extend_from_slice(&vitals(e.vitals));
        let mut by_level = [0f32; LEVELS];
        for (p, &u) in kb::posterior(e.prior).iter().zip(urgency) {
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
            .map(|c| Evidence { known: &c.evidence, age: c.input.age, sex: c.input.sex, vitals: &c.input.vitals, prior: &c.prior })
            .collect();
        let n = self.config.finding_ids.len();
        let slots: Vec<Vec<usize>> = batch.iter().map(|e| finding_slots(e.known, n)).collect();
        let s = self
            .structured
            .forward(slots.iter().map(Vec::as_slice), &self.device);
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

/// Trains on synthetic patients as the reading finds them in their generated text (with what
/// was sent beside it); a share of them cut to a few findings (`synth::sparse_view`). Each is
/// labelled with the level its known facts warrant.
pub fn train(
    kb: Arc<KnowledgeBase>,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (EmergencyDetector, Metrics) {
    let config = ModelConfig::new(&kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed.wrapping_add(3));
    let nf = config.finding_ids.len();
    let bayes = kb.bayes();
    let urgency: Vec<usize> = kb.conditions.iter().map(|c| c.urgency.index()).collect();
    let known = synth::training_views(&kb, &data.train, config.sparse_share, train.seed.wrapping_add(13));
    let gold: Vec<i64> = data
        .train
        .iter()
        .zip(&known)
        .map(|(c, view)| {
            let present: Vec<usize> = view.iter().filter(|f| f.1).map(|f| f.0).collect();
            let urgent = kb.conditions[c.patient.condition].urgency;
            synth::gold_level(&kb, urgent, &present, c.patient.age, c.patient.sex, &c.vitals).index() as i64
        })
        .collect();
    let inputs: Vec<domain::CaseInput> = data.train.iter().map(synth::Case::input).collect();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let net = config.net().init(&device);
    let (net, _) = fit(
        net,
        known.len(),
        &train,
        progress,
        NAME,
        |net: &Net, idx: &[usize]| {
            let prior: Vec<Vec<f32>> = idx.iter().map(|&i| bayes.log_scores(&known[i], inputs[i].age, inputs[i].sex)).collect();
            let batch: Vec<Evidence> = idx
                .iter()
                .zip(&prior)
                .map(|(&i, p)| Evidence { known: &known[i], age: inputs[i].age, sex: inputs[i].sex, vitals: &inputs[i].vitals, prior: p })
                .collect();
            let f: Vec<Vec<f32>> = batch.iter().map(|e| structured_findings(e.known, nf)).collect();
            let o = Tensor::from_data(TensorData::new(other_rows(&urgency, &batch), [batch.len(), OTHER_WIDTH]), &device);
            let g: Vec<i64> = idx.iter().map(|&i| gold[i]).collect();
            let g = Tensor::<1, Int>::from_data(TensorData::new(g, [idx.len()]), &device);
            ce.forward(net.forward(dense(&f, 2 * nf, &device), o), g)
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
         **What it does.** From the findings a request asserts (read from its text, sent, or \
         shown by its vitals), age, sex, vital signs and how urgent the conditions the \
         knowledge base's naive Bayes finds for them usually are, a probability for each of \
         the five triage levels; it never reads the text itself; the level chosen has the least \
         expected cost with under-triage weighted {UNDER_TRIAGE_COST}x per step. The \
         knowledge base's {} deterministic red-flag rules run beside it and may only raise the \
         level.\n\n\
         **Model.** The findings (a present and an absent slot each), age band, sex, vital signs \
         (centred, with measured flags) and the differential's share at each usual urgency into \
         one {}-unit ReLU layer, a softmax over five levels. Version `{}`.\n\n\
         **Data.** Synthetic patients (knowledge base `{}`), seed {}: {} training, {} \
         validation, {} test cases, each read by the shared reading; {:.0} % of the training \
         patients are cut to two to six findings and at most two denials, as people describe \
         themselves. The gold level is the condition's usual urgency raised by every red-flag \
         rule the known facts meet.\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying to a tenth, \
         cross-entropy. Reproduce with `triagent train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split, model and rules together).** accuracy {:.3}, \
         under-triaged emergencies {:.3}, over-triage {:.3}, under-triage {:.3}.\n\n\
         **Limits.** A condition's urgency in the knowledge base is its usual level; real \
         severity varies. Vital-sign thresholds are adult ones (a baby's normal breathing rate \
         reads as fast). It does not replace a clinician's judgement or emergency services.\n",
        model.kb.rules.len(),
        c.hidden,
        c.version,
        c.kb_fingerprint,
        c.train.seed,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        100.0 * c.sparse_share,
        c.train.epochs,
        c.train.batch_size,
        c.train.learning_rate,
        m.accuracy,
        m.under_triaged_emergencies,
        m.over_triage,
        m.under_triage,
    )
}
