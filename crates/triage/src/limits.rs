//! How much of each agent's answer is kept, in one place.

/// How many of the differential's conditions the decision weighs (the API returns at most as
/// many); past them the probability left is negligible.
pub const DECISION_CONDITIONS: usize = 20;

/// How many conditions the condition matcher returns through [`crate::AgentModel`]: the merge
/// weighs the same conditions in the service and in the sequential runner. The API shows fewer
/// on request.
pub const MAX_CONDITIONS: usize = DECISION_CONDITIONS;

/// How many advice entries the treatment retriever returns through [`crate::AgentModel`]; the
/// API and the sequential runner may keep fewer.
pub const MAX_CARE: usize = 5;
