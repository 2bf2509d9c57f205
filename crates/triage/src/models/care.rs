//! The treatment-retriever model: a dual encoder that embeds the request and every care-advice
//! entry and returns the nearest advice that is safe for the person.
//!
//! The advice side embeds each entry's own words (title, advice, the names of the conditions
//! and findings it is linked to) once, at load. A request is embedded by the query side and
//! compared by cosine similarity. Advice that the person must not follow (an NSAID in
//! pregnancy, aspirin under 16) is removed by deterministic rules before ranking.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use domain::{CaseInput, RetrievedAdvice};
use kb::{Case, Contraindication, KnowledgeBase};
use ml::batch::{BagBatch, map_rows};
use ml::encoder::{PooledEncoder, TextEncoder, TextEncoderConfig};
use ml::io::{self, ModelIoError};
use ml::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use textfeat::{FeatureConfig, Featurizer};

pub const NAME: &str = "treatment-retriever";

pub fn default_model_dir() -> PathBuf {
    super::committed_dir(NAME)
}

#[derive(Config, Debug)]
pub struct NetConfig {
    pub query: TextEncoderConfig,
    pub advice: TextEncoderConfig,
    pub out: usize,
}

#[derive(Module, Debug)]
pub struct Net {
    q_enc: TextEncoder,
    q_proj: Linear,
    a_enc: TextEncoder,
    a_proj: Linear,
}

impl NetConfig {
    pub fn init(&self, device: &Device) -> Net {
        Net {
            q_enc: self.query.init(device),
            q_proj: LinearConfig::new(self.query.dim, self.out).init(device),
            a_enc: self.advice.init(device),
            a_proj: LinearConfig::new(self.advice.dim, self.out).init(device),
        }
    }
}

fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let n = (x.clone() * x.clone()).sum_dim(1).sqrt() + 1e-6;
    x / n
}

