//! The knowledge base read as plain naive Bayes: each condition's prevalence and who gets it as
//! the prior, each known finding's frequency under it as the likelihood. No learning: the
//! baseline a learned differential must beat, and the prior it refines.
//!
//! For a condition `c` and what is known of a person:
//! - prior: the prevalence step (a factor of [`PREVALENCE_STEP`] per step), times
//!   [`OUTSIDE_DEMOGRAPHIC`] when their age or sex is outside the condition's;
//! - a finding known present: its frequency under `c` (clamped to [`FREQ_MIN`]..[`FREQ_MAX`]);
//!   [`LEAK`] when `c` does not list it (people mention things their condition does not
//!   explain); [`OPPOSING`] when `c` names it as arguing against;
//! - a finding known absent: one less its frequency under `c`; nothing when `c` does not list
//!   it;
//! - a finding implied by one `c` lists (the knowledge base's `implies`: bright red rectal
//!   bleeding is blood in the stool) counts as listed, at least as often as what implies it;
//! - each group of findings `c` requires (an injury for a sprain; the pregnancy, for a
//!   condition of pregnancy) of which none is known present: [`REQUIRED_UNSAID`].
//!
//! The constants were chosen on the hand-written vignettes (`vignettes/vignettes.toml`),
//! never on the development vignettes: the implied findings raised top-1 from 0.733 to 0.778;
//! a leak of 0.005 to 0.05 and a leak scaled by each finding's base rate changed top-3 by at
//! most a point; a prevalence step of 1.5 or 6 ranked worse than 3.

use crate::model::{Condition, KnowledgeBase, SexFilter};
use domain::{AgeBand, Sex};

/// Prior weight between neighbouring prevalence steps (very common .. very rare).
pub const PREVALENCE_STEP: f32 = 3.0;
/// Likelihood of a present finding the condition does not list.
pub const LEAK: f32 = 0.02;
/// Likelihood of a present finding the condition names as arguing against it.
pub const OPPOSING: f32 = 0.002;
/// Listed frequencies are clamped to this range: no finding is certain either way.
pub const FREQ_MIN: f32 = 0.02;
pub const FREQ_MAX: f32 = 0.95;
/// Prior factor for an age or sex the condition does not admit (not zero: ages in text are
/// read, and bands have edges).
pub const OUTSIDE_DEMOGRAPHIC: f32 = 1e-3;
/// Factor for each of a condition's `requires` groups of which no finding is known present:
/// the chance that someone whose problem began with an injury, a bite or the tablets they took
/// leaves that out of what they say. Set, not fitted: one in twenty.
pub const REQUIRED_UNSAID: f32 = 0.05;

/// Per condition, the log-likelihood of each finding it mentions, dense over findings.
#[derive(Debug, Clone)]
pub struct Bayes {
    findings: usize,
    /// [finding * conditions + condition]: log-likelihood of the finding present.
    present: Vec<f32>,
    /// Same layout: log-likelihood of the finding absent.
    absent: Vec<f32>,
    log_prior: Vec<f32>,
    /// Who each condition admits (age bands and limits, sex), compactly: read for every
    /// condition on every case.
    who: Vec<Who>,
    /// (condition, a `requires` group widened to every finding that implies one of it).
    requires: Vec<(usize, Vec<usize>)>,
}

