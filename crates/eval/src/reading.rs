//! The reading benchmark (`vignettes/reading/*.toml`): texts written by hand the way people
//! and clinicians write, each annotated with the findings it asserts present and absent (and
//! the ones it only hedges, which are not scored). Scores a reader by precision and recall of
//! present and of absent findings, overall, by register and by half.
//!
//! The texts are split in three: the odd numbers ("tune") and the even numbers ("test") may be
//! read to find what the reader misses (the test half was only measured until 2026-12-06); the
//! texts whose id starts with `fresh-` ("fresh") are sealed: only measured, never read to
//! mend the reader.

use kb::KnowledgeBase;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingText {
    pub id: String,
    pub register: String,
    pub text: String,
    #[serde(default)]
    pub present: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub uncertain: Vec<String>,
    #[serde(default)]
    pub age: Option<f32>,
    #[serde(default)]
    pub sex: Option<domain::Sex>,
    #[serde(default)]
    pub note: String,
    /// Findings that an annotated present finding implies (a long morning stiffness is a joint
    /// stiffness), worked out at load: reading one is true, but the annotators did not list
    /// them, so they are not scored.
    #[serde(skip)]
    pub implied: Vec<String>,
}

impl ReadingText {
    /// "fresh" (sealed), "tune" (odd number) or "test" (even number).
    pub fn half(&self) -> &'static str {
        if self.id.starts_with("fresh-") {
            return "fresh";
        }
        let n: u32 = self.id.rsplit('-').next().and_then(|d| d.parse().ok()).unwrap_or(0);
        if n % 2 == 1 { "tune" } else { "test" }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    text: Vec<ReadingText>,
}

pub fn default_reading_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vignettes/reading")
}

/// Every text of every `*.toml` in `dir`, checked: unique ids, known registers, known finding
/// ids, no finding in two lists.
pub fn load_reading(dir: &Path, kb: &KnowledgeBase) -> Result<Vec<ReadingText>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out: Vec<ReadingText> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{name}: {e}"))?;
        let file: File = toml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        for t in file.text {
            let bad = |m: String| format!("{name}: text '{}': {m}", t.id);
            if !seen.insert(t.id.clone()) {
                return Err(bad("duplicate id".into()));
            }
            if !["lay", "carer", "terse", "clinical"].contains(&t.register.as_str()) {
                return Err(bad(format!("unknown register '{}'", t.register)));
            }
            for id in t.present.iter().chain(&t.absent).chain(&t.uncertain) {
                if kb.finding_idx(id).is_none() {
                    return Err(bad(format!("unknown finding '{id}'")));
                }
            }
            if t.present.iter().any(|p| t.absent.contains(p) || t.uncertain.contains(p))
                || t.absent.iter().any(|a| t.uncertain.contains(a))
            {
                return Err(bad("a finding in two lists".into()));
            }
            let mut t = t;
            t.implied = implied_by(kb, &t.present);
            out.push(t);
        }
    }
    Ok(out)
}

