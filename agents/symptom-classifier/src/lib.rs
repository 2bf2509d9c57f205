//! The symptom-classifier agent: free text to findings, present and absent, over the whole
//! findings vocabulary.
//!
//! Hashed word and character n-gram features (negation-scoped, see `textfeat`) go into an
//! embedding bag, then an MLP with two sigmoid heads: "mentioned as present" and "mentioned
//! as absent". It needs no other agent's output.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use domain::ExtractedFinding;
use kb::{Case, KnowledgeBase};
use ml::batch::{BagBatch, map_rows, rows};
use ml::encoder::{PooledEncoder, TextEncoder, TextEncoderConfig};
use ml::io::{self, ModelIoError};
use ml::train::{Progress, TrainConfig, fit};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use textfeat::{FeatureConfig, Featurizer};

pub const NAME: &str = "symptom-classifier";

/// The committed model's folder.
pub fn default_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub encoder: TextEncoderConfig,
    pub hidden: usize,
    pub findings: usize,
}

#[derive(Module, Debug)]
pub struct Net {
    enc: TextEncoder,
    fc: Linear,
    present: Linear,
    absent: Linear,
}

impl NetConfig {
    pub fn init(&self, device: &Device) -> Net {
        Net {
            enc: self.encoder.init(device),
            fc: LinearConfig::new(2 * self.encoder.dim, self.hidden).init(device),
            present: LinearConfig::new(self.hidden, self.findings).init(device),
            absent: LinearConfig::new(self.hidden, self.findings).init(device),
        }
    }
}

impl Net {
    /// Logits of (present, absent), each [batch, findings], from the bag of words outside
    /// negation scope and the bag of words inside it, pooled separately.
    pub fn forward(&self, pos: &BagBatch, neg: &BagBatch) -> (Tensor<2>, Tensor<2>) {
        self.head(self.enc.forward(pos), self.enc.forward(neg))
    }

    /// Everything after the text encoder, as trained. Inference computes the same from bags
    /// pooled outside Burn, through `Net::hidden` and `Net::joint_heads`.
    pub fn head(&self, pos: Tensor<2>, neg: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = self.hidden(pos, neg);
        (self.present.forward(h.clone()), self.absent.forward(h))
    }

    fn hidden(&self, pos: Tensor<2>, neg: Tensor<2>) -> Tensor<2> {
        relu(self.fc.forward(Tensor::cat(vec![pos, neg], 1)))
    }

    /// Both heads as one layer: its output is the present head's logits then the absent head's,
    /// `[batch, 2 * findings]`. One matrix product instead of two reads the hidden layer once
    /// and makes one call (inference only; training keeps the two layers).
    fn joint_heads(&self) -> Linear {
        let bias = |l: &Linear| match &l.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([l.weight.dims()[1]], &l.weight.device()),
        };
        Linear {
            weight: Param::from_tensor(Tensor::cat(
                vec![self.present.weight.val(), self.absent.weight.val()],
                1,
            )),
            bias: Some(Param::from_tensor(Tensor::cat(
                vec![bias(&self.present), bias(&self.absent)],
                0,
            ))),
        }
    }
}

/// Everything needed to rebuild the model: written to `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub version: String,
    pub buckets: usize,
    pub dim: usize,
    pub hidden: usize,
    pub max_features: usize,
    pub feature_seed: u64,
    /// Decision thresholds of the present and absent heads, tuned on the validation split.
    pub threshold: f32,
    pub absent_threshold: f32,
    pub finding_ids: Vec<String>,
    pub kb_fingerprint: String,
    pub train: TrainConfig,
}

