//! Scenario tests of the rollout state machine: a tiny simulated world (Deployments that become
//! available at once unless told otherwise) driven by the real planner with a virtual clock.

use std::collections::BTreeMap;

use super::*;
use crate::api::canary_rollout::{
    CanaryRolloutSpec, CanaryRolloutStatus, Phase, RolloutResult, Verdict,
};
use crate::api::delivery_freeze::FreezeAction;
use crate::api::parity_policy::StatisticsMethod;
use crate::engine::analysis::{AnalysisInput, GateEffect, GateSource, GateVerdict};
use crate::engine::delivery_freeze::FreezeInForce;

struct World {
    spec: CanaryRolloutSpec,
    status: CanaryRolloutStatus,
    annotations: BTreeMap<String, String>,
    target: Workload,
    stable: Option<Workload>,
    canary_healthy: bool,
    now: Timestamp,
    events: Vec<PlannedEvent>,
    weights: Vec<u32>,
    /// Every distinct (weight, mirror) the router was given.
    traffic: Vec<(u32, u32)>,
    freeze: Option<String>,
    delivery_freeze: Option<crate::engine::delivery_freeze::FreezeInForce>,
    pipeline: Option<crate::engine::pipeline_gates::Admission>,
    revoke_stable: Option<String>,
    keep_templates: bool,
}

const GATEWAY: &str = "
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
stages: [{weight: 1, pause: 2m}, {weight: 5, pause: 5m}, {weight: 25, pause: 10m}, {weight: 100, pause: 10m}]
analysis:
  interval: 30s
  failureLimit: 2
  checks: [{name: error-rate, query: 'sum(x)', max: 0.01}]
";

impl World {
    fn new(yaml: &str) -> Self {
        let spec: CanaryRolloutSpec = serde_saphyr::from_str(yaml).expect("spec parses");
        Self {
            spec,
            status: CanaryRolloutStatus::default(),
            annotations: BTreeMap::new(),
            target: Workload {
                revision: "rev1".into(),
                replicas: 3,
                ready_replicas: 3,
                available: true,
            },
            stable: None,
            canary_healthy: true,
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            events: Vec::new(),
            weights: Vec::new(),
            traffic: Vec::new(),
            freeze: None,
            delivery_freeze: None,
            pipeline: None,
            revoke_stable: None,
            keep_templates: false,
        }
    }

    /// Adopted and idle on rev1.
    fn adopted(yaml: &str) -> Self {
        let mut world = Self::new(yaml);
        world.step(None);
        world.step(None);
        assert_eq!(world.status.phase, Some(Phase::Idle));
        world
    }

    fn step(&mut self, analysis: Option<AnalysisInput>) -> Plan {
        let problems: Vec<String> = Vec::new();
        let snapshot = Snapshot {
            spec: &self.spec,
            status: &self.status,
            generation: Some(1),
            annotations: &self.annotations,
            target: Some(&self.target),
            stable: self.stable.as_ref(),
            problems: &problems,
            analysis: analysis.as_ref(),
            freeze: self.freeze.as_deref(),
            delivery_freeze: self.delivery_freeze.as_ref(),
            pipeline: self.pipeline.as_ref(),
            revoke_stable: self.revoke_stable.as_deref(),
            keep_templates: self.keep_templates,
            now: self.now,
        };
        let plan = plan(&snapshot);
        self.apply(&plan);
        plan
    }

    fn apply(&mut self, plan: &Plan) {
        self.status = plan.status.clone();
        self.events.extend(plan.events.iter().cloned());
        if let Some(change) = &plan.stable {
            let revision = match (&self.stable, change.copy_target_template) {
                _ if change.restore_revision.is_some() => {
                    change.restore_revision.clone().unwrap_or_default()
                }
                (_, true) => self.target.revision.clone(),
                (Some(stable), false) => stable.revision.clone(),
                (None, false) => panic!("stable changed before it exists"),
            };
            self.stable = Some(Workload {
                revision,
                replicas: change.replicas,
                ready_replicas: change.replicas,
                available: true,
            });
        }
        if let Some(weight) = plan.canary_weight
            && self.weights.last() != Some(&weight)
        {
            self.weights.push(weight);
        }
        if let (Some(weight), Some(mirror)) = (plan.canary_weight, plan.canary_mirror)
            && self.traffic.last() != Some(&(weight, mirror))
        {
            self.traffic.push((weight, mirror));
        }
        if let Some(replicas) = plan.target_replicas {
            self.target.replicas = replicas;
            let ready = if self.canary_healthy { replicas } else { 0 };
            self.target.ready_replicas = ready;
            self.target.available = ready == replicas;
        }
    }

