//! The CanaryRollout state machine.
//!
//! Adoption → Idle; a new target template → Progressing through the stages → Promoting →
//! Succeeded, or → RolledBack. All state lives in the status, so a restarted operator continues
//! where the last one stopped. The plan states the desired traffic and replicas every time; the
//! shell changes only what differs, which makes every reconcile idempotent and self-healing.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::analysis::{AnalysisInput, GateEffect, GateSource, StageContext, judge};
use super::conditions::{Situation, set_kstatus};
use super::delivery_freeze::FreezeInForce;
use super::pipeline_gates::Admission;
use super::requests::Requests;
use super::sequential;
use crate::api::canary_rollout::{
    CanaryRolloutSpec, CanaryRolloutStatus, HistoryEntry, MaxDurationAction, Phase, RolloutResult,
    Stage, Verdict,
};
use crate::api::conditions::{Condition, FROZEN, PROMOTED, WAITING, find_condition, set_condition};
use crate::api::delivery_freeze::FreezeAction;
use crate::traffic::replica_split;

const HISTORY_LIMIT: usize = 10;
/// Reason of the Frozen condition that only a person clears (`sluice.dev/unfreeze`).
pub const FROZEN_BY_ROLLBACK: &str = "RollbackAndFreeze";
/// Reason of the Frozen condition that an SLOBudget sets and lifts.
pub const FROZEN_BY_BUDGET: &str = "BudgetFrozen";
/// Reason of the Frozen condition that a DeliveryFreeze sets and lifts.
pub const FROZEN_BY_DELIVERY_FREEZE: &str = "DeliveryFreeze";
const FAST_REQUEUE: Duration = Duration::from_secs(2);
const REST_REQUEUE: Duration = Duration::from_secs(300);
const INVALID_REQUEUE: Duration = Duration::from_secs(60);
const WAITING_REQUEUE: Duration = Duration::from_secs(30);

/// What is observed of a Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Revision of its pod template (for the stable Deployment: the revision it was given).
    pub revision: String,
    /// spec.replicas.
    pub replicas: i32,
    pub ready_replicas: i32,
    /// Rolled out and all replicas available.
    pub available: bool,
}

/// Everything the engine decides from.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    pub spec: &'a CanaryRolloutSpec,
    pub status: &'a CanaryRolloutStatus,
    pub generation: Option<i64>,
    pub annotations: &'a BTreeMap<String, String>,
    pub target: Option<&'a Workload>,
    pub stable: Option<&'a Workload>,
    /// Problems found by validation and by dereferencing; any makes the phase Invalid.
    pub problems: &'a [String],
    /// Query results, when an evaluation ran in this reconcile (see [`evaluation_due`]).
    pub analysis: Option<&'a AnalysisInput>,
    /// Why no rollout may start now (an SLOBudget freeze), if so.
    pub freeze: Option<&'a str>,
    /// The DeliveryFreeze in force on this rollout, if any (`engine::delivery_freeze`).
    pub delivery_freeze: Option<&'a FreezeInForce>,
    /// What the ReleasePipeline that claims the rollout says of its candidate; None outside a
    /// pipeline.
    pub pipeline: Option<&'a Admission>,
    /// Why the stable revision must be undone (its release was revoked and its environment
    /// rolls back on revocation); None otherwise.
    pub revoke_stable: Option<&'a str>,
    /// Keep the templates of the current and previous stable revisions, so one promotion can be
    /// undone (a pipeline environment with `onRevoke: Rollback`).
    pub keep_templates: bool,
    pub now: Timestamp,
}

/// What to do to the stable Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StableChange {
    /// Copy the target's pod template onto it (adoption, promotion).
    pub copy_target_template: bool,
    /// Put back the template of this earlier stable revision, kept in a ControllerRevision.
    pub restore_revision: Option<String>,
    pub replicas: i32,
}

/// An event to record on the CanaryRollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The engine's decision. `None` fields are left as they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub stable: Option<StableChange>,
    /// Percent of traffic for the canary on the router (Gateway API); the replicas router
    /// expresses the weight in `stable`/`target_replicas` instead.
    pub canary_weight: Option<u32>,
    /// Percent of the stable track's requests the router copies to the canary (0: none); set
    /// whenever `canary_weight` is.
    pub canary_mirror: Option<u32>,
    pub target_replicas: Option<i32>,
    pub status: CanaryRolloutStatus,
    pub events: Vec<PlannedEvent>,
    pub requeue_after: Duration,
    /// Set when this plan rolls the candidate back.
    pub rollback_cause: Option<RollbackCause>,
    /// Keep `<service>-stable` / `<service>-canary` and the canary pods' track label in place:
    /// everywhere but on an invalid spec, which changes nothing.
    pub track_services: bool,
    /// Save the target's template before it becomes stable (see `Snapshot::keep_templates`).
    pub save_template: bool,
    /// Revisions whose saved templates are no longer needed (neither stable nor previous).
    pub forget_templates: Vec<String>,
}

