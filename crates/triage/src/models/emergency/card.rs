//! The emergency detector's card (`MODEL_CARD.md`): what it is, how it was trained and what it
//! scored on the synthetic splits. Only with the `train` feature, beside the training that
//! measures what it reports.

use super::train::Metrics;
use super::*;

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
         cross-entropy. Reproduce with `triagent-train --agent {NAME}`.\n\n\
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