    fn advance(&mut self, secs: i64) {
        self.now = self
            .now
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap();
    }

    /// Runs the clock in 10-second reconciles, evaluating whenever due with `value` for the check.
    fn run_for(&mut self, secs: i64, value: Option<f64>) {
        for _ in 0..secs / 10 {
            self.advance(10);
            let due = evaluation_due(&self.spec, &self.status, self.now);
            let input = due.then(|| AnalysisInput {
                samples: None,
                checks: vec![Ok(value)],
                baselines: vec![],
                gates: vec![],
                prometheus_start: None,
                counts: vec![],
            });
            self.step(input);
        }
    }

    fn new_template(&mut self, revision: &str) {
        self.target.revision = revision.into();
    }

    fn reasons(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.reason).collect()
    }
}

#[test]
fn adoption_makes_the_current_template_stable_without_analysis() {
    let mut world = World::new(GATEWAY);
    let first = world.step(None);
    assert_eq!(
        first.stable,
        Some(StableChange {
            copy_target_template: true,
            restore_revision: None,
            replicas: 3
        })
    );
    assert_eq!(
        first.canary_weight, None,
        "no traffic moves before stable pods are available"
    );
    assert_eq!(first.target_replicas, None);
    let second = world.step(None);
    assert_eq!(second.canary_weight, Some(0));
    assert_eq!(second.target_replicas, Some(0));
    assert_eq!(world.status.stable_revision.as_deref(), Some("rev1"));
    assert_eq!(world.status.phase, Some(Phase::Idle));
    assert!(world.reasons().contains(&"Adopted"));
}

#[test]
fn happy_path_walks_the_stages_in_order_and_promotes() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    let start = world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(
        start.target_replicas,
        Some(3),
        "the canary runs at full size"
    );
    world.step(None); // canary available: stage 0 starts
    assert_eq!(world.status.stage_started_at, Some(world.now));
    let stage_started = world.now;
    world.run_for(110, Some(0.001));
    assert_eq!(world.status.stage, Some(0), "2m pause not over yet");
    world.run_for(20, Some(0.001));
    assert_eq!(world.status.stage, Some(1));
    assert!(world.now.as_second() - stage_started.as_second() >= 120);
    world.run_for(60 * 30, Some(0.001));
    assert_eq!(world.weights, vec![0, 1, 5, 25, 100, 0]);
    assert_eq!(world.status.phase, Some(Phase::Succeeded));
    assert_eq!(world.status.stable_revision.as_deref(), Some("rev2"));
    assert_eq!(world.target.replicas, 0);
    assert_eq!(
        world.status.history.last().map(|h| h.result),
        Some(RolloutResult::Promoted)
    );
    let reasons = world.reasons();
    for reason in [
        "RolloutStarted",
        "StageStarted",
        "StageAdvanced",
        "PromotionStarted",
        "Promoted",
    ] {
        assert!(
            reasons.contains(&reason),
            "{reason} missing from {reasons:?}"
        );
    }
}

#[test]
fn failing_checks_roll_back_when_the_failure_limit_is_reached() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(130, Some(0.001)); // stage 1 (5%)
    assert_eq!(world.status.stage, Some(1));
    world.run_for(30, Some(0.05));
    assert_eq!(world.status.failed_evaluations, 1);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    world.advance(30);
    let input = AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.05))],
        baselines: vec![],
        gates: vec![],
        prometheus_start: None,
        counts: vec![],
    };
    let plan = world.step(Some(input));
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Analysis));
    assert_eq!(
        plan.canary_weight,
        Some(0),
        "traffic leaves the canary in the deciding reconcile"
    );
    assert_eq!(
        plan.target_replicas,
        Some(0),
        "and the target is scaled to 0 in the same plan"
    );
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    let rolled_back = world
        .events
        .iter()
        .find(|e| e.reason == "RolledBack")
        .expect("RolledBack event");
    assert!(rolled_back.warning);
    assert!(
        rolled_back
            .note
            .contains("check error-rate = 0.05 > max 0.01"),
        "{}",
        rolled_back.note
    );
    assert!(
        rolled_back.note.contains("stage 1 (5%)"),
        "{}",
        rolled_back.note
    );
    // It stays rolled back while the failed template sits on the target...
    world.run_for(60, Some(0.0));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert_eq!(world.target.replicas, 0);
    // ...and a new template starts a new rollout.
    world.new_template("rev3");
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.canary_revision.as_deref(), Some("rev3"));
}

