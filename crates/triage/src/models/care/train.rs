//! Training the treatment retriever and its evaluation on synthetic splits. Only
//! with the `train` feature: the service never compiles it.

use super::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;
use ml::train::{Progress, fit};

impl TreatmentRetriever {
    pub fn evaluate(&self, cases: &[synth::Case]) -> Metrics {
        let prepared: Vec<Case> = cases.iter().map(|c| self.kb.prepare(c.input())).collect();
        let (mut hit1, mut hit5, mut rr, mut n) = (0.0, 0.0, 0.0, 0usize);
        for (chunk, cs) in prepared.chunks(512).zip(cases.chunks(512)) {
            let refs: Vec<&Case> = chunk.iter().collect();
            for (s, case) in self.scores(&refs).into_iter().zip(cs) {
                let pos = positives(&self.kb, case);
                if pos.is_empty() {
                    continue;
                }
                n += 1;
                let mut order: Vec<usize> = (0..s.len()).collect();
                order.sort_by(|a, b| s[*b].total_cmp(&s[*a]));
                let rank = order.iter().position(|i| pos.contains(i)).unwrap_or(order.len());
                hit1 += f64::from(rank < 1);
                hit5 += f64::from(rank < 5);
                rr += 1.0 / (rank + 1) as f64;
            }
        }
        let n = n.max(1) as f64;
        Metrics { recall_at_1: hit1 / n, recall_at_5: hit5 / n, mrr: rr / n }
    }
}

/// Advice that fits a case: linked to its condition, or to a finding the request mentions
/// (in its text or as a structured field).
pub fn positives(kb: &KnowledgeBase, case: &synth::Case) -> Vec<usize> {
    let mentioned =
        |f: &usize| case.text_present.contains(f) || case.findings.contains(&(*f, true));
    (0..kb.advice.len())
        .filter(|&i| {
            let a = &kb.advice[i];
            a.conditions.contains(&case.patient.condition) || a.findings.iter().any(mentioned)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of cases whose nearest entry fits the case.
    pub recall_at_1: f64,
    /// Share of cases with a fitting entry among the nearest five.
    pub recall_at_5: f64,
    pub mrr: f64,
}

pub fn train(
    kb: Arc<KnowledgeBase>,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (TreatmentRetriever, Metrics) {
    let config = ModelConfig::new(&kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed.wrapping_add(2));
    let qf = config.query_featurizer();
    let abags = advice_bags(&kb, &config.advice_featurizer(), &device);
    let n_adv = kb.advice.len();
    let bags: Vec<Vec<u32>> =
        data.train.iter().map(|c| qf.features(&query_text(&kb, &c.input()))).collect();
    let pos: Vec<Vec<usize>> = data.train.iter().map(|c| positives(&kb, c)).collect();
    let usable: Vec<usize> = (0..data.train.len()).filter(|&i| !pos[i].is_empty()).collect();
    let scale = config.scale;
    let net = config.net().init(&device);
    let (net, _) = fit(net, usable.len(), &train, progress, NAME, |net: &Net, idx: &[usize]| {
        let idx: Vec<usize> = idx.iter().map(|&k| usable[k]).collect();
        let refs: Vec<&[u32]> = idx.iter().map(|&i| bags[i].as_slice()).collect();
        let q = net.query(&BagBatch::new(&refs, &device));
        let a = net.advice(&abags);
        let logp = log_softmax(q.matmul(a.transpose()) * scale, 1);
        // Multi-positive loss: -log of the total probability of the fitting entries.
        let mut mask = vec![-1e4f32; idx.len() * n_adv];
        for (r, &i) in idx.iter().enumerate() {
            for &p in &pos[i] {
                mask[r * n_adv + p] = 0.0;
            }
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [idx.len(), n_adv]), &device);
        let x = logp + mask;
        let m = x.clone().max_dim(1);
        let lse = (x - m.clone()).exp().sum_dim(1).log() + m;
        -lse.mean()
    });
    let infer = Device::flex();
    let model = TreatmentRetriever::from_parts(config, net.valid().to_device(&infer), &infer, kb);
    let metrics = model.evaluate(&data.test);
    (model, metrics)
}
