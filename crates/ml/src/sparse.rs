//! A linear layer over a sparse 0/1 input, computed outside Burn at inference.

use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

/// `x · W + b` for inputs that are mostly zero with a few ones (the structured findings: one
/// slot per finding present, one per finding absent). The product is the bias plus the weight
/// rows of the active slots, so a request with no structured findings costs one copy of the
/// bias instead of a dense multiply over every slot; the result equals `Linear::forward` on
/// the dense input up to float rounding.
#[derive(Debug, Clone)]
pub struct SparseLinear {
    inputs: usize,
    outputs: usize,
    /// `[inputs, outputs]`, row-major, as Burn stores a linear layer's weight.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl SparseLinear {
    pub fn new(linear: &Linear) -> Self {
        let w = linear.weight.val();
        let [inputs, outputs] = w.dims();
        let weight = w.into_data().try_into_vec::<f32>().expect("float weight");
        let bias = match &linear.bias {
            Some(b) => b.val().into_data().try_into_vec::<f32>().expect("float bias"),
            None => vec![0.0; outputs],
        };
        SparseLinear { inputs, outputs, weight, bias }
    }

    /// One output row per entry of `active`, each the list of input slots that are 1.
    pub fn forward<'a>(
        &self,
        active: impl ExactSizeIterator<Item = &'a [usize]>,
        device: &Device,
    ) -> Tensor<2> {
        let rows = active.len();
        let mut out = Vec::with_capacity(rows * self.outputs);
        for slots in active {
            let start = out.len();
            out.extend_from_slice(&self.bias);
            let acc = &mut out[start..];
            for &s in slots {
                if s < self.inputs {
                    for (a, w) in
                        acc.iter_mut().zip(&self.weight[s * self.outputs..(s + 1) * self.outputs])
                    {
                        *a += *w;
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(out, [rows, self.outputs]), device)
    }
}

/// The active slots of structured findings, laid out as
/// [`crate::inputs::structured_findings`] lays them out: `i` for present, `n + i` for absent.
pub fn finding_slots(findings: &[(usize, bool)], n_findings: usize) -> Vec<usize> {
    findings
        .iter()
        .filter(|(i, _)| *i < n_findings)
        .map(|&(i, present)| if present { i } else { n_findings + i })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn sparse_product_matches_the_dense_layer() {
        let device = Device::flex();
        device.seed(5);
        let lin = LinearConfig::new(10, 4).init(&device);
        let findings = [(1usize, true), (3, false), (4, true)];
        let slots = finding_slots(&findings, 5);
        let dense = crate::batch::dense(
            &[crate::inputs::structured_findings(&findings, 5), vec![0.0; 10]],
            10,
            &device,
        );
        let a = crate::batch::rows(lin.forward(dense));
        let empty: Vec<usize> = Vec::new();
        let b = crate::batch::rows(
            SparseLinear::new(&lin)
                .forward([slots.as_slice(), empty.as_slice()].into_iter(), &device),
        );
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
