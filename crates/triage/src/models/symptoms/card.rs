//! The symptom classifier's card (`MODEL_CARD.md`): what it is, how it was trained and what it
//! scored on the synthetic splits. Only with the `train` feature, beside the training that
//! measures what it reports.

use super::train::Metrics;
use super::*;

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
         seed {}. Reproduce with `triagent-train --agent {NAME}`.\n\n\
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
