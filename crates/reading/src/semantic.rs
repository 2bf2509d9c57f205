//! The semantic layer: a word no phrase uses is read as the phrase word nearest in meaning,
//! through static word vectors, so that wording no phrase has ("hazy vision" for "blurred
//! vision", "dripping with perspiration" for "dripping with sweat") still lands on its finding.
//!
//! It substitutes at most one word of a phrase of two or more words; the other words must be
//! the phrase's own. Comparing whole spans with whole phrases instead was measured and dropped:
//! with vectors distilled word by word, a span lands on phrases that share its body part but
//! not its finding ("hands and feet" on "spots on hands and feet"), and precision fell below
//! 0.6 on the reading benchmark at any bar that added recall. Negation, family and time come
//! from the token context, never from the vectors ("fever" sits close to "no fever"), and
//! red-flag findings are never read through a substitute (the reader drops them): an embedding
//! drops the qualifier that makes a finding urgent.
//!
//! Cost: the first time a word is seen, one dot product per phrase word; then a lookup of the
//! word in the table and an atomic load.

use crate::phrases::{PhraseIndex, WordIds};
use crate::vectors::{WordVectors, dot};
use std::sync::{Arc, OnceLock};

/// The lowest cosine at which a word stands for a phrase word. On the reading benchmark's tune
/// half 0.80 and 0.83 read alike; over all texts 0.83 keeps the present precision of the
/// phrases alone (0.944) where 0.80 lost half a point for two findings in a thousand.
pub const MIN_COSINE: f32 = 0.83;

/// Words that carry no finding of their own: function words, time, degree and filler.
pub fn is_stop(w: &str) -> bool {
    matches!(
        w,
        "a" | "an"
            | "the"
            | "and"
            | "or"
            | "of"
            | "in"
            | "on"
            | "at"
            | "to"
            | "for"
            | "with"
            | "by"
            | "from"
            | "up"
            | "as"
            | "is"
            | "am"
            | "are"
            | "was"
            | "were"
            | "be"
            | "been"
            | "being"
            | "it"
            | "its"
            | "this"
            | "that"
            | "these"
            | "those"
            | "i"
            | "im"
            | "ive"
            | "id"
            | "me"
            | "my"
            | "mine"
            | "you"
            | "your"
            | "he"
            | "him"
            | "his"
            | "she"
            | "her"
            | "hers"
            | "we"
            | "our"
            | "they"
            | "them"
            | "their"
            | "theyre"
            | "hes"
            | "shes"
            | "has"
            | "have"
            | "had"
            | "having"
            | "do"
            | "does"
            | "did"
            | "doing"
            | "get"
            | "gets"
            | "got"
            | "getting"
            | "go"
            | "goes"
            | "going"
            | "went"
            | "keep"
            | "keeps"
            | "kept"
            | "feel"
            | "feels"
            | "felt"
            | "feeling"
            | "like"
            | "really"
            | "very"
            | "so"
            | "too"
            | "quite"
            | "bit"
            | "little"
            | "lot"
            | "lots"
            | "some"
            | "any"
            | "all"
            | "just"
            | "also"
            | "still"
            | "now"
            | "then"
            | "than"
            | "there"
            | "here"
            | "what"
            | "which"
            | "who"
            | "when"
            | "where"
            | "why"
            | "how"
            | "can"
            | "could"
            | "would"
            | "will"
            | "shall"
            | "should"
            | "may"
            | "might"
            | "must"
            | "day"
            | "days"
            | "week"
            | "weeks"
            | "month"
            | "months"
            | "year"
            | "years"
            | "hour"
            | "hours"
            | "today"
            | "yesterday"
            | "tonight"
            | "night"
            | "morning"
            | "evening"
            | "since"
            | "ago"
            | "last"
            | "past"
            | "recently"
            | "about"
            | "around"
            | "after"
            | "before"
            | "again"
            | "ever"
            | "always"
            | "sometimes"
            | "often"
            | "usually"
            | "time"
            | "times"
            | "because"
            | "but"
            | "if"
            | "though"
            | "although"
            | "while"
            | "until"
            | "into"
            | "out"
            | "off"
            | "over"
            | "under"
            | "more"
            | "most"
            | "less"
            | "much"
            | "many"
            | "one"
            | "two"
            | "three"
            | "first"
            | "started"
            | "start"
            | "starting"
            | "thing"
            | "things"
            | "something"
            | "anything"
            | "nothing"
            | "everything"
            | "think"
            | "thought"
            | "know"
            | "said"
            | "says"
            | "say"
            | "tell"
            | "told"
            | "want"
            | "wanted"
            | "need"
            | "needs"
            | "make"
            | "makes"
            | "made"
            | "back"
            | "well"
            | "good"
            | "bad"
            | "worse"
            | "better"
            | "new"
            | "old"
            | "yo"
            | "y"
            | "mum"
            | "mom"
            | "dad"
            | "son"
            | "daughter"
            | "baby"
            | "husband"
            | "wife"
            | "partner"
            | "doctor"
            | "gp"
            | "please"
            | "help"
            | "thanks"
            | "hi"
            | "hello"
            | "ok"
            | "okay"
            | "yes"
            | "no"
            | "not"
            | "dont"
            | "cant"
            | "wont"
            | "didnt"
            | "doesnt"
            | "isnt"
            | "wasnt"
            | "havent"
            | "right"
            | "left"
            | "side"
            | "both"
            | "every"
            | "each"
            | "other"
            | "another"
            | "same"
            | "way"
            | "even"
    )
}

