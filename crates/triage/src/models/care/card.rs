//! The treatment retriever's card (`MODEL_CARD.md`): what it is, how it was trained and what it
//! scored on the synthetic splits. Only with the `train` feature, beside the training that
//! measures what it reports.

use super::train::Metrics;
use super::*;

pub fn model_card(model: &TreatmentRetriever, m: &Metrics, data: &synth::Splits) -> String {
    let c = &model.config;
    format!(
        "# {NAME} model card\n\n\
         **What it does.** Returns the care-advice entries of the knowledge base nearest to a \
         request ({} entries), after removing any the person must not follow (by age, \
         pregnancy, breastfeeding, kidney or liver disease, blood thinners, asthma, heart \
         disease, high blood pressure).\n\n\
         **Model.** A dual encoder: the request (its text and the names of its structured \
         findings) through a hashed n-gram embedding bag ({} \
         buckets) and a linear projection to {} dimensions; each advice entry's own words \
         (title, advice, linked condition and finding names) through a second bag ({} buckets) \
         and projection. Cosine similarity; advice embeddings are computed once at load. \
         Version `{}`.\n\n\
         **Data.** Synthetic patients (knowledge base `{}`), seed {}: {} training and {} test \
         cases. An entry fits a case when it is linked to the case's condition or to a finding \
         its text mentions; training maximises the probability of the fitting entries (softmax \
         over all entries, scale {}).\n\n\
         **Training.** {} epochs, batch {}, Adam, learning rate {} decaying to a tenth. \
         Reproduce with `triagent-train --agent {NAME}`.\n\n\
         **Test metrics (synthetic test split).** recall@1 {:.3}, recall@5 {:.3}, MRR {:.3}.\n\n\
         **Limits.** It can only return advice the knowledge base holds; the service puts \
         emergency advice first when the triage level calls for it. Advice is general, not a \
         prescription; every entry says when to seek help.\n",
        c.advice_ids.len(),
        c.query_buckets,
        c.out,
        c.advice_buckets,
        c.version,
        c.kb_fingerprint,
        c.train.seed,
        data.train.len(),
        data.test.len(),
        c.scale,
        c.train.epochs,
        c.train.batch_size,
        c.train.learning_rate,
        m.recall_at_1,
        m.recall_at_5,
        m.mrr,
    )
}
