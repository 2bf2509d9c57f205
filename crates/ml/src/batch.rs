//! Padding hashed feature bags into tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A batch of feature bags: ids padded with 0, a mask, and 1/sqrt(n) per row.
#[derive(Debug, Clone)]
pub struct BagBatch {
    pub ids: Tensor<2, Int>,
    pub mask: Tensor<3>,
    pub scale: Tensor<2>,
}

impl BagBatch {
    pub fn new(bags: &[&[u32]], device: &Device) -> Self {
        let b = bags.len();
        let l = bags.iter().map(|x| x.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![0i64; b * l];
        let mut mask = vec![0f32; b * l];
        let mut scale = vec![0f32; b];
        for (r, bag) in bags.iter().enumerate() {
            for (c, &id) in bag.iter().enumerate() {
                ids[r * l + c] = i64::from(id);
                mask[r * l + c] = 1.0;
            }
            scale[r] = 1.0 / (bag.len().max(1) as f32).sqrt();
        }
        BagBatch {
            ids: Tensor::from_data(TensorData::new(ids, [b, l]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l, 1]), device),
            scale: Tensor::from_data(TensorData::new(scale, [b, 1]), device),
        }
    }
}

/// A dense float matrix from rows.
pub fn dense(rows: &[Vec<f32>], width: usize, device: &Device) -> Tensor<2> {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        debug_assert_eq!(r.len(), width);
        flat.extend_from_slice(r);
    }
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// Reads a 2-D float tensor back as rows.
pub fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [b, w] = t.dims();
    let flat: Vec<f32> = t.into_data().try_into_vec::<f32>().expect("float tensor");
    (0..b).map(|r| flat[r * w..(r + 1) * w].to_vec()).collect()
}
