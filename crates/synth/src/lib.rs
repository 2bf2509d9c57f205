//! Synthetic patients sampled from the knowledge base and written as free text.
//!
//! A patient is drawn in two steps: first the facts (a condition by prevalence and
//! demographics, its findings by their frequencies, some findings denied, a little noise, and
//! vital signs that agree with the findings), then the words (one of four registers: a worried
//! adult, a parent or carer, a terse app user, a clinical note), with negations, durations,
//! typos and shuffled order. The gold triage level is the condition's urgency raised by every
//! red-flag rule the facts meet.
//!
//! Everything is driven by one seeded ChaCha generator: the same seed and knowledge base give
//! the same cases, byte for byte.

mod text;

use domain::{AgeBand, Sex, TriageLevel, VitalSign, Vitals};
use kb::{FindingKind, KnowledgeBase, RuleInput};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use text::Register;

/// The facts of one synthetic patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub condition: usize,
    pub age: f32,
    pub sex: Sex,
    /// Findings present (from the condition, plus noise).
    pub present: Vec<usize>,
    /// Findings the patient explicitly does not have.
    pub absent: Vec<usize>,
    pub vitals: Vitals,
    /// The condition's urgency raised by every red-flag rule the facts meet.
    pub level: TriageLevel,
}

/// A patient as a request: the text, and what was sent as structured fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub patient: Patient,
    pub register: Register,
    pub text: String,
    pub age: Option<f32>,
    pub sex: Option<Sex>,
    /// Structured findings sent beside the text (finding index, present).
    pub findings: Vec<(usize, bool)>,
    /// Vitals sent as structured fields (empty when none were sent).
    pub vitals: Vitals,
    /// Findings the text mentions as present / absent: the symptom classifier's targets.
    pub text_present: Vec<usize>,
    pub text_absent: Vec<usize>,
}

impl Case {
    /// The request as the agents see it, with age and sex read from the text when not sent.
    pub fn input(&self) -> domain::CaseInput {
        let d = textfeat::read_demographics(&self.text);
        domain::CaseInput {
            text: self.text.clone(),
            age: self.age.or(d.age),
            sex: self.sex.or(d.sex).unwrap_or(Sex::Unknown),
            findings: self.findings.clone(),
            vitals: self.vitals,
        }
    }
}

/// Train, validation and test cases, each from its own seed.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Vec<Case>,
    pub val: Vec<Case>,
    pub test: Vec<Case>,
}

/// Generates the three splits. Each split has its own stream (seed, seed+1, seed+2) so the
/// test set never shares a random draw with training.
pub fn splits(kb: &KnowledgeBase, seed: u64, train: usize, val: usize, test: usize) -> Splits {
    Splits {
        train: Generator::new(kb, seed).cases(train),
        val: Generator::new(kb, seed.wrapping_add(1)).cases(val),
        test: Generator::new(kb, seed.wrapping_add(2)).cases(test),
    }
}

pub struct Generator<'a> {
    kb: &'a KnowledgeBase,
    rng: ChaCha8Rng,
    by_condition: WeightedIndex<f64>,
    /// Findings that make plausible noise: common symptoms of any system.
    noise: Vec<usize>,
    red_flags: Vec<usize>,
    pregnant: Option<usize>,
    text: text::Writer,
}

impl<'a> Generator<'a> {
    pub fn new(kb: &'a KnowledgeBase, seed: u64) -> Self {
        let weights: Vec<f64> = kb.conditions.iter().map(|c| c.prevalence.weight()).collect();
        let by_condition =
            WeightedIndex::new(&weights).expect("at least one condition with weight");
        // Noise: findings that many conditions share (a cough, tiredness), not rare signs.
        let noise = noise_pool(kb);
        let red_flags = (0..kb.findings.len()).filter(|&i| kb.findings[i].red_flag).collect();
        Generator {
            kb,
            rng: ChaCha8Rng::seed_from_u64(seed),
            by_condition,
            noise,
            red_flags,
            pregnant: kb.finding_idx("pregnant"),
            text: text::Writer::new(kb),
        }
    }

    pub fn cases(&mut self, n: usize) -> Vec<Case> {
        (0..n).map(|_| self.case()).collect()
    }

