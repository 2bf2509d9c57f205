//! Evaluation of the whole pipeline on the synthetic test split and on the hand-written
//! vignettes: ICD-10 accuracy (top-1, top-3, top-10), triage accuracy per level, under-triaged
//! emergencies, over-triage, and calibration, written as markdown with PNG plots.

mod dev;
mod plots;
mod reading;
mod vignettes;

use domain::{CaseInput, Sex, TriageLevel};
use kb::{KnowledgeBase, icd10_category};
use std::fmt::Write as _;
use std::path::Path;
use triage::scores::{Calibration, LevelScores};
use triage::{Models, Runner};

pub use dev::{
    AbsentScore, DevScore, DevVignette, default_absent_map_path, default_dev_path,
    dev_code_matches, dev_markdown, dev_reach, load_absent_map, load_dev, phrase_key, score_absent,
    score_dev,
};
pub use reading::{
    Counts, Read, ReadingReport, ReadingScore, ReadingText, default_reading_dir, load_reading,
    read_with, read_with_lexicon, reading_markdown, score_reading,
};
pub use vignettes::{Vignette, VignetteError, default_vignettes_path, load_vignettes};

/// One evaluation item: the request and what counts as right.
#[derive(Debug, Clone)]
pub struct Item {
    pub input: CaseInput,
    /// Acceptable ICD-10 codes.
    pub gold_codes: Vec<String>,
    pub gold_level: TriageLevel,
}

impl Item {
    pub fn from_case(kb: &KnowledgeBase, c: &synth::Case) -> Item {
        Item {
            input: c.input(),
            gold_codes: vec![kb.conditions[c.patient.condition].icd10.clone()],
            gold_level: c.patient.level,
        }
    }

    pub fn from_vignette(v: &Vignette) -> Item {
        let d = textfeat::read_demographics(&v.text);
        Item {
            input: CaseInput {
                text: v.text.clone(),
                age: v.age.or(d.age),
                sex: v.sex.or(d.sex).unwrap_or(Sex::Unknown),
                findings: Vec::new(),
                vitals: Default::default(),
            },
            gold_codes: v.gold_icd10.clone(),
            gold_level: v.gold_level,
        }
    }
}

/// What the pipeline answered for one item.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Rank (0-based) of the first condition whose code is a gold code, if in the top ten.
    pub code_rank: Option<usize>,
    /// The same at the ICD-10 category level (J18.9 matches J18.0).
    pub category_rank: Option<usize>,
    pub top_probability: f32,
    pub top_correct: bool,
    pub level: TriageLevel,
    pub gold_level: TriageLevel,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub name: String,
    pub n: usize,
    pub top1: f64,
    pub top3: f64,
    pub top10: f64,
    pub category_top1: f64,
    pub category_top3: f64,
    pub triage_accuracy: f64,
    /// Accuracy per gold level, most urgent first (None when the level has no items).
    pub per_level: [Option<(f64, usize)>; 5],
    /// confusion[gold][pred]
    pub confusion: [[usize; 5]; 5],
    pub under_triaged_emergencies: f64,
    pub emergencies: usize,
    pub over_triage: f64,
    pub under_triage: f64,
    pub ece: f64,
    /// Reliability bins: (mean confidence, accuracy, count).
    pub reliability: Vec<(f64, f64, usize)>,
}

pub fn answer(kb: &KnowledgeBase, item: &Item, t: &triage::Outcome) -> Answer {
    let conditions = t.conditions.as_deref().unwrap_or_default();
    let codes: Vec<&str> =
        conditions.iter().map(|r| kb.conditions[r.condition].icd10.as_str()).collect();
    let code_rank = codes.iter().position(|c| item.gold_codes.iter().any(|g| g == c));
    let category_rank = codes
        .iter()
        .position(|c| item.gold_codes.iter().any(|g| icd10_category(g) == icd10_category(c)));
    Answer {
        code_rank,
        category_rank,
        top_probability: conditions.first().map_or(0.0, |r| r.probability),
        top_correct: code_rank == Some(0),
        level: t.decision.level,
        gold_level: item.gold_level,
    }
}

/// Runs the pipeline on every item (in batches, through the sequential runner) and scores it.
pub fn evaluate(runner: &Runner, name: &str, items: &[Item]) -> Report {
    let mut answers = Vec::with_capacity(items.len());
    for chunk in items.chunks(256) {
        let inputs: Vec<&CaseInput> = chunk.iter().map(|i| &i.input).collect();
        for (t, item) in runner.run_batch(&inputs, 10, 3).iter().zip(chunk) {
            answers.push(answer(runner.kb(), item, t));
        }
    }
    score(name, &answers)
}