#[test]
fn a_pass_resets_the_count_of_consecutive_failures() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(30, Some(0.05));
    assert_eq!(world.status.failed_evaluations, 1);
    world.run_for(30, Some(0.001));
    assert_eq!(world.status.failed_evaluations, 0);
    world.run_for(30, Some(0.05));
    assert_eq!(world.status.phase, Some(Phase::Progressing));
}

#[test]
fn no_data_holds_the_stage_and_never_promotes() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    for _ in 0..6 {
        world.advance(30);
        let input = AnalysisInput {
            samples: None,
            checks: vec![Err("connection refused".into())],
            baselines: vec![],
            gates: vec![],
            prometheus_start: None,
            counts: vec![],
        };
        world.step(Some(input));
    }
    assert_eq!(world.status.stage, Some(0));
    assert_eq!(
        world.status.last_evaluation.as_ref().map(|e| e.verdict),
        Some(Verdict::NoData)
    );
    assert!(
        world
            .status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("connection refused")
    );
    let held = world
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .unwrap();
    assert_eq!(held.reason, "AnalysisHeld");
    assert_eq!(
        world
            .reasons()
            .iter()
            .filter(|r| **r == "AnalysisHeld")
            .count(),
        1,
        "one event per hold, not per tick"
    );
    world.run_for(40, Some(0.001));
    assert_eq!(world.status.stage, Some(1), "resumes once data is back");
}

#[test]
fn min_samples_hold_a_stage_until_enough_traffic_was_seen() {
    let yaml = GATEWAY.replace(
        "{weight: 1, pause: 2m}",
        "{weight: 1, pause: 1m, minSamples: 500}",
    ) + "  sampleCountQuery: 'sum(y)'\n";
    let mut world = World::adopted(&yaml);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    for _ in 0..4 {
        world.advance(30);
        let input = AnalysisInput {
            samples: Some(Ok(Some(100.0))),
            checks: vec![Ok(Some(0.0))],
            baselines: vec![],
            gates: vec![],
            prometheus_start: None,
            counts: vec![],
        };
        world.step(Some(input));
    }
    assert_eq!(world.status.stage, Some(0), "400 samples < 500");
    assert!(
        world
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("samples (400/500)")
    );
    world.advance(30);
    world.step(Some(AnalysisInput {
        samples: Some(Ok(Some(100.0))),
        checks: vec![Ok(Some(0.0))],
        baselines: vec![],
        gates: vec![],
        prometheus_start: None,
        counts: vec![],
    }));
    assert_eq!(world.status.stage, Some(1));
}

#[test]
fn a_new_template_mid_rollout_restarts_at_stage_zero() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(130, Some(0.0));
    assert_eq!(world.status.stage, Some(1));
    world.new_template("rev3");
    let plan = world.step(None);
    assert_eq!(
        plan.canary_weight,
        Some(0),
        "no traffic to pods of the replaced revision"
    );
    assert_eq!(world.status.stage, Some(0));
    assert_eq!(world.status.canary_revision.as_deref(), Some("rev3"));
    assert!(world.reasons().contains(&"NewRevision"));
}

#[test]
fn progress_deadline_rolls_back_a_canary_that_never_becomes_available() {
    let mut world = World::adopted(GATEWAY);
    world.canary_healthy = false;
    world.new_template("rev2");
    world.step(None);
    world.run_for(590, None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert!(
        world
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("0/3 ready")
    );
    world.run_for(20, None);
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert!(
        world
            .status
            .history
            .last()
            .unwrap()
            .reason
            .contains("progressDeadline 10m")
    );
}

#[test]
fn paused_holds_the_stage_and_resume_continues() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.spec.paused = true;
    world.run_for(600, Some(0.0));
    assert_eq!(world.status.phase, Some(Phase::Paused));
    assert_eq!(world.status.stage, Some(0));
    world.spec.paused = false;
    world.run_for(20, Some(0.0));
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.stage, Some(1));
}

