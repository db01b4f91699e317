//! The replay loop: the real engine, the real analysis, a virtual clock.
//!
//! The rollout is adopted at the start with the stable revision, then the target is given the
//! candidate revision, as happens live. Each step is one reconcile: the budget's status is
//! brought up to date, the analysis runs when an evaluation is due, `engine::plan` decides, the
//! plan's status becomes the next status and the virtual Deployments follow the plan. The clock
//! then moves by `plan.requeue_after`, until the rollout settles or the recording ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::clock::{ReplaySources, VirtualClock, VirtualClockSource};
use super::inputs::Documents;
use super::world::{BudgetTracker, CANARY_REVISION, Deployments};
use crate::api::canary_rollout::{Evaluation, Phase};
use crate::api::{CanaryRollout, CanaryRolloutStatus};
use crate::engine::{self, Plan, Snapshot};
use crate::gather;
use crate::metrics::MetricsSource;

/// More reconciles than adoption takes with Deployments available at once; a bound, not a wait.
const ADOPTION_RECONCILES: usize = 4;

/// One reconcile worth showing: an evaluation ran or something happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub time: Timestamp,
    /// Stage and weight the step found (those the evaluation judged).
    pub stage: Option<u32>,
    pub weight: Option<u32>,
    /// Percent of stable's requests copied to the canary (a shadow stage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<u32>,
    /// Phase after the step.
    pub phase: Option<Phase>,
    /// The evaluation, when one ran at this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Events the engine recorded, as (reason, note).
    pub events: Vec<StepEvent>,
    /// The engine's status message: the decision in a sentence.
    pub decision: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepEvent {
    pub reason: &'static str,
    pub note: String,
}

/// How a replay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Ending {
    Promoted,
    RolledBack,
    /// Rolled back and frozen, or never started because the budget was frozen.
    Frozen,
    /// Still undecided when the recording ended.
    HeldToEnd,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub result: Ending,
    /// When it was decided (the end of the recording when held).
    pub at: Timestamp,
    /// Time from the rollout's start to `at`.
    #[serde(serialize_with = "as_duration_text")]
    pub after: Duration,
    pub stage: Option<u32>,
    pub weight: Option<u32>,
    /// Percent of stable's requests copied to the canary when it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<u32>,
    /// Why: the rollback's or freeze's reason, or the last status message.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    pub rollout: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub evaluations: usize,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
}

fn as_duration_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&crate::api::Duration::from(*d))
}

