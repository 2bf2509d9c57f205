//! Training the emergency detector and its evaluation on synthetic splits. Only
//! with the `train` feature: the service never compiles it.

use super::*;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Int;
use ml::batch::dense;
use ml::inputs::structured_findings;
use ml::train::{Progress, fit};

impl EmergencyDetector {
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
        let s = crate::scores::LevelScores::of(pred.iter().copied().zip(gold.iter().copied()));
        Metrics {
            accuracy: s.accuracy,
            under_triaged_emergencies: s.under_triaged_emergencies,
            over_triage: s.over_triage,
            under_triage: s.under_triage,
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
    let known =
        synth::training_views(&kb, &data.train, config.sparse_share, train.seed.wrapping_add(13));
    let gold: Vec<i64> = data
        .train
        .iter()
        .zip(&known)
        .map(|(c, view)| {
            let present: Vec<usize> = view.iter().filter(|f| f.1).map(|f| f.0).collect();
            let urgent = kb.conditions[c.patient.condition].urgency;
            synth::gold_level(&kb, urgent, &present, c.patient.age, c.patient.sex, &c.vitals)
                .index() as i64
        })
        .collect();
    let inputs: Vec<domain::CaseInput> = data.train.iter().map(synth::Case::input).collect();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let net = config.net().init(&device);
    let (net, _) = fit(net, known.len(), &train, progress, NAME, |net: &Net, idx: &[usize]| {
        let posterior: Vec<Vec<f32>> = idx
            .iter()
            .map(|&i| bayes.probabilities(&known[i], inputs[i].age, inputs[i].sex))
            .collect();
        let batch: Vec<Evidence> = idx
            .iter()
            .zip(&posterior)
            .map(|(&i, p)| Evidence {
                known: &known[i],
                age: inputs[i].age,
                sex: inputs[i].sex,
                vitals: &inputs[i].vitals,
                posterior: p,
            })
            .collect();
        let f: Vec<Vec<f32>> = batch.iter().map(|e| structured_findings(e.known, nf)).collect();
        let o = Tensor::from_data(
            TensorData::new(other_rows(&urgency, &batch), [batch.len(), OTHER_WIDTH]),
            &device,
        );
        let g: Vec<i64> = idx.iter().map(|&i| gold[i]).collect();
        let g = Tensor::<1, Int>::from_data(TensorData::new(g, [idx.len()]), &device);
        ce.forward(net.forward(dense(&f, 2 * nf, &device), o), g)
    });
    let infer = Device::flex();
    let model = EmergencyDetector::from_parts(config, net.valid().to_device(&infer), &infer, kb);
    let metrics = model.evaluate(&data.test);
    (model, metrics)
}