/// Why a candidate was rolled back, as a static label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackCause {
    /// Checks failed `failureLimit` evaluations in a row.
    Analysis,
    Parity,
    Slo,
    /// The canary was not available within `progressDeadline`.
    ProgressDeadline,
    /// A stage stayed held until its `maxDuration` (`onMaxDuration: Rollback`).
    StageDeadline,
    /// The abort annotation.
    Manual,
    /// The ReleasePipeline revoked the release (upstream, or a risk budget here).
    Pipeline,
    /// A DeliveryFreeze with `action: Rollback` (the kill switch).
    Freeze,
}

impl From<GateSource> for RollbackCause {
    fn from(source: GateSource) -> Self {
        match source {
            GateSource::Parity => Self::Parity,
            GateSource::Slo => Self::Slo,
        }
    }
}

impl RollbackCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analysis => "analysis",
            Self::Parity => "parity",
            Self::Slo => "slo",
            Self::ProgressDeadline => "progress_deadline",
            Self::StageDeadline => "stage_deadline",
            Self::Manual => "manual",
            Self::Pipeline => "pipeline",
            Self::Freeze => "freeze",
        }
    }
}

/// Whether an evaluation is due now: the shell runs the queries only then.
pub fn evaluation_due(
    spec: &CanaryRolloutSpec,
    status: &CanaryRolloutStatus,
    now: Timestamp,
) -> bool {
    if !matches!(status.phase, Some(Phase::Progressing | Phase::Paused)) {
        return false;
    }
    next_evaluation_at(spec, status).is_some_and(|at| now >= at)
}

/// Whether the shell runs the queries in this reconcile: the spec is valid, the target still
/// holds the candidate being judged (a newer template restarts the rollout first), and an
/// evaluation is due.
pub fn evaluation_wanted(
    spec: &CanaryRolloutSpec,
    status: &CanaryRolloutStatus,
    problems: &[String],
    target: Option<&Workload>,
    now: Timestamp,
) -> bool {
    problems.is_empty()
        && target.map(|t| &t.revision) == status.canary_revision.as_ref()
        && evaluation_due(spec, status, now)
}

/// When the next evaluation of the current stage is due: an interval after the latest evaluation
/// at this stage, or after the stage started. None before the stage has started.
pub fn next_evaluation_at(
    spec: &CanaryRolloutSpec,
    status: &CanaryRolloutStatus,
) -> Option<Timestamp> {
    let stage_start = status.stage_started_at?;
    let last = status
        .last_evaluation
        .as_ref()
        .map(|e| e.time)
        .filter(|t| *t >= stage_start)
        .unwrap_or(stage_start);
    last.checked_add(spec.analysis.interval.as_std()).ok()
}

pub fn plan(snapshot: &Snapshot) -> Plan {
    Planner::new(snapshot).run()
}

struct Planner<'s, 'a> {
    s: &'s Snapshot<'a>,
    status: CanaryRolloutStatus,
    events: Vec<PlannedEvent>,
    rollback_cause: Option<RollbackCause>,
    uses_router: bool,
}

impl<'s, 'a> Planner<'s, 'a> {
    fn new(s: &'s Snapshot<'a>) -> Self {
        let mut status = s.status.clone();
        status.observed_generation = s.generation;
        Self {
            s,
            status,
            events: Vec::new(),
            rollback_cause: None,
            uses_router: s.spec.traffic_routing.gateway_api.is_some(),
        }
    }

    fn run(mut self) -> Plan {
        let target = match (self.s.problems.is_empty(), self.s.target) {
            (true, Some(target)) => target,
            (_, target) => return self.invalid(target.is_none()),
        };
        if self.status.phase == Some(Phase::Invalid) {
            self.status.phase = self.status.interrupted_phase.take();
            self.event(
                false,
                "SpecValid",
                "the spec is valid again; resuming".to_string(),
            );
        }
        let requests = Requests::take(self.s.annotations, &mut self.status.handled_requests);

        let Some(stable_revision) = self.status.stable_revision.clone() else {
            return self.adopt(target);
        };
        match self.status.phase {
            Some(Phase::Progressing | Phase::Paused) => {
                self.progress(target, &stable_revision, &requests)
            }
            Some(Phase::Promoting) => self.promoting(target),
            _ => self.at_rest(target, &stable_revision, &requests),
        }
    }

    fn full_size(&self) -> i32 {
        self.status.desired_replicas.unwrap_or(1).max(1)
    }

    fn event(&mut self, warning: bool, reason: &'static str, note: String) {
        self.events.push(PlannedEvent {
            warning,
            reason,
            note,
        });
    }

    fn finish(mut self, situation: Situation, message: String, plan: Desired) -> Plan {
        set_kstatus(
            &mut self.status,
            situation,
            &message,
            self.s.generation,
            self.s.now,
        );
        self.status.message = Some(message);
        if let Some(weight) = plan.weight {
            self.status.canary_weight = Some(weight);
            self.status.canary_mirror = (plan.mirror > 0).then_some(plan.mirror);
        }
        let track_services = self.status.phase != Some(Phase::Invalid);
        let forget_templates = match self.s.keep_templates {
            true => replaced_revisions(self.s.status, &self.status),
            false => Vec::new(),
        };
        Plan {
            stable: plan.stable,
            canary_weight: if self.uses_router { plan.weight } else { None },
            canary_mirror: if self.uses_router {
                plan.weight.map(|_| plan.mirror)
            } else {
                None
            },
            target_replicas: plan.target_replicas,
            status: self.status,
            events: self.events,
            requeue_after: plan.requeue_after,
            rollback_cause: self.rollback_cause,
            track_services,
            save_template: self.s.keep_templates,
            forget_templates,
        }
    }

