//! The virtual world a replay runs in: the two Deployments as the engine observes them, and
//! the SLOBudget's own status as its controller would keep it.
//!
//! No kubelet is modelled: whatever the plan asks of a Deployment is observed at once, all
//! replicas ready and available.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::SLOBudget;
use crate::engine::slo_budget::{self, Step};
use crate::engine::{Plan, Workload, slo_gate};
use crate::gather;
use crate::metrics::MetricsSource;

/// Pod-template revision the target runs when the rollout adopts it.
pub const STABLE_REVISION: &str = "baseline";
/// Pod-template revision the target is given to start the rollout.
pub const CANARY_REVISION: &str = "candidate";
/// Replicas of the target when it is adopted.
const INITIAL_REPLICAS: i32 = 10;

/// The target Deployment and Sluice's stable Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployments {
    pub target: Workload,
    pub stable: Option<Workload>,
}

fn available(revision: &str, replicas: i32) -> Workload {
    Workload {
        revision: revision.to_string(),
        replicas,
        ready_replicas: replicas,
        available: true,
    }
}

impl Deployments {
    /// A target at the stable revision, before the rollout adopts it.
    pub fn before_adoption() -> Self {
        Self {
            target: available(STABLE_REVISION, INITIAL_REPLICAS),
            stable: None,
        }
    }

    /// A new pod template on the target: the rollout's candidate.
    pub fn push_candidate(&mut self) {
        self.target.revision = CANARY_REVISION.to_string();
    }

    /// Carries the plan out the way `controller::rollout::carry_out` does, and observes the
    /// result at once.
    pub fn carry_out(&mut self, plan: &Plan) {
        if let Some(change) = &plan.stable {
            let revision = match (&self.stable, change.copy_target_template) {
                (Some(stable), false) => stable.revision.clone(),
                _ => self.target.revision.clone(),
            };
            self.stable = Some(available(&revision, change.replicas));
        }
        if let Some(replicas) = plan.target_replicas {
            self.target = available(&self.target.revision, replicas);
        }
    }
}

/// The SLOBudget and the status its controller would have written by now: re-evaluated every
/// `spec.interval` of virtual time with the controller's own plan (`engine::slo_budget`).
pub struct BudgetTracker {
    pub budget: SLOBudget,
}

impl BudgetTracker {
    pub fn new(mut budget: SLOBudget) -> Self {
        budget.status = None;
        Self { budget }
    }

    /// Evaluates the budget over the whole service when an evaluation is due at `now`, as its
    /// reconcile does; the events it would record are not kept.
    pub async fn refresh(&mut self, source: &dyn MetricsSource, now: Timestamp) {
        let spec = &self.budget.spec;
        let generation = self.budget.metadata.generation;
        let old = self.budget.status.clone().unwrap_or_default();
        let plan = match slo_budget::step(spec, generation, &old, now) {
            Step::Wait(_) => return,
            Step::Invalid(plan) => plan,
            Step::Measure => {
                let namespace = self.budget.namespace().unwrap_or_default();
                let (measurements, errors) =
                    gather::slo::measure_service(source, &namespace, spec).await;
                slo_budget::plan(spec, generation, &old, &measurements, &errors, now)
            }
        };
        self.budget.status = Some(plan.status);
    }

    /// Why no rollout may start now, as the rollout controller reads it.
    pub fn freeze_reason(&self) -> Option<String> {
        slo_gate::freeze_reason(&self.budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CanaryRolloutStatus;
    use crate::engine::StableChange;
    use std::time::Duration;

    fn plan(stable: Option<StableChange>, target_replicas: Option<i32>) -> Plan {
        Plan {
            stable,
            canary_weight: None,
            canary_mirror: None,
            target_replicas,
            status: CanaryRolloutStatus::default(),
            events: Vec::new(),
            requeue_after: Duration::from_secs(1),
            rollback_cause: None,
            track_services: true,
            save_template: false,
            forget_templates: Vec::new(),
        }
    }

    #[test]
    fn the_stable_deployment_takes_the_targets_template_only_when_told() {
        let mut world = Deployments::before_adoption();
        let copy = StableChange {
            copy_target_template: true,
            restore_revision: None,
            replicas: 10,
        };
        world.carry_out(&plan(Some(copy.clone()), None));
        assert_eq!(world.stable, Some(available(STABLE_REVISION, 10)));

        world.push_candidate();
        let scale = StableChange {
            copy_target_template: false,
            restore_revision: None,
            replicas: 9,
        };
        world.carry_out(&plan(Some(scale), Some(1)));
        assert_eq!(world.stable, Some(available(STABLE_REVISION, 9)));
        assert_eq!(world.target, available(CANARY_REVISION, 1));

        world.carry_out(&plan(Some(copy), None));
        assert_eq!(world.stable, Some(available(CANARY_REVISION, 10)));
    }
}
