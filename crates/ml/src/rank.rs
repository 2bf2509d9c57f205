//! The best few of many scores.

/// The `k` highest scores that `keep` accepts, highest first, as (index, score); equal scores
/// keep the lower index first. One pass that keeps a sorted list of at most `k`: a score no
/// better than the worst kept costs one comparison, so with k in the tens and a few hundred
/// scores this is a fraction of selecting and sorting an index array. `keep` is only asked
/// about scores that would enter the list.
pub fn top_k(scores: &[f32], k: usize, mut keep: impl FnMut(usize) -> bool) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    // The worst kept score once the list is full. A score plainly below it is passed over by
    // one comparison; the exact `total_cmp` order (which the plain `<` agrees with, except that
    // it is false for NaN and for equal zeros of both signs) decides everything else.
    let mut worst = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if s < worst {
            continue;
        }
        if best.len() == k && s.total_cmp(&best[k - 1].1).is_le() {
            continue;
        }
        if !keep(i) {
            continue;
        }
        // After every kept score at least as high, so an earlier equal score stays ahead.
        let at = best.partition_point(|&(_, b)| b.total_cmp(&s).is_ge());
        best.insert(at, (i, s));
        best.truncate(k);
        if best.len() == k {
            worst = best[k - 1].1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::top_k;

    /// The reference: every accepted index sorted by score (highest first, then index).
    fn by_sorting(scores: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> =
            scores.iter().copied().enumerate().filter(|&(i, _)| keep(i)).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn equals_sorting_everything() {
        // A fixed pseudo-random sequence with repeated values, so ties occur.
        let mut x = 12345u64;
        let mut scores: Vec<f32> = (0..300)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) % 50) as f32 / 7.0 - 3.0
            })
            .collect();
        // Equal zeros of both signs and a NaN, which plain comparisons treat differently.
        for (i, v) in [(40, 0.0), (41, -0.0), (90, f32::NAN), (200, 0.0), (201, -0.0)] {
            scores[i] = v;
        }
        // Compared by bits: NaN equals itself there.
        let bits =
            |v: Vec<(usize, f32)>| v.into_iter().map(|(i, s)| (i, s.to_bits())).collect::<Vec<_>>();
        for k in [0, 1, 3, 5, 20, 299, 300, 400] {
            assert_eq!(
                bits(top_k(&scores, k, |_| true)),
                bits(by_sorting(&scores, k, |_| true)),
                "k = {k}"
            );
            assert_eq!(
                bits(top_k(&scores, k, |i| i % 3 != 0)),
                bits(by_sorting(&scores, k, |i| i % 3 != 0)),
                "k = {k}"
            );
        }
        assert!(top_k(&[], 5, |_| true).is_empty());
    }
}
