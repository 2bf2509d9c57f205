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

impl Featurizer {
    pub fn new(cfg: FeatureConfig) -> Self {
        assert!(cfg.buckets >= 2, "at least one bucket besides padding");
        Featurizer { cfg }
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
        1 + (x % (self.cfg.buckets as u64 - 1)) as u32
    }

    /// Feature ids of a text in a stable order, at most `max_features`. Repeated words repeat
    /// their features, as a bag of words should.
    pub fn features(&self, text: &str) -> Vec<u32> {
        self.features_of_tokens(&tokenize(text))
    }

    /// Features split by negation scope: (outside any negation, inside one). The symptom
    /// classifier pools the two bags separately, so "no rash" cannot blur into "rash".
    pub fn features_by_scope(&self, text: &str) -> (Vec<u32>, Vec<u32>) {
        let tokens = tokenize(text);
        let pos: Vec<Token> = tokens.iter().map(|t| if t.negated { Token { text: ".".into(), negated: false, trigger: false } } else { t.clone() }).collect();
        let neg: Vec<Token> = tokens.iter().map(|t| if t.negated { t.clone() } else { Token { text: ".".into(), negated: false, trigger: false } }).collect();
        let neg_features = if neg.iter().any(|t| t.text != ".") { self.features_of_tokens(&neg) } else { Vec::new() };
        (self.features_of_tokens(&pos), neg_features)
    }

    pub fn features_of_tokens(&self, tokens: &[Token]) -> Vec<u32> {
        let cap = self.cfg.max_features;
        let mut out: Vec<u32> = Vec::with_capacity(cap.min(tokens.len() * 7 + 1));
        let push = |out: &mut Vec<u32>, id: u32| {
            if out.len() < cap {
                out.push(id);
            }
        };
        // Words and bigrams first: they carry most of the meaning.
        let mut prev: Option<&Token> = None;
        for t in tokens {
            if t.text == "." {
                prev = None;
                continue;
            }
            let flag: &[u8] = if t.negated { b"N" } else { b"P" };
            let h = fnv(fnv(fnv(FNV_OFFSET, b"w"), flag), t.text.as_bytes());
            push(&mut out, self.bucket(h));
            // The stem too, so "fainted", "fainting" and "faints" share a feature.
            let st = stem(&t.text);
            if st.len() < t.text.len() {
                let h = fnv(fnv(fnv(FNV_OFFSET, b"s"), flag), st.as_bytes());
                push(&mut out, self.bucket(h));
            }
            if let Some(p) = prev {
                let h = fnv(fnv(fnv(fnv(FNV_OFFSET, b"b"), flag), p.text.as_bytes()), t.text.as_bytes());
                push(&mut out, self.bucket(fnv(h, b" ")));
            }
            prev = Some(t);
        }
        // Character trigrams of each word, with boundary marks: robust to typos.
        let mut buf: Vec<u8> = Vec::with_capacity(32);
        for t in tokens {
            if out.len() >= cap {
                break;
            }
            if t.text == "." || t.text.len() < 3 {
                continue;
            }
            buf.clear();
            buf.push(b'<');
            buf.extend_from_slice(t.text.as_bytes());
            buf.push(b'>');
            let flag: &[u8] = if t.negated { b"N" } else { b"P" };
            for w in buf.windows(3) {
                let h = fnv(fnv(fnv(FNV_OFFSET, b"c"), flag), w);
                push(&mut out, self.bucket(h));
            }
        }
        if out.is_empty() {
            // An empty bag would divide by zero downstream; one fixed "empty" feature instead.
            out.push(self.bucket(fnv(FNV_OFFSET, b"<empty>")));
        }
        out
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
    fn seeds_give_different_spaces() {
        let a = Featurizer::new(FeatureConfig { seed: 1, ..Default::default() });
        let b = Featurizer::new(FeatureConfig { seed: 2, ..Default::default() });
        assert_ne!(a.features("cough"), b.features("cough"));
    }
}