impl Bayes {
    pub fn new(kb: &KnowledgeBase) -> Bayes {
        let nf = kb.findings.len();
        let nc = kb.conditions.len();
        let log_prior: Vec<f32> = kb
            .conditions
            .iter()
            .map(|c| -(c.prevalence as u8 as f32) * PREVALENCE_STEP.ln())
            .collect();
        // How often each finding occurs under each condition: as listed, and at least as
        // often as any finding it is implied by (a thunderclap headache is a headache).
        let implies: Vec<Vec<usize>> = (0..nf).map(|f| kb.implied(f)).collect();
        let mut freq = vec![0f32; nc * nf];
        for (c, cond) in kb.conditions.iter().enumerate() {
            for f in &cond.findings {
                freq[c * nf + f.finding] = freq[c * nf + f.finding].max(f.freq);
                for &g in &implies[f.finding] {
                    freq[c * nf + g] = freq[c * nf + g].max(f.freq);
                }
            }
        }
        // Laid out finding-major ([finding * conditions + condition]): a request adds one
        // contiguous row per known finding.
        let mut present = vec![0f32; nc * nf];
        let mut absent = vec![0.0; nc * nf];
        for (c, cond) in kb.conditions.iter().enumerate() {
            for f in 0..nf {
                let p = freq[c * nf + f];
                if p > 0.0 {
                    let p = p.clamp(FREQ_MIN, FREQ_MAX);
                    present[f * nc + c] = p.ln();
                    absent[f * nc + c] = (1.0 - p).ln();
                } else {
                    present[f * nc + c] = LEAK.ln();
                }
            }
            for &o in &cond.opposing {
                present[o * nc + c] = OPPOSING.ln();
            }
        }
        // Only the demographic fields are read; findings are in the tables above.
        let who = kb.conditions.iter().map(Who::of).collect();
        // A condition of pregnancy requires the pregnancy: a pregnant woman says she is, or
        // that her period is late or her test positive.
        let pregnancy: Vec<usize> = ["pregnant", "missed_period", "positive_pregnancy_test"]
            .iter()
            .filter_map(|f| kb.finding_idx(f))
            .collect();
        let mut requires = Vec::new();
        for (c, cond) in kb.conditions.iter().enumerate() {
            let pregnancy = (cond.pregnancy && !pregnancy.is_empty()).then_some(&pregnancy);
            for group in cond.requires.iter().chain(pregnancy) {
                let widened: Vec<usize> = (0..nf)
                    .filter(|&f| group.contains(&f) || implies[f].iter().any(|g| group.contains(g)))
                    .collect();
                requires.push((c, widened));
            }
        }
        Bayes { findings: nf, present, absent, log_prior, who, requires }
    }

    /// The log-likelihood terms of one known finding for condition `c`: how far it moved `c`
    /// compared with a condition that does not mention it (positive supports, negative opposes).
    pub fn effect(&self, c: usize, finding: usize, present: bool) -> f32 {
        let i = finding * self.log_prior.len() + c;
        if present { self.present[i] - LEAK.ln() } else { self.absent[i] }
    }

    /// Adds `weight` times the log-likelihood of `finding` present to each condition's score:
    /// the finding counted again, for the complaint a person came about ([`crate::Case::chief`]).
    pub fn emphasise(&self, scores: &mut [f32], finding: usize, weight: f32) {
        let nc = self.log_prior.len();
        if finding < self.findings && scores.len() == nc {
            for (x, &t) in scores.iter_mut().zip(&self.present[finding * nc..(finding + 1) * nc]) {
                *x += weight * t;
            }
        }
    }

    /// Lowers, as [`OUTSIDE_DEMOGRAPHIC`] does, the score of each condition that only infants
    /// and children under 12 get: for a person of unknown age who writes about themselves
    /// ([`textfeat::self_report`]), as carers write for the young.
    pub fn not_a_young_child(&self, scores: &mut [f32]) {
        let young = 1u8 << AgeBand::Infant as u8 | 1u8 << AgeBand::Child as u8;
        for (x, who) in scores.iter_mut().zip(&self.who) {
            if who.bands & !young == 0 || who.max_age < 12.0 {
                *x += OUTSIDE_DEMOGRAPHIC.ln();
            }
        }
    }

