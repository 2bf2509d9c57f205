//! The knowledge base: findings, conditions, care advice and red-flag rules, loaded from the
//! TOML files under `kb/` (format in `kb/SCHEMA.md`) and validated before anything uses them.
//!
//! Loading collects every problem it finds (file, entry, field, what is wrong) instead of
//! stopping at the first, so an author can fix a file in one pass. After loading, ids are
//! resolved to indices: the rest of Triagent works with `usize` indices into these vectors.

mod bayes;
mod case;
mod load;
mod model;
mod rules;

pub use bayes::{Bayes, posterior};
pub use case::Case;
pub use load::{KbError, KbIssue, default_dir, load_dir};
pub use model::*;
pub use rules::{RuleHit, RuleInput};
