//! The condition-matcher agent: text, structured findings, age and sex to a calibrated
//! probability over every condition in the knowledge base.
//!
//! Its own text encoder (it does not wait for the symptom classifier), a dense projection of
//! the structured findings, demographics, one hidden layer and a softmax over conditions whose
//! temperature is fitted on the validation split so that probabilities are calibrated.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use domain::{CaseInput, RankedCondition};
use kb::{Case, KnowledgeBase};
use ml::batch::{BagBatch, rows};
use ml::encoder::{PooledEncoder, TextEncoder, TextEncoderConfig};
use ml::inputs::DEMOGRAPHIC_WIDTH;
use ml::io::{self, ModelIoError};
use ml::sparse::{SparseLinear, finding_slots};
use ml::train::{Progress, TrainConfig, fit};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use textfeat::{FeatureConfig, Featurizer};

pub const NAME: &str = "condition-matcher";

pub fn default_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub encoder: TextEncoderConfig,
    pub findings: usize,
    pub structured_dim: usize,
    pub hidden: usize,
    pub conditions: usize,
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
                self.encoder.dim + self.structured_dim + DEMOGRAPHIC_WIDTH,
                self.hidden,
            )
            .init(device),
            out: LinearConfig::new(self.hidden, self.conditions).init(device),
        }
    }
}

impl Net {
    /// Logits over conditions, [batch, conditions].
    pub fn forward(&self, bags: &BagBatch, findings: Tensor<2>, demo: Tensor<2>) -> Tensor<2> {
        self.head(self.enc.forward(bags), findings, demo)
    }

    /// Everything after the text encoder; inference feeds it bags pooled outside Burn.
    pub fn head(&self, t: Tensor<2>, findings: Tensor<2>, demo: Tensor<2>) -> Tensor<2> {
        self.head_projected(t, self.structured.forward(findings), demo)
    }

