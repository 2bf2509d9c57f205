//! The symptom-classifier model: free text to findings, present and absent, over the whole
//! findings vocabulary.
//!
//! Hashed word and character n-gram features (negation-scoped, see `textfeat`) go into an
//! embedding bag, then an MLP with two sigmoid heads: "mentioned as present" and "mentioned
//! as absent". It needs no other agent's output.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use domain::ExtractedFinding;
use kb::{Case, KnowledgeBase};
use ml::batch::{BagBatch, map_rows, rows};
use ml::encoder::{PooledEncoder, TextEncoder, TextEncoderConfig};
use ml::io::{self, ModelIoError};
use ml::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use textfeat::{FeatureConfig, Featurizer};

pub const NAME: &str = "symptom-classifier";

/// The committed model's folder.
pub fn default_model_dir() -> PathBuf {
    super::committed_dir(NAME)
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
                    out.push(ExtractedFinding {
                        finding: i,
                        present: true,
                        probability: sigmoid_f32(p),
                    });
                } else if a >= ta && a > p {
                    out.push(ExtractedFinding {
                        finding: i,
                        present: false,
                        probability: sigmoid_f32(a),
                    });
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
            .map(|c| self.featurizer.features_of_hashes(&c.analysis.outside_negation))
            .collect();
        // Nothing negated is an empty bag, as `Featurizer::features_by_scope` gives in training.
        let neg: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| {
                if c.analysis.inside_negation.is_empty() {
                    Vec::new()
                } else {
                    self.featurizer.features_of_hashes(&c.analysis.inside_negation)
                }
            })
            .collect();
        let p: Vec<&[u32]> = pos.iter().map(Vec::as_slice).collect();
        let n: Vec<&[u32]> = neg.iter().map(Vec::as_slice).collect();
        (self.pooled.pool(&p, &self.device), self.pooled.pool(&n, &self.device))
    }

    pub fn predict(&self, case: &Case) -> Vec<ExtractedFinding> {
        self.predict_batch(&[case]).pop().unwrap_or_default()
    }
}

#[cfg(feature = "train")]
pub mod card;
#[cfg(feature = "train")]
pub mod train;

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
        let apart =
            rows(Tensor::cat(vec![net.present.forward(h.clone()), net.absent.forward(h)], 1));
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
