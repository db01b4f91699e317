//! Handing a service back when its CanaryRollout is deleted, one step per reconcile: the target
//! runs at full size, every route sends all traffic to the user's Service again, and Sluice's
//! own objects go. Decided here from what is observed; the shell only carries the step out.

use crate::api::canary_rollout::{CanaryRolloutStatus, Phase};

use super::rollout::{PlannedEvent, Workload};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandBackStep {
    /// The target is gone: only Sluice's own objects are left to remove.
    TargetGone,
    /// Scale the target to its full size (it runs at 0 while idle or after a rollback), with a
    /// warning when it holds a revision that was rolled back.
    ScaleTarget {
        replicas: i32,
        warning: Option<PlannedEvent>,
    },
    /// Wait until the target is available at full size before moving traffic to it.
    WaitForTarget { why: String },
    /// Point the routes at the user's Service again and remove Sluice's own objects.
    Release,
}

/// The next step of the hand-back of `target_name`, observed as `target`.
pub fn hand_back(
    target_name: &str,
    status: &CanaryRolloutStatus,
    target: Option<&Workload>,
) -> HandBackStep {
    let Some(target) = target else {
        return HandBackStep::TargetGone;
    };
    let size = status.desired_replicas.unwrap_or(1).max(1);
    if target.replicas != size {
        let rolled_back = matches!(status.phase, Some(Phase::RolledBack | Phase::Frozen))
            && status.canary_revision.as_deref() == Some(target.revision.as_str());
        let warning = rolled_back.then(|| PlannedEvent {
            warning: true,
            reason: "HandBackRolledBackRevision",
            note: format!(
                "handing back {target_name}: it holds revision {}, which was rolled back; it now runs at full size without a canary",
                target.revision
            ),
        });
        return HandBackStep::ScaleTarget {
            replicas: size,
            warning,
        };
    }
    if !target.available {
        return HandBackStep::WaitForTarget {
            why: format!(
                "waiting for {target_name} to be available ({}/{size} ready)",
                target.ready_replicas
            ),
        };
    }
    HandBackStep::Release
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(replicas: i32, available: bool) -> Workload {
        Workload {
            revision: "bad1".into(),
            replicas,
            ready_replicas: if available { replicas } else { 0 },
            available,
        }
    }

    fn status(phase: Phase) -> CanaryRolloutStatus {
        CanaryRolloutStatus {
            phase: Some(phase),
            desired_replicas: Some(3),
            canary_revision: Some("bad1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_target_grows_then_takes_the_traffic_then_sluice_leaves() {
        let idle = status(Phase::Idle);
        assert_eq!(hand_back("checkout", &idle, None), HandBackStep::TargetGone);
        assert_eq!(
            hand_back("checkout", &idle, Some(&target(0, true))),
            HandBackStep::ScaleTarget {
                replicas: 3,
                warning: None
            }
        );
        assert_eq!(
            hand_back("checkout", &idle, Some(&target(3, false))),
            HandBackStep::WaitForTarget {
                why: "waiting for checkout to be available (0/3 ready)".into()
            }
        );
        assert_eq!(
            hand_back("checkout", &idle, Some(&target(3, true))),
            HandBackStep::Release
        );
    }

    #[test]
    fn handing_back_a_rolled_back_revision_warns() {
        let HandBackStep::ScaleTarget { warning, .. } = hand_back(
            "checkout",
            &status(Phase::RolledBack),
            Some(&target(0, true)),
        ) else {
            panic!("expected a scale");
        };
        let warning = warning.expect("a warning");
        assert_eq!(warning.reason, "HandBackRolledBackRevision");
        assert!(
            warning
                .note
                .contains("revision bad1, which was rolled back")
        );
        // A desired size of 0 is read as 1: the service must keep running.
        let mut empty = status(Phase::Idle);
        empty.desired_replicas = Some(0);
        assert_eq!(
            hand_back("checkout", &empty, Some(&target(0, true))),
            HandBackStep::ScaleTarget {
                replicas: 1,
                warning: None
            }
        );
    }
}