    /// Traffic and replicas for a given canary weight, for either router.
    fn desired(&self, weight: u32, canary_running: bool) -> Desired {
        let n = self.full_size();
        let (stable, canary) = if self.uses_router {
            (n, if canary_running { n } else { 0 })
        } else {
            let (stable, canary) = replica_split(n, weight);
            if canary_running {
                (stable, canary.max(1))
            } else {
                (n, 0)
            }
        };
        Desired {
            stable: Some(StableChange {
                copy_target_template: false,
                restore_revision: None,
                replicas: stable,
            }),
            weight: Some(weight),
            mirror: 0,
            target_replicas: Some(canary),
            requeue_after: REST_REQUEUE,
        }
    }

    /// Traffic and replicas at a stage: its weight, and for a shadow stage its mirror.
    fn desired_at(&self, stage: &Stage) -> Desired {
        let mut desired = self.desired(stage.weight, true);
        if self.uses_router {
            desired.mirror = stage.mirror.unwrap_or(0);
        }
        desired
    }

    fn invalid(mut self, target_missing: bool) -> Plan {
        let mut problems: Vec<String> = self.s.problems.to_vec();
        if target_missing && problems.is_empty() {
            problems.push(format!(
                "target Deployment {:?} not found",
                self.s.spec.target_ref.name
            ));
        }
        let message = format!("invalid spec: {}", problems.join("; "));
        let was = self.status.phase;
        if was != Some(Phase::Invalid) {
            self.status.interrupted_phase = was;
        }
        if was != Some(Phase::Invalid) || self.status.message.as_deref() != Some(message.as_str()) {
            self.event(true, "InvalidSpec", message.clone());
        }
        self.status.phase = Some(Phase::Invalid);
        let hold = Desired {
            stable: None,
            weight: None,
            mirror: 0,
            target_replicas: None,
            requeue_after: INVALID_REQUEUE,
        };
        self.finish(Situation::InvalidSpec, message, hold)
    }

    /// First sight of the target: its template becomes stable without analysis. Traffic moves
    /// to stable only once the stable pods are available.
    fn adopt(mut self, target: &Workload) -> Plan {
        let size = *self
            .status
            .desired_replicas
            .get_or_insert(target.replicas.max(1));
        self.status.phase = Some(Phase::Promoting);
        match self.s.stable {
            Some(stable)
                if stable.revision == target.revision
                    && stable.available
                    && stable.replicas == size =>
            {
                self.status.stable_revision = Some(target.revision.clone());
                self.status.canary_revision = None;
                self.status.phase = Some(Phase::Idle);
                self.status.stage = None;
                let message = format!(
                    "adopted revision {}: all traffic on the stable Deployment",
                    target.revision
                );
                self.event(false, "Adopted", message.clone());
                let desired = self.desired(0, false);
                self.finish(Situation::AtRest, message, desired)
            }
            stable => {
                let copy = stable.is_none_or(|s| s.revision != target.revision);
                let ready = stable.map_or(0, |s| s.ready_replicas);
                let message = format!(
                    "adopting revision {}: stable pods ready {ready}/{size}",
                    target.revision
                );
                let desired = Desired {
                    stable: Some(StableChange {
                        copy_target_template: copy,
                        restore_revision: None,
                        replicas: size,
                    }),
                    weight: None,
                    mirror: 0,
                    target_replicas: None,
                    requeue_after: FAST_REQUEUE,
                };
                self.finish(Situation::Adopting, message, desired)
            }
        }
    }