pub fn score(name: &str, answers: &[Answer]) -> Report {
    let n = answers.len().max(1) as f64;
    let within = |r: Option<usize>, k: usize| r.is_some_and(|r| r < k);
    let frac = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count() as f64 / n;
    let mut confusion = [[0usize; 5]; 5];
    for a in answers {
        confusion[a.gold_level.index()][a.level.index()] += 1;
    }
    let mut per_level = [None; 5];
    for (g, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        if total > 0 {
            per_level[g] = Some((row[g] as f64 / total as f64, total));
        }
    }
    let levels = LevelScores::of(answers.iter().map(|a| (a.level, a.gold_level)));
    let calibration =
        Calibration::of(answers.iter().map(|a| (a.top_probability, a.top_correct)), 10);
    Report {
        name: name.to_string(),
        n: answers.len(),
        top1: frac(&|a| within(a.code_rank, 1)),
        top3: frac(&|a| within(a.code_rank, 3)),
        top10: frac(&|a| within(a.code_rank, 10)),
        category_top1: frac(&|a| within(a.category_rank, 1)),
        category_top3: frac(&|a| within(a.category_rank, 3)),
        triage_accuracy: levels.accuracy,
        per_level,
        confusion,
        under_triaged_emergencies: levels.under_triaged_emergencies,
        emergencies: levels.emergencies,
        over_triage: levels.over_triage,
        under_triage: levels.under_triage,
        ece: calibration.ece,
        reliability: calibration.bins,
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## {} ({} cases)\n", self.name, self.n);
        let _ = writeln!(s, "| metric | value |\n|---|---|");
        let _ = writeln!(s, "| top-1 accuracy (ICD-10 code) | {:.3} |", self.top1);
        let _ = writeln!(s, "| top-3 accuracy (ICD-10 code) | {:.3} |", self.top3);
        let _ = writeln!(s, "| top-10 accuracy (ICD-10 code) | {:.3} |", self.top10);
        let _ = writeln!(
            s,
            "| top-1 / top-3 accuracy (ICD-10 category) | {:.3} / {:.3} |",
            self.category_top1, self.category_top3
        );
        let _ = writeln!(s, "| triage accuracy | {:.3} |", self.triage_accuracy);
        let _ = writeln!(
            s,
            "| under-triaged emergencies | {:.3} ({} emergencies) |",
            self.under_triaged_emergencies, self.emergencies
        );
        let _ = writeln!(s, "| over-triage (any level too urgent) | {:.3} |", self.over_triage);
        let _ = writeln!(
            s,
            "| under-triage (any level not urgent enough) | {:.3} |",
            self.under_triage
        );
        let _ = writeln!(s, "| expected calibration error (top-1 condition) | {:.3} |\n", self.ece);
        let _ = writeln!(
            s,
            "Triage accuracy per gold level:\n\n| level | accuracy | cases |\n|---|---|---|"
        );
        for (i, l) in TriageLevel::ALL.iter().enumerate() {
            match self.per_level[i] {
                Some((a, n)) => {
                    let _ = writeln!(s, "| {l} | {a:.3} | {n} |");
                }
                None => {
                    let _ = writeln!(s, "| {l} | - | 0 |");
                }
            }
        }
        let _ = writeln!(s, "\nConfusion (rows gold, columns predicted, most urgent first):\n");
        let _ = writeln!(
            s,
            "| gold \\ predicted | {} |",
            TriageLevel::ALL.map(|l| l.as_str()).join(" | ")
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (g, row) in self.confusion.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | {} |",
                TriageLevel::ALL[g],
                row.map(|x| x.to_string()).join(" | ")
            );
        }
        s
    }
}

/// Writes `report.md` and the plots of each report into `out`.
pub fn write_reports(
    out: &Path,
    header: &str,
    reports: &[Report],
    extra: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut md = format!("# Triagent evaluation\n\n{header}\n\n");
    for r in reports {
        md.push_str(&r.markdown());
        let slug: String = r
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect();
        let rel = format!("{slug}-reliability.png");
        let conf = format!("{slug}-confusion.png");
        plots::reliability(&out.join(&rel), r).map_err(std::io::Error::other)?;
        plots::confusion(&out.join(&conf), r).map_err(std::io::Error::other)?;
        let _ =
            writeln!(md, "\n![reliability diagram]({rel})\n\n![triage confusion matrix]({conf})\n");
    }
    md.push_str(extra);
    std::fs::write(out.join("report.md"), md)
}