/// Replays the rollout of `documents` over [start, end] against `source`.
pub async fn replay(
    documents: &Documents,
    source: Arc<dyn MetricsSource>,
    start: Timestamp,
    end: Timestamp,
) -> Replay {
    let clock = VirtualClock::new(start);
    let source = VirtualClockSource::new(source, clock.clone());
    let sources = ReplaySources(source.clone());
    let mut budget = documents.slo.clone().map(BudgetTracker::new);
    let mut rollout = documents.rollout.clone();
    let mut world = Deployments::before_adoption();
    let annotations = BTreeMap::new();
    let mut status = CanaryRolloutStatus::default();

    let snapshot_plan = |rollout: &CanaryRollout,
                         status: &CanaryRolloutStatus,
                         world: &Deployments,
                         analysis: Option<&engine::analysis::AnalysisInput>,
                         freeze: Option<&str>,
                         now: Timestamp|
     -> Plan {
        engine::plan(&Snapshot {
            spec: &rollout.spec,
            status,
            generation: Some(1),
            annotations: &annotations,
            target: Some(&world.target),
            stable: world.stable.as_ref(),
            problems: &[],
            analysis,
            freeze,
            delivery_freeze: None,
            pipeline: None,
            revoke_stable: None,
            keep_templates: false,
            now,
        })
    };

    // Adoption: the target's template becomes stable (two reconciles: copy, then observe it
    // available), then the candidate arrives.
    for _ in 0..ADOPTION_RECONCILES {
        if status.phase == Some(Phase::Idle) {
            break;
        }
        let plan = snapshot_plan(&rollout, &status, &world, None, None, start);
        world.carry_out(&plan);
        status = plan.status;
    }
    world.push_candidate();

    let mut steps = Vec::new();
    let mut evaluations = 0;
    let mut now = start;
    loop {
        clock.set(now);
        if let Some(budget) = &mut budget {
            budget.refresh(source.as_ref(), now).await;
        }
        let freeze = budget.as_ref().and_then(BudgetTracker::freeze_reason);
        rollout.status = Some(status.clone());
        let evaluate =
            engine::evaluation_wanted(&rollout.spec, &status, &[], Some(&world.target), now);
        let input = match evaluate {
            true => {
                evaluations += 1;
                let (input, _report) = gather::run(
                    &sources,
                    &rollout,
                    Some(CANARY_REVISION),
                    documents.parity.as_ref(),
                    budget.as_ref().map(|b| &b.budget),
                    now,
                )
                .await;
                Some(input)
            }
            false => None,
        };
        let plan = snapshot_plan(
            &rollout,
            &status,
            &world,
            input.as_ref(),
            freeze.as_deref(),
            now,
        );
        world.carry_out(&plan);
        if evaluate || !plan.events.is_empty() {
            steps.push(step(now, &status, &plan, evaluate));
        }
        let traffic_before = (status.canary_weight, status.canary_mirror);
        status = plan.status;
        if let Some(outcome) = settled(&status, traffic_before, now) {
            return finish(documents, start, end, steps, evaluations, outcome);
        }
        match now.checked_add(plan.requeue_after) {
            Ok(next) if next <= end => now = next,
            _ => break,
        }
    }
    let outcome = Outcome {
        result: Ending::HeldToEnd,
        at: end,
        after: since(status.rollout_started_at.unwrap_or(start), end),
        stage: status.stage,
        weight: status.canary_weight,
        mirror: status.canary_mirror,
        reason: status.message.clone().unwrap_or_default(),
    };
    finish(documents, start, end, steps, evaluations, outcome)
}

fn finish(
    documents: &Documents,
    start: Timestamp,
    end: Timestamp,
    steps: Vec<Step>,
    evaluations: usize,
    outcome: Outcome,
) -> Replay {
    Replay {
        rollout: documents.rollout.metadata.name.clone().unwrap_or_default(),
        start,
        end,
        evaluations,
        steps,
        outcome,
    }
}

fn step(now: Timestamp, before: &CanaryRolloutStatus, plan: &Plan, evaluated: bool) -> Step {
    let status = &plan.status;
    Step {
        time: now,
        stage: before.stage,
        weight: before.canary_weight,
        mirror: before.canary_mirror,
        phase: status.phase,
        evaluation: status.last_evaluation.clone().filter(|_| evaluated),
        events: plan
            .events
            .iter()
            .map(|e| StepEvent {
                reason: e.reason,
                note: e.note.clone(),
            })
            .collect(),
        decision: status.message.clone().unwrap_or_default(),
    }
}

/// The outcome, once the rollout has reached a phase it does not leave by itself; `traffic` is
/// the canary's weight and mirror when it was decided.
fn settled(
    status: &CanaryRolloutStatus,
    (weight, mirror): (Option<u32>, Option<u32>),
    now: Timestamp,
) -> Option<Outcome> {
    let result = match status.phase? {
        Phase::Succeeded => Ending::Promoted,
        Phase::RolledBack => Ending::RolledBack,
        Phase::Frozen => Ending::Frozen,
        _ => return None,
    };
    let finished = status.history.last();
    let reason = match (result, finished) {
        (Ending::Promoted, _) => "all stages passed".to_string(),
        (_, Some(entry)) => entry.reason.clone(),
        (_, None) => status.message.clone().unwrap_or_default(),
    };
    Some(Outcome {
        result,
        at: now,
        after: since(status.rollout_started_at.unwrap_or(now), now),
        stage: status.stage,
        weight,
        mirror,
        reason,
    })
}

fn since(from: Timestamp, to: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(to.duration_since(from).as_millis()).unwrap_or(0))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
