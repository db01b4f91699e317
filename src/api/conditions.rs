//! kstatus-compatible conditions shared by the three kinds.
//!
//! `Ready`, `Reconciling` and `Stalled` follow kstatus, so Flux, Argo CD and `kubectl wait`
//! understand them; kinds add their own (`Promoted`, `Frozen`, ...).

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const PROMOTED: &str = "Promoted";
pub const FROZEN: &str = "Frozen";
/// True while a CanaryRollout's candidate waits for its ReleasePipeline's upstream environment.
pub const WAITING: &str = "Waiting";
/// True while the operator's reconciles of the object keep failing (API errors, timeouts);
/// removed by the next reconcile that succeeds.
pub const RECONCILE_FAILING: &str = "ReconcileFailing";

/// One observation about the object, in the Kubernetes condition convention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: Ready, Reconciling, Stalled, Promoted, Frozen, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// A CamelCase word for machines and `kubectl wait`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Timestamp,
    /// The metadata.generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            type_: type_.to_string(),
            status: if status {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time: now,
            observed_generation: None,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Insert or replace the condition of the same type, keeping `lastTransitionTime` when the
/// status did not change (a reason or message update is not a transition).
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time;
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut conditions = vec![Condition::new(READY, false, "Progressing", "stage 0", t0)];
        set_condition(
            &mut conditions,
            Condition::new(READY, false, "Progressing", "stage 1", t1),
        );
        assert_eq!(conditions[0].last_transition_time, t0);
        assert_eq!(conditions[0].message, "stage 1");
        set_condition(
            &mut conditions,
            Condition::new(READY, true, "Promoted", "done", t1),
        );
        assert_eq!(conditions[0].last_transition_time, t1);
        assert_eq!(conditions.len(), 1);
    }
}
