//! What `promote`, `abort`, `retry`, `unfreeze`, `pause` and `resume` ask of the operator, as
//! merge patches, and the sentence printed about each (pure).
//!
//! The requests are the annotations of `engine::requests`: the operator acts on each distinct
//! value once, so every request carries a fresh value (the time it was made, RFC 3339).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::error::PluginError;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::Phase;
use crate::api::conditions::{FROZEN, find_condition};
use crate::engine::requests::{ABORT, OVERRIDE_FREEZE, PROMOTE, RETRY, UNFREEZE};
use crate::engine::rollout::{FROZEN_BY_BUDGET, FROZEN_BY_DELIVERY_FREEZE};

/// A request made through an annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Skip the remaining analysis and promote the canary now (there is no partial promote:
    /// the engine promotes all the way).
    Promote,
    /// Roll back now.
    Abort,
    /// Run a rolled-back revision again from stage 0.
    Retry,
    /// Clear a freeze: the sticky one left by a parity emergency (`sluice.dev/unfreeze`), or let
    /// one rollout through an SLO-budget freeze (`sluice.dev/override-freeze`).
    Unfreeze,
}

/// The annotation to set, the merge patch setting it, and what to tell the user.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestPatch {
    pub annotation: &'static str,
    pub patch: Value,
    pub summary: String,
    /// Said on stderr when the operator will probably drop the request in the current phase.
    pub warning: Option<String>,
}

impl Request {
    /// The patch for this request on `rollout`, stamped with `now`. `unfreeze` on a rollout
    /// that is not frozen is an error: there is nothing to clear.
    pub fn patch(
        self,
        rollout: &CanaryRollout,
        now: Timestamp,
    ) -> Result<RequestPatch, PluginError> {
        let name = rollout.metadata.name.clone().unwrap_or_default();
        let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
        let status = rollout.status.clone().unwrap_or_default();
        let phase = status.phase;
        let revision = status.canary_revision.unwrap_or_else(|| "-".to_string());
        let (annotation, summary, applies) = match self {
            Request::Promote => (
                PROMOTE,
                format!(
                    "promote requested: revision {revision} skips the remaining analysis and is promoted"
                ),
                matches!(phase, Some(Phase::Progressing | Phase::Paused)),
            ),
            Request::Abort => (
                ABORT,
                format!(
                    "abort requested: revision {revision} is rolled back (canary weight 0, target scaled to 0)"
                ),
                matches!(phase, Some(Phase::Progressing | Phase::Paused)),
            ),
            Request::Retry => (
                RETRY,
                format!("retry requested: rolled-back revision {revision} runs again from stage 1"),
                phase == Some(Phase::RolledBack),
            ),
            Request::Unfreeze => {
                let frozen = find_condition(&status.conditions, FROZEN).filter(|c| c.is_true());
                match frozen {
                    Some(c) if c.reason == FROZEN_BY_DELIVERY_FREEZE => {
                        return Err(PluginError::Usage(format!(
                            "rollout {name} is held by {}: no request on the rollout lifts it; `kubectl sluice thaw` (or deleting the DeliveryFreeze) does",
                            c.message
                        )));
                    }
                    Some(c) if c.reason == FROZEN_BY_BUDGET => (
                        OVERRIDE_FREEZE,
                        format!(
                            "freeze override requested: the next rollout starts despite the SLO budget ({})",
                            c.message
                        ),
                        true,
                    ),
                    Some(c) => (
                        UNFREEZE,
                        format!(
                            "unfreeze requested: the {} freeze is cleared ({})",
                            c.reason, c.message
                        ),
                        true,
                    ),
                    None => {
                        return Err(PluginError::NotFrozen {
                            name,
                            namespace,
                            phase: phase_name(phase),
                        });
                    }
                }
            }
        };
        let value = now.to_string();
        let warning = (!applies).then(|| {
            format!(
                "rollout {name} is {}: the operator drops a {annotation} request in this phase",
                phase_name(phase)
            )
        });
        Ok(RequestPatch {
            annotation,
            patch: json!({"metadata": {"annotations": {annotation: &value}}}),
            summary: format!("rollout {name}: {summary} ({annotation}={value})"),
            warning,
        })
    }
}

/// The merge patch for `pause` (true) or `resume` (false).
pub fn paused_patch(paused: bool) -> Value {
    json!({"spec": {"paused": paused}})
}