    /// The head with the structured findings already projected (by `SparseLinear` at inference).
    pub fn head_projected(&self, t: Tensor<2>, s: Tensor<2>, demo: Tensor<2>) -> Tensor<2> {
        let h = relu(self.fc.forward(Tensor::cat(vec![t, s, demo], 1)));
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
            version: format!("{NAME}-1"),
            buckets: 1 << 15,
            dim: 64,
            structured_dim: 64,
            hidden: 256,
            max_features: 320,
            feature_seed: 0xc0d1,
            temperature: 1.0,
            finding_ids: kb.finding_ids(),
            condition_ids: kb.condition_ids(),
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
            self.condition_ids.len(),
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

pub struct ConditionMatcher {
    config: ModelConfig,
    net: Net,
    pooled: PooledEncoder,
    structured: SparseLinear,
    featurizer: Featurizer,
    device: Device,
}

/// Turns cases into the three input tensors (no vitals: conditions are matched on what is said).
fn batch(
    featurizer: &Featurizer,
    n_findings: usize,
    inputs: &[&CaseInput],
    device: &Device,
) -> (BagBatch, Tensor<2>, Tensor<2>) {
    ml::batch::case_batch(featurizer, n_findings, inputs, false, device)
}

impl ConditionMatcher {
    pub fn load(dir: &Path, kb: &KnowledgeBase, device: &Device) -> Result<Self, ModelIoError> {
        let config: ModelConfig = io::load_config(dir)?;
        io::check_vocab(dir, "findings", &config.finding_ids, &kb.finding_ids())?;
        io::check_vocab(
            dir,
            "conditions",
            &config.condition_ids,
            &kb.condition_ids(),
        )?;
        let net = io::load_weights(dir, config.net().init(device))?;
        Ok(Self::from_parts(config, net, device))
    }

    fn from_parts(config: ModelConfig, net: Net, device: &Device) -> Self {
        ConditionMatcher {
            featurizer: config.featurizer(),
            pooled: PooledEncoder::new(&net.enc),
            structured: SparseLinear::new(&net.structured),
            config,
            net,
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

    fn logits(&self, cases: &[&Case]) -> Tensor<2> {
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
        let d = ml::batch::other_inputs(cases, false, &self.device);
        self.net
            .head_projected(self.pooled.pool(&refs, &self.device), s, d)
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

    pub fn evaluate(&self, kb: &KnowledgeBase, cases: &[synth::Case]) -> Metrics {
        let prepared: Vec<Case> = cases.iter().map(|c| kb.prepare(c.input())).collect();
        let mut probs = Vec::with_capacity(cases.len());
        for chunk in prepared.chunks(512) {
            let refs: Vec<&Case> = chunk.iter().collect();
            probs.extend(self.probabilities(&refs));
        }
        let gold: Vec<usize> = cases.iter().map(|c| c.patient.condition).collect();
        Metrics::of(&probs, &gold)
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

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub top1: f64,
    pub top3: f64,
    pub top10: f64,
    pub nll: f64,
    /// Expected calibration error of the top-1 probability, 10 equal-width bins.
    pub ece: f64,
}

impl Metrics {
    pub fn of(probs: &[Vec<f32>], gold: &[usize]) -> Metrics {
        let n = gold.len().max(1) as f64;
        let (mut t1, mut t3, mut t10, mut nll) = (0.0, 0.0, 0.0, 0.0);
        let mut conf = Vec::with_capacity(gold.len());
        for (p, &g) in probs.iter().zip(gold) {
            let rank = p.iter().filter(|x| **x > p[g]).count();
            t1 += f64::from(rank < 1);
            t3 += f64::from(rank < 3);
            t10 += f64::from(rank < 10);
            nll -= f64::from(p[g].max(1e-12)).ln();
            let (best, bp) =
                p.iter().enumerate().fold(
                    (0, f32::MIN),
                    |acc, (i, &x)| if x > acc.1 { (i, x) } else { acc },
                );
            conf.push((bp, best == g));
        }
        Metrics {
            top1: t1 / n,
            top3: t3 / n,
            top10: t10 / n,
            nll: nll / n,
            ece: expected_calibration_error(&conf, 10),
        }
    }
}

/// ECE over (confidence, correct) pairs with equal-width bins.
pub fn expected_calibration_error(conf: &[(f32, bool)], bins: usize) -> f64 {
    let mut sum = vec![(0.0f64, 0.0f64, 0usize); bins];
    for &(c, ok) in conf {
        let b = ((c * bins as f32) as usize).min(bins - 1);
        sum[b].0 += f64::from(c);
        sum[b].1 += f64::from(ok);
        sum[b].2 += 1;
    }
    let n = conf.len().max(1) as f64;
    sum.iter()
        .filter(|s| s.2 > 0)
        .map(|(c, a, k)| (*k as f64 / n) * ((c - a) / *k as f64).abs())
        .sum()
}

/// Trains, fits the temperature on the validation split, and reports test metrics.
pub fn train(
    kb: &KnowledgeBase,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (ConditionMatcher, Metrics) {
    let mut config = ModelConfig::new(kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed.wrapping_add(1));
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
            let (b, f, d) = batch(&featurizer, nf, &refs, &device);
            let gold: Vec<i64> = idx
                .iter()
                .map(|&i| data.train[i].patient.condition as i64)
                .collect();
            let gold = Tensor::<1, Int>::from_data(TensorData::new(gold, [idx.len()]), &device);
            ce.forward(net.forward(&b, f, d), gold)
        },
    );
    let infer = Device::flex();
    let mut model =
        ConditionMatcher::from_parts(config.clone(), net.valid().to_device(&infer), &infer);

    // Temperature scaling: the T that minimises validation NLL, by a fine grid search.
    let val_cases: Vec<Case> = data.val.iter().map(|c| kb.prepare(c.input())).collect();
    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(val_cases.len());
    for chunk in val_cases.chunks(512) {
        let refs: Vec<&Case> = chunk.iter().collect();
        logits.extend(rows(model.logits(&refs)));
    }
    let gold: Vec<usize> = data.val.iter().map(|c| c.patient.condition).collect();
    let nll_at = |t: f32| -> f64 {
        logits
            .iter()
            .zip(&gold)
            .map(|(l, &g)| {
                let m = l.iter().fold(f32::MIN, |a, &x| a.max(x / t));
                let lse: f64 = l
                    .iter()
                    .map(|&x| f64::from(x / t - m).exp())
                    .sum::<f64>()
                    .ln()
                    + f64::from(m);
                lse - f64::from(l[g] / t)
            })
            .sum::<f64>()
            / gold.len().max(1) as f64
    };
    let best = (10..=400)
        .map(|k| k as f32 / 100.0)
        .min_by(|a, b| nll_at(*a).total_cmp(&nll_at(*b)))
        .unwrap_or(1.0);
    config.temperature = best;
    model.config.temperature = best;
    let metrics = model.evaluate(kb, &data.test);
    (model, metrics)
}

pub fn model_card(model: &ConditionMatcher, m: &Metrics, data: &synth::Splits) -> String {
    let c = &model.config;
    format!(
        "# {NAME} model card\n\n\
         **What it does.** From free text, structured findings, age and sex, a probability for \
         each of the {} conditions of the knowledge base; the service shows the most probable.\n\n\
         **Model.** Its own hashed n-gram embedding bag ({} buckets, {} dimensions), a {}-unit \
         projection of the structured findings (present and absent), age band and sex features, \
         one {}-unit ReLU layer and a softmax. Temperature {:.2}, fitted on the validation split \
         by minimising negative log-likelihood. Version `{}`.\n\n\
         **Data.** Synthetic patients from the knowledge base (fingerprint `{}`), seed {}: {} \
         training, {} validation, {} test cases. Conditions are drawn by a flattened prevalence \
         prior (a factor of two per prevalence step), so probabilities are calibrated to that \
         case mix, not to any real population.\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying to a tenth, \
         cross-entropy. Reproduce with `triagent train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split).** top-1 {:.3}, top-3 {:.3}, top-10 {:.3}, NLL \
         {:.3}, expected calibration error {:.3}.\n\n\
         **Limits.** Knows only the conditions of the knowledge base and only what its findings \
         say about them; frequencies are mostly clinical estimates. Trained on generated text. \
         Not a diagnosis: it ranks possibilities for a clinician or a careful reader.\n",
        c.condition_ids.len(),
        c.buckets,
        c.dim,
        c.structured_dim,
        c.hidden,
        c.temperature,
        c.version,
        c.kb_fingerprint,
        c.train.seed,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        c.train.epochs,
        c.train.batch_size,
        c.train.learning_rate,
        m.top1,
        m.top3,
        m.top10,
        m.nll,
        m.ece,
    )
}