    /// One patient of a given condition (used for per-condition checks).
    pub fn patient_of(&mut self, condition: usize) -> Patient {
        let kb = self.kb;
        let c = &kb.conditions[condition];
        let rng = &mut self.rng;

        // Demographics within the condition's bands and limits.
        let band = *c.ages.choose(rng).expect("validated: ages not empty");
        let (mut lo, mut hi) = band.years();
        if let Some(m) = c.min_age {
            lo = lo.max(m);
        }
        if let Some(m) = c.max_age {
            hi = hi.min(m);
        }
        if c.pregnancy {
            lo = lo.max(16.0);
            hi = hi.min(45.0);
        }
        if hi <= lo {
            // A band that does not fit the limits: fall back to the limits themselves.
            lo = c.min_age.unwrap_or(lo);
            hi = c.max_age.unwrap_or(lo + 1.0).max(lo + 0.01);
        }
        let age = if band == AgeBand::Older {
            lo + (hi - lo) * rng.random::<f32>().powi(2)
        } else {
            rng.random_range(lo..hi)
        };
        let age = if age >= 2.0 {
            age.floor()
        } else {
            (age * 12.0).floor().max(0.0) / 12.0 + 1.0 / 48.0
        };
        let sex = match c.sex {
            kb::SexFilter::Female => Sex::Female,
            kb::SexFilter::Male => Sex::Male,
            kb::SexFilter::Any if c.pregnancy => Sex::Female,
            kb::SexFilter::Any => {
                if rng.random_bool(0.5) {
                    Sex::Female
                } else {
                    Sex::Male
                }
            }
        };

        // Findings by frequency; at least two, so every case says something.
        let mut present: Vec<usize> =
            c.findings.iter().filter(|f| rng.random::<f32>() < f.freq).map(|f| f.finding).collect();
        if present.len() < 2 {
            let mut by_freq: Vec<_> = c.findings.clone();
            by_freq.sort_by(|a, b| b.freq.total_cmp(&a.freq));
            for f in by_freq {
                if present.len() >= 2 {
                    break;
                }
                if !present.contains(&f.finding) {
                    present.push(f.finding);
                }
            }
        }
        if c.pregnancy
            && let Some(p) = self.pregnant
            && !present.contains(&p)
        {
            present.push(p);
        }
        // What the condition cannot be diagnosed without (the injury of a sprain) is there.
        for group in &c.requires {
            if !group.iter().any(|f| present.contains(f)) {
                present.push(group[0]);
            }
        }
        // Noise: someone with appendicitis may also mention a cough.
        if rng.random_bool(0.25)
            && let Some(&n) = self.noise.choose(rng)
            && !present.contains(&n)
            && !c.opposing.contains(&n)
        {
            present.push(n);
        }

        // Denied findings: what argues against it, what it usually has but not this time, and
        // the red flags a careful note rules out.
        let mut absent = Vec::new();
        for &o in &c.opposing {
            if rng.random_bool(0.35) && absent.len() < 3 {
                absent.push(o);
            }
        }
        for f in &c.findings {
            if !present.contains(&f.finding) && rng.random_bool(0.15) && absent.len() < 3 {
                absent.push(f.finding);
            }
        }
        if rng.random_bool(0.2)
            && let Some(&r) = self.red_flags.choose(rng)
            && !present.contains(&r)
            && !absent.contains(&r)
        {
            absent.push(r);
        }
        absent.retain(|a| !present.contains(a));

        let vitals = sample_vitals(kb, &present, &absent, age, rng);
        let level = gold_level(kb, c.urgency, &present, age, sex, &vitals);
        Patient { condition, age, sex, present, absent, vitals, level }
    }

    pub fn case(&mut self) -> Case {
        let condition = self.by_condition.sample(&mut self.rng);
        let patient = self.patient_of(condition);
        let rng = &mut self.rng;

        // Some findings travel as structured fields instead of words.
        let mut in_text_present = patient.present.clone();
        let mut in_text_absent = patient.absent.clone();
        let mut findings = Vec::new();
        if rng.random_bool(0.06) {
            // An app that sends only structured fields and no words.
            findings.extend(in_text_present.drain(..).map(|f| (f, true)));
            findings.extend(in_text_absent.drain(..).map(|f| (f, false)));
            let age = rng.random_bool(0.8).then_some(patient.age);
            let sex = rng.random_bool(0.8).then_some(patient.sex);
            let vitals = if rng.random_bool(0.4) { patient.vitals } else { Vitals::default() };
            return Case {
                patient,
                register: Register::Terse,
                text: String::new(),
                age,
                sex,
                findings,
                vitals,
                text_present: Vec::new(),
                text_absent: Vec::new(),
            };
        }
        if rng.random_bool(0.2) {
            in_text_present.shuffle(rng);
            let k = rng.random_range(1..=2).min(in_text_present.len().saturating_sub(1));
            for f in in_text_present.drain(..k) {
                findings.push((f, true));
            }
            if !in_text_absent.is_empty() && rng.random_bool(0.5) {
                findings.push((in_text_absent.remove(0), false));
            }
        }
        let vitals = if rng.random_bool(0.4) { patient.vitals } else { Vitals::default() };
        let age = rng.random_bool(0.35).then_some(patient.age);
        let sex = rng.random_bool(0.35).then_some(patient.sex);

        let register = Register::pick(patient.age, rng);
        let written = self.text.write(&patient, &in_text_present, &in_text_absent, register, rng);

        // The classifier's targets: what was written, plus whatever the phrase matcher reads
        // in the final text (nested phrases such as "chest pain" inside "crushing chest pain").
        let mut text_present = written.present;
        let mut text_absent = written.absent;
        for (id, p) in self.kb.lexicon().findings(&written.text) {
            let id = id as usize;
            if text_present.contains(&id) || text_absent.contains(&id) {
                continue;
            }
            if p {
                text_present.push(id);
            } else {
                text_absent.push(id);
            }
        }
        Case {
            patient,
            register,
            text: written.text,
            age,
            sex,
            findings,
            vitals,
            text_present,
            text_absent,
        }
    }
}