impl Net {
    pub fn query(&self, bags: &BagBatch) -> Tensor<2> {
        self.query_head(self.q_enc.forward(bags))
    }
    /// The query side after its encoder; inference feeds it bags pooled outside Burn.
    pub fn query_head(&self, pooled: Tensor<2>) -> Tensor<2> {
        l2_normalise(self.q_proj.forward(pooled))
    }
    pub fn advice(&self, bags: &BagBatch) -> Tensor<2> {
        l2_normalise(self.a_proj.forward(self.a_enc.forward(bags)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub version: String,
    pub query_buckets: usize,
    pub advice_buckets: usize,
    pub dim: usize,
    pub out: usize,
    pub max_features: usize,
    pub query_seed: u64,
    pub advice_seed: u64,
    /// Cosine similarities are multiplied by this before the softmax in training.
    pub scale: f32,
    pub advice_ids: Vec<String>,
    pub kb_fingerprint: String,
    pub train: TrainConfig,
}

impl ModelConfig {
    pub fn new(kb: &KnowledgeBase, train: TrainConfig) -> Self {
        ModelConfig {
            version: format!("{NAME}-2"),
            query_buckets: 1 << 14,
            advice_buckets: 1 << 13,
            dim: 32,
            out: 64,
            max_features: 256,
            query_seed: 0x7e7a,
            advice_seed: 0xad71,
            scale: 10.0,
            advice_ids: kb.advice.iter().map(|a| a.id.clone()).collect(),
            kb_fingerprint: kb.fingerprint.clone(),
            train,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig::new(
            TextEncoderConfig::new(self.query_buckets, self.dim),
            TextEncoderConfig::new(self.advice_buckets, self.dim),
            self.out,
        )
    }

    fn query_featurizer(&self) -> Featurizer {
        Featurizer::new(FeatureConfig {
            buckets: self.query_buckets,
            max_features: self.max_features,
            seed: self.query_seed,
        })
    }

    fn advice_featurizer(&self) -> Featurizer {
        Featurizer::new(FeatureConfig {
            buckets: self.advice_buckets,
            max_features: self.max_features,
            seed: self.advice_seed,
        })
    }
}

/// The words an advice entry is embedded from.
fn advice_text(kb: &KnowledgeBase, i: usize) -> String {
    let a = &kb.advice[i];
    let mut t = format!("{} . {}", a.title, a.advice);
    for &c in &a.conditions {
        t.push_str(" . ");
        t.push_str(&kb.conditions[c].name);
    }
    for &f in &a.findings {
        let f = &kb.findings[f];
        t.push_str(" . ");
        t.push_str(&f.name);
        if let Some(p) = f.lay.first() {
            t.push_str(" . ");
            t.push_str(p);
        }
    }
    t
}

fn advice_bags(kb: &KnowledgeBase, featurizer: &Featurizer, device: &Device) -> BagBatch {
    let bags: Vec<Vec<u32>> =
        (0..kb.advice.len()).map(|i| featurizer.features(&advice_text(kb, i))).collect();
    let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
    BagBatch::new(&refs, device)
}

/// The words a request is embedded from: its text, then the names of the findings it sends as
/// structured fields (present ones only), so an app that sends no text still gets advice.
fn query_text(kb: &KnowledgeBase, input: &CaseInput) -> String {
    let mut t = input.text.clone();
    for &(f, present) in &input.findings {
        if present && let Some(f) = kb.findings.get(f) {
            t.push_str(" . ");
            t.push_str(&f.name.to_lowercase());
        }
    }
    t
}

/// Who this person is, for the advice they must not follow. Age bands come from the age;
/// pregnancy, breastfeeding and long-term conditions from structured findings or the text.
pub fn contraindications(kb: &KnowledgeBase, case: &Case) -> Vec<Contraindication> {
    let mut out = Vec::new();
    if let Some(a) = case.input.age {
        if a < 0.25 {
            out.push(Contraindication::InfantUnder3Months);
        }
        if a < 12.0 {
            out.push(Contraindication::ChildUnder12);
        }
        if a < 16.0 {
            out.push(Contraindication::ChildUnder16);
        }
        if a >= 65.0 {
            out.push(Contraindication::OlderAdult);
        }
    }
    let mask = kb.case_mask(case, &[]);
    for (id, c) in [
        ("pregnant", Contraindication::Pregnancy),
        ("breastfeeding", Contraindication::Breastfeeding),
        ("kidney_disease_history", Contraindication::KidneyDisease),
        ("liver_disease_history", Contraindication::LiverDisease),
        ("anticoagulant_use", Contraindication::Anticoagulants),
        ("asthma_history", Contraindication::Asthma),
        ("heart_disease_history", Contraindication::HeartDisease),
        ("high_blood_pressure_history", Contraindication::HighBloodPressure),
    ] {
        if kb.finding_idx(id).is_some_and(|i| mask[i]) {
            out.push(c);
        }
    }
    out
}

pub struct TreatmentRetriever {
    config: ModelConfig,
    net: Net,
    pooled: PooledEncoder,
    /// Every advice entry's embedding, [advice, out], computed once at load.
    advice: Tensor<2>,
    featurizer: Featurizer,
    device: Device,
    kb: Arc<KnowledgeBase>,
}

/// A condition this probable under the knowledge base's naive Bayes (or among the
/// [`PLAUSIBLE_TOP`] most probable) is plausible for the person; advice tied only to
/// conditions that are not is never given.
pub const PLAUSIBLE: f32 = 0.02;
pub const PLAUSIBLE_TOP: usize = 5;

/// Which advice fits this person at all, and how much the knowledge base's differential points
/// to it. `None`: advice tied to conditions none of which is plausible for the person (by
/// findings, age and sex: `kb::Bayes`), whatever findings it also names (warning signs in
/// pregnancy name headache), or advice tied to findings alone none of which they have.
/// `Some(mass)`: the probability of the conditions it is tied to (0 for advice tied to
/// findings alone or to nothing).
pub fn plausible_advice(kb: &KnowledgeBase, case: &Case) -> Vec<Option<f32>> {
    let p = &case.posterior;
    // The PLAUSIBLE_TOP most probable, found without sorting every condition.
    let mut order: Vec<usize> = (0..p.len()).collect();
    let top = PLAUSIBLE_TOP.min(order.len());
    if top > 0 && top < order.len() {
        order.select_nth_unstable_by(top - 1, |&a, &b| p[b].total_cmp(&p[a]));
    }
    let mut plausible: Vec<bool> = p.iter().map(|&x| x >= PLAUSIBLE).collect();
    for &c in &order[..top] {
        plausible[c] = true;
    }
    let mut present = vec![false; kb.findings.len()];
    for &(f, yes) in &case.evidence {
        if yes && f < present.len() {
            present[f] = true;
        }
    }
    kb.advice
        .iter()
        .map(|a| {
            if a.conditions.is_empty() {
                (a.findings.is_empty() || a.findings.iter().any(|&f| present[f])).then_some(0.0)
            } else {
                a.conditions
                    .iter()
                    .any(|&c| plausible[c])
                    .then(|| a.conditions.iter().map(|&c| p[c]).sum())
            }
        })
        .collect()
}

impl TreatmentRetriever {
    pub fn load(dir: &Path, kb: Arc<KnowledgeBase>, device: &Device) -> Result<Self, ModelIoError> {
        let config: ModelConfig = io::load_config(dir)?;
        let ids: Vec<String> = kb.advice.iter().map(|a| a.id.clone()).collect();
        io::check_vocab(dir, "advice", &config.advice_ids, &ids)?;
        let net = io::load_weights(dir, config.net().init(device))?;
        Ok(Self::from_parts(config, net, device, kb))
    }

    fn from_parts(config: ModelConfig, net: Net, device: &Device, kb: Arc<KnowledgeBase>) -> Self {
        let advice = net.advice(&advice_bags(&kb, &config.advice_featurizer(), device));
        TreatmentRetriever {
            featurizer: config.query_featurizer(),
            pooled: PooledEncoder::new(&net.q_enc),
            config,
            net,
            advice,
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

    /// Cosine similarity of each case to every advice entry.
    pub fn scores(&self, cases: &[&Case]) -> Vec<Vec<f32>> {
        self.each_scores(cases, |_, s| s.to_vec())
    }

    /// `f` of each case and its cosine similarities to every advice entry, read in place from
    /// the batch's scores.
    fn each_scores<T>(&self, cases: &[&Case], mut f: impl FnMut(&Case, &[f32]) -> T) -> Vec<T> {
        if cases.is_empty() {
            return Vec::new();
        }
        let bags: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| {
                if c.input.findings.iter().any(|(_, present)| *present) {
                    // The query names the structured findings too, as in training.
                    self.featurizer.features(&query_text(&self.kb, &c.input))
                } else {
                    self.featurizer.features_of_hashes(&c.analysis.hashes)
                }
            })
            .collect();
        let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
        let q = self.net.query_head(self.pooled.pool(&refs, &self.device));
        let mut case = cases.iter();
        map_rows(q.matmul(self.advice.clone().transpose()), |s| {
            f(case.next().expect("one row of scores per case"), s)
        })
    }

    /// The `k` nearest advice entries the person may follow, nearest first.
    pub fn retrieve_batch(&self, cases: &[&Case], k: usize) -> Vec<Vec<RetrievedAdvice>> {
        self.each_scores(cases, |case, s| {
            let avoid = contraindications(&self.kb, case);
            let fits = plausible_advice(&self.kb, case);
            let allowed = |i: usize| {
                fits[i].is_some()
                    && (avoid.is_empty()
                        || !self.kb.advice[i].avoid_if.iter().any(|c| avoid.contains(c)))
            };
            // The model's score, scaled to 0..1 over the advice allowed, plus the probability
            // of the conditions the advice is for: the likeliest problems' advice comes first.
            let (lo, hi) = (0..s.len())
                .filter(|&i| allowed(i))
                .fold((f32::MAX, f32::MIN), |(lo, hi), i| (lo.min(s[i]), hi.max(s[i])));
            let span = (hi - lo).max(1e-6);
            let keys: Vec<f32> =
                s.iter().zip(&fits).map(|(&x, m)| (x - lo) / span + m.unwrap_or(0.0)).collect();
            ml::rank::top_k(&keys, k, allowed)
                .into_iter()
                .map(|(advice, _)| RetrievedAdvice { advice, score: s[advice] })
                .collect()
        })
    }

    pub fn retrieve(&self, case: &Case, k: usize) -> Vec<RetrievedAdvice> {
        self.retrieve_batch(&[case], k).pop().unwrap_or_default()
    }
}

#[cfg(feature = "train")]
pub mod card;
#[cfg(feature = "train")]
pub mod train;
