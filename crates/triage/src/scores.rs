//! The scores of triage answers against gold: how levels compare (accuracy, over- and
//! under-triage, missed emergencies) and how well a top answer's probability is calibrated.
//! Written once for every evaluation that reports them (each model's card on synthetic splits,
//! and `eval` on vignettes), so the figures of the two always mean the same thing.

use domain::TriageLevel;

/// How given levels compare with gold levels. "Over" is more urgent than gold (a lower
/// [`TriageLevel`]), "under" less urgent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LevelScores {
    pub accuracy: f64,
    /// Share of gold emergencies (either emergency level) given a non-emergency level.
    pub under_triaged_emergencies: f64,
    /// How many of the answers had an emergency as gold.
    pub emergencies: usize,
    /// Share of all answers given a more urgent level than gold.
    pub over_triage: f64,
    /// Share of all answers given a less urgent level than gold.
    pub under_triage: f64,
}

impl LevelScores {
    /// Over `(given, gold)` pairs; every share is 0 when there are none.
    pub fn of(pairs: impl IntoIterator<Item = (TriageLevel, TriageLevel)>) -> LevelScores {
        let (mut n, mut right, mut over, mut under) = (0usize, 0usize, 0usize, 0usize);
        let (mut emergencies, mut missed) = (0usize, 0usize);
        for (given, gold) in pairs {
            n += 1;
            right += usize::from(given == gold);
            over += usize::from(given < gold);
            under += usize::from(given > gold);
            if gold.is_emergency() {
                emergencies += 1;
                missed += usize::from(!given.is_emergency());
            }
        }
        let share = |k: usize, of: usize| k as f64 / of.max(1) as f64;
        LevelScores {
            accuracy: share(right, n),
            under_triaged_emergencies: share(missed, emergencies),
            emergencies,
            over_triage: share(over, n),
            under_triage: share(under, n),
        }
    }
}

/// The calibration of a top answer's probability, over equal-width bins of that probability.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    /// Expected calibration error: the count-weighted mean gap between each bin's mean
    /// probability and its share of correct answers.
    pub ece: f64,
    /// Per bin, lowest first: (mean probability, share correct, count); (0, 0, 0) when empty.
    pub bins: Vec<(f64, f64, usize)>,
}

impl Calibration {
    /// Over `(probability of the top answer, whether it was right)` pairs, in `bins` bins.
    pub fn of(pairs: impl IntoIterator<Item = (f32, bool)>, bins: usize) -> Calibration {
        let mut sums = vec![(0.0f64, 0.0f64, 0usize); bins];
        let mut n = 0usize;
        for (p, right) in pairs {
            let b = ((p * bins as f32) as usize).min(bins - 1);
            sums[b].0 += f64::from(p);
            sums[b].1 += f64::from(right);
            sums[b].2 += 1;
            n += 1;
        }
        let n = n.max(1) as f64;
        let ece = sums
            .iter()
            .filter(|s| s.2 > 0)
            .map(|(p, k, m)| (*m as f64 / n) * ((p - k) / *m as f64).abs())
            .sum();
        let bins = sums
            .into_iter()
            .map(|(p, k, m)| if m > 0 { (p / m as f64, k / m as f64, m) } else { (0.0, 0.0, 0) })
            .collect();
        Calibration { ece, bins }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TriageLevel::*;

    #[test]
    fn level_scores_count_over_under_and_missed_emergencies() {
        let s = LevelScores::of([
            (Emergency, Emergency),
            (Consultation, EmergencyAmbulance),
            (SelfCare, Consultation),
            (Emergency, Consultation),
        ]);
        assert_eq!(s.accuracy, 0.25);
        assert_eq!(s.emergencies, 2);
        assert_eq!(s.under_triaged_emergencies, 0.5);
        assert_eq!(s.over_triage, 0.25);
        assert_eq!(s.under_triage, 0.5);
        assert_eq!(LevelScores::of([]), LevelScores::default());
    }

    #[test]
    fn calibration_is_the_weighted_gap_per_bin() {
        // Bin 9: probabilities 0.9 and 0.95, one right: gap |0.925 - 0.5| = 0.425, weight 2/3.
        // Bin 2: probability 0.25, right: gap 0.75, weight 1/3.
        let c = Calibration::of([(0.9, true), (0.95, false), (0.25, true)], 10);
        assert!((c.ece - (2.0 / 3.0 * 0.425 + 1.0 / 3.0 * 0.75)).abs() < 1e-6, "{}", c.ece);
        assert_eq!(c.bins[2], (0.25, 1.0, 1));
        assert_eq!(c.bins[0], (0.0, 0.0, 0));
        assert_eq!(c.bins[9].2, 2);
    }
}
