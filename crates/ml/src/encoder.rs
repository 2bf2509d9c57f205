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
/// left the base rate in our measurements (docs/burn.md), this trains.
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
    table: Vec<f32>,
}

impl PooledEncoder {
    pub fn new(encoder: &TextEncoder) -> Self {
        let w = encoder.emb.weight.val();
        let [_, dim] = w.dims();
        let table = w.into_data().try_into_vec::<f32>().expect("float embedding table");
        PooledEncoder { dim, table }
    }

    /// Sum of each bag's rows divided by sqrt(n), as [`TextEncoder::forward`] computes it.
    pub fn pool(&self, bags: &[&[u32]], device: &Device) -> Tensor<2> {
        let d = self.dim;
        let mut out = vec![0f32; bags.len() * d];
        // Compiled once per instruction set and picked for this CPU at run time, so the sums
        // use AVX2 where there is one (the crate itself is built for baseline x86-64).
        pulp::Arch::new().dispatch(Pool { encoder: self, bags, out: &mut out });
        Tensor::from_data(burn::tensor::TensorData::new(out, [bags.len(), d]), device)
    }

    #[inline(always)]
    fn pool_into(&self, bags: &[&[u32]], out: &mut [f32]) {
        let d = self.dim;
        for (bag, acc) in bags.iter().zip(out.chunks_exact_mut(d)) {
            // The widths our models use get a fixed-size accumulator the compiler keeps in
            // registers (a third of the instructions of the general loop, which reads and
            // writes the sums in memory for every row); the sums are the same, in the same order.
            match d {
                32 => self.pool_fixed::<32>(bag, acc),
                64 => self.pool_fixed::<64>(bag, acc),
                _ => self.pool_any(bag, acc),
            }
            let scale = 1.0 / (bag.len().max(1) as f32).sqrt();
            for a in acc.iter_mut() {
                *a *= scale;
            }
        }
    }

    /// Touches the row needed AHEAD features later, so its cache misses overlap with the sums
    /// in between (the tables are megabytes, read at random).
    #[inline(always)]
    fn touch_ahead(&self, bag: &[u32], j: usize) {
        if let Some(&next) = bag.get(j + AHEAD)
            && let Some(x) = self.table.get(next as usize * self.dim)
        {
            std::hint::black_box(*x);
        }
    }

    #[inline(always)]
    fn pool_fixed<const D: usize>(&self, bag: &[u32], out: &mut [f32]) {
        let mut acc = [0f32; D];
        for (j, &id) in bag.iter().enumerate() {
            self.touch_ahead(bag, j);
            let start = id as usize * D;
            // Ids past the table (none a featuriser of this model makes) add nothing.
            if let Some(row) = self.table.get(start..start + D) {
                let row: &[f32; D] = row.try_into().expect("a row is D wide");
                for k in 0..D {
                    acc[k] += row[k];
                }
            }
        }
        out.copy_from_slice(&acc);
    }

    #[inline(always)]
    fn pool_any(&self, bag: &[u32], acc: &mut [f32]) {
        let d = self.dim;
        for (j, &id) in bag.iter().enumerate() {
            self.touch_ahead(bag, j);
            let start = id as usize * d;
            if let Some(row) = self.table.get(start..start + d) {
                for (a, x) in acc.iter_mut().zip(row) {
                    *a += *x;
                }
            }
        }
    }
}

/// [`PooledEncoder::pool`]'s loop as a `pulp` operation: everything it calls is inlined into
/// the version compiled for each instruction set.
struct Pool<'a> {
    encoder: &'a PooledEncoder,
    bags: &'a [&'a [u32]],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Pool<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.encoder.pool_into(self.bags, self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_outside_burn_matches_the_training_path() {
        let device = Device::flex();
        device.seed(3);
        // 32 and 64 take the fixed-width loops, 16 the general one. Bags longer than the
        // look-ahead, and an empty one, which pools to zeros on both paths.
        for dim in [16, 32, 64] {
            let enc = TextEncoderConfig::new(1000, dim).init(&device);
            let long: Vec<u32> = (0..40).map(|i| (i * 37 % 999) + 1).collect();
            let bags: Vec<Vec<u32>> =
                vec![vec![1, 5, 999, 5], vec![7], vec![2, 3, 4, 5, 6, 7, 8, 9], long, vec![]];
            let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
            let a = crate::batch::rows(enc.forward(&BagBatch::new(&refs, &device)));
            let b = crate::batch::rows(PooledEncoder::new(&enc).pool(&refs, &device));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert!((x - y).abs() < 1e-5, "dim {dim}: {x} vs {y}");
            }
        }
    }
}
