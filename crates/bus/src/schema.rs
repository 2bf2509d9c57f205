//! How `domain`'s closed vocabularies that events carry appear in the OpenAPI document: string
//! schemas whose values are the enums' own wire names, so the document cannot drift from them.

use domain::{BreakerState, TriageLevel};
use std::borrow::Cow;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// [`TriageLevel`] in the OpenAPI document: its wire names, with what each asks of the person.
pub struct LevelName;

impl PartialSchema for LevelName {
    fn schema() -> RefOr<Schema> {
        vocabulary(
            "A triage level, most urgent first: emergency_ambulance (call an ambulance now), emergency (go to an emergency department now), consultation_24 (see a clinician within 24 hours), consultation (see a clinician soon), self_care (safe to manage at home, with the warning signs that change that).",
            TriageLevel::ALL.map(TriageLevel::as_str),
        )
    }
}

impl ToSchema for LevelName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TriageLevel")
    }
}

/// [`BreakerState`] in the OpenAPI document.
pub struct BreakerStateName;

impl PartialSchema for BreakerStateName {
    fn schema() -> RefOr<Schema> {
        vocabulary(
            "A circuit breaker's state: closed (calls go through), open (calls are refused for a while), half_open (one trial call decides).",
            BreakerState::ALL.map(BreakerState::as_str),
        )
    }
}

impl ToSchema for BreakerStateName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BreakerState")
    }
}

/// A string schema with a closed set of values.
pub fn vocabulary(
    description: &str,
    values: impl IntoIterator<Item = &'static str>,
) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .enum_values(Some(values))
            .build(),
    ))
}