#[test]
fn promote_abort_and_retry_requests() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world
        .annotations
        .insert(crate::engine::requests::ABORT.into(), "1".into());
    let plan = world.step(None);
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Manual));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert!(
        world
            .status
            .history
            .last()
            .unwrap()
            .reason
            .contains("aborted by request")
    );
    world
        .annotations
        .insert(crate::engine::requests::RETRY.into(), "1".into());
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.canary_revision.as_deref(), Some("rev2"));
    world.step(None);
    world
        .annotations
        .insert(crate::engine::requests::PROMOTE.into(), "1".into());
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Promoting));
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Succeeded));
    assert_eq!(world.status.stable_revision.as_deref(), Some("rev2"));
    // The same annotation values do nothing the next time round.
    world.new_template("rev3");
    world.step(None);
    world.step(None);
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
}

#[test]
fn replicas_router_sizes_the_canary_by_weight() {
    let yaml = GATEWAY.replace("{gatewayAPI: {httpRoutes: [checkout]}}", "{replicas: {}}");
    let mut world = World::adopted(&yaml);
    world.new_template("rev2");
    let plan = world.step(None);
    assert_eq!(plan.canary_weight, None, "no router to patch");
    assert_eq!(plan.target_replicas, Some(1));
    world.step(None);
    world.run_for(60 * 30, Some(0.0));
    assert_eq!(world.status.phase, Some(Phase::Succeeded));
    assert_eq!(world.target.replicas, 0);
    assert_eq!(world.stable.as_ref().unwrap().replicas, 3);
}

#[test]
fn freeze_keeps_a_new_rollout_from_starting_until_it_lifts() {
    let mut world = World::adopted(GATEWAY);
    world.freeze = Some("error budget 4% left, under freezeBelowRemaining 10%".into());
    world.new_template("rev2");
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Frozen));
    // The budget's figures move at each evaluation: still one event for the one freeze.
    world.freeze = Some("error budget 3% left, under freezeBelowRemaining 10%".into());
    world.step(None);
    assert_eq!(
        world.reasons().iter().filter(|r| **r == "Frozen").count(),
        1
    );
    assert_eq!(world.target.replicas, 0);
    world.freeze = None;
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    // A lifted freeze leaves no Frozen condition behind, even with nothing left to roll out.
    let mut world = World::adopted(GATEWAY);
    world.freeze = Some("budget spent".into());
    world.new_template("rev2");
    world.step(None);
    assert!(
        world
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Frozen" && c.is_true())
    );
    world.new_template("rev1");
    world.freeze = None;
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Idle));
    assert!(
        !world.status.conditions.iter().any(|c| c.type_ == "Frozen"),
        "{:?}",
        world.status.conditions
    );
}

fn delivery_freeze(action: FreezeAction) -> FreezeInForce {
    FreezeInForce {
        freeze: "team/stop".into(),
        action,
        reason: format!(
            "DeliveryFreeze team/stop ({}): incident 4711",
            action.as_str()
        ),
    }
}

fn condition<'w>(world: &'w World, kind: &str) -> Option<&'w crate::api::conditions::Condition> {
    world.status.conditions.iter().find(|c| c.type_ == kind)
}

#[test]
fn a_delivery_freeze_holds_a_new_release_until_it_is_thawed_and_no_request_overrides_it() {
    let mut world = World::adopted(GATEWAY);
    world.delivery_freeze = Some(delivery_freeze(FreezeAction::Hold));
    world.new_template("rev2");
    world
        .annotations
        .insert(crate::engine::requests::OVERRIDE_FREEZE.into(), "1".into());
    world.step(None);
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Frozen));
    assert_eq!(world.target.replicas, 0);
    let frozen = condition(&world, "Frozen").unwrap();
    assert_eq!(frozen.reason, FROZEN_BY_DELIVERY_FREEZE);
    assert!(frozen.message.contains("incident 4711"));
    assert_eq!(
        world.reasons().iter().filter(|r| **r == "Frozen").count(),
        1,
        "one event, not one per reconcile"
    );
    assert_eq!(condition(&world, "Stalled").unwrap().reason, "Frozen");

    world.delivery_freeze = None;
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert!(condition(&world, "Frozen").is_none());
    assert!(world.reasons().contains(&"Thawed"));
}

