//! Hashed word and character n-gram features for the embedding-bag encoders.

use crate::tokens::{Token, tokenize};

/// Shape of the hashed feature space. Stored in each model's config so that inference uses
/// exactly the features the model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Number of hash buckets, including bucket 0 which is reserved for padding.
    pub buckets: usize,
    /// At most this many features per text; word features come first so long texts lose only
    /// character n-grams.
    pub max_features: usize,
    /// Seed mixed into the hash, so two encoders can use independent feature spaces.
    pub seed: u64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig { buckets: 1 << 15, max_features: 320, seed: 0 }
    }
}

/// Turns text into hashed feature ids in `1..buckets`.
#[derive(Debug, Clone)]
pub struct Featurizer {
    cfg: FeatureConfig,
    /// `buckets - 1`, the modulus of [`Featurizer::bucket`].
    modulus: Modulus,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// `x % d` for a fixed `d` by multiplications instead of a division (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019: with `m = ceil(2^128 / d)`, the remainder
/// is the high 64 bits of `(m * x mod 2^128) * d`, exact for every 64-bit `x` and `d`). Every
/// feature of every text of every model goes through one; the division was a twentieth of
/// the request's time.
#[derive(Debug, Clone, Copy)]
struct Modulus {
    d: u64,
    m: u128,
}

impl Modulus {
    fn new(d: u64) -> Self {
        assert!(d >= 1, "a modulus of at least 1");
        // For d = 1, m = 2^128 wraps to 0 and every remainder comes out 0, as it should.
        Modulus { d, m: (u128::MAX / u128::from(d)).wrapping_add(1) }
    }

    #[inline]
    fn of(&self, x: u64) -> u64 {
        let low = self.m.wrapping_mul(u128::from(x));
        let d = u128::from(self.d);
        // The high 64 bits of the 192-bit product low * d.
        let lo = (low as u64 as u128) * d;
        let hi = (low >> 64) * d;
        ((hi + (lo >> 64)) >> 64) as u64
    }
}

impl Featurizer {
    pub fn new(cfg: FeatureConfig) -> Self {
        assert!(cfg.buckets >= 2, "at least one bucket besides padding");
        Featurizer { cfg, modulus: Modulus::new(cfg.buckets as u64 - 1) }
    }

    pub fn config(&self) -> FeatureConfig {
        self.cfg
    }

    #[inline]
    fn bucket(&self, h: u64) -> u32 {
        // Final avalanche so that low bits are well mixed before the modulo.
        let mut x = h ^ self.cfg.seed;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        1 + self.modulus.of(x) as u32
    }

    /// Feature ids of a text in a stable order, at most `max_features`. Repeated words repeat
    /// their features, as a bag of words should.
    pub fn features(&self, text: &str) -> Vec<u32> {
        self.features_of_tokens(&tokenize(text))
    }

    /// Features split by negation scope: (outside any negation, inside one). The symptom
    /// classifier pools the two bags separately, so "no rash" cannot blur into "rash".
    pub fn features_by_scope(&self, text: &str) -> (Vec<u32>, Vec<u32>) {
        let (pos, neg) = scoped_hashes(&tokenize(text));
        (
            self.features_of_hashes(&pos),
            if neg.is_empty() { Vec::new() } else { self.features_of_hashes(&neg) },
        )
    }

    pub fn features_of_tokens(&self, tokens: &[Token]) -> Vec<u32> {
        self.features_of_hashes(&feature_hashes(tokens, self.cfg.max_features))
    }

    /// Feature ids from the seed-free hashes of [`feature_hashes`]: the first `max_features`,
    /// each mixed with this featuriser's seed into a bucket. Equal to [`Featurizer::features`]
    /// on the same text, so a text hashed once serves every model.
    pub fn features_of_hashes(&self, hashes: &[u64]) -> Vec<u32> {
        if hashes.is_empty() {
            // An empty bag would divide by zero downstream; one fixed "empty" feature instead.
            return vec![self.bucket(fnv(FNV_OFFSET, b"<empty>"))];
        }
        hashes.iter().take(self.cfg.max_features).map(|&h| self.bucket(h)).collect()
    }
}

/// The most features any model may ask for; [`feature_hashes`] of a whole request stops here.
pub const MAX_FEATURES: usize = 1024;

/// The seed-free hashes of a token stream's features, in the order models take them: words,
/// stems and bigrams first (they carry most of the meaning), then character trigrams (robust to
/// typos), at most `cap`.
pub fn feature_hashes(tokens: &[Token], cap: usize) -> Vec<u64> {
    hashes_of(tokens, cap, |_| true)
}

/// [`feature_hashes`] of the tokens `keep` accepts, every other token read as a sentence break
/// (no copy of the tokens is made).
fn hashes_of(tokens: &[Token], cap: usize, keep: impl Fn(&Token) -> bool) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(cap.min(tokens.len() * 9 + 1));
    let push = |out: &mut Vec<u64>, h: u64| {
        if out.len() < cap {
            out.push(h);
        }
    };
    let mut prev: Option<&Token> = None;
    for t in tokens {
        if out.len() >= cap {
            break;
        }
        if t.text == "." || !keep(t) {
            prev = None;
            continue;
        }
        push(&mut out, word_hash(t));
        if let Some(h) = stem_hash(t) {
            push(&mut out, h);
        }
        if let Some(p) = prev {
            push(&mut out, bigram_hash(p, t));
        }
        prev = Some(t);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(32);
    for t in tokens {
        if out.len() >= cap {
            break;
        }
        if t.text == "." || t.text.len() < 3 || !keep(t) {
            continue;
        }
        trigram_hashes(t, &mut buf, |h| push(&mut out, h));
    }
    out
}

// The recipes of the features, shared by both ways of hashing a text.

fn flag(t: &Token) -> &'static [u8] {
    if t.negated { b"N" } else { b"P" }
}

