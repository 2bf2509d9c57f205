//! The shared reading of a request: which knowledge-base findings its text asserts, each with
//! its assertion (present, absent or hedged; the patient's or a relative's; current, past or
//! hypothetical), a confidence and the span that supports it.
//!
//! Three layers, all deterministic:
//! - the **phrase index** (`phrases`): every knowledge-base phrase, folded (`fold`: spelling and
//!   light stemming), found contiguously, with a few words between, or turned round;
//! - the **semantic layer** (`semantic`): a word no phrase uses stands for the phrase word
//!   nearest in meaning, through static word vectors distilled from a pretrained encoder
//!   (`vectors`); one word a phrase, never for red-flag findings;
//! - **assertion** (`context`): ConText-style triggers and scopes over the tokens.
//!
//! The reading is made once per request, before the agents run; everything downstream sees the
//! text only as these findings.

mod abbrev;
mod context;
mod fold;
mod phrases;
mod reader;
mod semantic;
mod vectors;
mod vitals;

pub use context::{TokenContext, contexts, contexts_except};
pub use fold::{fold_light, fold_word};
pub use phrases::{PhraseHit, PhraseIndex, Via, WordIds};
pub use reader::{Assertion, FindingEntry, Polarity, ReadFinding, Reader, Reading, Subject, Time};
pub use semantic::{MIN_COSINE, SemanticIndex, is_stop};
pub use vectors::{VectorsError, WordVectors, default_vectors_path, dot};
pub use vitals::{TextVital, vitals_in_text};
