//! The phrase index: every knowledge-base phrase as folded words, found in text contiguously,
//! with a few words between its words ("coughing up thick phlegm" for "coughing up phlegm"), or
//! as a two-word phrase turned round ("pain in my lower back" for "back pain").

use crate::fold::{fold_both, fold_light, fold_word, light};
use std::collections::HashMap;
use std::sync::OnceLock;
use textfeat::tokenize;

/// Word -> number. Every word of every request is looked up here, and SipHash (the standard
/// map's) was a tenth of a reading; foldhash is seeded too, and several times quicker on short
/// words.
pub(crate) type WordMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// How a phrase was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// Its words in order, side by side (after folding).
    Phrase,
    /// Its words in order with other words between, or a two-word phrase turned round.
    Variant,
    /// The nearest meaning of a span (the semantic layer).
    Semantic,
    /// A denied umbrella term ("no urinary symptoms"): set by the reader, never by the index.
    Umbrella,
}

/// A phrase found at tokens `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhraseHit {
    pub finding: u32,
    pub start: usize,
    pub end: usize,
    pub via: Via,
    /// The first token of the phrase's own first word (the token its assertion is read at).
    pub head: usize,
    /// A negation stands between the phrase's own words ("speech isnt slurred", "inhaler
    /// every hour not helping" has none of its own: "not" is the phrase's).
    pub negated_inside: bool,
}

/// At most this many words between two words of a phrase.
const MAX_GAP: usize = 2;

/// Words that may stand between a word and a body part when a two-word phrase is turned
/// round: "pain in my lower back", "swelling of the left ankle", "in agony with his ear".
/// Not "behind": a pain behind
/// the ear is not an earache.
fn is_connector(w: &str) -> bool {
    matches!(
        w,
        "in" | "on"
            | "of"
            | "around"
            | "under"
            | "at"
            | "over"
            | "across"
            | "to"
            | "from"
            | "near"
            | "inside"
            | "down"
            | "with"
    )
}

/// The side of the body, as a note writes it between a word and the part it is said of.
fn is_side(w: &str) -> bool {
    matches!(w, "left" | "right" | "l" | "r" | "lt" | "rt" | "bilateral")
}

fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "my" | "the"
            | "his"
            | "her"
            | "their"
            | "your"
            | "a"
            | "both"
            | "left"
            | "right"
            | "lower"
            | "upper"
            | "middle"
            | "top"
            | "bottom"
            | "front"
            | "back"
            | "side"
            | "whole"
            | "one"
    )
}

/// Words that deny what follows them.
pub(crate) fn is_negation_word(w: &str) -> bool {
    matches!(
        w,
        "no" | "not"
            | "never"
            | "isnt"
            | "wasnt"
            | "arent"
            | "werent"
            | "dont"
            | "doesnt"
            | "didnt"
            | "hasnt"
            | "havent"
            | "hadnt"
            | "wont"
            | "cannot"
    )
}

pub(crate) fn is_conjunction(w: &str) -> bool {
    matches!(w, "or" | "and" | "nor")
}

/// Verbs that join a thing to what it is like: "my neck is stiff", "chest feels tight".
fn is_copula(w: &str) -> bool {
    matches!(
        w,
        "is" | "was"
            | "are"
            | "were"
            | "been"
            | "be"
            | "feels"
            | "feel"
            | "felt"
            | "feeling"
            | "looks"
            | "look"
            | "looked"
            | "looking"
            | "seems"
            | "seem"
            | "seemed"
            | "gets"
            | "get"
            | "got"
            | "getting"
            | "went"
            | "gone"
            | "goes"
            | "turned"
            | "became"
            | "become"
            | "becoming"
            | "isnt"
            | "wasnt"
            | "arent"
            | "werent"
    )
}

/// Linking verbs that cannot be a noun or a participle ("a tight feeling", "winded getting
/// dressed"): what stands right before one is its subject.
pub(crate) fn is_finite_copula(w: &str) -> bool {
    matches!(
        w,
        "is" | "was"
            | "are"
            | "were"
            | "isnt"
            | "wasnt"
            | "arent"
            | "werent"
            | "feels"
            | "felt"
            | "looks"
            | "looked"
            | "seems"
            | "seemed"
            | "gets"
            | "got"
            | "went"
            | "turned"
            | "became"
    )
}

/// Words that say how a part of the body is: "throat sore", "knee swollen".
fn is_state(w: &str) -> bool {
    matches!(
        w,
        "sore"
            | "swollen"
            | "stiff"
            | "painful"
            | "itchy"
            | "numb"
            | "tender"
            | "puffy"
            | "blocked"
            | "runny"
            | "bloated"
            | "hot"
            | "red"
            | "tight"
            | "weak"
            | "blurry"
            | "blurred"
            | "dry"
            | "raw"
            | "aching"
            | "achy"
            | "throbbing"
            | "pounding"
            | "racing"
    )
}

/// Words that may stand between a copula and what it says: "is really quite stiff".
fn is_degree(w: &str) -> bool {
    matches!(
        w,
        "very"
            | "really"
            | "so"
            | "quite"
            | "super"
            | "extremely"
            | "incredibly"
            | "a"
            | "bit"
            | "little"
            | "all"
            | "still"
            | "now"
            | "also"
            | "more"
            | "too"
            | "pretty"
            | "has"
            | "have"
            | "had"
            | "not"
            | "doesnt"
            | "dont"
            | "didnt"
            | "hasnt"
            | "havent"
            | "never"
            | "always"
            | "constantly"
            | "properly"
            | "kind"
            | "of"
            | "kinda"
            | "abit"
    )
}

/// Where the first word must stand in "is (really) stiff" after token `j`: past at most four
/// words, at least one a copula, the rest degree words.
fn predicate_end(raw: &[&str], mut j: usize) -> Option<usize> {
    let mut copula = false;
    for _ in 0..4 {
        let w = *raw.get(j)?;
        if is_copula(w) {
            copula = true;
        } else if !is_degree(w) {
            break;
        }
        j += 1;
    }
    copula.then_some(j)
}