fn word_hash(t: &Token) -> u64 {
    fnv(fnv(fnv(FNV_OFFSET, b"w"), flag(t)), t.text.as_bytes())
}

/// The stem too, so "fainted", "fainting" and "faints" share a feature; none when the word is
/// its own stem.
fn stem_hash(t: &Token) -> Option<u64> {
    let st = stem(&t.text);
    (st.len() < t.text.len()).then(|| fnv(fnv(fnv(FNV_OFFSET, b"s"), flag(t)), st.as_bytes()))
}

fn bigram_hash(p: &Token, t: &Token) -> u64 {
    let h = fnv(fnv(fnv(fnv(FNV_OFFSET, b"b"), flag(t)), p.text.as_bytes()), t.text.as_bytes());
    fnv(h, b" ")
}

/// Character trigrams of `<word>`, in order (`buf` is scratch space).
fn trigram_hashes(t: &Token, buf: &mut Vec<u8>, mut emit: impl FnMut(u64)) {
    buf.clear();
    buf.push(b'<');
    buf.extend_from_slice(t.text.as_bytes());
    buf.push(b'>');
    let base = fnv(fnv(FNV_OFFSET, b"c"), flag(t));
    for w in buf.windows(3) {
        emit(fnv(base, w));
    }
}

/// The hashes of the text outside any negation scope and of the text inside one, each as if
/// the other part were a sentence break; the second is empty when nothing is negated.
pub fn scoped_hashes(tokens: &[Token]) -> (Vec<u64>, Vec<u64>) {
    let neg_hashes = if tokens.iter().any(|t| t.negated) {
        hashes_of(tokens, MAX_FEATURES, |t| t.negated)
    } else {
        Vec::new()
    };
    (hashes_of(tokens, MAX_FEATURES, |t| !t.negated), neg_hashes)
}

/// A text read once: its tokens and the seed-free hashes of its features, whole and split by
/// negation scope. Every model maps the hashes into its own buckets
/// ([`Featurizer::features_of_hashes`]), so a request is tokenised and hashed once however many
/// models read it.
#[derive(Debug, Clone, Default)]
pub struct TextAnalysis {
    pub tokens: Vec<Token>,
    /// [`feature_hashes`] of the whole text.
    pub hashes: Vec<u64>,
    /// [`scoped_hashes`]: outside any negation scope, then inside one.
    pub outside_negation: Vec<u64>,
    pub inside_negation: Vec<u64>,
}

impl TextAnalysis {
    /// Equal to [`feature_hashes`] and [`scoped_hashes`] of the text's tokens, in one pass:
    /// each token's features are hashed once and go to the whole text and to its own scope (a
    /// bigram whose two words lie in different scopes only to the whole text, as the scoped
    /// hashes read the other scope as a sentence break).
    pub fn of(text: &str) -> Self {
        let tokens = tokenize(text);
        let cap = MAX_FEATURES;
        let mut all: Vec<u64> = Vec::with_capacity(cap.min(tokens.len() * 9 + 1));
        let mut outside: Vec<u64> = Vec::with_capacity(cap.min(tokens.len() * 9 + 1));
        let mut inside: Vec<u64> = Vec::new();
        let push = |v: &mut Vec<u64>, h: u64| {
            if v.len() < cap {
                v.push(h);
            }
        };
        let mut prev: Option<&Token> = None;
        for t in &tokens {
            if t.text == "." {
                prev = None;
                continue;
            }
            let scope = if t.negated { &mut inside } else { &mut outside };
            let w = word_hash(t);
            push(&mut all, w);
            push(scope, w);
            if let Some(h) = stem_hash(t) {
                push(&mut all, h);
                push(scope, h);
            }
            if let Some(p) = prev {
                let h = bigram_hash(p, t);
                push(&mut all, h);
                if p.negated == t.negated {
                    push(scope, h);
                }
            }
            prev = Some(t);
        }
        let mut buf: Vec<u8> = Vec::with_capacity(32);
        for t in &tokens {
            if t.text == "." || t.text.len() < 3 {
                continue;
            }
            let scope = if t.negated { &mut inside } else { &mut outside };
            trigram_hashes(t, &mut buf, |h| {
                push(&mut all, h);
                push(scope, h);
            });
        }
        TextAnalysis { tokens, hashes: all, outside_negation: outside, inside_negation: inside }
    }
}