/// The reading benchmark section of the report: the phrase matcher alone, the symptom
/// classifier's own reading (what answers showed before the shared reading), the reader's
/// phrase layers, and the reader as shipped.
pub fn reading_section(models: &Models, texts: &[ReadingText]) -> (String, Vec<ReadingReport>) {
    let kb = &models.kb;
    let base: Vec<Read> = texts.iter().map(|t| read_with_lexicon(kb, &t.text)).collect();
    let prepared: Vec<kb::Case> = texts
        .iter()
        .map(|t| {
            kb.prepare(CaseInput {
                text: t.text.clone(),
                age: t.age,
                sex: t.sex.unwrap_or(Sex::Unknown),
                findings: Vec::new(),
                vitals: Default::default(),
            })
        })
        .collect();
    let refs: Vec<&kb::Case> = prepared.iter().collect();
    let model: Vec<Read> = models
        .symptoms
        .predict_batch(&refs)
        .into_iter()
        .map(|fs| fs.into_iter().map(|f| (kb.findings[f.finding].id.clone(), f.present)).collect())
        .collect();
    let phrases = kb.reader().without_semantic();
    let layer: Vec<Read> = texts.iter().map(|t| read_with(kb, &phrases, &t.text)).collect();
    let shipped: Vec<Read> = texts.iter().map(|t| read_with(kb, kb.reader(), &t.text)).collect();
    let reports = vec![
        score_reading("phrase matcher alone", texts, &base),
        score_reading("symptom classifier alone", texts, &model),
        score_reading("reader, phrases and variants only", texts, &layer),
        score_reading("reader as shipped (with the semantic layer)", texts, &shipped),
    ];
    (reading_markdown(&reports), reports)
}

/// The development vignettes' section: the pipeline's differential, the naive-Bayes baseline
/// beside it, the levels given, the differential's calibration, and the reading of their
/// negatives.
pub fn dev_section(
    runner: &Runner,
    cases: &[DevVignette],
    map: &std::collections::HashMap<String, Vec<usize>>,
) -> DevSection {
    let kb = runner.kb();
    let items: Vec<Item> = cases.iter().map(DevVignette::item).collect();
    let mut ranked = Vec::with_capacity(items.len());
    let mut answers = Vec::with_capacity(items.len());
    let mut levels = [0usize; 5];
    for (chunk, vs) in items.chunks(64).zip(cases.chunks(64)) {
        let inputs: Vec<&CaseInput> = chunk.iter().map(|i| &i.input).collect();
        for (t, v) in runner.run_batch(&inputs, 10, 3).into_iter().zip(vs) {
            let conditions = t.conditions.as_deref().unwrap_or_default();
            let codes: Vec<String> =
                conditions.iter().map(|r| kb.conditions[r.condition].icd10.clone()).collect();
            let rank = v.gold_rank(&codes);
            levels[t.decision.level.index()] += 1;
            // The dev set has no gold level: the level fields only fill the shape.
            answers.push(Answer {
                code_rank: rank,
                category_rank: rank,
                top_probability: conditions.first().map_or(0.0, |r| r.probability),
                top_correct: rank == Some(0),
                level: t.decision.level,
                gold_level: t.decision.level,
            });
            ranked.push(codes);
        }
    }
    let score = score_dev("pipeline", kb, cases, &ranked);
    let nb: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            bayes_top(kb, &i.input, 10)
                .into_iter()
                .map(|c| kb.conditions[c].icd10.clone())
                .collect()
        })
        .collect();
    let nb_score = score_dev("naive Bayes over the reading (baseline)", kb, cases, &nb);
    let absent = score_absent(kb, kb.reader(), cases, map);
    let calibration = self::score("Development vignettes", &answers);
    let mut md = dev_markdown(&[score.clone(), nb_score.clone()], &absent);
    let _ = writeln!(
        md,
        "
Levels given (no gold level in this set), most urgent first:

| emergency_ambulance | emergency | consultation_24 | consultation | self_care |
|---|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} |",
        levels[0], levels[1], levels[2], levels[3], levels[4]
    );
    let _ = writeln!(
        md,
        "
Calibration of the top condition's probability (ECE {:.3}):

| mean probability | share right | cases |
|---|---|---|",
        calibration.ece
    );
    for &(c, k, m) in calibration.reliability.iter().filter(|r| r.2 > 0) {
        let _ = writeln!(md, "| {c:.2} | {k:.2} | {m} |");
    }
    DevSection { markdown: md, pipeline: score, baseline: nb_score, absent, calibration, levels }
}

/// What [`dev_section`] measured.
#[derive(Debug, Clone)]
pub struct DevSection {
    pub markdown: String,
    pub pipeline: DevScore,
    pub baseline: DevScore,
    pub absent: AbsentScore,
    /// The top condition's reliability (the level fields mean nothing here).
    pub calibration: Report,
    /// How many cases got each level, most urgent first.
    pub levels: [usize; 5],
}

/// Writes the reliability diagram of `r` to `path` (PNG).
pub fn write_reliability_plot(path: &Path, r: &Report) -> std::io::Result<()> {
    plots::reliability(path, r).map_err(std::io::Error::other)
}

/// The naive-Bayes baseline's `k` most probable conditions for a request: everything the
/// reading asserts (umbrella denials included), the findings sent, and what its vitals show
/// (the prior [`KnowledgeBase::prepare`] works out for every request).
pub fn bayes_top(kb: &KnowledgeBase, input: &CaseInput, k: usize) -> Vec<usize> {
    let p = kb.prepare(input.clone()).prior;
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}