/// The condition's urgency raised by every red-flag rule the patient's facts meet.
pub fn gold_level(
    kb: &KnowledgeBase,
    urgency: TriageLevel,
    present: &[usize],
    age: f32,
    sex: Sex,
    vitals: &Vitals,
) -> TriageLevel {
    let mut mask = vec![false; kb.findings.len()];
    for &p in present {
        mask[p] = true;
    }
    for i in kb.findings_from_vitals(vitals) {
        mask[i] = true;
    }
    let input = RuleInput { present: &mask, age: Some(age), sex, vitals };
    kb.red_flags(&input).into_iter().fold(urgency, |l, h| l.most_urgent(h.level))
}

/// Normal vitals for the age, then pushed past the threshold of every present finding that a
/// vital shows (a fever gives a temperature over 38), and kept normal for denied ones.
fn sample_vitals(
    kb: &KnowledgeBase,
    present: &[usize],
    _absent: &[usize],
    age: f32,
    rng: &mut ChaCha8Rng,
) -> Vitals {
    let (hr, rr) = if age < 1.0 {
        (rng.random_range(110.0..150.0), rng.random_range(30.0..45.0))
    } else if age < 5.0 {
        (rng.random_range(90.0..125.0), rng.random_range(22.0..30.0))
    } else if age < 12.0 {
        (rng.random_range(75.0..110.0), rng.random_range(18.0..24.0))
    } else {
        (rng.random_range(60.0..95.0), rng.random_range(12.0..18.0))
    };
    let mut v = Vitals {
        temperature_c: Some(rng.random_range(36.2..37.4)),
        heart_rate: Some(hr),
        respiratory_rate: Some(rr),
        spo2: Some(rng.random_range(96.0..100.0)),
        systolic_bp: Some(if age < 12.0 {
            rng.random_range(90.0..110.0)
        } else {
            rng.random_range(105.0..138.0)
        }),
    };
    let mut pushed = [false; 5];
    for &p in present {
        if let Some(t) = kb.findings[p].vital {
            let k = VitalSign::ALL.iter().position(|s| *s == t.sign).expect("closed list");
            let cur = v.get(t.sign).unwrap_or(0.0);
            let new = match (t.above, t.below) {
                (Some(a), _) => {
                    let step = (a.abs() * 0.08).max(0.5);
                    let x = a + rng.random_range(0.1..1.0) * step;
                    if pushed[k] { cur.max(x) } else { x }
                }
                (_, Some(b)) => {
                    let step = (b.abs() * 0.08).max(0.5);
                    let x = b - rng.random_range(0.1..1.0) * step;
                    if pushed[k] { cur.min(x) } else { x }
                }
                _ => cur,
            };
            pushed[k] = true;
            v.set(t.sign, Some(new));
        }
    }
    // A fast heart rate goes with a fever, as in life.
    if let (Some(t), Some(h)) = (v.temperature_c, v.heart_rate)
        && t > 38.0
        && !pushed[1]
    {
        v.heart_rate = Some(h + (t - 37.0) * 10.0);
    }
    for s in VitalSign::ALL {
        if let Some(x) = v.get(s) {
            let (lo, hi) = s.valid_range();
            let x = x.clamp(lo, hi);
            let rounded =
                if s == VitalSign::TemperatureC { (x * 10.0).round() / 10.0 } else { x.round() };
            v.set(s, Some(rounded));
        }
    }
    v
}