/// A crude English suffix stripper: enough to join inflections of symptom words.
pub fn stem(w: &str) -> &str {
    for suf in ["ings", "ing", "ied", "ies", "ed", "es", "ly", "s"] {
        if let Some(base) = w.strip_suffix(suf)
            && base.len() >= 3
            && !(suf == "s" && (base.ends_with('s') || base.ends_with('u') || base.ends_with('i')))
        {
            return base;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    #[test]
    fn remainder_by_multiplication_equals_the_division() {
        use super::Modulus;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edges =
            [0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1, 1 << 32, u32::MAX as u64];
        let moduli = [
            1u64,
            2,
            3,
            7,
            8191,
            16383,
            32767,
            65535,
            1 << 14,
            1_000_003,
            u32::MAX as u64,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ];
        for &d in &moduli {
            let m = Modulus::new(d);
            for &v in &edges {
                assert_eq!(m.of(v), v % d, "{v} % {d}");
            }
            for _ in 0..20_000 {
                let v = next();
                assert_eq!(m.of(v), v % d, "{v} % {d}");
            }
        }
    }

    #[test]
    fn stems_join_inflections() {
        assert_eq!(super::stem("fainted"), "faint");
        assert_eq!(super::stem("fainting"), "faint");
        assert_eq!(super::stem("faints"), "faint");
        assert_eq!(super::stem("virus"), "virus");
        assert_eq!(super::stem("red"), "red");
    }

    use super::*;

    #[test]
    fn features_are_deterministic_and_in_range() {
        let f = Featurizer::new(FeatureConfig { buckets: 1000, max_features: 64, seed: 7 });
        let a = f.features("Headache and a stiff neck, no rash");
        let b = f.features("Headache and a stiff neck, no rash");
        assert_eq!(a, b);
        assert!(a.iter().all(|&i| (1..1000).contains(&i)));
        assert!(a.len() <= 64);
    }

    #[test]
    fn negation_changes_features() {
        let f = Featurizer::new(FeatureConfig::default());
        assert_ne!(f.features("rash"), f.features("no rash")[1..].to_vec());
    }

    #[test]
    fn empty_text_has_one_feature() {
        let f = Featurizer::new(FeatureConfig::default());
        assert_eq!(f.features("  ...  ").len(), 1);
    }

    #[test]
    fn hashing_once_gives_every_featuriser_its_own_features() {
        let text = "My head hurts, no fever and I have not been sick, since yesterday; stiff neck";
        let a = TextAnalysis::of(text);
        for cfg in
            [FeatureConfig::default(), FeatureConfig { buckets: 1000, max_features: 16, seed: 9 }]
        {
            let f = Featurizer::new(cfg);
            assert_eq!(f.features(text), f.features_of_hashes(&a.hashes));
            let (p, n) = f.features_by_scope(text);
            assert_eq!(p, f.features_of_hashes(&a.outside_negation));
            assert_eq!(n, f.features_of_hashes(&a.inside_negation));
        }
        assert!(TextAnalysis::of("cough").inside_negation.is_empty());
    }

    #[test]
    fn scoped_hashes_read_the_other_scope_as_a_sentence_break() {
        let tokens = crate::tokens::tokenize(
            "no fever or rash but a bad cough, denies vomiting since monday",
        );
        let blanked = |negated: bool| -> Vec<Token> {
            tokens
                .iter()
                .map(|t| if t.negated == negated { t.clone() } else { Token::boundary() })
                .collect()
        };
        let (pos, neg) = scoped_hashes(&tokens);
        assert_eq!(pos, feature_hashes(&blanked(false), MAX_FEATURES));
        assert_eq!(neg, feature_hashes(&blanked(true), MAX_FEATURES));
        assert!(!neg.is_empty());
    }

    #[test]
    fn one_pass_analysis_equals_the_reference_hashes() {
        let texts = [
            "",
            "...",
            "cough",
            "no fever or rash but a bad cough, denies vomiting since monday",
            "Denies chest pain, palpitations or fever. Headache is terrible; not eating, no longer drinking",
            "my 4 yo has had a temp of 39 since yesterday and wont eat, no rash no stiff neck",
            "NO NO NO. never. without any pain at all, free of symptoms nil else",
        ];
        let long = "no pain and a swollen ankle after a fall ".repeat(60);
        for text in texts.iter().copied().chain([long.as_str()]) {
            let tokens = crate::tokens::tokenize(text);
            let a = TextAnalysis::of(text);
            let (pos, neg) = scoped_hashes(&tokens);
            assert_eq!(a.hashes, feature_hashes(&tokens, MAX_FEATURES), "{text}");
            assert_eq!(a.outside_negation, pos, "{text}");
            assert_eq!(a.inside_negation, neg, "{text}");
        }
    }

    #[test]
    fn seeds_give_different_spaces() {
        let a = Featurizer::new(FeatureConfig { seed: 1, ..Default::default() });
        let b = Featurizer::new(FeatureConfig { seed: 2, ..Default::default() });
        assert_ne!(a.features("cough"), b.features("cough"));
    }
}
