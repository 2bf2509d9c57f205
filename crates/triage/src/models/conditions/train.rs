//! Training the condition matcher and its evaluation on synthetic splits. Only
//! with the `train` feature: the service never compiles it.

use super::*;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Int;
use ml::batch::{dense, rows};
use ml::inputs::structured_findings;
use ml::train::{Progress, fit};

impl ConditionMatcher {
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
            let (best, bp) = p
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |acc, (i, &x)| if x > acc.1 { (i, x) } else { acc });
            conf.push((bp, best == g));
        }
        Metrics {
            top1: t1 / n,
            top3: t3 / n,
            top10: t10 / n,
            nll: nll / n,
            ece: crate::scores::Calibration::of(conf, 10).ece,
        }
    }
}

/// Trains, fits the temperature on the validation split, and reports test metrics. Each
/// training patient is what the reading finds in its generated text (and the findings and
/// vitals sent beside it), and for a share of them ([`ModelConfig::sparse_share`]) only a few
/// of those ([`synth::sparse_view`]).
pub fn train(
    kb: &KnowledgeBase,
    data: &synth::Splits,
    train: TrainConfig,
    progress: &mut dyn Progress,
) -> (ConditionMatcher, Metrics) {
    let mut config = ModelConfig::new(kb, train.clone());
    let device = Device::flex().autodiff();
    device.seed(train.seed.wrapping_add(1));
    let nf = config.finding_ids.len();
    let bayes = kb.bayes();
    let shrink = config.shrink;
    let known =
        synth::training_views(kb, &data.train, config.sparse_share, train.seed.wrapping_add(11));
    let inputs: Vec<domain::CaseInput> = data.train.iter().map(synth::Case::input).collect();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let net = config.net().init(&device);
    let (net, _) = fit(net, known.len(), &train, progress, NAME, |net: &Net, idx: &[usize]| {
        let prior: Vec<Vec<f32>> = idx
            .iter()
            .map(|&i| bayes.log_scores(&known[i], inputs[i].age, inputs[i].sex))
            .collect();
        let batch: Vec<Evidence> = idx
            .iter()
            .zip(&prior)
            .map(|(&i, p)| Evidence {
                known: &known[i],
                age: inputs[i].age,
                sex: inputs[i].sex,
                prior: p,
                chief: None,
            })
            .collect();
        let f: Vec<Vec<f32>> = batch.iter().map(|e| structured_findings(e.known, nf)).collect();
        let gold: Vec<i64> = idx.iter().map(|&i| data.train[i].patient.condition as i64).collect();
        let gold = Tensor::<1, Int>::from_data(TensorData::new(gold, [idx.len()]), &device);
        let corr = net.correction(
            net.structured.forward(dense(&f, 2 * nf, &device)),
            demo_batch(&batch, &device),
        );
        let logits = priors(&batch, bayes, &device) + corr.clone();
        ce.forward(logits, gold) + corr.powf_scalar(2.0).mean().mul_scalar(shrink)
    });
    let infer = Device::flex();
    let mut model =
        ConditionMatcher::from_parts(config.clone(), net.valid().to_device(&infer), &infer, kb);

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
                let lse: f64 =
                    l.iter().map(|&x| f64::from(x / t - m).exp()).sum::<f64>().ln() + f64::from(m);
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
