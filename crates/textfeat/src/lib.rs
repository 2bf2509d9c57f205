//! Text featurisation shared by the models and the deterministic phrase matcher.
//!
//! Everything here is pure, allocation-light and deterministic: normalisation, tokenisation,
//! negation scope (NegEx-style triggers and terminators), hashed word and character n-gram
//! features for the embedding-bag encoders, a phrase lexicon that finds knowledge-base findings
//! in text without any model, and reading age and sex from free text.
//!
//! The same negation scope feeds both the models (as a feature flag) and the phrase matcher,
//! so that "no rash" means the same thing everywhere.

mod demographics;
mod features;
mod lexicon;
mod tokens;

pub use demographics::{Demographics, read_demographics, self_report};
pub use features::{
    FeatureConfig, Featurizer, MAX_FEATURES, TextAnalysis, feature_hashes, scoped_hashes,
};
pub use lexicon::{Lexicon, LexiconMatch, fold as fold_plural};
pub use tokens::{Token, normalise, tokenize};
