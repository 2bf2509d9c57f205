//! Padding hashed feature bags into tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use domain::CaseInput;
use textfeat::Featurizer;

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
    map_rows(t, <[f32]>::to_vec)
}

/// `f` of each row of a 2-D float tensor, read in place from the data the backend hands back
/// (inference reads its outputs this way: copying them into vectors first was about 2% of the
/// four models' time at batch 64).
pub fn map_rows<T>(t: Tensor<2>, mut f: impl FnMut(&[f32]) -> T) -> Vec<T> {
    let [b, w] = t.dims();
    let data = t.into_data();
    let flat: &[f32] = data.as_slice().expect("float tensor");
    (0..b).map(|r| f(&flat[r * w..(r + 1) * w])).collect()
}

/// The inputs of a case batch as tensors: the text's feature bags, the structured findings
/// (present and absent slots), and the other structured inputs (demographics, then vitals when
/// `with_vitals`).
pub fn case_batch(
    featurizer: &Featurizer,
    n_findings: usize,
    inputs: &[&CaseInput],
    with_vitals: bool,
    device: &Device,
) -> (BagBatch, Tensor<2>, Tensor<2>) {
    let (bags, f, o) = case_inputs(featurizer, n_findings, inputs, with_vitals, device);
    let refs: Vec<&[u32]> = bags.iter().map(Vec::as_slice).collect();
    (BagBatch::new(&refs, device), f, o)
}

/// As [`case_batch`], with the feature bags left as ids for [`crate::encoder::PooledEncoder`].
pub fn case_inputs(
    featurizer: &Featurizer,
    n_findings: usize,
    inputs: &[&CaseInput],
    with_vitals: bool,
    device: &Device,
) -> (Vec<Vec<u32>>, Tensor<2>, Tensor<2>) {
    use crate::inputs::{
        DEMOGRAPHIC_WIDTH, VITAL_WIDTH, demographics, structured_findings, vitals,
    };
    let bags: Vec<Vec<u32>> = inputs.iter().map(|c| featurizer.features(&c.text)).collect();
    let f: Vec<Vec<f32>> =
        inputs.iter().map(|c| structured_findings(&c.findings, n_findings)).collect();
    let width = DEMOGRAPHIC_WIDTH + if with_vitals { VITAL_WIDTH } else { 0 };
    let o: Vec<Vec<f32>> = inputs
        .iter()
        .map(|c| {
            let mut v = demographics(c.age, c.sex).to_vec();
            if with_vitals {
                v.extend_from_slice(&vitals(&c.vitals));
            }
            v
        })
        .collect();
    (bags, dense(&f, 2 * n_findings, device), dense(&o, width, device))
}

/// The dense non-text inputs of prepared cases at inference: demographics, then vitals when
/// `with_vitals`.
pub fn other_inputs(cases: &[&kb::Case], with_vitals: bool, device: &Device) -> Tensor<2> {
    use crate::inputs::{DEMOGRAPHIC_WIDTH, VITAL_WIDTH, demographics, vitals};
    let width = DEMOGRAPHIC_WIDTH + if with_vitals { VITAL_WIDTH } else { 0 };
    let mut flat = Vec::with_capacity(cases.len() * width);
    for c in cases {
        flat.extend_from_slice(&demographics(c.input.age, c.input.sex));
        if with_vitals {
            flat.extend_from_slice(&vitals(&c.input.vitals));
        }
    }
    Tensor::from_data(TensorData::new(flat, [cases.len(), width]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_rows_reads_each_row_in_order() {
        let device = crate::select_device(crate::DeviceChoice::Cpu).unwrap();
        let t = dense(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]], 3, &device);
        assert_eq!(map_rows(t.clone(), |r| r.iter().sum::<f32>()), vec![6.0, 15.0]);
        assert_eq!(rows(t), vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        let none: Tensor<2> =
            Tensor::from_data(TensorData::new(Vec::<f32>::new(), [2, 0]), &device);
        assert_eq!(map_rows(none, <[f32]>::len), vec![0, 0]);
    }
}
