//! The temperature-scaled softmax over rows of logits, on plain slices, with an exponential
//! the compiler can vectorise.
//!
//! The condition matcher needs every condition's probability to rank them, so every logit
//! goes through an exponential. Burn's CPU softmax calls the C library's scalar `expf` once per
//! element (at a batch of 64 requests and 344 conditions, 75 to 88 µs, about 5% of all four
//! models' time). [`exp`] here is branch-free arithmetic on one value (Cody and Waite's range
//! reduction and the Cephes `expf` polynomial, within 2 ulp of `f32::exp` over the range a
//! softmax uses), so the loop over a row compiles to 8-wide AVX2 when [`softmax_rows`]
//! dispatches it through `pulp`. Probabilities differ from Burn's only in the last bits.

use std::f32::consts::LOG2_E;

/// The exponential reaches `f32::MIN_POSITIVE` near -87.3; anything lower is taken as `e^-87`
/// (about 1.6e-38), which no sum of a softmax can notice.
const MIN_ARG: f32 = -87.0;
/// Adding 1.5 * 2^23 to an `f32` of magnitude below 2^22 rounds it to the nearest integer (ties
/// to even) and leaves that integer in the low bits of the sum's mantissa.
const ROUND: f32 = 12_582_912.0;
/// ln 2 split so that `n * LN2_HI` is exact for the `n` that occur. This constant and the
/// polynomial's coefficients below are written as Cephes gives them: the digits say which
/// value is meant, even where an `f32` keeps fewer.
#[allow(clippy::excessive_precision)]
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x for x <= 0 (a softmax's shifted logits), within 2 ulp of `f32::exp` for x in
/// [-87, 0]; values below -87 give e^-87, above 0 give 1, and NaN gives NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(MIN_ARG, 0.0);
    // x = n ln 2 + r, |r| <= ln 2 / 2.
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r by the Cephes expf polynomial.
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    // 2^n through the exponent bits, n (in [-126, 0] here) read from t's low bits: n + 127
    // modulo 2^9 shifted into place. No float-to-integer conversion, which would not vectorise.
    let two_n = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    e_r * two_n
}

/// Each `width`-long row of `logits` becomes its softmax at the given temperature, in place:
/// `e^((z_i - max z) / t) / sum_j e^((z_j - max z) / t)`.
pub fn softmax_rows(logits: &mut [f32], width: usize, temperature: f32) {
    if width == 0 {
        return;
    }
    assert_eq!(logits.len() % width, 0, "softmax_rows: a partial row");
    pulp::Arch::new().dispatch(Rows { logits, width, inv_t: 1.0 / temperature });
}

struct Rows<'a> {
    logits: &'a mut [f32],
    width: usize,
    inv_t: f32,
}

impl pulp::WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for row in self.logits.chunks_exact_mut(self.width) {
            // Eight partial maxima and sums, so both vectorise (the compiler does not
            // reassociate a chain of float operations on its own). The maximum is exact in any
            // order; the sum differs from a left-to-right one in the last bits only.
            let mut maxes = [f32::NEG_INFINITY; 8];
            let mut lanes = row.chunks_exact(8);
            for c in &mut lanes {
                for (m, v) in maxes.iter_mut().zip(c) {
                    *m = m.max(*v);
                }
            }
            let max =
                lanes.remainder().iter().chain(&maxes).copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sums = [0f32; 8];
            let mut chunks = row.chunks_exact_mut(8);
            for c in &mut chunks {
                for (v, s) in c.iter_mut().zip(sums.iter_mut()) {
                    *v = exp((*v - max) * self.inv_t);
                    *s += *v;
                }
            }
            let mut sum: f32 = sums.iter().sum();
            for v in chunks.into_remainder() {
                *v = exp((*v - max) * self.inv_t);
                sum += *v;
            }
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_library_over_a_softmax_range() {
        let mut worst = 0;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = -87.0 * i as f32 / steps as f32;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_match_a_double_precision_reference() {
        let width = 37; // not a multiple of 8: the remainder path too
        let rows: Vec<f32> =
            (0..5 * width).map(|i| ((i * 7919) % 1009) as f32 / 50.0 - 10.0).collect();
        for t in [1.0f32, 1.47, 0.5] {
            let mut got = rows.clone();
            softmax_rows(&mut got, width, t);
            for (row, out) in rows.chunks(width).zip(got.chunks(width)) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let e: Vec<f64> =
                    row.iter().map(|&z| ((z as f64 - max) / t as f64).exp()).collect();
                let s: f64 = e.iter().sum();
                for (p, q) in out.iter().zip(&e) {
                    let want = q / s;
                    assert!((*p as f64 - want).abs() <= 4e-6 * want, "{p} vs {want}");
                }
                let total: f32 = out.iter().sum();
                assert!((total - 1.0).abs() < 1e-5);
            }
        }
        let mut empty: Vec<f32> = Vec::new();
        softmax_rows(&mut empty, 0, 1.0);
        softmax_rows(&mut empty, 4, 1.0);
    }
}