/// The findings that `present` implies ([`KnowledgeBase::implied`]) that it does not list itself.
fn implied_by(kb: &KnowledgeBase, present: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in present.iter().filter_map(|id| kb.finding_idx(id)).flat_map(|f| kb.implied(f)) {
        let id = &kb.findings[g].id;
        if !present.contains(id) && !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// True and false counts of one kind of finding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// A reader's scores on a set of texts.
#[derive(Debug, Clone, Default)]
pub struct ReadingScore {
    pub n: usize,
    pub present: Counts,
    pub absent: Counts,
    /// Texts with at least one finding read present that the annotation does not have present
    /// (or hedged).
    pub with_false_present: usize,
}

/// What a reader read: (finding id, present) pairs, each finding once.
pub type Read = Vec<(String, bool)>;

/// The full report for one reader.
#[derive(Debug, Clone, Default)]
pub struct ReadingReport {
    pub name: String,
    pub all: ReadingScore,
    pub by_register: BTreeMap<String, ReadingScore>,
    pub by_half: BTreeMap<String, ReadingScore>,
    /// (finding id, count) of the most common false present findings and misses.
    pub false_present: Vec<(String, usize)>,
    pub missed_present: Vec<(String, usize)>,
    pub false_absent: Vec<(String, usize)>,
}

fn score_one(
    t: &ReadingText,
    read: &Read,
) -> (Counts, Counts, Vec<String>, Vec<String>, Vec<String>) {
    let (mut p, mut a) = (Counts::default(), Counts::default());
    let (mut fp, mut miss, mut fa) = (Vec::new(), Vec::new(), Vec::new());
    for (id, present) in read {
        if t.uncertain.contains(id) || (*present && t.implied.contains(id)) {
            continue;
        }
        if *present {
            if t.present.contains(id) {
                p.tp += 1;
            } else {
                p.fp += 1;
                fp.push(id.clone());
            }
        } else if t.absent.contains(id) {
            a.tp += 1;
        } else {
            a.fp += 1;
            fa.push(id.clone());
        }
    }
    for g in &t.present {
        if !read.iter().any(|(id, pr)| id == g && *pr) {
            p.fn_ += 1;
            miss.push(g.clone());
        }
    }
    for g in &t.absent {
        if !read.iter().any(|(id, pr)| id == g && !*pr) {
            a.fn_ += 1;
        }
    }
    (p, a, fp, miss, fa)
}

/// Scores `read` (one reading per text, in order) against the annotations.
pub fn score_reading(name: &str, texts: &[ReadingText], reads: &[Read]) -> ReadingReport {
    let mut r = ReadingReport { name: name.to_string(), ..Default::default() };
    let mut fp: HashMap<String, usize> = HashMap::new();
    let mut miss: HashMap<String, usize> = HashMap::new();
    let mut fa: HashMap<String, usize> = HashMap::new();
    for (t, read) in texts.iter().zip(reads) {
        let (p, a, f, m, x) = score_one(t, read);
        let false_present = !f.is_empty();
        for s in [
            &mut r.all,
            r.by_register.entry(t.register.clone()).or_default(),
            r.by_half.entry(t.half().to_string()).or_default(),
        ] {
            s.n += 1;
            s.present.add(p);
            s.absent.add(a);
            s.with_false_present += usize::from(false_present);
        }
        for id in f {
            *fp.entry(id).or_default() += 1;
        }
        for id in m {
            *miss.entry(id).or_default() += 1;
        }
        for id in x {
            *fa.entry(id).or_default() += 1;
        }
    }
    let top = |m: HashMap<String, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(15);
        v
    };
    r.false_present = top(fp);
    r.missed_present = top(miss);
    r.false_absent = top(fa);
    r
}

impl ReadingScore {
    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            self.n,
            self.present.precision(),
            self.present.recall(),
            self.absent.precision(),
            self.absent.recall(),
            self.with_false_present
        )
    }
}

const HEADER: &str = "| | texts | present precision | present recall | absent precision | absent recall | texts with a false present finding |\n|---|---|---|---|---|---|---|";

/// One table comparing readers, then each reader's detail.
pub fn reading_markdown(reports: &[ReadingReport]) -> String {
    let mut s = String::new();
    let _ =
        writeln!(s, "## Reading benchmark ({} texts)\n", reports.first().map_or(0, |r| r.all.n));
    let _ = writeln!(s, "{HEADER}");
    for r in reports {
        let _ = writeln!(s, "{}", r.all.row(&r.name));
    }
    for r in reports {
        let _ = writeln!(s, "\n### {}\n\n{HEADER}", r.name);
        for (h, sc) in &r.by_half {
            let _ = writeln!(s, "{}", sc.row(&format!("half: {h}")));
        }
        for (g, sc) in &r.by_register {
            let _ = writeln!(s, "{}", sc.row(&format!("register: {g}")));
        }
        let list = |v: &[(String, usize)]| {
            v.iter().map(|(id, n)| format!("{id} ({n})")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(s, "\nMost common false present findings: {}.\n", list(&r.false_present));
        let _ = writeln!(s, "Most common missed present findings: {}.\n", list(&r.missed_present));
        let _ = writeln!(s, "Most common false absent findings: {}.", list(&r.false_absent));
    }
    s
}

/// What the plain phrase matcher reads (exact phrases, the tokeniser's negation).
pub fn read_with_lexicon(kb: &KnowledgeBase, text: &str) -> Read {
    kb.lexicon()
        .findings(text)
        .into_iter()
        .map(|(i, p)| (kb.findings[i as usize].id.clone(), p))
        .collect()
}

/// What a reader reads: findings asserted for the patient, present or absent.
pub fn read_with(kb: &KnowledgeBase, reader: &reading::Reader, text: &str) -> Read {
    let tokens = textfeat::tokenize(text);
    reader
        .read(text, &tokens)
        .asserted()
        .into_iter()
        .map(|(i, p)| (kb.findings[i as usize].id.clone(), p))
        .collect()
}
