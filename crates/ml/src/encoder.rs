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

/// How many features ahead [`PooledEncoder::pool`] touches the row it will need.
const AHEAD: usize = 8;

/// The encoder's embedding table as plain floats, for inference: pooling a bag straight from
/// the table avoids building the `[batch, length, dim]` tensor the training path needs, which
/// dominated inference time (several megabytes per batch for a few kilobytes of result).
#[derive(Debug, Clone)]
pub struct PooledEncoder {
    dim: usize,
    rows: usize,
    table: Vec<f32>,
}

impl PooledEncoder {
    pub fn new(encoder: &TextEncoder) -> Self {
        let w = encoder.emb.weight.val();
        let [rows, dim] = w.dims();
        let table = w.into_data().try_into_vec::<f32>().expect("float embedding table");
        PooledEncoder { dim, rows, table }
    }

    /// Sum of each bag's rows divided by sqrt(n), as [`TextEncoder::forward`] computes it.
    pub fn pool(&self, bags: &[&[u32]], device: &Device) -> Tensor<2> {
        let d = self.dim;
        let mut out = vec![0f32; bags.len() * d];
        for (b, bag) in bags.iter().enumerate() {
            let acc = &mut out[b * d..(b + 1) * d];
            for (j, &id) in bag.iter().enumerate() {
                // Touch the row needed AHEAD features later, so its cache misses overlap with
                // the sums in between (the tables are megabytes, read at random).
                if let Some(&next) = bag.get(j + AHEAD) {
                    let next = next as usize;
                    if next < self.rows {
                        std::hint::black_box(self.table[next * d]);
                    }
                }
                let id = id as usize;
                if id < self.rows {
                    let row = &self.table[id * d..(id + 1) * d];
                    for (a, x) in acc.iter_mut().zip(row) {
                        *a += *x;
                    }
                }
            }
            let scale = 1.0 / (bag.len().max(1) as f32).sqrt();
            for a in acc.iter_mut() {
                *a *= scale;
            }
        }
        Tensor::from_data(burn::tensor::TensorData::new(out, [bags.len(), d]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_outside_burn_matches_the_training_path() {
        let device = Device::flex();
        device.seed(3);
        let enc = TextEncoderConfig::new(1000, 16).init(&device);
        let bags: Vec<Vec<u32>> = vec![vec![1, 5, 999, 5], vec![7], vec![2, 3, 4, 5, 6, 7, 8, 9]];
        let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
        let a = crate::batch::rows(enc.forward(&BagBatch::new(&refs, &device)));
        let b = crate::batch::rows(PooledEncoder::new(&enc).pool(&refs, &device));
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
