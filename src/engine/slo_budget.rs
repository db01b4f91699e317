//! The status of an SLOBudget, as its reconcile writes it every `spec.interval`: the
//! objectives, complianceScore and frozen from the figures of `engine::slo`, the Ready, Stalled
//! and Frozen conditions, an event per objective whose state changed and one when the freeze
//! starts or lifts, and when to look again. It never acts on a rollout: rollouts read
//! `status.frozen` (`engine::slo_gate`). Pure: measuring the whole service belongs to
//! `gather::slo`, writing the status and the events to the shell.
//!
//! An objective whose queries fail keeps its last figures (an outage neither starts nor lifts
//! a freeze) and the Ready condition says which query failed; an objective whose queries return
//! nothing is Unknown, and no data never freezes.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::PlannedEvent;
use super::slo::{self, FiringPair, Measurements, SloReport};
use super::slo_gate::spec_problems;
use crate::api::conditions::{Condition, FROZEN, READY, RECONCILING, STALLED, set_condition};
use crate::api::slo_budget::{ObjectiveState, ObjectiveStatus, SLOBudgetSpec, SLOBudgetStatus};

/// The shortest wait between two reconciles of a budget.
pub const MIN_REQUEUE: Duration = Duration::from_millis(200);

/// What one reconcile writes and records.
#[derive(Clone, Debug, PartialEq)]
pub struct SloBudgetPlan {
    pub status: SLOBudgetStatus,
    pub events: Vec<PlannedEvent>,
    /// When to look again; none waits for a change of the budget.
    pub requeue: Option<Duration>,
}

/// What a reconcile does before measuring anything.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The spec is invalid: write this and measure nothing.
    Invalid(SloBudgetPlan),
    /// The last evaluation is recent and the spec unchanged: look again after this long.
    Wait(Duration),
    /// An evaluation is due: measure the whole service, then call [`plan`].
    Measure,
}

/// Whether the budget is valid and due for an evaluation at `now`. `generation` is the budget's
/// `metadata.generation`: a changed spec is evaluated at once.
pub fn step(
    spec: &SLOBudgetSpec,
    generation: Option<i64>,
    old: &SLOBudgetStatus,
    now: Timestamp,
) -> Step {
    let problems = spec_problems(spec);
    if !problems.is_empty() {
        return Step::Invalid(invalid(generation, old, &problems, now));
    }
    let spec_changed = old.observed_generation != generation;
    let next = old
        .last_evaluation_time
        .and_then(|t| t.checked_add(spec.interval.as_std()).ok())
        .filter(|_| !spec_changed);
    match next.filter(|next| *next > now) {
        Some(next) => Step::Wait(until(now, next)),
        None => Step::Measure,
    }
}

fn invalid(
    generation: Option<i64>,
    old: &SLOBudgetStatus,
    problems: &[String],
    now: Timestamp,
) -> SloBudgetPlan {
    let mut status = old.clone();
    status.observed_generation = generation;
    let message = format!("invalid spec: {}", problems.join("; "));
    let was_invalid = old
        .conditions
        .iter()
        .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
    set_health(&mut status, Health::Invalid, &message, generation, now);
    let events = (!was_invalid)
        .then(|| event(true, "InvalidSpec", message))
        .into_iter()
        .collect();
    SloBudgetPlan {
        status,
        events,
        requeue: None,
    }
}

/// The status after an evaluation at `now` of what was measured for the whole service;
/// `errors` are the failed queries per objective (see the module doc).
pub fn plan(
    spec: &SLOBudgetSpec,
    generation: Option<i64>,
    old: &SLOBudgetStatus,
    measurements: &Measurements,
    errors: &BTreeMap<String, String>,
    now: Timestamp,
) -> SloBudgetPlan {
    let report = keep_failed(
        slo::evaluate(spec, measurements, now),
        &old.objectives,
        errors,
        spec,
    );
    let mut status = old.clone();
    status.observed_generation = generation;
    status.objectives = report.objectives.clone();
    status.compliance_score = report.compliance_score;
    status.frozen = report.frozen;
    status.last_evaluation_time = Some(now);
    let mut events = Vec::new();
    if errors.is_empty() {
        set_health(
            &mut status,
            Health::Evaluated,
            &summary(&report),
            generation,
            now,
        );
    } else {
        let failed: Vec<String> = errors
            .iter()
            .map(|(objective, error)| format!("objective {objective}: {error}"))
            .collect();
        let message = format!(
            "queries failed, the last figures of these objectives are kept: {}",
            failed.join("; ")
        );
        let was_failing = old
            .conditions
            .iter()
            .any(|c| c.type_ == READY && c.reason == "QueryFailed");
        set_health(&mut status, Health::QueryFailed, &message, generation, now);
        if !was_failing {
            events.push(event(true, "QueryFailed", message));
        }
    }
    let mut frozen = Condition::new(
        FROZEN,
        report.frozen,
        if report.frozen {
            "BudgetFrozen"
        } else {
            "BudgetAvailable"
        },
        report.freeze_reason.clone(),
        now,
    );
    frozen.observed_generation = generation;
    set_condition(&mut status.conditions, frozen);

    for change in state_changes(&old.objectives, &report) {
        events.push(event(change.warning, "ObjectiveStateChanged", change.note));
    }
    match (old.frozen, report.frozen) {
        (false, true) => events.push(event(true, "BudgetFrozen", report.freeze_reason)),
        (true, false) => events.push(event(false, "BudgetRecovered", report.freeze_reason)),
        _ => {}
    }
    SloBudgetPlan {
        status,
        events,
        requeue: Some(spec.interval.as_std().max(MIN_REQUEUE)),
    }
}