#[derive(Debug)]
pub struct SemanticIndex {
    /// The cosine bar (see [`MIN_COSINE`]).
    pub min_cosine: f32,
    dim: usize,
    /// Unit vectors of the phrase words, row-major, and their word numbers.
    vecs: Arc<[f32]>,
    ids: Arc<[u32]>,
    /// The whole table (some 12 MB), shared: a reader is cloned to try another bar or layer.
    vectors: Arc<WordVectors>,
    /// Per row of the table, its word's nearest phrase words once computed. Keyed by row, not
    /// by word, it is bounded by the table, needs no lock to read, and a word the table lacks
    /// costs nothing (it has no nearest).
    cache: Box<[OnceLock<Nearest>]>,
    /// Per row of the table, whether its word is a stop word: decided once here rather than
    /// for every word of every request.
    stop: Arc<[bool]>,
    /// Per row of the table, its word's numbers in the phrase index (stemmed and light, as
    /// [`PhraseIndex::word_ids`] gives them), found once here: a word of a request that the
    /// table has (nearly every one) is then looked up once, not folded and looked up in three
    /// tables.
    numbers: Arc<[(Option<u32>, Option<u32>)]>,
}

/// The two phrase words nearest to a word, with their cosines.
type Nearest = [Option<(u32, f32)>; 2];

/// A cache with room for every row of `vectors`, nothing in it (a clone starts afresh too).
fn empty_cache(vectors: &WordVectors) -> Box<[OnceLock<Nearest>]> {
    (0..vectors.rows()).map(|_| OnceLock::new()).collect()
}

impl Clone for SemanticIndex {
    fn clone(&self) -> Self {
        SemanticIndex {
            min_cosine: self.min_cosine,
            dim: self.dim,
            vecs: Arc::clone(&self.vecs),
            ids: Arc::clone(&self.ids),
            vectors: Arc::clone(&self.vectors),
            cache: empty_cache(&self.vectors),
            stop: Arc::clone(&self.stop),
            numbers: Arc::clone(&self.numbers),
        }
    }
}

impl SemanticIndex {
    /// Over the words of `phrases` that the table has (stop words left out).
    pub fn new(vectors: &WordVectors, phrases: &PhraseIndex) -> SemanticIndex {
        let mut vecs = Vec::new();
        let mut ids = Vec::new();
        for (id, form) in phrases.forms() {
            if form.is_empty() || is_stop(form) {
                continue;
            }
            if let Some(v) = vectors.get(form) {
                vecs.extend_from_slice(v);
                ids.push(id);
            }
        }
        let mut stop = vec![false; vectors.rows()];
        let mut numbers = vec![(None, None); vectors.rows()];
        let mut stemmed = String::new();
        for (word, row) in vectors.words() {
            stop[row] = is_stop(word);
            numbers[row] = phrases.word_id(word, &mut stemmed);
        }
        SemanticIndex {
            min_cosine: MIN_COSINE,
            dim: vectors.dim(),
            vecs: vecs.into(),
            ids: ids.into(),
            vectors: Arc::new(vectors.clone()),
            cache: empty_cache(vectors),
            stop: stop.into(),
            numbers: numbers.into(),
        }
    }

    /// How many phrase words it can substitute for.
    pub fn words(&self) -> usize {
        self.ids.len()
    }

    /// The two phrase words nearest to the word at `row` of the table, computed once per word.
    fn nearest(&self, row: usize) -> Nearest {
        *self.cache[row].get_or_init(|| self.compare(self.vectors.vector(row)))
    }

    /// The two phrase words nearest to the unit vector `v`.
    fn compare(&self, v: &[f32]) -> Nearest {
        let mut found: Nearest = [None, None];
        for (k, p) in self.vecs.chunks_exact(self.dim).enumerate() {
            let c = dot(v, p);
            if found[0].is_none_or(|b| c > b.1) {
                found[1] = found[0];
                found[0] = Some((self.ids[k], c));
            } else if found[1].is_none_or(|b| c > b.1) {
                found[1] = Some((self.ids[k], c));
            }
        }
        found
    }

    /// For each content word (not a stop word, number or clause end), the phrase word it may
    /// stand for: the nearest other than its own, when its cosine reaches the bar.
    pub fn substitutes(&self, raw: &[&str], stem: &[Option<u32>]) -> Vec<Option<u32>> {
        raw.iter()
            .zip(stem)
            .map(
                |(w, s)| if *w == "." { None } else { self.substitute(w, self.vectors.row(w), *s) },
            )
            .collect()
    }