    fn at_rest(mut self, target: &Workload, stable_revision: &str, requests: &Requests) -> Plan {
        let sticky_freeze = find_condition(&self.status.conditions, FROZEN)
            .filter(|c| c.is_true() && c.reason == FROZEN_BY_ROLLBACK)
            .map(|c| c.message.clone());
        if let Some(note) = sticky_freeze {
            if !requests.unfreeze {
                let desired = self.desired(0, false);
                return self.finish(Situation::Frozen, note, desired);
            }
            self.status.conditions.retain(|c| c.type_ != FROZEN);
            self.status.phase = Some(Phase::RolledBack);
            self.event(false, "Unfrozen", "freeze cleared by request".to_string());
        }
        // Budget and delivery freezes lift by themselves; their conditions go with them.
        if self.s.freeze.is_none() {
            self.status
                .conditions
                .retain(|c| !(c.type_ == FROZEN && c.reason == FROZEN_BY_BUDGET));
        }
        self.lift_delivery_freeze();
        if let Some(reason) = self.s.revoke_stable
            && let Some(previous) = self.status.previous_stable_revision.clone()
        {
            return self.revert_stable(stable_revision, previous, reason);
        }
        let phase = self.status.phase.unwrap_or(Phase::Idle);
        if target.revision == stable_revision {
            if matches!(phase, Phase::Frozen | Phase::RolledBack | Phase::Waiting) {
                // The failed or waiting template was reverted: nothing is pending any more.
                self.status.phase = Some(Phase::Idle);
            }
            self.status.conditions.retain(|c| c.type_ != WAITING);
            let message = format!("revision {stable_revision} is stable; no rollout pending");
            let desired = self.desired(0, false);
            return self.finish(Situation::AtRest, message, desired);
        }

        let rolled_back = phase == Phase::RolledBack
            && self.status.canary_revision.as_deref() == Some(&target.revision);
        if rolled_back && !requests.retry {
            let message = format!(
                "revision {} was rolled back; it stays on the target until a new template or a {} request",
                target.revision,
                super::requests::RETRY
            );
            let desired = self.desired(0, false);
            return self.finish(Situation::RolledBack, message, desired);
        }
        // A DeliveryFreeze is lifted by thawing it, never by a request on the rollout.
        if let Some(freeze) = self.s.delivery_freeze {
            let reason = freeze.reason.clone();
            return self.frozen_at_rest(target, phase, FROZEN_BY_DELIVERY_FREEZE, &reason);
        }
        if let Some(reason) = self.s.freeze.filter(|_| !requests.override_freeze) {
            return self.frozen_at_rest(target, phase, FROZEN_BY_BUDGET, reason);
        }
        if let Some(Admission::Wait(why) | Admission::Revoke(why)) = self.s.pipeline {
            return self.wait_for_pipeline(target, phase, why);
        }
        if rolled_back {
            self.event(
                false,
                "RetryRequested",
                format!("retrying revision {}", target.revision),
            );
        }
        self.start_rollout(target)
    }

    /// No rollout starts while a freeze is in force: Frozen, with the freeze's reason.
    fn frozen_at_rest(
        mut self,
        target: &Workload,
        phase: Phase,
        frozen_by: &str,
        reason: &str,
    ) -> Plan {
        let message = format!("frozen: {reason}; revision {} waits", target.revision);
        // One event per freeze: a budget's figures change at every evaluation, a DeliveryFreeze's
        // sentence only when another freeze takes over.
        let same_freeze = find_condition(&self.status.conditions, FROZEN).is_some_and(|c| {
            c.reason == frozen_by && (frozen_by == FROZEN_BY_BUDGET || c.message == reason)
        });
        if phase != Phase::Frozen || !same_freeze {
            self.event(
                true,
                "Frozen",
                format!(
                    "rollout of revision {} not started: {reason}",
                    target.revision
                ),
            );
        }
        self.status.phase = Some(Phase::Frozen);
        set_condition(
            &mut self.status.conditions,
            Condition::new(FROZEN, true, frozen_by, reason, self.s.now),
        );
        let desired = self.desired(0, false);
        self.finish(Situation::Frozen, message, desired)
    }

    /// Once no DeliveryFreeze is in force, its Frozen condition goes, with an event.
    fn lift_delivery_freeze(&mut self) {
        if self.s.delivery_freeze.is_some() {
            return;
        }
        let before = self.status.conditions.len();
        self.status
            .conditions
            .retain(|c| !(c.type_ == FROZEN && c.reason == FROZEN_BY_DELIVERY_FREEZE));
        if self.status.conditions.len() != before {
            self.event(
                false,
                "Thawed",
                "no DeliveryFreeze is in force any more".to_string(),
            );
        }
    }

    /// The promoted revision was revoked: stable takes the revision before it back, and the
    /// revoked one counts as rolled back (it stays on the target, where the pipeline keeps it
    /// from starting again).
    fn revert_stable(mut self, revoked: &str, previous: String, reason: &str) -> Plan {
        self.status.stable_revision = Some(previous.clone());
        self.status.previous_stable_revision = None;
        self.status.canary_revision = Some(revoked.to_string());
        self.status.phase = Some(Phase::RolledBack);
        self.status.stage = None;
        self.rollback_cause = Some(RollbackCause::Pipeline);
        let message = format!("promoted revision {revoked} reverted to {previous}: {reason}");
        self.push_history(
            revoked,
            RolloutResult::RolledBack,
            self.s.now,
            reason.to_string(),
        );
        self.event(true, "StableReverted", message.clone());
        set_condition(
            &mut self.status.conditions,
            Condition::new(
                PROMOTED,
                false,
                "StableReverted",
                message.clone(),
                self.s.now,
            ),
        );
        let mut desired = self.desired(0, false);
        if let Some(stable) = desired.stable.as_mut() {
            stable.restore_revision = Some(previous);
        }
        desired.requeue_after = FAST_REQUEUE;
        self.finish(Situation::RolledBack, message, desired)
    }

    /// A candidate the pipeline has not cleared does not start: Waiting, with the reason.
    fn wait_for_pipeline(mut self, target: &Workload, phase: Phase, why: &str) -> Plan {
        let message = format!("revision {} waits: {why}", target.revision);
        if phase != Phase::Waiting || self.status.message.as_deref() != Some(message.as_str()) {
            self.event(false, "PipelineWaiting", message.clone());
        }
        self.status.phase = Some(Phase::Waiting);
        set_condition(
            &mut self.status.conditions,
            Condition::new(WAITING, true, "PipelineGate", why, self.s.now),
        );
        let mut desired = self.desired(0, false);
        desired.requeue_after = WAITING_REQUEUE;
        self.finish(Situation::Waiting, message, desired)
    }