    /// Log-scores (unnormalised log posteriors) of every condition.
    pub fn log_scores(&self, known: &[(usize, bool)], age: Option<f32>, sex: Sex) -> Vec<f32> {
        let nc = self.log_prior.len();
        let band = age.map(|a| 1u8 << AgeBand::of_age(a) as u8);
        let mut s: Vec<f32> = self
            .who
            .iter()
            .zip(&self.log_prior)
            .map(|(who, &l)| l + who.demographic(age, band, sex))
            .collect();
        for &(f, p) in known.iter().filter(|(f, _)| *f < self.findings) {
            let table = if p { &self.present } else { &self.absent };
            for (x, &t) in s.iter_mut().zip(&table[f * nc..(f + 1) * nc]) {
                *x += t;
            }
        }
        for (c, group) in &self.requires {
            if !known.iter().any(|&(f, p)| p && group.contains(&f)) {
                s[*c] += REQUIRED_UNSAID.ln();
            }
        }
        s
    }

    /// Posterior probabilities over every condition.
    pub fn probabilities(&self, known: &[(usize, bool)], age: Option<f32>, sex: Sex) -> Vec<f32> {
        posterior(&self.log_scores(known, age, sex))
    }
}

/// The posterior probabilities of log-scores (their softmax).
pub fn posterior(log_scores: &[f32]) -> Vec<f32> {
    let m = log_scores.iter().copied().fold(f32::MIN, f32::max);
    let mut p: Vec<f32> = log_scores.iter().map(|&x| (x - m).exp()).collect();
    let z: f32 = p.iter().sum();
    for x in &mut p {
        *x /= z;
    }
    p
}

/// Who a condition admits ([`Condition::admits_age`], [`SexFilter::admits`]), as plain values.
#[derive(Debug, Clone, Copy)]
struct Who {
    /// One bit per admitted [`AgeBand`].
    bands: u8,
    min_age: f32,
    max_age: f32,
    sex: SexFilter,
}

impl Who {
    fn of(c: &Condition) -> Who {
        Who {
            bands: c.ages.iter().fold(0, |m, &b| m | 1 << b as u8),
            min_age: c.min_age.unwrap_or(f32::NEG_INFINITY),
            max_age: c.max_age.unwrap_or(f32::INFINITY),
            sex: c.sex,
        }
    }

    /// The log-factor for a person of this age (with `band`, its age band's bit) and sex.
    fn demographic(&self, age: Option<f32>, band: Option<u8>, sex: Sex) -> f32 {
        let mut s = 0.0;
        if let (Some(a), Some(band)) = (age, band)
            && !(self.bands & band != 0 && a >= self.min_age && a <= self.max_age)
        {
            s += OUTSIDE_DEMOGRAPHIC.ln();
        }
        if !self.sex.admits(sex) {
            s += OUTSIDE_DEMOGRAPHIC.ln();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        crate::load_dir(crate::default_dir()).expect("knowledge base")
    }

    #[test]
    fn who_admits_whom_the_condition_does() {
        let kb = kb();
        let ages = [
            0.01, 0.5, 0.99, 1.0, 5.0, 11.99, 12.0, 15.0, 17.99, 18.0, 30.0, 45.0, 50.0, 64.99,
            65.0, 80.0, 110.0,
        ];
        for c in &kb.conditions {
            let who = Who::of(c);
            for sex in [Sex::Female, Sex::Male, Sex::Unknown] {
                for age in ages.iter().copied().map(Some).chain([None]) {
                    let outside =
                        |admitted: bool| if admitted { 0.0 } else { OUTSIDE_DEMOGRAPHIC.ln() };
                    let want =
                        age.map_or(0.0, |a| outside(c.admits_age(a))) + outside(c.sex.admits(sex));
                    let band = age.map(|a| 1u8 << AgeBand::of_age(a) as u8);
                    assert_eq!(
                        who.demographic(age, band, sex),
                        want,
                        "{} at {age:?} {sex:?}",
                        c.id
                    );
                }
            }
        }
    }

    fn top(
        kb: &KnowledgeBase,
        b: &Bayes,
        known: &[(&str, bool)],
        age: f32,
        sex: Sex,
    ) -> Vec<String> {
        let known: Vec<(usize, bool)> =
            known.iter().map(|&(f, p)| (kb.finding_idx(f).expect(f), p)).collect();
        let p = b.probabilities(&known, Some(age), sex);
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&x, &y| p[y].total_cmp(&p[x]));
        idx.iter().take(3).map(|&c| kb.conditions[c].id.clone()).collect()
    }