impl ModelConfig {
    pub fn new(kb: &KnowledgeBase, train: TrainConfig) -> Self {
        ModelConfig {
            version: format!("{NAME}-3"),
            buckets: 1 << 14,
            dim: 32,
            hidden: 96,
            max_features: 256,
            feature_seed: 0x5e1f,
            threshold: 0.5,
            absent_threshold: 0.5,
            finding_ids: kb.finding_ids(),
            kb_fingerprint: kb.fingerprint.clone(),
            train,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig::new(
            TextEncoderConfig::new(self.buckets, self.dim),
            self.hidden,
            self.finding_ids.len(),
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

/// The loaded agent model: one instance serves every thread.
pub struct SymptomClassifier {
    config: ModelConfig,
    net: Net,
    /// [`Net::joint_heads`], built once at load.
    heads: Linear,
    pooled: PooledEncoder,
    featurizer: Featurizer,
    device: Device,
}

impl SymptomClassifier {
    pub fn load(dir: &Path, kb: &KnowledgeBase, device: &Device) -> Result<Self, ModelIoError> {
        let config: ModelConfig = io::load_config(dir)?;
        io::check_vocab(dir, "findings", &config.finding_ids, &kb.finding_ids())?;
        let net = io::load_weights(dir, config.net().init(device))?;
        Ok(Self::from_parts(config, net, device))
    }

    fn from_parts(config: ModelConfig, net: Net, device: &Device) -> Self {
        SymptomClassifier {
            featurizer: config.featurizer(),
            pooled: PooledEncoder::new(&net.enc),
            heads: net.joint_heads(),
            config,
            net,
            device: device.clone(),
        }
    }

    pub fn version(&self) -> &str {
        &self.config.version
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelIoError> {
        io::save_config(dir, &self.config)?;
        io::save_weights(dir, self.net.clone())
    }

    /// Findings read in each text: present when the present head is above threshold and above
    /// the absent head, absent when the absent head is.
    pub fn predict_batch(&self, cases: &[&Case]) -> Vec<Vec<ExtractedFinding>> {
        if cases.is_empty() {
            return Vec::new();
        }
        // Decided on the logits: the sigmoid is monotonic, so comparing logits with logit(t)
        // picks exactly what comparing probabilities with t would, and only the few findings
        // picked need a probability (the sigmoid of every output was a tenth of the time).
        let (t, ta) = (logit(self.config.threshold), logit(self.config.absent_threshold));
        let width = self.config.finding_ids.len();
        map_rows(self.joint_logits(cases), |row| {
            let (p, a) = row.split_at(width);
            let mut out = Vec::new();
            for_each_candidate(p, a, t, ta, |i| {
                let (p, a) = (p[i], a[i]);
                if p >= t && p >= a {
                    out.push(ExtractedFinding { finding: i, present: true, probability: sigmoid_f32(p) });
                } else if a >= ta && a > p {
                    out.push(ExtractedFinding { finding: i, present: false, probability: sigmoid_f32(a) });
                }
            });
            out.sort_by(|x, y| y.probability.total_cmp(&x.probability));
            out
        })
    }

    /// The shared reading of each case, refined: every finding the reading asserts for the
    /// patient (present or absent), with this model's probability for that assertion. The
    /// model never adds a finding the reading has not read, so nothing it names lacks a
    /// supporting span in the text; where it reads the finding the other way, its
    /// probability for the reading's assertion is low, and the answer's confidence shows it.
    pub fn refine_batch(&self, cases: &[&Case]) -> Vec<Vec<ExtractedFinding>> {
        if cases.is_empty() {
            return Vec::new();
        }
        let width = self.config.finding_ids.len();
        let mut k = 0;
        map_rows(self.joint_logits(cases), |row| {
            let case = cases[k];
            k += 1;
            let (p, a) = row.split_at(width);
            case.reading
                .asserted()
                .into_iter()
                .filter(|&(f, _)| (f as usize) < width)
                .map(|(f, present)| {
                    let z = if present { p[f as usize] } else { a[f as usize] };
                    ExtractedFinding { finding: f as usize, present, probability: sigmoid_f32(z) }
                })
                .collect()
        })
    }

    /// `[cases, 2 * findings]`: the present head's logits, then the absent head's.
    fn joint_logits(&self, cases: &[&Case]) -> Tensor<2> {
        let (pos, neg) = self.pool(cases);
        self.heads.forward(self.net.hidden(pos, neg))
    }

    /// Sigmoid outputs of both heads, per input.
    pub fn probabilities(&self, cases: &[&Case]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let width = self.config.finding_ids.len();
        rows(sigmoid(self.joint_logits(cases)))
            .into_iter()
            .map(|mut present| {
                let absent = present.split_off(width);
                (present, absent)
            })
            .unzip()
    }

    /// The bags outside and inside negation, pooled.
    fn pool(&self, cases: &[&Case]) -> (Tensor<2>, Tensor<2>) {
        let pos: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| {
                self.featurizer
                    .features_of_hashes(&c.analysis.outside_negation)
            })
            .collect();
        // Nothing negated is an empty bag, as `Featurizer::features_by_scope` gives in training.
        let neg: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| {
                if c.analysis.inside_negation.is_empty() {
                    Vec::new()
                } else {
                    self.featurizer
                        .features_of_hashes(&c.analysis.inside_negation)
                }
            })
            .collect();
        let p: Vec<&[u32]> = pos.iter().map(Vec::as_slice).collect();
        let n: Vec<&[u32]> = neg.iter().map(Vec::as_slice).collect();
        (
            self.pooled.pool(&p, &self.device),
            self.pooled.pool(&n, &self.device),
        )
    }

    pub fn predict(&self, case: &Case) -> Vec<ExtractedFinding> {
        self.predict_batch(&[case]).pop().unwrap_or_default()
    }
}

/// Precision, recall and F1 of present and absent findings.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub present_precision: f64,
    pub present_recall: f64,
    pub present_f1: f64,
    pub absent_precision: f64,
    pub absent_recall: f64,
    pub absent_f1: f64,
}

fn f1(tp: usize, fp: usize, fn_: usize) -> (f64, f64, f64) {
    let p = tp as f64 / (tp + fp).max(1) as f64;
    let r = tp as f64 / (tp + fn_).max(1) as f64;
    (
        p,
        r,
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        },
    )
}

impl SymptomClassifier {
    pub fn evaluate(&self, kb: &KnowledgeBase, cases: &[synth::Case]) -> Metrics {
        let mut c = [0usize; 6]; // tp, fp, fn for present, then absent
        let prepared: Vec<Case> = cases.iter().map(|c| kb.prepare(c.input())).collect();
        for (chunk, cs) in prepared.chunks(256).zip(cases.chunks(256)) {
            let refs: Vec<&Case> = chunk.iter().collect();
            for (pred, case) in self.predict_batch(&refs).into_iter().zip(cs) {
                for (k, gold, present) in
                    [(0, &case.text_present, true), (3, &case.text_absent, false)]
                {
                    let got: Vec<usize> = pred
                        .iter()
                        .filter(|f| f.present == present)
                        .map(|f| f.finding)
                        .collect();
                    let tp = got.iter().filter(|g| gold.contains(g)).count();
                    c[k] += tp;
                    c[k + 1] += got.len() - tp;
                    c[k + 2] += gold.len() - tp;
                }
            }
        }
        let (pp, pr, pf) = f1(c[0], c[1], c[2]);
        let (ap, ar, af) = f1(c[3], c[4], c[5]);
        Metrics {
            present_precision: pp,
            present_recall: pr,
            present_f1: pf,
            absent_precision: ap,
            absent_recall: ar,
            absent_f1: af,
        }
    }
}

/// Trains on the synthetic splits and returns the model with its test metrics.
pub fn train(
    kb: &KnowledgeBase,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (SymptomClassifier, Metrics) {
    let config = ModelConfig::new(kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed);
    let featurizer = config.featurizer();
    let f = config.finding_ids.len();
    let scoped: Vec<(Vec<u32>, Vec<u32>)> = data
        .train
        .iter()
        .map(|c| featurizer.features_by_scope(&c.text))
        .collect();
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    let net = config.net().init(&device);
    let (net, _) = fit(
        net,
        data.train.len(),
        &train,
        progress,
        NAME,
        |net: &Net, idx: &[usize]| {
            let pos: Vec<&[u32]> = idx.iter().map(|&i| scoped[i].0.as_slice()).collect();
            let neg: Vec<&[u32]> = idx.iter().map(|&i| scoped[i].1.as_slice()).collect();
            let mut tp = vec![0i64; idx.len() * f];
            let mut ta = vec![0i64; idx.len() * f];
            for (r, &i) in idx.iter().enumerate() {
                for &p in &data.train[i].text_present {
                    tp[r * f + p] = 1;
                }
                for &a in &data.train[i].text_absent {
                    ta[r * f + a] = 1;
                }
            }
            let tp = Tensor::<2, Int>::from_data(TensorData::new(tp, [idx.len(), f]), &device);
            let ta = Tensor::<2, Int>::from_data(TensorData::new(ta, [idx.len(), f]), &device);
            let (lp, la) =
                net.forward(&BagBatch::new(&pos, &device), &BagBatch::new(&neg, &device));
            bce.forward(lp, tp) + bce.forward(la, ta)
        },
    );
    let infer = Device::flex();
    let net = move_to(net.valid(), &infer);
    let mut model = SymptomClassifier::from_parts(config, net, &infer);
    // Thresholds: the grid value with the best validation F1, for each head.
    let mut best = (0.5f32, 0.5f32, -1.0f64, -1.0f64);
    for k in 2..=8 {
        let t = k as f32 / 10.0;
        model.config.threshold = t;
        model.config.absent_threshold = t;
        let m = model.evaluate(kb, &data.val);
        if m.present_f1 > best.2 {
            best.0 = t;
            best.2 = m.present_f1;
        }
        if m.absent_f1 > best.3 {
            best.1 = t;
            best.3 = m.absent_f1;
        }
    }
    model.config.threshold = best.0;
    model.config.absent_threshold = best.1;
    let metrics = model.evaluate(kb, &data.test);
    (model, metrics)
}

fn move_to(net: Net, device: &Device) -> Net {
    net.to_device(device)
}

/// The model card written beside the weights.
pub fn model_card(model: &SymptomClassifier, m: &Metrics, data: &synth::Splits) -> String {
    let c = &model.config;
    format!(
        "# {NAME} model card\n\n\
         **What it does.** Reads free text and returns the knowledge-base findings it mentions, \
         each as present or absent (negation-aware), over all {} findings.\n\n\
         **Model.** Hashed word unigrams, bigrams and character trigrams ({} buckets, at most {} \
         features) into a {}-dimensional embedding bag (sum / sqrt(n)), pooled separately for \
         the words outside and inside a negation scope, a {}-unit ReLU layer, two sigmoid heads. \
         Thresholds {} (present) and {} (absent), tuned on the validation split. Version `{}`.\n\n\
         **Data.** Synthetic patients from the project's knowledge base (fingerprint `{}`), \
         generator seed {}: {} training, {} validation, {} test cases in four registers (lay, \
         carer, terse, clinical) with negations and typos. Targets are the findings the text \
         mentions.\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying linearly to a tenth, \
         seed {}. Reproduce with `triagent train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split).**\n\n\
         | head | precision | recall | F1 |\n|---|---|---|---|\n\
         | present | {:.3} | {:.3} | {:.3} |\n| absent | {:.3} | {:.3} | {:.3} |\n\n\
         **Limits.** Trained only on generated text: real people's wording, spelling and \
         languages other than English will do worse (see `triagent eval` on the hand-written \
         vignettes). Findings without a phrase in the knowledge base cannot be learnt. It reads \
         words, not meaning: sarcasm, hypotheticals and history of past illness may be read as \
         present. Not a diagnosis.\n",
        c.finding_ids.len(),
        c.buckets,
        c.max_features,
        c.dim,
        c.hidden,
        c.threshold,
        c.absent_threshold,
        c.version,
        c.kb_fingerprint,
        c.train.seed,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        c.train.epochs,
        c.train.batch_size,
        c.train.learning_rate,
        c.train.seed,
        m.present_precision,
        m.present_recall,
        m.present_f1,
        m.absent_precision,
        m.absent_recall,
        m.absent_f1,
    )
}

/// How many findings [`for_each_candidate`] tests at once.
const SCAN: usize = 16;

/// Calls `visit` with every index where `p[i] >= t` or `a[i] >= ta` (the only findings either
/// head can pick), in order. Most texts name a handful of the 657 findings, so whole blocks are
/// ruled out by one branch-free test the compiler turns into vector compares; a branch per
/// finding was about a fifth of the classifier's time.
fn for_each_candidate(p: &[f32], a: &[f32], t: f32, ta: f32, mut visit: impl FnMut(usize)) {
    let n = p.len().min(a.len());
    let mut start = 0;
    while start < n {
        let end = (start + SCAN).min(n);
        let any = p[start..end]
            .iter()
            .zip(&a[start..end])
            .fold(false, |acc, (&p, &a)| acc | (p >= t) | (a >= ta));
        if any {
            (start..end).for_each(&mut visit);
        }
        start = end;
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn sigmoid_f32(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn joint_heads_equal_the_two_heads() {
        let device = Device::flex();
        device.seed(11);
        let net = NetConfig::new(TextEncoderConfig::new(100, 8), 12, 7).init(&device);
        let h = Tensor::<2>::random([5, 12], Distribution::Normal(0.0, 1.0), &device);
        let joint = rows(net.joint_heads().forward(h.clone()));
        let apart = rows(Tensor::cat(vec![net.present.forward(h.clone()), net.absent.forward(h)], 1));
        assert_eq!(joint.len(), 5);
        for (x, y) in joint.iter().flatten().zip(apart.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn block_scan_visits_every_candidate_once_in_order() {
        // A fixed pseudo-random sequence; lengths around the block size, NaNs included.
        let mut x = 99u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) % 1000) as f32 / 100.0 - 8.0
        };
        for n in [0usize, 1, 15, 16, 17, 33, 657] {
            let mut p: Vec<f32> = (0..n).map(|_| next()).collect();
            let a: Vec<f32> = (0..n).map(|_| next()).collect();
            if n > 3 {
                p[3] = f32::NAN;
            }
            let (t, ta) = (1.5, 1.8);
            let mut seen = Vec::new();
            for_each_candidate(&p, &a, t, ta, |i| seen.push(i));
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each");
            let want: Vec<usize> = (0..n).filter(|&i| p[i] >= t || a[i] >= ta).collect();
            let got: Vec<usize> = seen.into_iter().filter(|&i| p[i] >= t || a[i] >= ta).collect();
            assert_eq!(got, want, "n = {n}");
        }
    }
}
