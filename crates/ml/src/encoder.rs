//! The hashed embedding-bag text encoder.

use crate::batch::BagBatch;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Device, Tensor};

#[derive(Config, Debug)]
pub struct TextEncoderConfig {
    pub buckets: usize,
    pub dim: usize,
}

/// Sum of the feature embeddings divided by sqrt(n): plain means with small weights never
/// left the base rate in our measurements (BURN-NOTES.md), this trains.
#[derive(Module, Debug)]
pub struct TextEncoder {
    pub emb: Embedding,
}

impl TextEncoderConfig {
    pub fn init(&self, device: &Device) -> TextEncoder {
        TextEncoder {
            emb: EmbeddingConfig::new(self.buckets, self.dim)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 1.0 })
                .init(device),
        }
    }
}

impl TextEncoder {
    pub fn forward(&self, batch: &BagBatch) -> Tensor<2> {
        let e = self.emb.forward(batch.ids.clone()); // [b, l, d]
        let [b, _l, d] = e.dims();
        let pooled = (e * batch.mask.clone()).sum_dim(1).reshape([b, d]);
        pooled * batch.scale.clone()
    }
}