    #[test]
    fn findings_rank_the_condition_that_explains_them() {
        let kb = kb();
        let b = Bayes::new(&kb);
        let t = top(
            &kb,
            &b,
            &[("painful_urination", true), ("frequent_urination", true), ("fever", false)],
            28.0,
            Sex::Female,
        );
        assert_eq!(t[0], "cystitis", "{t:?}");
        let p = b.probabilities(&[], None, Sex::Unknown);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_condition_needs_what_it_requires() {
        let kb = kb();
        let b = Bayes::new(&kb);
        let joints =
            top(&kb, &b, &[("joint_pain", true), ("joint_swelling", true)], 60.0, Sex::Female);
        assert!(!joints.iter().any(|c| c == "ankle_sprain"), "{joints:?}");
        let twisted = top(
            &kb,
            &b,
            &[
                ("joint_pain", true),
                ("joint_swelling", true),
                ("swollen_ankle_after_twisting", true),
            ],
            30.0,
            Sex::Female,
        );
        assert_eq!(twisted[0], "ankle_sprain", "{twisted:?}");
        let headache = top(&kb, &b, &[("headache", true), ("dizziness", true)], 45.0, Sex::Male);
        assert!(!headache.iter().any(|c| c == "concussion"), "{headache:?}");
    }

    #[test]
    fn sex_outside_the_condition_is_all_but_ruled_out() {
        let kb = kb();
        let b = Bayes::new(&kb);
        let urinary = [("painful_urination", true), ("frequent_urination", true)];
        let male = top(&kb, &b, &urinary, 58.0, Sex::Male);
        assert!(male.iter().any(|c| c == "acute_prostatitis"), "{male:?}");
        let female = top(&kb, &b, &urinary, 58.0, Sex::Female);
        assert!(!female.iter().any(|c| c == "acute_prostatitis"), "{female:?}");
    }

    #[test]
    fn a_denial_counts_only_against_conditions_that_list_the_finding() {
        let kb = kb();
        let b = Bayes::new(&kb);
        let fever = kb.finding_idx("fever").unwrap();
        let lists = kb
            .conditions
            .iter()
            .position(|c| c.findings.iter().any(|f| f.finding == fever && f.freq > 0.5))
            .unwrap();
        let silent = kb
            .conditions
            .iter()
            .position(|c| {
                !c.findings.iter().any(|f| f.finding == fever)
                    && !c.findings.iter().any(|f| kb.findings[f.finding].implies.contains(&fever))
            })
            .unwrap();
        assert!(b.effect(lists, fever, false) < -0.5);
        assert_eq!(b.effect(silent, fever, false), 0.0);
        assert!(b.effect(lists, fever, true) > 0.0);
        assert_eq!(b.effect(silent, fever, true), 0.0);
    }

    #[test]
    fn an_implied_finding_counts_for_the_condition_that_lists_the_specific_one() {
        let kb = kb();
        let b = Bayes::new(&kb);
        // Some condition lists a specific finding but not the broader one it implies.
        let (c, g) = kb
            .conditions
            .iter()
            .enumerate()
            .find_map(|(c, cond)| {
                cond.findings.iter().find_map(|f| {
                    kb.findings[f.finding]
                        .implies
                        .iter()
                        .copied()
                        .find(|g| !cond.findings.iter().any(|h| h.finding == *g))
                        .map(|g| (c, g))
                })
            })
            .expect("a condition listing only the specific finding");
        assert!(b.effect(c, g, true) > 0.0, "{} {}", kb.conditions[c].id, kb.findings[g].id);
    }
}
