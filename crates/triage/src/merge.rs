//! The merge: the one place that decides the final triage level from the agents' answers, and
//! the safety floor.

use domain::{EmergencyAssessment, RankedCondition, TriageLevel};
use kb::{Case, KnowledgeBase};

/// The final level and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub level: TriageLevel,
    /// Red-flag rules (indices) that fired, most urgent first.
    pub red_flags: Vec<usize>,
    /// True when the emergency detector was not available and the safety floor applied.
    pub floor_applied: bool,
}

/// The lowest level a degraded answer may give: without the emergency detector, the service
/// never says less than "see a clinician soon".
pub const SAFETY_FLOOR: TriageLevel = TriageLevel::Consultation;

/// Weight of the emergency detector's level probabilities in the merged distribution; the rest
/// is the differential's probability at each condition's usual urgency.
pub const DETECTOR_WEIGHT: f32 = 0.5;

/// In the merge, one step of under-triage costs this many steps of over-triage.
pub const MERGE_UNDER_TRIAGE_COST: f32 = 2.0;

/// The differential's probability at each usual urgency, most urgent first: the sum over the
/// conditions given (the matcher's top [`DECISION_CONDITIONS`](crate::DECISION_CONDITIONS);
/// what they leave out is not spread over any level).
pub fn expected_urgency(kb: &KnowledgeBase, conditions: &[RankedCondition]) -> [f32; 5] {
    let mut by_level = [0f32; 5];
    for r in conditions {
        by_level[kb.conditions[r.condition].urgency.index()] += r.probability;
    }
    by_level
}

/// The final triage level.
///
/// The level with the least expected cost (under-triage weighted
/// [`MERGE_UNDER_TRIAGE_COST`]) under a mix of two distributions over the five levels: the
/// emergency detector's model, and the urgency expected over the differential (each
/// condition's usual urgency, weighted by its probability; the probability the listed
/// conditions leave out counts as the detector's view). The red-flag rules then raise it.
/// Without the detector: the differential and the rules, and never less urgent than
/// [`SAFETY_FLOOR`]. The rules read only what the request asserts: findings sent, findings the
/// reading of the text asserts for the patient, and vitals; never the symptom classifier's
/// own findings, which can name what the text does not say.
pub fn decide_level(
    kb: &KnowledgeBase,
    case: &Case,
    emergency: Option<&EmergencyAssessment>,
    conditions: Option<&[RankedCondition]>,
) -> Decision {
    let hits: Vec<kb::RuleHit> = match emergency {
        Some(e) => {
            e.red_flags.iter().map(|&r| kb::RuleHit { rule: r, level: kb.rules[r].level }).collect()
        }
        None => crate::models::emergency::red_flags(kb, case, &[]),
    };
    let differential = conditions.map(|c| expected_urgency(kb, c));
    let mixed: Option<[f32; 5]> = match (emergency, differential) {
        // The probability the listed conditions leave out goes to the detector's view.
        (Some(e), Some(d)) => {
            let left = (1.0 - d.iter().sum::<f32>()).max(0.0);
            Some(std::array::from_fn(|l| {
                DETECTOR_WEIGHT * e.probabilities[l]
                    + (1.0 - DETECTOR_WEIGHT) * (d[l] + left * e.probabilities[l])
            }))
        }
        (Some(e), None) => Some(e.probabilities),
        (None, Some(d)) => {
            let total: f32 = d.iter().sum();
            (total > 0.0).then(|| d.map(|p| p / total))
        }
        (None, None) => None,
    };
    let from_models =
        mixed.map(|p| crate::models::emergency::least_cost_level_at(&p, MERGE_UNDER_TRIAGE_COST));
    let rules_level = hits.iter().map(|h| h.level).min();
    let red_flags: Vec<usize> = hits.iter().map(|h| h.rule).collect();
    let raised = |l: TriageLevel| rules_level.map_or(l, |r| r.most_urgent(l));
    match emergency {
        Some(_) => Decision {
            level: raised(from_models.expect("the detector gives a distribution")),
            red_flags,
            floor_applied: false,
        },
        None => Decision {
            level: raised(from_models.map_or(SAFETY_FLOOR, |l| l.most_urgent(SAFETY_FLOOR))),
            red_flags,
            floor_applied: true,
        },
    }
}