/// What `pause` / `resume` print.
pub fn paused_summary(name: &str, paused: bool) -> String {
    let (verb, effect) = if paused {
        (
            "paused",
            "no stage advances until resumed; a failing analysis still rolls back",
        )
    } else {
        ("resumed", "the stages advance again")
    };
    format!(
        "rollout {name} {verb} (spec.paused={paused}): {effect}. Under GitOps, make the same change in Git or the next sync reverts it."
    )
}

pub fn phase_name(phase: Option<Phase>) -> String {
    phase.map_or_else(|| "without a phase yet".to_string(), |p| format!("{p:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::Condition;
    use crate::engine::requests::Requests;
    use crate::engine::rollout::FROZEN_BY_ROLLBACK;
    use crate::plugin::fixtures::{NOW, rollout};
    use std::collections::BTreeMap;

    fn annotations_of(patch: &Value) -> BTreeMap<String, String> {
        serde_json::from_value(patch["metadata"]["annotations"].clone()).unwrap()
    }

    #[test]
    fn each_request_sets_its_annotation_to_a_fresh_timestamp_the_engine_acts_on() {
        let rollout = rollout();
        for (request, annotation) in [
            (Request::Promote, PROMOTE),
            (Request::Abort, ABORT),
            (Request::Retry, RETRY),
        ] {
            let patch = request.patch(&rollout, NOW).unwrap();
            assert_eq!(patch.annotation, annotation);
            let annotations = annotations_of(&patch.patch);
            assert_eq!(annotations[annotation], "2026-11-18T11:06:40Z");
            let mut handled = BTreeMap::new();
            let seen = Requests::take(&annotations, &mut handled);
            assert!(seen.promote || seen.abort || seen.retry, "{annotation}");
            assert!(
                patch
                    .summary
                    .contains(&format!("{annotation}=2026-11-18T11:06:40Z"))
            );
        }
        let later = Request::Promote.patch(&rollout, NOW + jiff::SignedDuration::from_nanos(1));
        assert_ne!(
            later.unwrap().patch,
            Request::Promote.patch(&rollout, NOW).unwrap().patch
        );
    }

    #[test]
    fn a_request_out_of_phase_is_made_with_a_warning() {
        let rollout = rollout();
        assert_eq!(Request::Promote.patch(&rollout, NOW).unwrap().warning, None);
        let retry = Request::Retry.patch(&rollout, NOW).unwrap();
        assert_eq!(
            retry.warning.as_deref(),
            Some(
                "rollout checkout is Progressing: the operator drops a sluice.dev/retry request in this phase"
            )
        );
    }

    fn frozen(reason: &str) -> CanaryRollout {
        let mut rollout = rollout();
        let status = rollout.status.as_mut().unwrap();
        status.phase = Some(Phase::Frozen);
        status.conditions.push(Condition::new(
            FROZEN,
            true,
            reason,
            "parity Emergency",
            NOW,
        ));
        rollout
    }

    #[test]
    fn unfreeze_clears_the_sticky_freeze_and_overrides_a_budget_freeze() {
        let sticky = Request::Unfreeze
            .patch(&frozen(FROZEN_BY_ROLLBACK), NOW)
            .unwrap();
        assert_eq!(sticky.annotation, UNFREEZE);
        let budget = Request::Unfreeze
            .patch(&frozen(FROZEN_BY_BUDGET), NOW)
            .unwrap();
        assert_eq!(budget.annotation, OVERRIDE_FREEZE);
        assert!(
            budget.summary.contains("despite the SLO budget"),
            "{}",
            budget.summary
        );
    }

    #[test]
    fn unfreeze_on_a_rollout_that_is_not_frozen_is_an_error() {
        let held = Request::Unfreeze
            .patch(&frozen(FROZEN_BY_DELIVERY_FREEZE), NOW)
            .unwrap_err()
            .to_string();
        assert!(held.contains("kubectl sluice thaw"), "{held}");
        let error = Request::Unfreeze.patch(&rollout(), NOW).unwrap_err();
        assert_eq!(
            error.to_string(),
            "rollout checkout in namespace shop is not frozen (phase Progressing)"
        );
    }

    #[test]
    fn pause_and_resume_patch_spec_paused_and_mention_gitops() {
        assert_eq!(paused_patch(true), json!({"spec": {"paused": true}}));
        assert_eq!(paused_patch(false), json!({"spec": {"paused": false}}));
        assert!(paused_summary("checkout", true).contains("Under GitOps"));
    }
}
