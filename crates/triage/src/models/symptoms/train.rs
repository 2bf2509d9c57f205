//! Training the symptom classifier and its evaluation on synthetic splits. Only
//! with the `train` feature: the service never compiles it.

use super::*;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::tensor::{Int, TensorData};
use ml::train::{Progress, fit};

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
    (p, r, if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 })
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
                    let got: Vec<usize> =
                        pred.iter().filter(|f| f.present == present).map(|f| f.finding).collect();
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
    let scoped: Vec<(Vec<u32>, Vec<u32>)> =
        data.train.iter().map(|c| featurizer.features_by_scope(&c.text)).collect();
    let bce = BinaryCrossEntropyLossConfig::new().with_logits(true).init(&device);
    let net = config.net().init(&device);
    let (net, _) =
        fit(net, data.train.len(), &train, progress, NAME, |net: &Net, idx: &[usize]| {
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
        });
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
