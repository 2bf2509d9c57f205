//! The validated, index-resolved knowledge base.

use domain::{AgeBand, Sex, TriageLevel, VitalSign};
use serde::Deserialize;
use std::collections::HashMap;
use textfeat::Lexicon;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Symptom,
    Sign,
    RiskFactor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodySystem {
    General,
    Cardiovascular,
    Respiratory,
    Gastrointestinal,
    RenalUrinary,
    Neurological,
    MentalHealth,
    Musculoskeletal,
    Skin,
    Ent,
    Eye,
    EndocrineMetabolic,
    BloodImmune,
    Reproductive,
    Pregnancy,
    Injury,
    Poisoning,
    Infection,
    RiskFactor,
}

/// A vital-sign threshold: the finding is shown by `sign` above or below a value.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalThreshold {
    pub sign: VitalSign,
    #[serde(default)]
    pub above: Option<f32>,
    #[serde(default)]
    pub below: Option<f32>,
}

impl VitalThreshold {
    /// Whether a measured value meets the threshold.
    pub fn holds(&self, value: f32) -> bool {
        self.above.is_none_or(|a| value > a) && self.below.is_none_or(|b| value < b)
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub id: String,
    pub name: String,
    pub system: BodySystem,
    pub kind: FindingKind,
    pub red_flag: bool,
    pub clinical: Vec<String>,
    pub lay: Vec<String>,
    /// More ways people and notes say it: read by the reader, not written by the generator
    /// (whose text the committed models were trained on).
    pub variants: Vec<String>,
    /// Phrases from open vocabularies (`kb/synonyms/`), read by the reader like `variants`.
    pub synonyms: Vec<String>,
    /// Broader findings this one entails (indices into `findings`): a thunderclap headache is
    /// a headache. The reader reads them wherever it reads this one.
    pub implies: Vec<usize>,
    /// A finding that is two findings said together (vomiting after a head injury: vomiting
    /// and a head injury): one group per part, any finding of a group will do. Read present
    /// when every part is, for the patient, now.
    pub composed_of: Vec<Vec<usize>>,
    /// Phrases that say the finding is absent without a negation: "afebrile", "eating
    /// normally". Read by the reader only, as the finding absent.
    pub negatives: Vec<String>,
    /// Broad phrases whose denial denies this finding (`kb/umbrellas/`): "no weight change"
    /// denies weight loss. Read by the reader only, and only when denied.
    pub denied_by: Vec<String>,
    pub vital: Option<VitalThreshold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prevalence {
    VeryCommon,
    Common,
    Uncommon,
    Rare,
    VeryRare,
}

impl Prevalence {
    /// Relative weight in the synthetic case mix. Deliberately flatter than real life (a factor
    /// of two per step rather than ten) so that rare but dangerous conditions are seen often
    /// enough to be learnt; the models' probabilities are calibrated to this mix.
    pub fn weight(self) -> f64 {
        match self {
            Prevalence::VeryCommon => 16.0,
            Prevalence::Common => 8.0,
            Prevalence::Uncommon => 4.0,
            Prevalence::Rare => 2.0,
            Prevalence::VeryRare => 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexFilter {
    Any,
    Female,
    Male,
}

impl SexFilter {
    pub fn admits(self, sex: Sex) -> bool {
        match self {
            SexFilter::Any => true,
            SexFilter::Female => sex != Sex::Male,
            SexFilter::Male => sex != Sex::Female,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConditionFinding {
    pub finding: usize,
    pub freq: f32,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub id: String,
    pub name: String,
    pub icd10: String,
    pub system: BodySystem,
    pub urgency: TriageLevel,
    pub prevalence: Prevalence,
    pub ages: Vec<AgeBand>,
    pub min_age: Option<f32>,
    pub max_age: Option<f32>,
    pub sex: SexFilter,
    pub pregnancy: bool,
    pub source: String,
    pub findings: Vec<ConditionFinding>,
    pub opposing: Vec<usize>,
    /// Groups of findings without one of which the condition is not diagnosed: a sprain
    /// needs an injury, an overdose the tablets taken. Each group is satisfied by any of its
    /// findings (or one that implies it) known present.
    pub requires: Vec<Vec<usize>>,
}

impl Condition {
    /// Whether someone of this age could have the condition, by its bands and limits.
    pub fn admits_age(&self, age: f32) -> bool {
        self.ages.contains(&AgeBand::of_age(age))
            && self.min_age.is_none_or(|m| age >= m)
            && self.max_age.is_none_or(|m| age <= m)
    }

    /// ICD-10 category: the letter and two digits before the dot ("J18.9" -> "J18").
    pub fn icd10_category(&self) -> &str {
        icd10_category(&self.icd10)
    }
}

/// ICD-10 category of a code: the part before the dot.
pub fn icd10_category(code: &str) -> &str {
    code.split('.').next().unwrap_or(code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdviceKind {
    SelfCare,
    Otc,
    SeekCare,
    Emergency,
}

impl AdviceKind {
    pub const ALL: [AdviceKind; 4] =
        [AdviceKind::SelfCare, AdviceKind::Otc, AdviceKind::SeekCare, AdviceKind::Emergency];

    pub fn as_str(self) -> &'static str {
        match self {
            AdviceKind::SelfCare => "self_care",
            AdviceKind::Otc => "otc",
            AdviceKind::SeekCare => "seek_care",
            AdviceKind::Emergency => "emergency",
        }
    }
}

/// Who must not follow a piece of advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contraindication {
    #[serde(rename = "infant_under_3_months")]
    InfantUnder3Months,
    #[serde(rename = "child_under_12")]
    ChildUnder12,
    #[serde(rename = "child_under_16")]
    ChildUnder16,
    Pregnancy,
    Breastfeeding,
    KidneyDisease,
    LiverDisease,
    StomachUlcer,
    Asthma,
    HeartDisease,
    HighBloodPressure,
    Anticoagulants,
    OlderAdult,
}

#[derive(Debug, Clone)]
pub struct Advice {
    pub id: String,
    pub kind: AdviceKind,
    pub title: String,
    pub advice: String,
    pub conditions: Vec<usize>,
    pub findings: Vec<usize>,
    pub avoid_if: Vec<Contraindication>,
    pub warning_signs: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct RuleExample {
    pub fires: bool,
    pub findings: Vec<usize>,
    pub absent: Vec<usize>,
    pub age: Option<f32>,
    pub sex: Option<Sex>,
    pub vitals: domain::Vitals,
    pub text: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub level: TriageLevel,
    pub reason: String,
    pub all: Vec<usize>,
    pub any: Vec<usize>,
    pub min_age: Option<f32>,
    pub max_age: Option<f32>,
    pub if_age_unknown: bool,
    pub sex: SexFilter,
    pub vitals_any: Vec<VitalThreshold>,
    /// Findings whose own vital threshold implies one of `vitals_any` (`low_oxygen_saturation`
    /// implies spo2 below 92): a person who says "my oxygen is low" meets the rule without a
    /// measurement.
    pub vital_findings: Vec<usize>,
    pub source: String,
    pub examples: Vec<RuleExample>,
}

/// The whole knowledge base, ids resolved to indices.
#[derive(Debug)]
pub struct KnowledgeBase {
    pub findings: Vec<Finding>,
    pub conditions: Vec<Condition>,
    pub advice: Vec<Advice>,
    pub rules: Vec<Rule>,
    pub(crate) finding_index: HashMap<String, usize>,
    pub(crate) condition_index: HashMap<String, usize>,
    pub(crate) lexicon: Lexicon,
    pub(crate) reader: reading::Reader,
    /// The findings a measured vital sign can show, with their thresholds (a few of hundreds:
    /// every request reads them, so they are not looked for among all findings each time).
    pub(crate) with_vital: Vec<(usize, VitalThreshold)>,
    /// A hash of every file's bytes, recorded by models so a mismatch can be reported.
    pub fingerprint: String,
    /// The knowledge base as naive Bayes, built on first use.
    pub(crate) bayes: std::sync::OnceLock<crate::Bayes>,
}

impl KnowledgeBase {
    pub fn finding_idx(&self, id: &str) -> Option<usize> {
        self.finding_index.get(id).copied()
    }

    /// Every finding `f` entails, directly or through others (a thunderclap headache is a
    /// headache): the closure of `implies`.
    pub fn implied(&self, f: usize) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut stack = self.findings[f].implies.clone();
        while let Some(g) = stack.pop() {
            if g != f && !out.contains(&g) {
                out.push(g);
                stack.extend(self.findings[g].implies.iter().copied());
            }
        }
        out
    }

    pub fn condition_idx(&self, id: &str) -> Option<usize> {
        self.condition_index.get(id).copied()
    }

    pub fn finding_ids(&self) -> Vec<String> {
        self.findings.iter().map(|f| f.id.clone()).collect()
    }

    pub fn condition_ids(&self) -> Vec<String> {
        self.conditions.iter().map(|c| c.id.clone()).collect()
    }

    /// The plain phrase matcher over every finding's phrases (exact words, negation from the
    /// tokeniser): what the synthetic generator labels its text with, and the baseline the
    /// reader is measured against.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The reader every request goes through: phrases, their variants and (when the knowledge
    /// base has word vectors) the semantic layer, with ConText assertion.
    pub fn reader(&self) -> &reading::Reader {
        &self.reader
    }

    /// Replaces the reader (for measuring one layer against another).
    pub fn set_reader(&mut self, reader: reading::Reader) {
        self.reader = reader;
    }

    /// The knowledge base read as naive Bayes (built once, on first use).
    pub fn bayes(&self) -> &crate::Bayes {
        self.bayes.get_or_init(|| crate::Bayes::new(self))
    }

    /// Findings shown by measured vital signs (a temperature of 39.2 shows `fever`).
    pub fn findings_from_vitals(&self, vitals: &domain::Vitals) -> Vec<usize> {
        if vitals.is_empty() {
            return Vec::new();
        }
        self.with_vital
            .iter()
            .filter_map(|&(i, t)| {
                let v = vitals.get(t.sign)?;
                t.holds(v).then_some(i)
            })
            .collect()
    }
}