/// Where a predicate starting at token `at` says `head`: at `at`, or as the second of two
/// words joined by "and" or "or" ("my neck is stiff and painful").
fn said_at(ids: &[Option<u32>], raw: &[&str], at: usize, head: u32) -> Option<usize> {
    if ids.get(at) == Some(&Some(head)) {
        Some(at)
    } else if matches!(raw.get(at + 1), Some(&"and" | &"or"))
        && ids.get(at + 2) == Some(&Some(head))
    {
        Some(at + 2)
    } else {
        None
    }
}

/// Words a gap may not hold: clause ends and words that join or change what follows. A
/// negation in a gap ("speech isnt slurred") is allowed: the reader reads the finding absent.
fn blocks_gap(w: &str) -> bool {
    matches!(
        w,
        "." | "and"
            | "or"
            | "but"
            | "if"
            | "without"
            | "denies"
            | "nor"
            | "with"
            | "after"
            | "before"
            | "when"
            | "since"
    )
}

/// The word numbers of a text: stemmed, and lightly folded (for phrases of one word).
#[derive(Debug, Clone, Default)]
pub struct WordIds {
    pub stem: Vec<Option<u32>>,
    pub light: Vec<Option<u32>>,
    /// For a word in no phrase: the phrase word nearest in meaning, if near enough (set by the
    /// semantic layer; empty when there is none).
    pub alt: Vec<Option<u32>>,
    /// The positions of misspelt words read as the phrase word they stand for.
    pub fixed: Vec<usize>,
}

/// A phrase in the index.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    finding: u32,
    /// For a phrase of one word, its light word number.
    light: Option<u32>,
    words: Box<[u32]>,
    /// For a phrase whose linking verb was left out: where it stood. Its words are then read
    /// side by side, with only linking and degree words where the verb stood.
    unlinked_at: Option<u8>,
}

/// Words a [`Candidate`] holds inline; a longer phrase is read from its entry.
const INLINE_WORDS: usize = 4;

/// One phrase under its rarest word: its entry, its first word and its words by rarity (up to
/// [`INLINE_WORDS`]), so most phrases are rejected without reading their entry.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    entry: u32,
    first: u32,
    len: u32,
    rarest: [u32; INLINE_WORDS],
}

/// Per word number, the phrases whose rarest word it is, in one flat table: word `w`'s are
/// `items[start[w]..start[w + 1]]`, in the order inserted.
#[derive(Debug, Clone, Default)]
struct ByRarest {
    start: Vec<u32>,
    items: Vec<Candidate>,
}

#[derive(Debug, Default, Clone)]
pub struct PhraseIndex {
    words: WordMap<u32>,
    /// Lightly folded words of the phrases of one word.
    light: WordMap<u32>,
    /// Every phrase, in the order inserted (the order they are tried in).
    entries: Vec<Entry>,
    /// Per word number: the phrases starting with it (indices into `entries`).
    by_first: Vec<Vec<u32>>,
    /// The phrases by their rarest word, each phrase under one word ([`ByRarest`]). A text
    /// looks up only its own words here, and a phrase's rarest words are the ones a text most
    /// often lacks: the text's first words would lead to four times as many phrases ("pain"
    /// starts 272). Made on first use, once every phrase is in.
    by_rarest: OnceLock<ByRarest>,
    /// Per word number: two-word phrases ending with it, as (first word, finding).
    by_second: Vec<Vec<(u32, u32)>>,
    /// Per word number: the first text form it was made from (for its word vector).
    forms: Vec<String>,
    /// Findings read only from their phrases as written, never from a list that shares a
    /// word across a filler or a verb (red flags).
    strict: Vec<u32>,
    /// Every text form of the phrases' words, with its word number.
    spelled: HashMap<String, u32>,
    /// The phrase words a misspelt word may be read as (see [`PhraseIndex::misspellings`]),
    /// as (text form, word number). Made on first use.
    spellable: OnceLock<Spellable>,
}

