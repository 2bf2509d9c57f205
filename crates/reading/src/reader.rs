//! The reader: phrases (exact and variant) and, when word vectors are loaded, the semantic
//! layer, each mention asserted by its context, gathered into one reading per request.

use crate::context::{TokenContext, contexts, contexts_except};
use crate::phrases::{
    PhraseHit, PhraseIndex, Via, is_conjunction, is_finite_copula, is_negation_word,
};
use crate::semantic::SemanticIndex;
use crate::vectors::WordVectors;
use crate::vitals::vitals_in_text;
use textfeat::Token;

/// What the reader needs to know of a finding.
#[derive(Debug, Clone, Default)]
pub struct FindingEntry {
    pub phrases: Vec<String>,
    /// A red-flag finding is read only from its phrases, never from the semantic layer: an
    /// embedding drops the qualifier that makes a finding urgent ("developed a headache" sits
    /// close to "sudden severe headache").
    pub red_flag: bool,
    /// A risk factor (history, habit, medicine) counts when said of the past too.
    pub risk_factor: bool,
    /// A risk factor that is a recent exposure (recent travel, recent antibiotics): said of
    /// long ago, it is not the patient's.
    pub recent: bool,
    /// A finding that is itself about the family (a family history of heart disease): said of
    /// a relative, it is the patient's.
    pub family_history: bool,
    /// The vital sign and threshold that shows it (above, below), read from measurements
    /// written in the text.
    pub vital: Option<(domain::VitalSign, Option<f32>, Option<f32>)>,
    /// Broader findings this one entails (entry numbers): a thunderclap headache is a
    /// headache. A mention of this finding is also a mention of them, with the same assertion
    /// unless it is denied (no thunderclap headache says nothing of headache).
    pub implies: Vec<u32>,
    /// Groups of findings (entry numbers) that together are this one: vomiting and a head
    /// injury said in one text are vomiting after a head injury. Read present, for the
    /// patient and now, when some finding of every group is.
    pub composed_of: Vec<Vec<u32>>,
    /// Phrases that say the finding is absent without a negation ("afebrile", "eating
    /// normally"). Read as the finding absent when asserted; denied or hedged, as nothing.
    pub negatives: Vec<String>,
    /// Broader phrases whose denial denies this finding, though saying them asserts nothing
    /// about it: "no weight change" denies weight loss and weight gain, "weight change" alone
    /// names neither. Read only when denied.
    pub denials: Vec<String>,
}

/// Present, absent or hedged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Polarity {
    Present,
    Absent,
    Uncertain,
}

/// Whose finding it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Patient,
    Family,
}

/// When it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    Current,
    Past,
    Hypothetical,
}

/// A finding's assertion in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assertion {
    pub polarity: Polarity,
    pub subject: Subject,
    pub time: Time,
}

impl Assertion {
    fn of(c: &TokenContext) -> Assertion {
        Assertion {
            polarity: if c.negated {
                Polarity::Absent
            } else if c.uncertain {
                Polarity::Uncertain
            } else {
                Polarity::Present
            },
            subject: if c.family { Subject::Family } else { Subject::Patient },
            time: if c.hypothetical {
                Time::Hypothetical
            } else if c.past {
                Time::Past
            } else {
                Time::Current
            },
        }
    }
}

/// One finding as the text asserts it, with the evidence for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadFinding {
    pub finding: u32,
    pub assertion: Assertion,
    /// How sure the reader is of the finding and its assertion, 0 to 1.
    pub confidence: f32,
    /// Byte offsets of the supporting span in the request's text.
    pub start: u32,
    pub end: u32,
    pub via: Via,
}

impl ReadFinding {
    /// The patient has it now (or, for a risk factor, has had it: the reader reads a risk
    /// factor's past as current).
    pub fn is_present(&self) -> bool {
        self.assertion.polarity == Polarity::Present
            && self.assertion.subject == Subject::Patient
            && self.assertion.time == Time::Current
    }

    /// The patient is said not to have it.
    pub fn is_absent(&self) -> bool {
        self.assertion.polarity == Polarity::Absent
            && self.assertion.subject == Subject::Patient
            && self.assertion.time != Time::Hypothetical
    }
}

/// Everything read in one text: one entry per finding, in text order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub findings: Vec<ReadFinding>,
}