    /// The text's word numbers with their substitutes: what [`PhraseIndex::word_ids`] and then
    /// [`SemanticIndex::substitutes`] give, for `phrases`, the index this one was built over.
    /// A word the table has is looked up there once; another is folded and looked up in the
    /// phrase index, and has no substitute.
    pub fn word_ids(&self, phrases: &PhraseIndex, raw: &[&str]) -> WordIds {
        let n = raw.len();
        let mut ids = WordIds {
            stem: Vec::with_capacity(n),
            light: Vec::with_capacity(n),
            alt: Vec::with_capacity(n),
            fixed: Vec::new(),
        };
        let mut stemmed = String::new();
        for w in raw {
            let (stem, light, alt) = if *w == "." {
                (None, None, None)
            } else if let Some(row) = self.vectors.row(w) {
                let (stem, light) = self.numbers[row];
                (stem, light, self.substitute(w, Some(row), stem))
            } else {
                let (mut stem, mut light) = phrases.word_id(w, &mut stemmed);
                // A word that is no English word and in no phrase may be a misspelt one: read
                // it as the phrase word a letter away, if only one such is an English word
                // ("headacke" is "headache", not the misspelling "headake"; "caughing" may be
                // "coughing" or "laughing", and is read as neither).
                if stem.is_none() {
                    let mut right: Option<(&str, Option<u32>)> = None;
                    let mut many = false;
                    for f in phrases.misspellings(w).filter(|f| self.vectors.row(f).is_some()) {
                        let id = phrases.word_id(f, &mut stemmed).0;
                        match right {
                            Some((_, other)) if other != id => many = true,
                            _ => right = Some((f, id)),
                        }
                    }
                    if let Some((f, _)) = right.filter(|_| !many) {
                        (stem, light) = phrases.word_id(f, &mut stemmed);
                        ids.fixed.push(ids.stem.len());
                    }
                }
                (stem, light, None)
            };
            ids.stem.push(stem);
            ids.light.push(light);
            ids.alt.push(alt);
        }
        ids
    }

    /// The phrase word that the word `w` (not a clause end), at `row` of the table if it has
    /// it, may stand for, its own number being `stem`.
    fn substitute(&self, w: &str, row: Option<usize>, stem: Option<u32>) -> Option<u32> {
        if w.len() < 3 || w.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        // A word the table lacks has no nearest.
        let row = row?;
        if self.stop[row] {
            return None;
        }
        let [a, b] = self.nearest(row);
        let other = if a.is_some_and(|a| Some(a.0) == stem) { b } else { a };
        other.filter(|&(_, cos)| cos >= self.min_cosine).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use textfeat::tokenize;

    /// A `TRWV` table of 3-dimensional vectors.
    fn table(words: &[(&str, [i8; 3])]) -> WordVectors {
        let mut words = words.to_vec();
        words.sort_by_key(|(w, _)| *w);
        let mut b = b"TRWV".to_vec();
        for v in [1u32, 3, words.len() as u32] {
            b.extend(v.to_le_bytes());
        }
        for (w, _) in &words {
            b.push(w.len() as u8);
            b.extend(w.as_bytes());
        }
        for (_, v) in &words {
            b.extend(v.iter().map(|x| *x as u8));
        }
        for _ in &words {
            b.extend(1f32.to_le_bytes());
        }
        WordVectors::from_bytes(&b).unwrap()
    }

    #[test]
    fn word_ids_at_once_are_word_ids_then_substitutes() {
        let mut phrases = PhraseIndex::new();
        phrases.insert("blurred vision", 0);
        phrases.insert("rash", 1);
        phrases.insert("the shakes", 2);
        let vectors = table(&[
            ("blurred", [9, 1, 0]),
            ("hazy", [9, 2, 0]),
            ("vision", [0, 9, 0]),
            ("rashes", [0, 0, 9]),
            ("the", [9, 1, 0]),
            ("blurry", [9, 1, 1]),
        ]);
        let sem = SemanticIndex::new(&vectors, &phrases);
        for text in [
            "hazy vision",
            "blurry vision and rashes",
            "the hazy 2 shakes. blurred",
            "unknown words only",
            "diarrhoea",
        ] {
            let tokens = tokenize(text);
            let raw: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
            let mut two_steps = phrases.word_ids(&raw);
            two_steps.alt = sem.substitutes(&raw, &two_steps.stem);
            let at_once = sem.word_ids(&phrases, &raw);
            assert_eq!(
                (&at_once.stem, &at_once.light, &at_once.alt),
                (&two_steps.stem, &two_steps.light, &two_steps.alt),
                "{text}"
            );
        }
        let tokens = tokenize("hazy vision");
        let raw: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert!(sem.word_ids(&phrases, &raw).alt[0].is_some(), "hazy stands for blurred");
    }
}