impl PhraseIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, w: String) -> u32 {
        if let Some(&n) = self.words.get(&w) {
            return n;
        }
        let n = self.by_first.len() as u32;
        self.words.insert(w, n);
        self.by_first.push(Vec::new());
        self.by_second.push(Vec::new());
        self.forms.push(String::new());
        n
    }

    /// Every word number with the text form it was first made from.
    pub fn forms(&self) -> impl Iterator<Item = (u32, &str)> {
        self.forms.iter().enumerate().map(|(i, f)| (i as u32, f.as_str()))
    }

    pub fn insert(&mut self, phrase: &str, finding: u32) {
        let raw: Vec<String> =
            tokenize(phrase).into_iter().filter(|t| t.text != ".").map(|t| t.text).collect();
        let words: Vec<u32> = raw
            .iter()
            .map(|t| {
                let n = self.intern(fold_word(t));
                if self.forms[n as usize].is_empty() {
                    self.forms[n as usize] = t.clone();
                }
                if !self.spelled.contains_key(t) {
                    self.spelled.insert(t.clone(), n);
                    self.spellable.take();
                }
                n
            })
            .collect();
        let Some(&first) = words.first() else { return };
        if words.len() == 2 && !self.by_second[words[1] as usize].contains(&(first, finding)) {
            self.by_second[words[1] as usize].push((first, finding));
        }
        let light = (words.len() == 1).then(|| {
            let n = self.light.len() as u32;
            *self.light.entry(fold_light(&raw[0])).or_insert(n)
        });
        let entry = Entry { finding, light, words: words.into_boxed_slice(), unlinked_at: None };
        if !self.by_first[first as usize].iter().any(|&e| self.entries[e as usize] == entry) {
            self.by_first[first as usize].push(self.entries.len() as u32);
            self.entries.push(entry);
            self.by_rarest.take();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds, for each phrase of three words or more with a linking verb between its words
    /// ("my stomach is killing me"), the phrase without it, so that "my stomach's killing me"
    /// and "my stomach has been killing me" are read too. Not when the shorter words are
    /// already another phrase ("heart racing" is not "heart is racing"), nor for a red flag,
    /// read only as written. Call once every phrase is in and the red flags are marked.
    pub fn add_unlinked(&mut self) {
        let linking: Vec<u32> = ["is", "are", "was", "were", "am"]
            .iter()
            .filter_map(|w| self.words.get(&fold_word(w)).copied())
            .collect();
        let mut new = Vec::new();
        for e in &self.entries {
            let n = e.words.len();
            if n < 3 || self.strict.contains(&e.finding) {
                continue;
            }
            if let Some(k) = (1..n - 1).find(|&k| linking.contains(&e.words[k])) {
                let mut words = e.words.to_vec();
                words.remove(k);
                if !self.by_first[words[0] as usize]
                    .iter()
                    .any(|&x| *self.entries[x as usize].words == *words)
                {
                    new.push((e.finding, words, k));
                }
            }
        }
        for (finding, words, k) in new {
            let first = words[0];
            if self.by_first[first as usize]
                .iter()
                .any(|&x| *self.entries[x as usize].words == *words)
            {
                continue;
            }
            self.by_first[first as usize].push(self.entries.len() as u32);
            self.entries.push(Entry {
                finding,
                light: None,
                words: words.into_boxed_slice(),
                unlinked_at: Some(k as u8),
            });
        }
        self.by_rarest.take();
    }

    /// Marks findings as read only from their phrases as written (see `strict`).
    pub fn set_strict(&mut self, findings: Vec<u32>) {
        self.strict = findings;
        self.spellable.take();
    }

    /// The phrase words (as written in a phrase) that `w`, a word of five letters or more
    /// that is in no phrase, may be a misspelling of: those a letter away (one letter more,
    /// less, changed, or two side by side swapped), "temperature" for "temperture". The
    /// caller asks only about words that are not English words and picks among the answers;
    /// the reader reads no red flag through such a word.
    pub fn misspellings<'a>(&'a self, w: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let ok = w.len() >= 5
            && w.len() <= 20
            && w.bytes().all(|b| b.is_ascii_lowercase())
            && !crate::semantic::is_stop(w);
        let found = if ok { self.spellable().near(w) } else { Vec::new() };
        found.into_iter().map(|i| self.spellable().words[i as usize].0.as_str())
    }

    fn spellable(&self) -> &Spellable {
        self.spellable.get_or_init(|| {
            let mut words: Vec<(String, u32)> = self
                .spelled
                .iter()
                .filter(|&(f, _)| f.len() >= 4 && f.bytes().all(|b| b.is_ascii_lowercase()))
                .map(|(f, &i)| (f.clone(), i))
                .collect();
            words.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let mut by_key: WordMap<Vec<u32>> = WordMap::default();
            for (i, (f, _)) in words.iter().enumerate() {
                for key in std::iter::once(f.clone()).chain(deletions(f)) {
                    let list = by_key.entry(key).or_default();
                    if list.last() != Some(&(i as u32)) {
                        list.push(i as u32);
                    }
                }
            }
            Spellable { words, by_key }
        })
    }

    /// The phrase word that `w` is the only misspelling of (see [`PhraseIndex::misspellings`]).
    pub fn misspelt<'a>(&'a self, w: &'a str) -> Option<&'a str> {
        let mut found: Option<&str> = None;
        for f in self.misspellings(w) {
            match found {
                Some(other) if self.spelled.get(other) != self.spelled.get(f) => return None,
                _ => found = Some(f),
            }
        }
        found
    }

    /// Makes the index of phrases by their rarest word now rather than on the first text read.
    pub(crate) fn prepare(&self) {
        self.by_rarest();
        self.spellable();
    }

    fn by_rarest(&self) -> &ByRarest {
        self.by_rarest.get_or_init(|| {
            let mut phrases_with = vec![0u32; self.by_first.len()];
            for e in &self.entries {
                for &w in &e.words {
                    phrases_with[w as usize] += 1;
                }
            }
            let mut under: Vec<Vec<Candidate>> = vec![Vec::new(); self.by_first.len()];
            for (i, e) in self.entries.iter().enumerate() {
                let mut words = e.words.to_vec();
                words.sort_by_key(|&w| phrases_with[w as usize]);
                if let Some(&rarest) = words.first() {
                    let mut inline = [rarest; INLINE_WORDS];
                    for (slot, &w) in inline.iter_mut().zip(&words) {
                        *slot = w;
                    }
                    under[rarest as usize].push(Candidate {
                        entry: i as u32,
                        first: e.words[0],
                        len: words.len() as u32,
                        rarest: inline,
                    });
                }
            }
            let mut table = ByRarest {
                start: Vec::with_capacity(under.len() + 1),
                items: Vec::with_capacity(self.entries.len()),
            };
            for list in under {
                table.start.push(table.items.len() as u32);
                table.items.extend(list);
            }
            table.start.push(table.items.len() as u32);
            table
        })
    }

    /// The phrases all of whose words the text has (`has`, one bit per word number), as (first
    /// word, index), sorted: by first word, then in the order inserted.
    fn candidates(&self, has: &[u64]) -> Vec<(u32, u32)> {
        let table = self.by_rarest();
        let in_text = |x: u32| has[x as usize / 64] & (1 << (x % 64)) != 0;
        let mut out = Vec::new();
        for (block, &bits) in has.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let w = block * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let (from, to) = (table.start[w] as usize, table.start[w + 1] as usize);
                for c in &table.items[from..to] {
                    // The rarest words first: the text most often lacks them.
                    if c.rarest.iter().all(|&x| in_text(x))
                        && (c.len as usize <= INLINE_WORDS
                            || self.entries[c.entry as usize].words.iter().all(|&x| in_text(x)))
                    {
                        out.push((c.first, c.entry));
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The word numbers of the text's words (`None` for words in no phrase).
    pub fn word_ids(&self, raw: &[&str]) -> WordIds {
        let mut ids = WordIds {
            stem: Vec::with_capacity(raw.len()),
            light: Vec::with_capacity(raw.len()),
            alt: Vec::new(),
            fixed: Vec::new(),
        };
        let mut stemmed = String::new();
        for w in raw {
            let (stem, light) =
                if *w == "." { (None, None) } else { self.word_id(w, &mut stemmed) };
            ids.stem.push(stem);
            ids.light.push(light);
        }
        ids
    }

    /// The stemmed and light word numbers of one word (not a clause end), the light one only
    /// for a word in some phrase; `stemmed` is a buffer to fold into.
    pub(crate) fn word_id(&self, w: &str, stemmed: &mut String) -> (Option<u32>, Option<u32>) {
        let spelled = fold_both(w, stemmed);
        let stem = self.words.get(stemmed.as_str()).copied();
        (stem, if stem.is_some() { self.light.get(light(&spelled)).copied() } else { None })
    }

    /// Every phrase found in the text's words `raw` (normalised; "." at clause ends), whose
    /// numbers are `ids` ([`PhraseIndex::word_ids`]).
    pub fn find(&self, word_ids: &WordIds, raw: &[&str]) -> Vec<PhraseHit> {
        let ids = &word_ids.stem;
        let n = ids.len();
        let mut out = Vec::new();
        let alt = (!word_ids.alt.is_empty()).then_some(word_ids.alt.as_slice());
        // The words this text has (its own and their substitutes), one bit each: a phrase with
        // a word the text lacks is never tried, as most phrases sharing a first word with the
        // text ("my", "pain") are not.
        let mut has = vec![0u64; self.by_first.len().div_ceil(64)];
        for &id in ids.iter().chain(alt.unwrap_or(&[])).flatten() {
            has[id as usize / 64] |= 1 << (id % 64);
        }
        let candidates = self.candidates(&has);
        // The first words of the candidates, one bit each: most of the text's words start none.
        let mut starts = vec![0u64; has.len()];
        for &(f, _) in &candidates {
            starts[f as usize / 64] |= 1 << (f % 64);
        }
        // The candidates starting with `first`, in the order inserted.
        let starting = |first: u32| {
            let some = starts[first as usize / 64] & (1 << (first % 64)) != 0;
            let from = if some {
                candidates.partition_point(|&(f, _)| f < first)
            } else {
                candidates.len()
            };
            candidates[from..]
                .iter()
                .take_while(move |&&(f, _)| f == first)
                .map(|&(_, e)| &self.entries[e as usize])
        };
        for i in 0..n {
            // A phrase whose first word is a near synonym of the text's word.
            if let Some(first) = alt.and_then(|a| a[i]) {
                for e in starting(first) {
                    if e.words.len() >= 2
                        && let Some((end, _, _, _)) = match_from(ids, None, raw, i, &e.words)
                    {
                        out.push(PhraseHit {
                            finding: e.finding,
                            start: i,
                            end,
                            via: Via::Semantic,
                            head: i,
                            negated_inside: false,
                        });
                    }
                }
            }
            let Some(first) = ids[i] else { continue };
            for e in starting(first) {
                if e.light.is_some() && e.light != word_ids.light[i] {
                    continue;
                }
                if let Some(k) = e.unlinked_at {
                    // "like a weight going down my arm" is no "weight is going down".
                    if i > 0 && matches!(raw[i - 1], "a" | "an") {
                        continue;
                    }
                    if let Some((end, negated_inside)) =
                        match_unlinked(ids, raw, i, &e.words, k as usize)
                    {
                        out.push(PhraseHit {
                            finding: e.finding,
                            start: i,
                            end,
                            via: Via::Variant,
                            head: i,
                            negated_inside,
                        });
                    }
                    continue;
                }
                if let Some((end, gaps, subs, negated_inside)) = match_from(ids, alt, raw, i, &e.words)
                    // A phrase of two words is read only side by side (or turned round): with
                    // words between, "wiped out" would read "wiped his mouth out". A side is
                    // the one word it may hold: "swollen left calf", "stiff R shoulder".
                    && (gaps == 0 || e.words.len() >= 3 || (gaps == 1 && is_side(raw[i + 1])))
                {
                    let via = if subs > 0 {
                        Via::Semantic
                    } else if gaps == 0 {
                        Via::Phrase
                    } else {
                        Via::Variant
                    };
                    out.push(PhraseHit {
                        finding: e.finding,
                        start: i,
                        end,
                        via,
                        head: i,
                        negated_inside,
                    });
                }
            }
            // "swollen and painful knee": the word after the list goes with each word in it.
            // Not past an article: "a cough and a headache" is two things, no cough headache.
            if i + 3 < n
                && is_conjunction(raw[i + 1])
                && ids[i + 2].is_some()
                && !matches!(raw[i + 2], "a" | "an" | "the")
            {
                for &e in &self.by_first[first as usize] {
                    let e = &self.entries[e as usize];
                    if e.words.len() == 2
                        && e.unlinked_at.is_none()
                        && ids[i + 3] == Some(e.words[1])
                    {
                        out.push(PhraseHit {
                            finding: e.finding,
                            start: i,
                            end: i + 4,
                            via: Via::Variant,
                            head: i,
                            negated_inside: false,
                        });
                    }
                }
            }
            // "my head and my stomach hurt", "my throat and ears are sore": what is said of the
            // last thing of a list of two is said of the first too. Only with a possessive or
            // article before the second thing, or a linking verb after it, and only where the
            // second thing with what is said is itself a phrase ("stomach hurt").
            if i + 3 < n && is_conjunction(raw[i + 1]) {
                let z = i
                    + 2
                    + usize::from(matches!(
                        raw[i + 2],
                        "my" | "his" | "her" | "their" | "the" | "your" | "our"
                    ));
                let said_of_z = |k: usize| z + 1 < n && (k > z + 1 || raw[i + 2] != raw[z]);
                if z + 1 < n && ids[z].is_some() {
                    // The thing first: "head hurts" said as "head and my stomach hurt".
                    let at = predicate_end(raw, z + 1).unwrap_or(z + 1);
                    for &e in &self.by_first[first as usize] {
                        let e = &self.entries[e as usize];
                        if e.words.len() == 2
                            && e.unlinked_at.is_none()
                            && !self.strict.contains(&e.finding)
                            && ids.get(at) == Some(&Some(e.words[1]))
                            && said_of_z(at)
                            && self.exactly(&[ids[z].unwrap(), e.words[1]]).next().is_some()
                        {
                            out.push(PhraseHit {
                                finding: e.finding,
                                start: i,
                                end: at + 1,
                                via: Via::Variant,
                                head: i,
                                negated_inside: false,
                            });
                        }
                    }
                    // What is said first: "sore throat" said as "throat and ears are sore".
                    if let Some(at) = predicate_end(raw, z + 1) {
                        for &(head, finding) in &self.by_second[first as usize] {
                            if !self.strict.contains(&finding)
                                && ids.get(at) == Some(&Some(head))
                                && (self.exactly(&[head, ids[z].unwrap()]).next().is_some()
                                    || self.exactly(&[ids[z].unwrap(), head]).next().is_some())
                            {
                                let negated_inside =
                                    raw[z + 1..at].iter().any(|w| is_negation_word(w));
                                out.push(PhraseHit {
                                    finding,
                                    start: i,
                                    end: at + 1,
                                    via: Via::Variant,
                                    head: i,
                                    negated_inside,
                                });
                            }
                        }
                    }
                }
            }
            // "ear pain or discharge": the first word of "ear pain" also goes with the word
            // after the conjunction, so "ear discharge" is said too; but not a word that is a
            // finding by itself ("chest pain or cough" is no chesty cough).
            if i >= 3
                && is_conjunction(raw[i - 1])
                && ids[i - 2].is_some()
                && !self.is_phrase_alone(first)
            {
                for &(head, finding) in &self.by_second[first as usize] {
                    if ids[i - 3] == Some(head) && ids[i - 2] != Some(first) {
                        out.push(PhraseHit {
                            finding,
                            start: i - 3,
                            end: i + 1,
                            via: Via::Variant,
                            head: i - 3,
                            negated_inside: false,
                        });
                    }
                }
            }
            // A two-word phrase turned round: the second word, then what stands after it, then
            // the first word. What stands after it is the text's, the same for every phrase
            // ending with this word: read it once.
            let turned = &self.by_second[first as usize];
            if turned.is_empty() {
                continue;
            }
            if i + 1 < n && is_connector(raw[i + 1]) {
                // "pain in my lower back": a connector, up to three fillers, the first word (the
                // first of these tokens that is it).
                let from = i + 2;
                let fillers = raw[from..].iter().take(3).take_while(|w| is_filler(w)).count();
                let tail = &ids[from..(from + fillers + 1).min(n)];
                // "the joints in my hands are swollen": the place, then what the thing is like.
                let place = from + fillers;
                // The place may end on a filler ("at the back is stiff").
                let predicate = if fillers > 0 && place < n && is_copula(raw[place]) {
                    predicate_end(raw, place)
                } else {
                    (place < n && !blocks_gap(raw[place]))
                        .then(|| predicate_end(raw, place + 1))
                        .flatten()
                };
                // "ache in the middle of my chest", "pain at the back of my head": a part of a
                // place ("middle", "back", "top"), "of", up to two fillers, the place.
                let of_the_place = (fillers > 0
                    && place + 1 < n
                    && raw[place] == "of"
                    && matches!(
                        raw[place - 1],
                        "middle"
                            | "back"
                            | "top"
                            | "bottom"
                            | "front"
                            | "side"
                            | "sides"
                            | "base"
                            | "centre"
                            | "center"
                            | "rest"
                            | "inside"
                            | "outside"
                            | "part"
                            | "area"
                    ))
                .then(|| {
                    let from = place + 1;
                    from..(from + 3).min(n)
                });
                for &(head, finding) in turned {
                    // "pain at the back of my head" names where the pain is, not a back pain;
                    // so does "pain at my back passage".
                    if let Some(k) = tail.iter().position(|&id| id == Some(head))
                        && !matches!(
                            raw.get(from + k + 1),
                            Some(
                                &"of"
                                    | &"passage"
                                    | &"teeth"
                                    | &"tooth"
                                    | &"infection"
                                    | &"infections"
                            )
                        )
                    {
                        out.push(PhraseHit {
                            finding,
                            start: i,
                            end: from + k + 1,
                            via: Via::Variant,
                            head: i,
                            negated_inside: false,
                        });
                    } else if let Some(at) = predicate.and_then(|at| said_at(ids, raw, at, head)) {
                        let negated_inside = raw[place..at].iter().any(|w| is_negation_word(w));
                        out.push(PhraseHit {
                            finding,
                            start: i,
                            end: at + 1,
                            via: Via::Variant,
                            head: i,
                            negated_inside,
                        });
                    } else if let Some(at) = of_the_place.clone().and_then(|mut r| {
                        r.find(|&at| {
                            ids[at] == Some(head) && raw[place + 1..at].iter().all(|w| is_filler(w))
                        })
                    }) {
                        out.push(PhraseHit {
                            finding,
                            start: i,
                            end: at + 1,
                            via: Via::Variant,
                            head: i,
                            negated_inside: false,
                        });
                    }
                }
            } else if let Some(at) = predicate_end(raw, i + 1) {
                // "my neck is really stiff", "pain wasnt severe" (a negation in the span makes
                // the reader read it absent).
                for &(head, finding) in turned {
                    if let Some(at) = said_at(ids, raw, at, head) {
                        let negated_inside = raw[i + 1..at].iter().any(|w| is_negation_word(w));
                        out.push(PhraseHit {
                            finding,
                            start: i,
                            end: at + 1,
                            via: Via::Variant,
                            head: i,
                            negated_inside,
                        });
                    }
                }
            }
        }
        self.elided(ids, raw, &mut out);
        out
    }

    /// Whether the word numbered `w` is a phrase by itself ("cough").
    fn is_phrase_alone(&self, w: u32) -> bool {
        self.by_first[w as usize].iter().any(|&e| self.entries[e as usize].words.len() == 1)
    }

    /// The findings whose phrase is exactly `words`.
    fn exactly<'a>(&'a self, words: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
        self.by_first[words[0] as usize]
            .iter()
            .map(|&e| &self.entries[e as usize])
            .filter(move |e| *e.words == *words)
            .map(|e| e.finding)
    }

    /// A phrase said once for two words in a list: "loss of appetite or weight" is also a
    /// loss of weight, "blood in urine or stool" blood in stool, "faecal or urinary
    /// incontinence" faecal incontinence. The other word takes the place of the phrase's last
    /// word (or first, when it stands before). Only from an exact phrase of two or more words,
    /// and not with a word that is a finding by itself ("chest pain or cough").
    fn elided(&self, ids: &[Option<u32>], raw: &[&str], out: &mut Vec<PhraseHit>) {
        let n = ids.len();
        let usable = |j: usize| {
            ids[j].filter(|&w| !self.is_phrase_alone(w) && !crate::semantic::is_stop(raw[j]))
        };
        let mut seq: Vec<u32> = Vec::new();
        let found = out.len();
        for k in 0..found {
            let h = out[k];
            if h.via != Via::Phrase
                || h.end - h.start < 2
                || ids[h.start..h.end].iter().any(Option::is_none)
            {
                continue;
            }
            if h.end + 1 < n
                && is_conjunction(raw[h.end])
                && let Some(w) = usable(h.end + 1)
            {
                seq.clear();
                seq.extend(ids[h.start..h.end - 1].iter().flatten());
                seq.push(w);
                for finding in self.exactly(&seq) {
                    push_new(
                        out,
                        PhraseHit {
                            finding,
                            start: h.start,
                            end: h.end + 2,
                            via: Via::Variant,
                            head: h.start,
                            negated_inside: false,
                        },
                    );
                }
            }
            if h.start >= 2
                && is_conjunction(raw[h.start - 1])
                && let Some(w) = usable(h.start - 2)
            {
                seq.clear();
                seq.push(w);
                seq.extend(ids[h.start + 1..h.end].iter().flatten());
                for finding in self.exactly(&seq) {
                    push_new(
                        out,
                        PhraseHit {
                            finding,
                            start: h.start - 2,
                            end: h.end,
                            via: Via::Variant,
                            head: h.start - 2,
                            negated_inside: false,
                        },
                    );
                }
            }
        }
    }
}

/// Adds `hit` unless the same finding is already found over the same tokens (the older list
/// forms in [`PhraseIndex::find`] may have found it).
/// The phrase words a misspelt word may stand for: every phrase word (lower-case ASCII, four
/// letters or more), sorted by length and then alphabetically, and each of them under itself
/// and under every form with one letter dropped. Two words one letter apart (one added,
/// dropped or changed, or two side by side swapped) always share such a key, so a word's
/// candidates are the words under its own keys: a few look-ups, not a scan of every word.
#[derive(Debug, Clone, Default)]
struct Spellable {
    words: Vec<(String, u32)>,
    by_key: WordMap<Vec<u32>>,
}

impl Spellable {
    /// The positions in `words` of the words one letter away from `w`, in `words` order.
    fn near(&self, w: &str) -> Vec<u32> {
        let mut found: Vec<u32> = std::iter::once(w.to_owned())
            .chain(deletions(w))
            .filter_map(|key| self.by_key.get(&key))
            .flatten()
            .copied()
            .filter(|&i| {
                let f = &self.words[i as usize].0;
                f != w && one_edit_apart(f.as_bytes(), w.as_bytes())
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// `w` with one letter dropped, each way (ASCII).
fn deletions(w: &str) -> impl Iterator<Item = String> + '_ {
    (0..w.len()).map(move |i| format!("{}{}", &w[..i], &w[i + 1..]))
}

/// Whether `a` and `b` differ by one letter added, dropped or changed, or two letters side by
/// side swapped.
fn one_edit_apart(a: &[u8], b: &[u8]) -> bool {
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (x, y) = (&a[p..], &b[p..]);
    match x.len() as isize - y.len() as isize {
        0 => {
            !x.is_empty()
                && (x[1..] == y[1..]
                    || (x.len() >= 2 && x[0] == y[1] && x[1] == y[0] && x[2..] == y[2..]))
        }
        1 => x[1..] == *y,
        -1 => *x == y[1..],
        _ => false,
    }
}

fn push_new(out: &mut Vec<PhraseHit>, hit: PhraseHit) {
    if !out.iter().any(|g| g.finding == hit.finding && g.start == hit.start && g.end == hit.end) {
        out.push(hit);
    }
}

/// Matches `words` from token `i` side by side, except that up to three linking and degree
/// words may stand before `words[k]` ("my stomach has been killing me"). Returns the end
/// (exclusive) and whether those words hold a negation.
fn match_unlinked(
    ids: &[Option<u32>],
    raw: &[&str],
    i: usize,
    words: &[u32],
    k: usize,
) -> Option<(usize, bool)> {
    let mut at = i;
    let mut negated = false;
    for (m, &w) in words.iter().enumerate().skip(1) {
        let mut j = at + 1;
        if m == k {
            while j < ids.len()
                && j <= at + 3
                && ids[j] != Some(w)
                && (is_copula(raw[j]) || is_degree(raw[j]))
            {
                negated |= is_negation_word(raw[j]);
                j += 1;
            }
            // Nothing in the verb's place: only where it was run into the word before
            // ("stomach's", written "stomachs"), or before a word that says how a part of the
            // body is, as notes and phone messages write it ("throat sore", "knee swollen").
            if j == at + 1 && !raw[at].ends_with('s') && !(j < raw.len() && is_state(raw[j])) {
                return None;
            }
        }
        if ids.get(j) != Some(&Some(w)) {
            return None;
        }
        at = j;
    }
    Some((at + 1, negated))
}

/// Matches `words` from token `i`: each next word within [`MAX_GAP`] tokens of the last, the
/// gap holding no blocking word; with `alt`, one word of the phrase may be matched by a near
/// synonym. Returns the end (exclusive), the number of gap tokens and of substitutions, and
/// whether a gap holds a negation.
fn match_from(
    ids: &[Option<u32>],
    alt: Option<&[Option<u32>]>,
    raw: &[&str],
    i: usize,
    words: &[u32],
) -> Option<(usize, usize, usize, bool)> {
    let mut at = i;
    let mut gaps = 0;
    let mut subs = 0;
    let mut negated = false;
    for &w in &words[1..] {
        let mut j = at + 1;
        let mut skipped = 0;
        loop {
            if j >= ids.len() || skipped > MAX_GAP {
                return None;
            }
            if ids[j] == Some(w) {
                // "back tooth is throbbing" is no "back is throbbing": before a linking verb
                // a gap may hold only degree words, or it holds the verb's own subject.
                if skipped > 0
                    && is_finite_copula(raw[j])
                    && !raw[j - skipped..j].iter().all(|g| is_degree(g) || is_negation_word(g))
                {
                    return None;
                }
                break;
            }
            if subs == 0 && alt.is_some_and(|a| a[j] == Some(w)) {
                subs += 1;
                break;
            }
            if blocks_gap(raw[j]) {
                return None;
            }
            negated |= is_negation_word(raw[j]);
            skipped += 1;
            j += 1;
        }
        gaps += skipped;
        at = j;
    }
    (gaps <= MAX_GAP).then_some((at + 1, gaps, subs, negated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> PhraseIndex {
        let mut p = PhraseIndex::new();
        p.insert("coughing up phlegm", 0);
        p.insert("back pain", 1);
        p.insert("chest pain", 2);
        p.insert("vomiting", 3);
        p.insert("spotting", 4);
        p.insert("stiff neck", 5);
        p.insert("ear pain", 6);
        p.insert("ear discharge", 7);
        p.insert("swollen knee", 8);
        p.insert("painful knee", 9);
        p
    }

    /// What `p` finds in `text`, in the order found.
    fn hits_in(p: &PhraseIndex, text: &str) -> Vec<PhraseHit> {
        let tokens = tokenize(text);
        let raw: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        p.find(&p.word_ids(&raw), &raw)
    }

    fn found(text: &str) -> Vec<(u32, Via)> {
        hits_in(&index(), text).into_iter().map(|h| (h.finding, h.via)).collect()
    }

    #[test]
    fn a_gap_before_a_linking_verb_holds_no_subject() {
        let mut p = index();
        p.insert("back is throbbing", 10);
        let read =
            |text: &str| hits_in(&p, text).into_iter().map(|h| h.finding).collect::<Vec<_>>();
        assert!(read("my back tooth is throbbing").is_empty());
        assert_eq!(read("my back really is throbbing"), [10]);
        assert_eq!(read("my back is throbbing"), [10]);
    }

    #[test]
    fn contiguous_inflected_gapped_and_turned() {
        assert_eq!(found("she keeps vomiting"), [(3, Via::Phrase)]);
        assert_eq!(found("coughing up thick green phlegm"), [(0, Via::Variant)]);
        assert_eq!(found("pain in my lower back"), [(1, Via::Variant)]);
        assert!(found("pain at the back of my head").is_empty());
        assert_eq!(found("pain in the chest"), [(2, Via::Variant)]);
        assert_eq!(found("pain in back"), [(1, Via::Variant)]);
        assert_eq!(found("pain in my back and chest"), [(1, Via::Variant)]);
        assert!(found("pain in my left lower middle back").is_empty());
        assert!(found("coughing up nothing but phlegm").is_empty());
        assert!(found("back not pain").is_empty());
        assert!(found("chest wall pain").is_empty());
        assert!(found("back. pain").is_empty());
        assert!(found("red spots").is_empty());
        assert_eq!(found("some spotting"), [(4, Via::Phrase)]);
        assert!(found("back and chest, pain").is_empty());
    }

    #[test]
    fn a_two_word_phrase_may_hold_the_side_of_the_body() {
        assert_eq!(found("swollen left knee"), [(8, Via::Variant)]);
        assert_eq!(found("stiff R neck"), [(5, Via::Variant)]);
        assert!(found("swollen old knee").is_empty());
        assert!(found("swollen left lower knee").is_empty());
    }

    #[test]
    fn a_word_shared_by_two_phrases_in_a_list() {
        assert_eq!(found("ear pain or discharge"), [(6, Via::Phrase), (7, Via::Variant)]);
        assert_eq!(found("ear pain and discharge"), [(6, Via::Phrase), (7, Via::Variant)]);
        assert_eq!(found("ear pain, then discharge"), [(6, Via::Phrase)]);
        assert_eq!(found("swollen and painful knee"), [(8, Via::Variant), (9, Via::Phrase)]);
        // A word that is a finding by itself is not joined to the first phrase's head.
        let mut p = index();
        p.insert("chest cough", 11);
        p.insert("cough", 12);
        let hits: Vec<u32> =
            hits_in(&p, "chest pain or cough").into_iter().map(|h| h.finding).collect();
        assert_eq!(hits, [2, 12]);
        // Past an article the list is of two things: "a cough and a headache".
        let mut p = index();
        p.insert("a", 13);
        p.insert("cough headache", 14);
        let hits: Vec<u32> =
            hits_in(&p, "a cough and a headache").into_iter().map(|h| h.finding).collect();
        assert!(!hits.contains(&14));
    }

    #[test]
    fn a_phrase_said_once_for_two_words() {
        let mut p = PhraseIndex::new();
        p.insert("loss of appetite", 0);
        p.insert("loss of weight", 1);
        p.insert("urinary incontinence", 2);
        p.insert("faecal incontinence", 3);
        p.insert("cough", 4);
        p.insert("loss of cough", 5);
        let read = |text: &str| -> Vec<u32> {
            let mut f: Vec<u32> = hits_in(&p, text).into_iter().map(|h| h.finding).collect();
            f.sort();
            f
        };
        assert_eq!(read("loss of appetite or weight"), [0, 1]);
        assert_eq!(read("fecal or urinary incontinence"), [2, 3]);
        assert_eq!(read("loss of appetite or cough"), [0, 4], "a finding by itself is not joined");
        assert_eq!(read("loss of appetite, weight"), [0]);
    }

    #[test]
    fn said_of_a_part_of_a_place() {
        let p = index();
        assert_eq!(found("pain in the middle of my back"), vec![(1, Via::Variant)]);
        assert_eq!(found("pain at the bottom of her back"), vec![(1, Via::Variant)]);
        assert_eq!(found("pain in the middle of my chest"), vec![(2, Via::Variant)]);
        assert!(hits_in(&p, "pain in the middle of the night").is_empty());
    }

    #[test]
    fn a_misspelt_word() {
        let mut p = PhraseIndex::new();
        p.insert("temperature", 0);
        p.insert("pneumonia", 1);
        p.insert("seizure", 2);
        p.insert("fever", 3);
        p.insert("fevers", 3);
        assert_eq!(p.misspelt("temperture"), Some("temperature"));
        assert_eq!(p.misspelt("pnuemonia"), Some("pneumonia"));
        assert!(
            matches!(p.misspelt("feverr"), Some("fever" | "fevers")),
            "{:?}",
            p.misspelt("feverr")
        );
        assert_eq!(p.misspelt("siezure"), Some("seizure"));
        // Not a short word.
        assert_eq!(p.misspelt("fevr"), None);
        assert!(
            one_edit_apart(b"abcd", b"abdc")
                && one_edit_apart(b"abcd", b"abd")
                && !one_edit_apart(b"abcd", b"abcd")
        );
    }

    #[test]
    fn said_of_the_last_of_a_list_of_two() {
        let mut p = PhraseIndex::new();
        p.insert("head hurts", 0);
        p.insert("stomach hurts", 1);
        p.insert("sore throat", 2);
        p.insert("sore ears", 3);
        p.insert("chest hurts", 4);
        p.set_strict(vec![4]);
        let at = |t: &str| {
            let mut f: Vec<u32> = hits_in(&p, t).iter().map(|h| h.finding).collect();
            f.sort();
            f.dedup();
            f
        };
        assert_eq!(at("my head and my stomach hurt"), vec![0, 1]);
        assert_eq!(at("my throat and ears are sore"), vec![2, 3]);
        // Only where the last thing with what is said is a phrase ("arm hurts" is none).
        assert!(at("my head and my arm hurt").is_empty());
        // Never for a finding read only from its phrases as written.
        assert_eq!(at("my chest and my stomach hurt"), vec![1]);
    }

    #[test]
    fn a_linking_verb_left_out_or_run_in() {
        let mut p = PhraseIndex::new();
        p.insert("stomach is killing me", 0);
        p.insert("heart racing", 1);
        p.insert("heart is racing", 2);
        p.insert("stomach is sore", 3);
        p.insert("lips are blue", 4);
        p.set_strict(vec![4]);
        p.add_unlinked();
        let at = |t: &str| hits_in(&p, t).iter().map(|h| h.finding).collect::<Vec<_>>();
        assert_eq!(at("my stomach has been killing me"), vec![0]);
        assert_eq!(at("my stomachs killing me"), vec![0]);
        assert!(at("my stomach killing me").is_empty());
        assert_eq!(at("stomach sore"), vec![3]);
        assert!(at("a stomach has been killing me").is_empty());
        // A red flag is read only as written.
        assert!(at("lips blue").is_empty());
        // "heart racing" is already a phrase: not also "heart is racing".
        assert_eq!(at("my heart racing"), vec![1]);
    }

    #[test]
    fn said_of_with_a_copula() {
        assert_eq!(found("my neck is really stiff"), [(5, Via::Variant)]);
        assert_eq!(found("neck feels a bit stiff"), [(5, Via::Variant)]);
        assert_eq!(found("neck isnt stiff"), [(5, Via::Variant)]);
        assert!(found("neck and stiff").is_empty());
        assert!(found("neck is very very very very stiff").is_empty());
        assert!(found("neck really stiff").is_empty());
        assert_eq!(found("my knee is swollen and painful"), [(8, Via::Variant), (9, Via::Variant)]);
        assert!(found("my knee is swollen and my neck hurts").iter().all(|h| h.0 != 9));
    }

    #[test]
    fn said_of_a_place_with_a_copula() {
        assert_eq!(found("the neck on my left side is really stiff"), [(5, Via::Variant)]);
        assert_eq!(found("the neck at the back is stiff"), [(5, Via::Variant)]);
        assert_eq!(found("the neck in my photo isnt stiff"), [(5, Via::Variant)]);
        assert!(found("the neck in my photo and stiff").is_empty());
        assert!(found("neck in the photo. is stiff").is_empty());
    }

    #[test]
    fn phrases_inserted_after_a_reading_are_found() {
        let mut p = index();
        let tokens = tokenize("sore throat and chest pain");
        let raw: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(p.find(&p.word_ids(&raw), &raw).len(), 1);
        p.insert("sore throat", 10);
        let hits: Vec<u32> =
            p.find(&p.word_ids(&raw), &raw).into_iter().map(|h| h.finding).collect();
        assert_eq!(hits, [10, 2]);
    }
}