#[test]
fn a_hold_freeze_keeps_an_in_flight_rollout_at_its_stage_and_a_failing_canary_still_rolls_back() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(130, Some(0.0));
    assert_eq!(world.status.stage, Some(1));
    world.delivery_freeze = Some(delivery_freeze(FreezeAction::Hold));
    world.run_for(3600, Some(0.0));
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(
        world.status.stage,
        Some(1),
        "no stage advances while frozen"
    );
    assert_eq!(world.weights.last(), Some(&5));
    assert_eq!(condition(&world, "Reconciling").unwrap().reason, "Frozen");
    assert_eq!(
        condition(&world, "Frozen").unwrap().reason,
        FROZEN_BY_DELIVERY_FREEZE
    );
    assert!(
        world
            .status
            .message
            .as_deref()
            .unwrap()
            .starts_with("stage 1 (5%) held: DeliveryFreeze team/stop (Hold)")
    );
    world
        .annotations
        .insert(crate::engine::requests::PROMOTE.into(), "1".into());
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing), "no promotion");
    assert!(world.reasons().contains(&"PromoteRefused"));

    world.delivery_freeze = None;
    world.run_for(20, Some(0.0));
    assert_eq!(world.status.stage, Some(2), "thawed: the stage passes");
    assert!(condition(&world, "Frozen").is_none());

    // Held again, the checks still judge: failures roll the canary back.
    world.delivery_freeze = Some(delivery_freeze(FreezeAction::Hold));
    world.run_for(120, Some(0.5));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
}

#[test]
fn a_rollback_freeze_rolls_an_in_flight_canary_back_at_once() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(130, Some(0.0));
    assert_eq!(world.weights.last(), Some(&5));
    world.delivery_freeze = Some(delivery_freeze(FreezeAction::Rollback));
    let plan = world.step(None);
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Freeze));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert_eq!(plan.canary_weight, Some(0));
    assert_eq!(world.target.replicas, 0);
    assert_eq!(
        world.status.history.last().unwrap().reason,
        "DeliveryFreeze team/stop (Rollback): incident 4711"
    );
    // A newer template does not start while the kill switch is on.
    world.new_template("rev3");
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Frozen));
}

#[test]
fn a_candidate_the_pipeline_has_not_cleared_waits_and_a_revoked_one_is_rolled_back() {
    use crate::engine::pipeline_gates::Admission;
    let mut world = World::adopted(GATEWAY);
    let why = "checkout:2.1 has soaked 3s of 7s in staging";
    world.pipeline = Some(Admission::Wait(why.into()));
    world.new_template("rev2");
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Waiting));
    assert_eq!(world.target.replicas, 0);
    let waiting = find_condition(&world.status.conditions, "Waiting").expect("Waiting condition");
    assert!(waiting.is_true() && waiting.message == why, "{waiting:?}");
    assert!(
        world
            .events
            .iter()
            .any(|e| e.reason == "PipelineWaiting" && e.note.contains(why))
    );
    // Waiting again announces nothing new.
    let events = world.events.len();
    world.step(None);
    assert_eq!(world.events.len(), events);

    world.pipeline = Some(Admission::Admit);
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert!(find_condition(&world.status.conditions, "Waiting").is_none());
    world.step(None);
    world.advance(30);

    let revoked = "checkout:2.1 was revoked in staging: SLO checkout-slo/availability Critical";
    world.pipeline = Some(Admission::Revoke(revoked.into()));
    let plan = world.step(None);
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Pipeline));
    assert_eq!(world.target.replicas, 0);
    assert!(
        world
            .status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(revoked)
    );
}

#[test]
fn a_promoted_revision_revoked_by_its_pipeline_gives_stable_back_to_the_one_before() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.status.stage = Some(4); // past the last stage: promote
    world.step(None);
    world.step(None);
    assert_eq!(
        world.status.phase,
        Some(Phase::Succeeded),
        "{:?}",
        world.status.message
    );
    assert_eq!(world.status.stable_revision.as_deref(), Some("rev2"));
    assert_eq!(
        world.status.previous_stable_revision.as_deref(),
        Some("rev1")
    );

    let reason = "checkout:2.1 revoked in staging: check error-rate = 0.05 above max 0.01";
    world.revoke_stable = Some(reason.into());
    world.keep_templates = true;
    let plan = world.step(None);
    assert!(plan.save_template);
    assert_eq!(
        plan.forget_templates,
        vec!["rev2".to_string()],
        "the revoked template goes"
    );
    assert_eq!(
        plan.stable
            .as_ref()
            .and_then(|s| s.restore_revision.as_deref()),
        Some("rev1")
    );
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Pipeline));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert_eq!(world.status.stable_revision.as_deref(), Some("rev1"));
    assert_eq!(world.status.previous_stable_revision, None);
    let last = world.status.history.last().expect("history");
    assert_eq!(
        (last.revision.as_str(), last.result),
        ("rev2", RolloutResult::RolledBack)
    );
    assert!(
        world
            .events
            .iter()
            .any(|e| e.warning && e.reason == "StableReverted")
    );
    // Nothing earlier to go back to: the revision stays.
    world.revoke_stable = Some(reason.into());
    let plan = world.step(None);
    assert_eq!(
        plan.stable
            .as_ref()
            .and_then(|s| s.restore_revision.as_deref()),
        None
    );
}