    fn start_rollout(mut self, target: &Workload) -> Plan {
        let status = &mut self.status;
        status.phase = Some(Phase::Progressing);
        status.canary_revision = Some(target.revision.clone());
        status.stage = Some(0);
        status.stage_started_at = None;
        status.stage_samples = None;
        status.stage_evidence.clear();
        status.shared_failure_since = None;
        status.rollout_started_at = Some(self.s.now);
        status.failed_evaluations = 0;
        status
            .conditions
            .retain(|c| c.type_ != FROZEN && c.type_ != WAITING);
        let message = format!(
            "rollout of revision {} started: scaling up the canary",
            target.revision
        );
        self.event(false, "RolloutStarted", message.clone());
        let first_weight = self.s.spec.stages.first().map_or(0, |s| s.weight);
        let mut desired = self.desired(if self.uses_router { 0 } else { first_weight }, true);
        desired.requeue_after = FAST_REQUEUE;
        self.finish(Situation::WaitingForCanary, message, desired)
    }

    fn progress(mut self, target: &Workload, stable_revision: &str, requests: &Requests) -> Plan {
        let canary_revision = self.status.canary_revision.clone().unwrap_or_default();
        if target.revision == stable_revision {
            self.status.phase = Some(Phase::Idle);
            self.status.stage_started_at = None;
            let message = format!(
                "rollout of {canary_revision} cancelled: the target's template is back to stable {stable_revision}"
            );
            self.event(false, "RolloutCancelled", message.clone());
            let desired = self.desired(0, false);
            return self.finish(Situation::AtRest, message, desired);
        }
        if target.revision != canary_revision {
            self.event(
                false,
                "NewRevision",
                format!(
                    "revision {} replaces {canary_revision} mid-rollout: restarting at stage 0",
                    target.revision
                ),
            );
            return self.start_rollout(target);
        }
        if requests.abort {
            return self.rollback(
                "aborted by request".to_string(),
                false,
                RollbackCause::Manual,
            );
        }
        if let Some(Admission::Revoke(reason)) = self.s.pipeline {
            return self.rollback(reason.clone(), false, RollbackCause::Pipeline);
        }
        self.lift_delivery_freeze();
        let freeze_hold = match self.s.delivery_freeze {
            Some(freeze) if freeze.action == FreezeAction::Rollback => {
                return self.rollback(freeze.reason.clone(), false, RollbackCause::Freeze);
            }
            Some(freeze) => Some(freeze.reason.clone()),
            None => None,
        };
        if requests.promote && freeze_hold.is_some() {
            self.event(
                true,
                "PromoteRefused",
                format!("revision {canary_revision} is not promoted while frozen"),
            );
        } else if requests.promote {
            self.event(
                false,
                "PromoteRequested",
                format!("promoting revision {canary_revision} by request, skipping analysis"),
            );
            return self.start_promotion(target);
        }

        let stage_index = self.status.stage.unwrap_or(0) as usize;
        let Some(stage) = self.s.spec.stages.get(stage_index).cloned() else {
            return self.start_promotion(target);
        };
        let Some(stage_started_at) = self.status.stage_started_at else {
            return self.wait_for_canary(target, &stage);
        };

        let mut held_by: Option<String> = None;
        if let Some(input) = self.s.analysis {
            let stage_context = self.stage_context(&stage);
            let judgement = judge(&self.s.spec.analysis, input, &stage_context, self.s.now);
            self.status.stage_evidence = judgement.evidence;
            self.status.shared_failure_since = judgement
                .shared_failure
                .then(|| self.status.shared_failure_since.unwrap_or(self.s.now));
            let evaluation = judgement.evaluation;
            let previous_verdict = self.status.last_evaluation.as_ref().map(|e| e.verdict);
            if let Some(samples) = evaluation.samples {
                *self.status.stage_samples.get_or_insert(0.0) += samples.max(0.0);
            }
            self.status.last_evaluation = Some(evaluation.clone());
            let reason = evaluation.message.clone().unwrap_or_default();
            if let Some((effect, gate_reason, source)) = judgement.gate_rollback {
                let cause = RollbackCause::from(source);
                let freeze = effect == GateEffect::RollbackAndFreeze;
                return self.rollback(gate_reason, freeze, cause);
            }
            match evaluation.verdict {
                Verdict::Fail => {
                    self.status.failed_evaluations += 1;
                    let limit = self.s.spec.analysis.failure_limit.max(1);
                    let failed = self.status.failed_evaluations;
                    self.event(
                        true,
                        "AnalysisFailed",
                        format!("evaluation failed ({failed}/{limit} in a row): {reason}"),
                    );
                    if failed >= limit {
                        return self.rollback(format!("{reason} ({failed} failed evaluations in a row, failureLimit {limit})"), false, RollbackCause::Analysis);
                    }
                }
                Verdict::Pass => self.status.failed_evaluations = 0,
                Verdict::NoData => {
                    if judgement.measured_without_failure {
                        self.status.failed_evaluations = 0;
                    }
                    if previous_verdict != Some(Verdict::NoData) {
                        self.event(
                            true,
                            "AnalysisHeld",
                            format!("analysis holds the stage: {reason}"),
                        );
                    }
                    held_by = Some(reason);
                }
            }
        } else if let Some(last) = self
            .status
            .last_evaluation
            .as_ref()
            .filter(|e| e.verdict == Verdict::NoData && e.time >= stage_started_at)
        {
            held_by = last.message.clone();
        }

        let mut desired = self.desired_at(&stage);
        desired.requeue_after = self.until_next_step(&stage, stage_started_at);
        let position = format!("stage {stage_index} ({})", stage.describe());

        if self.s.spec.paused {
            if self.status.phase != Some(Phase::Paused) {
                self.event(false, "Paused", format!("paused at {position}"));
            }
            self.status.phase = Some(Phase::Paused);
            return self.finish(
                Situation::Paused,
                format!("paused at {position} by spec.paused"),
                desired,
            );
        }
        if self.status.phase == Some(Phase::Paused) {
            self.event(false, "Resumed", format!("resumed at {position}"));
            self.status.phase = Some(Phase::Progressing);
        }

        if let Some(reason) = freeze_hold {
            return self.hold_for_freeze(position, reason, desired);
        }
        let mut complete = self.stage_complete(&stage, stage_started_at);
        if let Err(waiting_for) = &complete
            && let Some(max) = stage.max_duration
            && elapsed(stage_started_at, self.s.now) >= max.as_std()
        {
            let why = held_by
                .clone()
                .unwrap_or_else(|| format!("waiting for {waiting_for}"));
            match self.s.spec.analysis.on_max_duration {
                MaxDurationAction::Rollback => {
                    return self.rollback(
                        format!("{position} still held after its maxDuration {max}: {why}"),
                        false,
                        RollbackCause::StageDeadline,
                    );
                }
                MaxDurationAction::Promote if !self.latest_evaluation_failed(stage_started_at) => {
                    self.event(
                        true,
                        "StageDeadline",
                        format!("{position} passes at its maxDuration {max} with nothing established against the canary ({why})"),
                    );
                    complete = Ok(());
                }
                // A failing evaluation is left to failureLimit.
                MaxDurationAction::Promote => {}
            }
        }
        match complete {
            Ok(()) if stage_index + 1 < self.s.spec.stages.len() => {
                let next = stage_index + 1;
                let next_stage = &self.s.spec.stages[next];
                self.status.stage = Some(next as u32);
                self.status.stage_started_at = Some(self.s.now);
                self.status.stage_samples = None;
                self.status.stage_evidence.clear();
                self.status.shared_failure_since = None;
                let message = format!(
                    "stage {next} ({}) started after {position} passed",
                    next_stage.describe()
                );
                self.event(false, "StageAdvanced", message.clone());
                let mut desired = self.desired_at(next_stage);
                desired.requeue_after = self
                    .s
                    .spec
                    .analysis
                    .interval
                    .as_std()
                    .min(FAST_REQUEUE.max(Duration::from_secs(1)));
                self.finish(Situation::Progressing, message, desired)
            }
            Ok(()) => self.start_promotion(target),
            Err(waiting_for) => match held_by {
                Some(reason) => self.finish(
                    Situation::AnalysisHeld,
                    format!("{position} held: {reason}"),
                    desired,
                ),
                None => self.finish(
                    Situation::Progressing,
                    format!("{position}: waiting for {waiting_for}"),
                    desired,
                ),
            },
        }
    }