fn event(warning: bool, reason: &'static str, note: String) -> PlannedEvent {
    PlannedEvent {
        warning,
        reason,
        note,
    }
}

fn until(now: Timestamp, next: Timestamp) -> Duration {
    let millis = next.duration_since(now).as_millis();
    Duration::from_millis(u64::try_from(millis).unwrap_or(0)).max(MIN_REQUEUE)
}

/// Objectives whose queries failed keep their previous figures, when they have some; the score,
/// the freeze and the firing pairs are recomputed over the result.
pub fn keep_failed(
    mut report: SloReport,
    previous: &[ObjectiveStatus],
    errors: &BTreeMap<String, String>,
    spec: &SLOBudgetSpec,
) -> SloReport {
    if errors.is_empty() {
        return report;
    }
    for objective in &mut report.objectives {
        if !errors.contains_key(&objective.name) {
            continue;
        }
        if let Some(last) = previous.iter().find(|p| p.name == objective.name) {
            *objective = last.clone();
        }
    }
    report
        .firing
        .retain(|pair| !errors.contains_key(&pair.objective));
    report.compliance_score =
        slo::compliance_score(report.objectives.iter().map(|o| o.budget_remaining));
    let freeze = slo::freeze(&report.objectives, &spec.policy);
    report.frozen = freeze.frozen;
    report.freeze_reason = freeze.reason;
    report
}

/// An event about an objective whose state changed.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    pub warning: bool,
    pub note: String,
}

/// One event per objective whose state differs from the last evaluation (or that is new),
/// a Warning unless it is now Meeting.
pub fn state_changes(previous: &[ObjectiveStatus], report: &SloReport) -> Vec<StateChange> {
    report
        .objectives
        .iter()
        .filter_map(|objective| {
            let before = previous
                .iter()
                .find(|p| p.name == objective.name)
                .map(|p| p.state);
            if before == Some(objective.state) {
                return None;
            }
            let transition = match before {
                Some(before) => format!("{before} -> {}", objective.state),
                None => objective.state.to_string(),
            };
            let mut note = format!(
                "objective {} {transition}: {}",
                objective.name,
                describe(objective)
            );
            let firing: Vec<String> = report
                .firing
                .iter()
                .filter(|p| p.objective == objective.name)
                .map(FiringPair::to_string)
                .collect();
            if !firing.is_empty() {
                note.push_str(&format!("; {}", firing.join("; ")));
            }
            Some(StateChange {
                warning: objective.state != ObjectiveState::Meeting,
                note,
            })
        })
        .collect()
}

/// "92.0 % of its error budget left (SLI 99.960 %)", or why there is no figure.
fn describe(objective: &ObjectiveStatus) -> String {
    match (objective.budget_remaining, objective.sli) {
        (Some(remaining), Some(sli)) => format!(
            "{:.1} % of its error budget left (SLI {:.3} %)",
            remaining * 100.0,
            sli * 100.0
        ),
        _ => "no data over the SLO window".to_string(),
    }
}

/// The Ready message: the score, each objective, and the freeze.
fn summary(report: &SloReport) -> String {
    let score = report
        .compliance_score
        .map_or("no compliance score (no data)".to_string(), |s| {
            format!("compliance {s:.1}")
        });
    let objectives: Vec<String> = report
        .objectives
        .iter()
        .map(|o| format!("{} {}, {}", o.name, o.state, describe(o)))
        .collect();
    format!(
        "{score}; {}; {}",
        objectives.join("; "),
        report.freeze_reason
    )
}

enum Health {
    Evaluated,
    QueryFailed,
    Invalid,
}

fn set_health(
    status: &mut SLOBudgetStatus,
    health: Health,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (ready, reason, stalled) = match health {
        Health::Evaluated => (true, "Evaluated", false),
        Health::QueryFailed => (false, "QueryFailed", false),
        Health::Invalid => (false, "InvalidSpec", true),
    };
    for (type_, value) in [(READY, ready), (RECONCILING, false), (STALLED, stalled)] {
        let mut condition = Condition::new(type_, value, reason, message, now);
        condition.observed_generation = generation;
        set_condition(&mut status.conditions, condition);
    }
}

#[cfg(test)]
#[path = "slo_budget_tests.rs"]
mod tests;