#[test]
fn a_gate_rollback_and_freeze_stops_the_rollout_at_once() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.advance(30);
    let gate = GateVerdict {
        source: GateSource::Parity,
        effect: GateEffect::RollbackAndFreeze,
        reason: "parity Emergency: rms 140.2 bps".into(),
        parity: None,
        slo: None,
        evidence: Vec::new(),
    };
    let plan = world.step(Some(AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.0))],
        baselines: vec![],
        gates: vec![gate],
        prometheus_start: None,
        counts: vec![],
    }));
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Parity));
    assert_eq!(world.status.phase, Some(Phase::Frozen));
    assert_eq!(world.target.replicas, 0);
    // Frozen until a person clears it: a new template does not start a rollout.
    world.new_template("rev3");
    world.step(None);
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Frozen));
    assert_eq!(world.target.replicas, 0);
    world
        .annotations
        .insert(crate::engine::requests::UNFREEZE.into(), "1".into());
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.canary_revision.as_deref(), Some("rev3"));
    assert!(world.reasons().contains(&"Unfrozen"));
}

#[test]
fn a_rollback_decided_by_the_statistical_comparison_is_a_parity_rollback_naming_the_test() {
    use crate::api::parity_policy::{ParityLevel, ParityPolicySpec, StatisticsSpec};
    use crate::engine::parity::{ParityInput, evaluate};
    use crate::engine::parity_gate::gate_verdict;

    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.advance(30);
    // A 12 bps shift: far under the thresholds (20 / 50 / 100 bps), beyond a 10 bps tolerance.
    let mut spec: ParityPolicySpec =
        serde_saphyr::from_str("query: 'x{track=\"{{track}}\"}'\nconsecutiveBreaches: 1\n")
            .expect("test spec parses");
    spec.statistics = Some(StatisticsSpec {
        method: StatisticsMethod::FixedHorizon,
        confidence: 0.98,
        tolerance: 0.001,
        level: ParityLevel::Critical,
        good: None,
        total: None,
    });
    let series = |shift: f64, seed: usize| -> Vec<(f64, f64)> {
        (0..200)
            .map(|i| {
                let noise = ((i * 7919 + seed * 104_729) % 10_007) as f64 / 5_003.5 - 1.0;
                (i as f64, 100.0 * (1.0 + shift + 0.0005 * noise))
            })
            .collect()
    };
    let (candidate, baseline) = (series(0.0012, 1), series(0.0, 2));
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &[],
        proportions: None,
    };
    let report = evaluate(&spec, &input, 0, world.now);
    let plan = world.step(Some(AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.0))],
        baselines: vec![],
        gates: vec![gate_verdict(&spec, &report, None)],
        prometheus_start: None,
        counts: vec![],
    }));
    assert_eq!(plan.rollback_cause, Some(RollbackCause::Parity));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    let reason = &world.status.history.last().expect("a history entry").reason;
    assert!(
        reason.starts_with("parity Critical: Mann-Whitney U p=")
            && reason.contains("Hodges-Lehmann shift"),
        "{reason}"
    );
    assert!(!reason.contains("bps >="), "{reason}");
}

