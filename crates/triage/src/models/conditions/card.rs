//! The condition matcher's card (`MODEL_CARD.md`): what it is, how it was trained and what it
//! scored on the synthetic splits. Only with the `train` feature, beside the training that
//! measures what it reports.

use super::train::Metrics;
use super::*;

pub fn model_card(model: &ConditionMatcher, m: &Metrics, data: &synth::Splits) -> String {
    let c = &model.config;
    format!(
        "# {NAME} model card\n\n\
         **What it does.** From the findings a request asserts present or absent (read from its \
         text by the shared reading, sent as structured findings, or shown by its vitals), age \
         and sex, a probability for each of the {} conditions of the knowledge base; the \
         service shows the most probable. It never reads the text itself.\n\n\
         **Model.** Logits are the knowledge base read as naive Bayes (`kb::Bayes`: prevalence, \
         age and sex, each finding's frequency with the condition, findings that argue against \
         it) plus a learned correction: a {}-unit ReLU layer over the findings (a present and an \
         absent slot each) and age and sex, whose output layer starts at zero. Temperature \
         {:.2}, fitted on the validation split by minimising negative log-likelihood. Version \
         `{}`.\n\n\
         **Data.** Synthetic patients from the knowledge base (fingerprint `{}`), seed {}: {} \
         training, {} validation, {} test cases, each read by the shared reading; {:.0} % of the \
         training patients are cut to two to five of their findings and at most two denials, as \
         people describe themselves. Conditions are drawn by a flattened prevalence prior, so \
         probabilities are calibrated to that case mix, not to any real population.\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying to a tenth, \
         cross-entropy. Reproduce with `triagent-train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split).** top-1 {:.3}, top-3 {:.3}, top-10 {:.3}, NLL \
         {:.3}, expected calibration error {:.3}.\n\n\
         **Limits.** Knows only the conditions of the knowledge base and only what its findings \
         say about them; frequencies are mostly clinical estimates. Not a diagnosis: it ranks \
         possibilities for a clinician or a careful reader.\n",
        c.condition_ids.len(),
        c.hidden,
        c.temperature,
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
        m.top1,
        m.top3,
        m.top10,
        m.nll,
        m.ece,
    )
}
