//! A deterministic phrase matcher: finds known phrases in text, negation-aware.
//!
//! It needs no model, so the red-flag rules can still run when every model is down.

use crate::tokens::{Token, tokenize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a for the word index: the keys are short words of our own phrases, looked up
/// once per token of every request, where the standard SipHash cost more than the lookup.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A phrase found in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexiconMatch {
    /// The id the phrase was registered with (a finding index).
    pub id: u32,
    /// False when the phrase lies in a negation scope ("no rash").
    pub present: bool,
}

/// Phrases indexed by their first word. Every word of every phrase is interned (a number per
/// distinct folded word), so reading a text costs one lookup per token, and comparing a phrase
/// with the text compares numbers.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    words: HashMap<String, u32, BuildHasherDefault<Fnv>>,
    /// Per word number: the phrases starting with that word, as (word numbers, id).
    by_first: Vec<Vec<(Vec<u32>, u32)>>,
    len: usize,
}

/// Light plural folding so "headaches" finds "headache" and "rashes" finds "rash": a final
/// "s" (not of "ss", "us", "is") and then a final "e" go, from words of more than three
/// letters. Applied to text and phrases alike, so both sides agree; the shared reading's
/// folding (`reading::fold`) strips the same way.
pub fn fold(w: &str) -> &str {
    let mut w = w;
    if w.len() > 3
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w = &w[..w.len() - 1];
    }
    if w.len() > 3 && w.ends_with('e') {
        w = &w[..w.len() - 1];
    }
    w
}

impl Lexicon {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a phrase for an id. Phrases are normalised like text.
    pub fn insert(&mut self, phrase: &str, id: u32) {
        let words: Vec<u32> = tokenize(phrase)
            .into_iter()
            .filter(|t| t.text != ".")
            .map(|t| self.intern(fold(&t.text)))
            .collect();
        let Some(&first) = words.first() else {
            return;
        };
        self.by_first[first as usize].push((words, id));
        self.len += 1;
    }

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&n) = self.words.get(word) {
            return n;
        }
        let n = u32::try_from(self.by_first.len()).expect("fewer than 2^32 distinct words");
        self.words.insert(word.to_string(), n);
        self.by_first.push(Vec::new());
        n
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All phrase matches in the text, left to right. Nested phrases all match: "crushing chest
    /// pain" finds both the specific finding and "chest pain", as a reader would.
    pub fn find(&self, text: &str) -> Vec<LexiconMatch> {
        self.find_in_tokens(&tokenize(text))
    }

    pub fn find_in_tokens(&self, tokens: &[Token]) -> Vec<LexiconMatch> {
        // The word number of each token; a word in no phrase cannot be part of a match.
        let ids: Vec<Option<u32>> =
            tokens.iter().map(|t| self.words.get(fold(&t.text)).copied()).collect();
        let mut out = Vec::new();
        for (i, first) in ids.iter().enumerate() {
            let Some(first) = *first else { continue };
            for (words, id) in &self.by_first[first as usize] {
                let end = i + words.len();
                if end <= ids.len() && ids[i..end].iter().zip(words).all(|(a, b)| *a == Some(*b)) {
                    out.push(LexiconMatch { id: *id, present: !tokens[i].negated });
                }
            }
        }
        out
    }

    /// Each id found, once: present if any mention of it is present (a finding mentioned both
    /// ways is treated as present, the safer reading for triage).
    pub fn findings(&self, text: &str) -> Vec<(u32, bool)> {
        self.findings_in_tokens(&tokenize(text))
    }

    /// As [`Lexicon::findings`], on tokens already made.
    pub fn findings_in_tokens(&self, tokens: &[Token]) -> Vec<(u32, bool)> {
        let mut seen: Vec<(u32, bool)> = Vec::new();
        for m in self.find_in_tokens(tokens) {
            match seen.iter_mut().find(|(id, _)| *id == m.id) {
                Some(slot) => slot.1 |= m.present,
                None => seen.push((m.id, m.present)),
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex() -> Lexicon {
        let mut l = Lexicon::new();
        l.insert("chest pain", 0);
        l.insert("rash", 1);
        l.insert("stiff neck", 2);
        l.insert("chest pain on exertion", 3);
        l.insert("not eating", 4);
        l
    }

    #[test]
    fn finds_phrases_with_negation() {
        let f = lex().findings("Stiff neck and headaches, no rash");
        assert_eq!(f, vec![(2, true), (1, false)]);
    }

    #[test]
    fn nested_phrases_all_match() {
        assert_eq!(lex().findings("chest pain on exertion"), vec![(0, true), (3, true)]);
    }

    #[test]
    fn phrase_with_its_own_negation_word_is_present() {
        assert_eq!(lex().findings("my baby is not eating"), vec![(4, true)]);
    }

    #[test]
    fn plural_folding() {
        assert_eq!(lex().findings("rashes everywhere"), vec![(1, true)]);
    }

    #[test]
    fn mention_both_ways_counts_as_present() {
        assert_eq!(lex().findings("no rash yesterday. today a rash"), vec![(1, true)]);
    }
}