/// What the findings models train on: each case as the shared reading finds it
/// (`kb::Case::evidence` of its request), and a `sparse_share` of them cut to what a person
/// would name ([`sparse_view`]), drawn from `seed`.
pub fn training_views(
    kb: &KnowledgeBase,
    cases: &[Case],
    sparse_share: f32,
    seed: u64,
) -> Vec<Vec<(usize, bool)>> {
    let pool = noise_pool(kb);
    let salience = salience(kb);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    cases
        .iter()
        .map(|c| {
            let full = kb.prepare(c.input()).evidence;
            if rng.random::<f32>() < sparse_share {
                let mut view = sparse_view(&full, &pool, &salience, &mut rng);
                // A person names what their condition cannot be diagnosed without.
                for group in &kb.conditions[c.patient.condition].requires {
                    if !view.iter().any(|&(f, p)| p && group.contains(&f))
                        && let Some(&kept) = full.iter().find(|&&(f, p)| p && group.contains(&f))
                    {
                        view.push(kept);
                    }
                }
                view
            } else {
                full
            }
        })
        .collect()
}

/// How much a finding tells, as the chance a person or a clinician names it among those they
/// have: `ln(1 + conditions / conditions listing it)`. A history names the unusual finding
/// ("rusty sputum", "zigzag lines") before the ones everyone has ("tired"), so a description
/// holding only common findings is itself a sign that nothing distinctive was there.
pub fn salience(kb: &KnowledgeBase) -> Vec<f32> {
    let n = kb.conditions.len() as f32;
    listing_counts(kb).iter().map(|&k| (1.0 + n / k.max(1) as f32).ln()).collect()
}

/// How many conditions list each finding.
fn listing_counts(kb: &KnowledgeBase) -> Vec<usize> {
    let mut count = vec![0usize; kb.findings.len()];
    for c in &kb.conditions {
        for f in &c.findings {
            count[f.finding] += 1;
        }
    }
    count
}

/// A patient as people describe themselves: two to six of the findings known present (the
/// more telling ones more often, by `salience`), at most two of the denials, and, as real
/// descriptions have and generated ones rarely do, sometimes a finding their condition does
/// not explain and sometimes a review of systems denying several findings at random. `pool` is the findings that may be added
/// (common, not red flags); one already known is never added the other way.
pub fn sparse_view(
    known: &[(usize, bool)],
    pool: &[usize],
    salience: &[f32],
    rng: &mut ChaCha8Rng,
) -> Vec<(usize, bool)> {
    let mut present: Vec<(usize, bool)> = known.iter().copied().filter(|f| f.1).collect();
    let mut absent: Vec<(usize, bool)> = known.iter().copied().filter(|f| !f.1).collect();
    let keep = rng.random_range(2..=6usize).min(present.len());
    // Weighted sampling without replacement (Efraimidis and Spirakis): the larger u^(1/w).
    let mut keyed: Vec<(f32, (usize, bool))> = present
        .iter()
        .map(|&f| (rng.random::<f32>().max(f32::MIN_POSITIVE).ln() / salience[f.0].max(1e-3), f))
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    present = keyed.into_iter().take(keep).map(|(_, f)| f).collect();
    let deny = rng.random_range(0..=2usize).min(absent.len());
    absent.shuffle(rng);
    absent.truncate(deny);
    present.extend(absent);
    let add = |present: bool, rng: &mut ChaCha8Rng, out: &mut Vec<(usize, bool)>| {
        if pool.is_empty() {
            return;
        }
        let f = pool[rng.random_range(0..pool.len())];
        if !known.iter().chain(out.iter()).any(|&(g, _)| g == f) {
            out.push((f, present));
        }
    };
    if rng.random::<f32>() < 0.4 {
        for _ in 0..rng.random_range(1..=2usize) {
            add(true, rng, &mut present);
        }
    }
    if rng.random::<f32>() < 0.3 {
        for _ in 0..rng.random_range(2..=10usize) {
            add(false, rng, &mut present);
        }
    }
    present
}

/// Findings a training patient may mention or deny beside their condition's: those at least
/// six conditions list, not red flags, not risk factors.
pub fn noise_pool(kb: &KnowledgeBase) -> Vec<usize> {
    let count = listing_counts(kb);
    (0..kb.findings.len())
        .filter(|&i| {
            count[i] >= 6
                && !kb.findings[i].red_flag
                && kb.findings[i].kind != FindingKind::RiskFactor
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_follow_findings() {
        let kb = kb::load_dir(kb::default_dir()).unwrap();
        let fever = kb.finding_idx("fever").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let v = sample_vitals(&kb, &[fever], &[], 30.0, &mut rng);
            assert!(v.temperature_c.unwrap() > 38.0, "{v:?}");
        }
    }
}