    /// An in-flight rollout holds its stage while a DeliveryFreeze with `action: Hold` is in
    /// force; its checks still run, and a failing canary still rolls back.
    fn hold_for_freeze(mut self, position: String, reason: String, desired: Desired) -> Plan {
        let already = find_condition(&self.status.conditions, FROZEN)
            .is_some_and(|c| c.is_true() && c.message == reason);
        if !already {
            self.event(true, "Frozen", format!("held at {position}: {reason}"));
        }
        set_condition(
            &mut self.status.conditions,
            Condition::new(FROZEN, true, FROZEN_BY_DELIVERY_FREEZE, &reason, self.s.now),
        );
        self.finish(
            Situation::FreezeHeld,
            format!("{position} held: {reason}"),
            desired,
        )
    }

    fn wait_for_canary(mut self, target: &Workload, stage: &Stage) -> Plan {
        let first_weight = stage.weight;
        let n = self.full_size();
        let canary_size = self
            .desired(first_weight, true)
            .target_replicas
            .unwrap_or(n);
        if target.available && target.replicas == canary_size {
            let index = self.status.stage.unwrap_or(0);
            self.status.stage_started_at = Some(self.s.now);
            let message = format!(
                "canary available; stage {index} ({}) started",
                stage.describe()
            );
            self.event(false, "StageStarted", message.clone());
            let mut desired = self.desired_at(stage);
            desired.requeue_after = FAST_REQUEUE;
            return self.finish(Situation::Progressing, message, desired);
        }
        let started = self.status.rollout_started_at.unwrap_or(self.s.now);
        let deadline = self.s.spec.progress_deadline;
        if elapsed(started, self.s.now) >= deadline.as_std() {
            return self.rollback(
                format!(
                    "canary not available within progressDeadline {deadline}: {}/{canary_size} pods ready",
                    target.ready_replicas
                ),
                false,
                RollbackCause::ProgressDeadline,
            );
        }
        let mut desired = self.desired(if self.uses_router { 0 } else { first_weight }, true);
        desired.requeue_after = FAST_REQUEUE;
        let message = format!(
            "waiting for canary pods: {}/{canary_size} ready",
            target.ready_replicas
        );
        self.finish(Situation::WaitingForCanary, message, desired)
    }