#[test]
fn invalid_spec_changes_nothing_and_resumes_when_fixed() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    let problems = vec!["spec.stages weights must increase strictly".to_string()];
    let snapshot = Snapshot {
        spec: &world.spec,
        status: &world.status,
        generation: Some(2),
        annotations: &world.annotations,
        target: Some(&world.target),
        stable: world.stable.as_ref(),
        problems: &problems,
        analysis: None,
        freeze: None,
        delivery_freeze: None,
        pipeline: None,
        revoke_stable: None,
        keep_templates: false,
        now: world.now,
    };
    let invalid = plan(&snapshot);
    assert_eq!(
        (
            invalid.canary_weight,
            invalid.target_replicas,
            invalid.stable.clone()
        ),
        (None, None, None)
    );
    assert_eq!(invalid.status.phase, Some(Phase::Invalid));
    let stalled = invalid
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert!(stalled.is_true() && stalled.reason == "InvalidSpec");
    assert!(
        invalid
            .events
            .iter()
            .any(|e| e.warning && e.reason == "InvalidSpec")
    );
    world.apply(&invalid);
    world.step(None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
}

#[test]
fn history_keeps_the_last_ten() {
    let mut world = World::adopted(GATEWAY);
    for i in 0..12 {
        world.new_template(&format!("bad{i}"));
        world.step(None);
        world
            .annotations
            .insert(crate::engine::requests::ABORT.into(), i.to_string());
        world.step(None);
    }
    assert_eq!(world.status.history.len(), 10);
    assert_eq!(world.status.history.last().unwrap().revision, "bad11");
}

#[test]
fn queries_run_only_for_a_valid_spec_on_the_candidate_being_judged_when_due() {
    let mut world = World::adopted(GATEWAY);
    world.new_template("rev2");
    world.step(None);
    world.step(None); // canary available: stage 0 starts
    world.advance(40);
    let wanted = |world: &World, problems: &[String], revision: &str| {
        let target = Workload {
            revision: revision.into(),
            ..world.target.clone()
        };
        evaluation_wanted(
            &world.spec,
            &world.status,
            problems,
            Some(&target),
            world.now,
        )
    };
    assert!(wanted(&world, &[], "rev2"));
    assert!(!wanted(&world, &["bad".to_string()], "rev2"));
    // A newer template: the rollout restarts before anything is judged.
    assert!(!wanted(&world, &[], "rev3"));
    let plan = world.step(Some(AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.001))],
        baselines: vec![],
        gates: vec![],
        prometheus_start: None,
        counts: vec![],
    }));
    assert!(plan.track_services);
    world.advance(1);
    assert!(!wanted(&world, &[], "rev2"), "an interval has not passed");
}

#[path = "rollout_judge_tests.rs"]
mod judge;

const SHADOW: &str = "
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
stages: [{mirror: 100, pause: 5m}, {weight: 1, pause: 2m}, {weight: 100, pause: 2m}]
analysis:
  interval: 30s
  failureLimit: 2
  checks: [{name: error-rate, query: 'sum(x)', max: 0.01}]
";

#[test]
fn a_shadow_stage_mirrors_at_weight_zero_then_the_weights_follow() {
    let mut world = World::adopted(SHADOW);
    world.new_template("rev2");
    world.step(None);
    world.step(None); // canary available: the shadow stage starts
    assert_eq!(world.status.canary_mirror, Some(100));
    assert_eq!(world.status.canary_weight, Some(0));
    assert!(
        world.events.iter().any(|e| e.reason == "StageStarted"
            && e.note.contains("stage 0 (shadow 100%) started")),
        "{:?}",
        world.events
    );
    world.run_for(290, Some(0.001));
    assert_eq!(world.status.stage, Some(0), "5m pause not over yet");
    world.run_for(20, Some(0.001));
    assert_eq!(world.status.stage, Some(1));
    assert_eq!(world.status.canary_mirror, None);
    world.run_for(60 * 10, Some(0.001));
    assert_eq!(world.status.phase, Some(Phase::Succeeded));
    assert_eq!(
        world.traffic,
        vec![(0, 0), (0, 100), (1, 0), (100, 0), (0, 0)],
        "the mirror is on exactly during the shadow stage"
    );
}

#[test]
fn a_candidate_failing_on_mirrored_traffic_rolls_back_before_any_weight() {
    let mut world = World::adopted(SHADOW);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    world.run_for(60, Some(0.05));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    assert_eq!(world.traffic, vec![(0, 0), (0, 100), (0, 0)]);
    assert_eq!(world.status.canary_mirror, None);
    let rolled_back = world
        .events
        .iter()
        .find(|e| e.reason == "RolledBack")
        .expect("RolledBack event");
    assert!(
        rolled_back.note.contains("at stage 0 (shadow 100%)"),
        "{}",
        rolled_back.note
    );
}