impl Reading {
    /// Findings the patient has (now, or a risk factor of theirs).
    pub fn present(&self) -> impl Iterator<Item = &ReadFinding> {
        self.findings.iter().filter(|f| f.is_present())
    }

    /// Findings the patient is said not to have.
    pub fn absent(&self) -> impl Iterator<Item = &ReadFinding> {
        self.findings.iter().filter(|f| f.is_absent())
    }

    /// (finding, present) for every finding asserted for the patient either way, each once.
    pub fn asserted(&self) -> Vec<(u32, bool)> {
        self.asserted_of(self.findings.iter())
    }

    fn asserted_of<'a>(&self, findings: impl Iterator<Item = &'a ReadFinding>) -> Vec<(u32, bool)> {
        findings
            .filter_map(|f| {
                if f.is_present() {
                    Some((f.finding, true))
                } else if f.is_absent() {
                    Some((f.finding, false))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Reads findings in text. Built once from the knowledge base's phrases (and, optionally, the
/// word vectors), shared by every request.
#[derive(Debug, Clone)]
pub struct Reader {
    phrases: PhraseIndex,
    entries: Vec<FindingEntry>,
    /// The entries shown by a vital sign, in entry order: a measurement is checked against
    /// these alone.
    with_vital: Vec<u32>,
    /// Per entry: every finding it implies (the closure of `FindingEntry::implies`).
    implied: Vec<Vec<u32>>,
    /// The entries made of others (`FindingEntry::composed_of`), in entry order.
    composed: Vec<u32>,
    semantic: Option<SemanticIndex>,
}

/// Confidence of a mention found by its phrase, by a variant of it.
const PHRASE_CONFIDENCE: f32 = 0.95;
const VARIANT_CONFIDENCE: f32 = 0.85;
const SEMANTIC_CONFIDENCE: f32 = 0.7;
/// A hedged finding's confidence is scaled by this.
const HEDGE: f32 = 0.5;

impl Reader {
    pub fn new(entries: Vec<FindingEntry>, vectors: Option<&WordVectors>) -> Reader {
        let mut phrases = PhraseIndex::new();
        for (i, e) in entries.iter().enumerate() {
            for p in &e.phrases {
                phrases.insert(p, i as u32);
            }
            // A negative phrase is entered as a finding number past the entries, a denial
            // phrase past those.
            for p in &e.negatives {
                phrases.insert(p, (entries.len() + i) as u32);
            }
            for p in &e.denials {
                phrases.insert(p, (2 * entries.len() + i) as u32);
            }
        }
        phrases.set_strict(
            (0..entries.len() as u32).filter(|&i| entries[i as usize].red_flag).collect(),
        );
        phrases.add_unlinked();
        phrases.prepare();
        let semantic = vectors.map(|v| SemanticIndex::new(v, &phrases));
        let with_vital =
            (0..entries.len() as u32).filter(|&i| entries[i as usize].vital.is_some()).collect();
        let implied = implied_closure(&entries);
        let composed = (0..entries.len() as u32)
            .filter(|&i| !entries[i as usize].composed_of.is_empty())
            .collect();
        Reader { phrases, entries, with_vital, implied, composed, semantic }
    }

    pub fn has_semantic(&self) -> bool {
        self.semantic.is_some()
    }

    /// The same reader with another cosine bar for the semantic layer (for tuning it).
    pub fn with_semantic_bar(&self, bar: f32) -> Reader {
        let mut r = self.clone();
        if let Some(s) = &mut r.semantic {
            s.min_cosine = bar;
        }
        r
    }

    /// The phrase layer alone (no semantic layer), for comparison.
    pub fn without_semantic(&self) -> Reader {
        Reader {
            phrases: self.phrases.clone(),
            entries: self.entries.clone(),
            with_vital: self.with_vital.clone(),
            implied: self.implied.clone(),
            composed: self.composed.clone(),
            semantic: None,
        }
    }

    /// Reads `tokens` (of `text`, whose byte offsets they carry).
    pub fn read(&self, text: &str, tokens: &[Token]) -> Reading {
        if tokens.is_empty() {
            return Reading::default();
        }
        // "SOB", "N/V": a capitalised abbreviation is read as the word it stands for.
        let expanded = crate::abbrev::expand(text, tokens);
        let tokens = expanded.as_deref().unwrap_or(tokens);
        let ctx = contexts(text, tokens);
        let raw: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        let ids = match &self.semantic {
            Some(sem) => sem.word_ids(&self.phrases, &raw),
            None => self.phrases.word_ids(&raw),
        };
        let mut found = self.phrases.find(&ids, &raw);
        // A misspelt word stands for the phrase word it is a letter away from, but a red flag
        // is read only from its phrase as written.
        if !ids.fixed.is_empty() {
            found.retain(|h| {
                !(self.is_red_flag(h.finding % self.entries.len() as u32)
                    && ids.fixed.iter().any(|&p| h.start <= p && p < h.end))
            });
            for h in &mut found {
                if h.via == Via::Phrase && ids.fixed.iter().any(|&p| h.start <= p && p < h.end) {
                    h.via = Via::Variant;
                }
            }
        }
        // A phrase that starts with a trigger word ("not breathing", "no appetite", "absent
        // pulses") says its finding is there: its first word is the phrase's, not a trigger.
        // Read with its word as an ordinary one, the scope it opened ends with the phrase ("not
        // breathing, lips blue"); a mention inside the phrase keeps the first reading ("non
        // productive cough" denies a productive cough). Never across a list ("no swelling or
        // heat" is not "no heating"), never through a substitute word, nor,
        // unless it is a red flag (safety first: "baby not breathing blue"), when the phrase
        // runs on into another phrase word ("no appetite loss", "no voice changes").
        // A finding of its own that starts straight after it is not a run-on ("not feeding
        // floppy"). Only a negation runs on: a phrase led by another trigger ("previous MI",
        // "history of gallstones") says the same whatever follows it ("previous MI presents
        // with").
        let runs_on = |h: &PhraseHit| {
            ids.stem.get(h.end).is_some_and(|w| w.is_some())
                && !crate::semantic::is_stop(raw[h.end])
                && !found.iter().any(|g| g.start == h.end && g.via != Via::Semantic)
        };
        // Nor when another finding is said between its words ("no tingling sensation in" is
        // no "no sensation in").
        let holds_another = |h: &PhraseHit| {
            found.iter().any(|g| g.finding != h.finding && g.start > h.start && g.end < h.end)
        };
        let led: Vec<(usize, usize)> = found
            .iter()
            .filter(|h| {
                ctx[h.head].trigger
                    && h.via != Via::Semantic
                    && !raw[h.start..h.end].iter().any(|w| is_conjunction(w))
                    && !holds_another(h)
                    && (self.is_red_flag(h.finding)
                        || !is_negation_word(raw[h.start])
                        || !runs_on(h))
            })
            .map(|h| (h.start, h.end))
            .collect();
        // A trigger that is a word of a phrase, not its first ("blackouts without warning",
        // "pain without injury"), belongs to the phrase: it opens no scope over what follows
        // ("blackouts without warning, lightheadedness" is lightheaded).
        let inner: Vec<usize> = found
            .iter()
            .filter(|h| h.via != Via::Semantic && self.is_finding(h.finding) && !h.negated_inside)
            .flat_map(|h| {
                (h.start + 1..h.end).filter(|&k| {
                    ctx[k].trigger && (is_negation_word(raw[k]) || raw[k] == "without")
                })
            })
            .collect();
        let outer = if led.is_empty() && inner.is_empty() {
            None
        } else {
            Some(contexts_except(
                text,
                tokens,
                &led.iter().map(|l| l.0).chain(inner.iter().copied()).collect::<Vec<_>>(),
            ))
        };
        let ctx_of = |h: &PhraseHit| -> &[TokenContext] {
            match &outer {
                Some(o) if !led.iter().any(|&(s, e)| s < h.start && h.end <= e) => o,
                _ => &ctx,
            }
        };
        let mut hits: Vec<(PhraseHit, f32)> = found
            .into_iter()
            .filter(|h| !ctx_of(h)[h.head].trigger)
            // A red-flag finding is never read through a substitute word.
            // (Nor a negative phrase.)
            .filter(|h| {
                h.via != Via::Semantic
                    || (self.is_finding(h.finding) && !self.is_red_flag(h.finding))
            })
            .map(|h| {
                let c = match h.via {
                    Via::Phrase => PHRASE_CONFIDENCE,
                    Via::Variant => VARIANT_CONFIDENCE,
                    Via::Semantic | Via::Umbrella => SEMANTIC_CONFIDENCE,
                };
                (h, c)
            })
            .collect();
        // Measurements written in the text show the findings whose thresholds they meet; and a
        // phrase that ends on the thing measured, said with a measurement well short of its
        // finding's threshold, is no mention of it ("has a temperature of 36.8" is no fever;
        // "fever, temp 36.5 after calpol" still is).
        let measured = vitals_in_text(text);
        if !measured.is_empty() {
            let at_token = |byte: u32| tokens.iter().position(|t| t.start >= byte);
            hits.retain(|(h, _)| {
                let Some((sign, Some(above), None)) =
                    self.entries.get(h.finding as usize).and_then(|e| e.vital)
                else {
                    return true;
                };
                let names_it = h.end > 0
                    && matches!(
                        raw[h.end - 1],
                        "temperature" | "temp" | "temps" | "temperatures" | "pulse" | "rate" | "hr"
                    );
                !(names_it
                    && measured.iter().any(|v| {
                        v.sign == sign
                            && v.value < above - 0.5
                            && at_token(v.start).is_some_and(|k| {
                                k >= h.end
                                    && k <= h.end + 2
                                    && raw[h.end..k].iter().all(|w| {
                                        matches!(
                                            *w,
                                            "of" | "is"
                                                | "was"
                                                | "at"
                                                | "around"
                                                | "about"
                                                | "only"
                                                | "just"
                                        )
                                    })
                            })
                    }))
            });
        }
        for v in measured {
            let Some(at) = tokens.iter().position(|t| t.start == v.start) else { continue };
            for &i in &self.with_vital {
                if let Some((sign, above, below)) = self.entries[i as usize].vital
                    && sign == v.sign
                    && above.is_none_or(|a| v.value > a)
                    && below.is_none_or(|b| v.value < b)
                {
                    hits.push((
                        PhraseHit {
                            finding: i,
                            start: at,
                            end: at + 1,
                            via: Via::Phrase,
                            head: at,
                            negated_inside: false,
                        },
                        PHRASE_CONFIDENCE,
                    ));
                }
            }
        }
        let hits = self.drop_covered(hits, &raw);
        self.gather(tokens, ctx_of, hits)
    }

    /// A finding number, not a negative or denial phrase's (those are numbered past the
    /// entries).
    fn is_finding(&self, f: u32) -> bool {
        (f as usize) < self.entries.len()
    }

    /// A denial phrase's number (see [`Reader::new`]).
    fn is_denial(&self, f: u32) -> bool {
        f as usize >= 2 * self.entries.len()
    }

    fn is_red_flag(&self, f: u32) -> bool {
        self.entries.get(f as usize).is_some_and(|e| e.red_flag)
    }

    /// Drops a mention that lies inside a longer mention of another finding when that one
    /// explains it: a finding it implies ("no thunderclap headache" denies no headache), a
    /// semantic guess inside an exact phrase ("black poo" is not pale stools), a broad denial
    /// phrase inside a narrower finding's ("no peripheral edema" is no leg swelling, not no
    /// swelling anywhere), or a red flag
    /// inside the exact phrase of a finding that is not one ("stops breathing at night" is
    /// sleep apnoea, not a respiratory arrest), a phrase turned round with a linking verb onto
    /// the very words another finding's exact phrase says, or the words a phrase saying another
    /// finding is fine starts with ("gaining weight nicely").
    fn drop_covered(&self, hits: Vec<(PhraseHit, f32)>, raw: &[&str]) -> Vec<(PhraseHit, f32)> {
        let covered = |h: &PhraseHit| {
            hits.iter().any(|(g, _)| {
                let longer = g.end - g.start > h.end - h.start;
                g.finding != h.finding
                    && g.start <= h.start
                    && h.end <= g.end
                    && ((longer && self.implied.get(g.finding as usize).is_some_and(|i| i.contains(&h.finding)))
                        || (h.via == Via::Semantic && g.via != Via::Semantic)
                        || (longer && self.is_denial(h.finding) && self.is_finding(g.finding))
                        // A finding inside its own negative phrase ("smoker" in "ex smoker").
                        || (longer && g.finding as usize == h.finding as usize + self.entries.len())
                        // A finding's words that a phrase saying another is fine goes on
                        // from: "gaining weight nicely" is a baby growing well, no weight gain.
                        || (longer && g.start == h.start && !self.is_finding(g.finding) && !self.is_denial(g.finding) && self.is_finding(h.finding) && !self.is_red_flag(h.finding))
                        // A phrase that another finding's goes on to say what it is like: "breath
                        // smells of pear drops" is no bad breath.
                        || (longer
                            && g.start == h.start
                            && g.via == Via::Phrase
                            && self.is_finding(g.finding)
                            && self.is_finding(h.finding)
                            && matches!(raw.get(h.end), Some(&"of" | &"like"))
                            && !self.implied.get(g.finding as usize).is_some_and(|i| i.contains(&h.finding)))
                        || (longer && g.via == Via::Phrase && self.is_red_flag(h.finding) && self.is_finding(g.finding) && !self.is_red_flag(g.finding))
                        // "X is Y", said exactly by one finding's phrase and only turned round
                        // into another's "Y X": "tummy looks swollen" is distension, not the
                        // bloating of "swollen tummy".
                        || (g.start == h.start
                            && g.end == h.end
                            && g.via == Via::Phrase
                            && h.via == Via::Variant
                            && raw[h.start..h.end].iter().any(|w| is_finite_copula(w))
                            && self.is_finding(g.finding)
                            && self.is_finding(h.finding)
                            && !self.is_red_flag(h.finding)
                            && !self.implied.get(g.finding as usize).is_some_and(|i| i.contains(&h.finding)))
                        // One word that ends another finding's exact phrase, as its head noun
                        // after a modifier: "hay fever" is no fever, "feel faint" no faint.
                        || (g.via == Via::Phrase && self.is_finding(g.finding) && self.is_finding(h.finding) && h.end - h.start == 1 && g.end - g.start == 2 && g.start < h.start && h.end == g.end))
            })
        };
        // A colour said alone describes the patient only when no noun follows it: "tired and
        // pale" is pallor; "pale stools", "blue inhaler" and "a round pale mass" are not.
        let colour_of_a_thing = |h: &PhraseHit| {
            h.end - h.start == 1
                && raw.get(h.start).is_some_and(|w| is_colour(w))
                && raw.get(h.end).is_some_and(|w| {
                    w.len() > 1
                        && !w.starts_with(|c: char| c.is_ascii_digit())
                        && !matches!(
                            *w,
                            "and"
                                | "or"
                                | "but"
                                | "with"
                                | "in"
                                | "at"
                                | "since"
                                | "today"
                                | "now"
                                | "too"
                                | "as"
                                | "for"
                                | "when"
                                | "all"
                                | "lately"
                                | "recently"
                                | "looking"
                        )
                })
        };
        let keep: Vec<bool> =
            hits.iter().map(|(h, _)| !covered(h) && !colour_of_a_thing(h)).collect();
        hits.into_iter().zip(keep).filter_map(|(h, k)| k.then_some(h)).collect()
    }

    /// One entry per finding: present if any mention of the patient's asserts it now (the
    /// safer reading when a text says both), else absent, else hedged, else the mention's own
    /// (family, past or hypothetical), which counts for neither.
    fn gather<'c>(
        &self,
        tokens: &[Token],
        ctx_of: impl Fn(&PhraseHit) -> &'c [TokenContext],
        hits: Vec<(PhraseHit, f32)>,
    ) -> Reading {
        let mut out: Vec<ReadFinding> = Vec::with_capacity(hits.len());
        let mut implied: Vec<ReadFinding> = Vec::new();
        let n = self.entries.len() as u32;
        for (mut h, confidence) in hits {
            let kind = h.finding / n;
            h.finding %= n;
            let negative = kind == 1;
            let ctx = ctx_of(&h);
            let mut assertion = Assertion::of(&ctx[h.head]);
            // A pseudo-negation opens no scope ("no change in the pain"), but a phrase that
            // starts straight after it is denied all the same ("no change in bowel habit").
            if h.head > 0 && !ctx[h.head - 1].trigger && is_negation_word(&tokens[h.head - 1].text)
            {
                assertion.polarity = Polarity::Absent;
            }
            // A negation between a phrase's words denies it ("speech isnt slurred").
            if h.negated_inside {
                assertion.polarity = Polarity::Absent;
            }
            // "Afebrile" says no fever; "not afebrile" or "maybe afebrile" says nothing.
            if negative {
                if assertion.polarity != Polarity::Present {
                    continue;
                }
                assertion.polarity = Polarity::Absent;
            }
            // "No weight change" denies weight loss; "weight change" says nothing of it.
            if kind == 2 && assertion.polarity != Polarity::Absent {
                continue;
            }
            let entry = &self.entries[h.finding as usize];
            // A recent exposure said of long ago ("in India ten years ago") is not recent.
            if entry.risk_factor
                && assertion.time == Time::Past
                && !(entry.recent && ctx[h.head].long_ago)
            {
                assertion.time = Time::Current;
            }
            if entry.family_history && assertion.subject == Subject::Family {
                assertion.subject = Subject::Patient;
            }
            let confidence = if assertion.polarity == Polarity::Uncertain {
                confidence * HEDGE
            } else {
                confidence
            };
            let f = ReadFinding {
                finding: h.finding,
                assertion,
                confidence,
                start: tokens[h.start].start,
                end: tokens[h.end - 1].end,
                via: if kind == 2 { Via::Umbrella } else { h.via },
            };
            if f.assertion.polarity != Polarity::Absent {
                implied.extend(
                    self.implied[f.finding as usize]
                        .iter()
                        .map(|&p| ReadFinding { finding: p, ..f }),
                );
            }
            merge(&mut out, f);
        }
        for f in implied {
            merge(&mut out, f);
        }
        self.compose(&mut out);
        out.sort_by_key(|f| f.start);
        Reading { findings: out }
    }

    /// Adds each finding whose parts are all read present for the patient now, with the
    /// weakest part's confidence and the span of the part said last. A part that is denied,
    /// hedged, a relative's or not current composes nothing.
    fn compose(&self, out: &mut Vec<ReadFinding>) {
        for &c in &self.composed {
            let entry = &self.entries[c as usize];
            let said = |f: u32| out.iter().find(|o| o.finding == f && o.is_present()).copied();
            if said(c).is_some() {
                continue;
            }
            let parts: Option<Vec<ReadFinding>> =
                entry.composed_of.iter().map(|g| g.iter().find_map(|&f| said(f))).collect();
            let Some(parts) = parts else { continue };
            let last = parts.iter().max_by_key(|p| p.start).copied().expect("two parts or more");
            let confidence = parts.iter().map(|p| p.confidence).fold(f32::INFINITY, f32::min);
            merge(out, ReadFinding { finding: c, confidence, ..last });
        }
    }
}

/// A colour word, which names the colour of the word after it when one follows.
fn is_colour(w: &str) -> bool {
    matches!(
        w,
        "pale" | "yellow" | "white" | "grey" | "gray" | "blue" | "red" | "green" | "black" | "dark"
    )
}

/// Adds a mention to the reading, or keeps the better of it and the finding's earlier one.
fn merge(out: &mut Vec<ReadFinding>, f: ReadFinding) {
    match out.iter_mut().find(|o| o.finding == f.finding) {
        Some(o) => {
            if rank(&f) < rank(o) || (rank(&f) == rank(o) && f.confidence > o.confidence) {
                *o = f;
            }
        }
        None => out.push(f),
    }
}

/// Every finding each entry implies, directly or through another (a green sputum is a
/// productive cough, which is a cough).
fn implied_closure(entries: &[FindingEntry]) -> Vec<Vec<u32>> {
    (0..entries.len())
        .map(|i| {
            let mut all: Vec<u32> = Vec::new();
            let mut todo: Vec<u32> = entries[i].implies.clone();
            while let Some(p) = todo.pop() {
                if p as usize != i && !all.contains(&p) {
                    all.push(p);
                    todo.extend(entries[p as usize].implies.iter().copied());
                }
            }
            all
        })
        .collect()
}

/// Which of two mentions of a finding wins: present, then absent, then hedged, then the rest.
fn rank(f: &ReadFinding) -> u8 {
    if f.is_present() {
        0
    } else if f.is_absent() {
        1
    } else if f.assertion.polarity == Polarity::Uncertain && f.assertion.subject == Subject::Patient
    {
        2
    } else {
        3
    }
}
