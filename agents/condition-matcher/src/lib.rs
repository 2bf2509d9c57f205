//! condition-matcher