    /// The evidence and levels an evaluation at `stage` is judged with. `1 - confidence` is
    /// spread over every sequential test at every stage (each relative bound, and the spread
    /// of each check bounding an increase), so that over the whole rollout the chance of any of
    /// them failing a canary within its bounds stays at most that.
    fn stage_context(&self, stage: &Stage) -> StageContext<'_> {
        let analysis = &self.s.spec.analysis;
        let bounds: usize = analysis
            .checks
            .iter()
            .map(|c| {
                // An increase bound has two tests: of the mean and of the spread.
                2 * usize::from(c.max_increase.is_some()) + usize::from(c.max_decrease.is_some())
            })
            .sum();
        let tests = bounds * self.s.spec.stages.len();
        let interval = analysis.interval.as_std().as_secs_f64().max(1.0);
        let pause = stage
            .pause
            .unwrap_or(analysis.interval)
            .as_std()
            .as_secs_f64();
        let shared_for = self
            .status
            .shared_failure_since
            .map(|since| elapsed(since, self.s.now));
        StageContext {
            evidence: &self.status.stage_evidence,
            alpha: sequential::split_alpha(1.0 - analysis.confidence, tests),
            expected_evaluations: (pause / interval).max(f64::from(sequential::MIN_PAIRS) * 2.0),
            shared_failures_hold: analysis.shared_failures.hold
                && shared_for.is_none_or(|held| held < analysis.shared_failures.max_hold.as_std()),
            canary_percent: stage.canary_share_percent(),
            shadow: stage.is_shadow(),
        }
    }

    fn latest_evaluation_failed(&self, stage_started_at: Timestamp) -> bool {
        self.status
            .last_evaluation
            .as_ref()
            .is_some_and(|e| e.time >= stage_started_at && e.verdict == Verdict::Fail)
    }

    /// Ok when the stage may pass; else what it still waits for.
    fn stage_complete(&self, stage: &Stage, started: Timestamp) -> Result<(), String> {
        let pause = stage
            .pause
            .unwrap_or(self.s.spec.analysis.interval)
            .as_std();
        let spent = elapsed(started, self.s.now);
        if spent < pause {
            return Err(format!("the pause ({}s left)", (pause - spent).as_secs()));
        }
        if let Some(min) = stage.min_samples {
            let seen = self.status.stage_samples.unwrap_or(0.0);
            if seen < min as f64 {
                return Err(format!("samples ({seen:.0}/{min})"));
            }
        }
        match self
            .status
            .last_evaluation
            .as_ref()
            .filter(|e| e.time > started)
        {
            None => Err("the first evaluation at this stage".to_string()),
            Some(e) if e.verdict == Verdict::Pass => Ok(()),
            Some(e) => Err(format!("a passing evaluation (latest: {:?})", e.verdict)),
        }
    }

    fn until_next_step(
        &self,
        stage: &crate::api::canary_rollout::Stage,
        started: Timestamp,
    ) -> Duration {
        let interval = self.s.spec.analysis.interval.as_std();
        let pause_end = started
            .checked_add(
                stage
                    .pause
                    .unwrap_or(self.s.spec.analysis.interval)
                    .as_std(),
            )
            .ok();
        let next_eval = next_evaluation_at(self.s.spec, &self.status);
        [pause_end, next_eval]
            .into_iter()
            .flatten()
            .map(|at| elapsed(self.s.now, at))
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(interval)
            .clamp(
                Duration::from_millis(500),
                interval.max(Duration::from_secs(1)),
            )
    }

    fn start_promotion(mut self, target: &Workload) -> Plan {
        let revision = target.revision.clone();
        self.status.phase = Some(Phase::Promoting);
        self.status.stage_started_at = Some(self.s.now);
        self.status.stage_evidence.clear();
        self.status.shared_failure_since = None;
        let message =
            format!("promoting revision {revision}: the stable Deployment takes its template");
        self.event(false, "PromotionStarted", message.clone());
        let weight = self.status.canary_weight.unwrap_or(0);
        let mut desired = self.desired(weight, true);
        desired.stable = Some(StableChange {
            copy_target_template: true,
            restore_revision: None,
            replicas: self.full_size(),
        });
        desired.weight = self.status.canary_weight;
        desired.requeue_after = FAST_REQUEUE;
        self.finish(Situation::Promoting, message, desired)
    }

    fn promoting(mut self, target: &Workload) -> Plan {
        let canary_revision = self.status.canary_revision.clone().unwrap_or_default();
        let n = self.full_size();
        let stable = self.s.stable;
        let stable_has_candidate = stable.is_some_and(|s| s.revision == canary_revision);
        if !stable_has_candidate && target.revision != canary_revision {
            // The analysed template is gone from the target before it reached stable.
            self.event(
                false,
                "NewRevision",
                format!(
                    "revision {} replaced {canary_revision} before promotion",
                    target.revision
                ),
            );
            return self.start_rollout(target);
        }
        if stable.is_some_and(|s| s.revision == canary_revision && s.available && s.replicas == n) {
            return self.promoted(canary_revision);
        }
        let ready = stable.map_or(0, |s| s.ready_replicas);
        let weight = self.status.canary_weight.unwrap_or(0);
        let mut desired = self.desired(weight, true);
        if !self.uses_router {
            // Keep the canary serving while the stable pods are replaced.
            desired.target_replicas = Some(target.replicas.max(1));
        }
        desired.stable = Some(StableChange {
            copy_target_template: !stable_has_candidate,
            restore_revision: None,
            replicas: n,
        });
        desired.weight = self.status.canary_weight;
        desired.requeue_after = FAST_REQUEUE;
        let since = self.status.stage_started_at.unwrap_or(self.s.now);
        let deadline = self.s.spec.progress_deadline;
        let message =
            format!("promoting revision {canary_revision}: stable pods ready {ready}/{n}");
        if elapsed(since, self.s.now) >= deadline.as_std() {
            let message = format!("{message}; not done within progressDeadline {deadline}");
            return self.finish(Situation::PromotionStuck, message, desired);
        }
        self.finish(Situation::Promoting, message, desired)
    }

    fn promoted(mut self, revision: String) -> Plan {
        let started = self.status.rollout_started_at.unwrap_or(self.s.now);
        let previous = self.status.stable_revision.replace(revision.clone());
        self.status.previous_stable_revision = previous.filter(|p| *p != revision);
        self.status.phase = Some(Phase::Succeeded);
        self.status.stage_started_at = None;
        self.status.failed_evaluations = 0;
        let message = format!("revision {revision} promoted: all traffic on stable");
        self.push_history(
            &revision,
            RolloutResult::Promoted,
            started,
            "all stages passed".to_string(),
        );
        self.event(false, "Promoted", message.clone());
        set_condition(
            &mut self.status.conditions,
            Condition::new(PROMOTED, true, "Promoted", message.clone(), self.s.now),
        );
        let desired = self.desired(0, false);
        self.finish(Situation::AtRest, message, desired)
    }

    /// Canary weight 0, then the target to 0 replicas, in this very reconcile.
    fn rollback(mut self, reason: String, freeze: bool, cause: RollbackCause) -> Plan {
        self.rollback_cause = Some(cause);
        let revision = self.status.canary_revision.clone().unwrap_or_default();
        let stage = self.status.stage.unwrap_or(0);
        let position = self
            .status
            .canary_traffic()
            .unwrap_or_else(|| "0%".to_string());
        let started = self.status.rollout_started_at.unwrap_or(self.s.now);
        self.status.phase = Some(if freeze {
            Phase::Frozen
        } else {
            Phase::RolledBack
        });
        self.status.stage_evidence.clear();
        self.status.shared_failure_since = None;
        self.status.stage_started_at = None;
        let message =
            format!("revision {revision} rolled back at stage {stage} ({position}): {reason}");
        self.push_history(
            &revision,
            RolloutResult::RolledBack,
            started,
            reason.clone(),
        );
        self.event(true, "RolledBack", message.clone());
        set_condition(
            &mut self.status.conditions,
            Condition::new(PROMOTED, false, "RolledBack", message.clone(), self.s.now),
        );
        let situation = if freeze {
            let note = format!(
                "frozen after rollback: {reason}; clear with the {} annotation",
                super::requests::UNFREEZE
            );
            self.event(true, "Frozen", note.clone());
            set_condition(
                &mut self.status.conditions,
                Condition::new(FROZEN, true, FROZEN_BY_ROLLBACK, note, self.s.now),
            );
            Situation::Frozen
        } else {
            Situation::RolledBack
        };
        let desired = self.desired(0, false);
        self.finish(situation, message, desired)
    }

    fn push_history(
        &mut self,
        revision: &str,
        result: RolloutResult,
        started_at: Timestamp,
        reason: String,
    ) {
        let history = &mut self.status.history;
        history.push(HistoryEntry {
            revision: revision.to_string(),
            result,
            started_at,
            finished_at: self.s.now,
            reason,
        });
        let excess = history.len().saturating_sub(HISTORY_LIMIT);
        history.drain(..excess);
    }
}

struct Desired {
    stable: Option<StableChange>,
    weight: Option<u32>,
    /// Percent of stable's requests copied to the canary, with `weight`.
    mirror: u32,
    target_replicas: Option<i32>,
    requeue_after: Duration,
}

/// Revisions stable or previous before that are neither after.
fn replaced_revisions(before: &CanaryRolloutStatus, after: &CanaryRolloutStatus) -> Vec<String> {
    let kept = [&after.stable_revision, &after.previous_stable_revision];
    [&before.stable_revision, &before.previous_stable_revision]
        .into_iter()
        .flatten()
        .filter(|r| !kept.iter().any(|k| k.as_ref() == Some(*r)))
        .cloned()
        .collect()
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
