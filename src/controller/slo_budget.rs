//! The SLOBudget reconciler: every `spec.interval` it measures each objective over the SLO
//! window and the burn-rate windows for the whole service, lets the pure SLO engine judge the
//! figures, and writes them to status (objectives, complianceScore, frozen, conditions), to
//! events on state changes and to the operator metrics. It never acts on a rollout: rollouts
//! read `status.frozen` and run their own canary queries (`super::slo`).
//!
//! An objective whose queries fail keeps its last figures (an outage neither starts nor lifts
//! a freeze) and the Ready condition says which query failed; an objective whose queries return
//! nothing is Unknown, and no data never freezes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::warn;

use super::Context;
use super::error::Error;
use super::metrics::SloFigures;
use super::objects;
use super::slo;
use crate::api::conditions::{Condition, FROZEN, READY, RECONCILING, STALLED, set_condition};
use crate::api::slo_budget::{ObjectiveState, ObjectiveStatus, SLOBudget, SLOBudgetStatus};
use crate::engine::slo::{self as engine, FiringPair, Measurements, SloReport};

const ERROR_REQUEUE: Duration = Duration::from_secs(10);
const MIN_REQUEUE: Duration = Duration::from_millis(200);

pub async fn reconcile(budget: Arc<SLOBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = budget.namespace().ok_or(Error::MissingNamespace)?;
    let name = budget.name_any();
    let spec = &budget.spec;
    let generation = budget.metadata.generation;
    let old = budget.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    let now = Timestamp::now();

    let problems = slo::spec_problems(spec);
    if !problems.is_empty() {
        let message = format!("invalid spec: {}", problems.join("; "));
        let was_invalid = old
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
        set_health(&mut status, Health::Invalid, &message, generation, now);
        if !was_invalid {
            objects::publish(&ctx, budget.as_ref(), true, "InvalidSpec", &message).await;
        }
        objects::apply_status(&ctx, budget.as_ref(), &old, &status).await?;
        return Ok(Action::await_change());
    }

    let interval = spec.interval.as_std();
    let spec_changed = old.observed_generation != generation;
    let next = old
        .last_evaluation_time
        .and_then(|t| t.checked_add(interval).ok())
        .filter(|_| !spec_changed);
    if let Some(next) = next.filter(|next| *next > now) {
        return Ok(Action::requeue(until(now, next)));
    }

    let source = ctx
        .prometheus
        .get(spec.prometheus.as_ref().map(|p| p.address.as_str()));
    let (measurements, errors) = match source {
        Ok(source) => slo::measure_service(source.as_ref(), &namespace, spec).await,
        Err(error) => (
            Measurements::new(),
            spec.objectives
                .iter()
                .map(|o| (o.name.clone(), error.to_string()))
                .collect(),
        ),
    };
    let report = keep_failed(
        engine::evaluate(spec, &measurements, now),
        &old.objectives,
        &errors,
        spec,
    );

    status.objectives = report.objectives.clone();
    status.compliance_score = report.compliance_score;
    status.frozen = report.frozen;
    status.last_evaluation_time = Some(now);
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
            objects::publish(&ctx, budget.as_ref(), true, "QueryFailed", &message).await;
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

    ctx.metrics.record_slo(
        &namespace,
        &name,
        &SloFigures {
            objectives: &status.objectives,
            compliance_score: status.compliance_score,
            frozen: status.frozen,
        },
    );
    objects::apply_status(&ctx, budget.as_ref(), &old, &status).await?;
    for change in state_changes(&old.objectives, &report) {
        objects::publish(
            &ctx,
            budget.as_ref(),
            change.warning,
            "ObjectiveStateChanged",
            &change.note,
        )
        .await;
    }
    match (old.frozen, report.frozen) {
        (false, true) => {
            objects::publish(
                &ctx,
                budget.as_ref(),
                true,
                "BudgetFrozen",
                &report.freeze_reason,
            )
            .await
        }
        (true, false) => {
            objects::publish(
                &ctx,
                budget.as_ref(),
                false,
                "BudgetRecovered",
                &report.freeze_reason,
            )
            .await
        }
        _ => {}
    }
    Ok(Action::requeue(interval.max(MIN_REQUEUE)))
}

pub fn error_policy(budget: Arc<SLOBudget>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.record_error("slo_budget", error.category());
    warn!(budget = %budget.name_any(), namespace = budget.namespace().unwrap_or_default(), category = error.category(), "reconcile failed: {error}");
    Action::requeue(ERROR_REQUEUE)
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
    spec: &crate::api::SLOBudgetSpec,
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
        engine::compliance_score(report.objectives.iter().map(|o| o.budget_remaining));
    let freeze = engine::freeze(&report.objectives, &spec.policy);
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
                Some(before) => format!("{before:?} -> {:?}", objective.state),
                None => format!("{:?}", objective.state),
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
        .map(|o| format!("{} {:?}, {}", o.name, o.state, describe(o)))
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
mod tests {
    use super::*;
    use crate::api::slo_budget::SLOBudgetSpec;

    #[test]
    fn the_next_evaluation_waits_the_rest_of_the_interval() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let next = now
            .checked_add(jiff::SignedDuration::from_millis(2_500))
            .unwrap();
        assert_eq!(until(now, next), Duration::from_millis(2_500));
        assert_eq!(until(next, now), MIN_REQUEUE);
    }

    fn spec() -> SLOBudgetSpec {
        serde_saphyr::from_str(
            "window: 2m
objectives:
- {name: availability, target: 99, good: 'sum(good[{{window}}])', total: 'sum(total[{{window}}])'}
- {name: latency, target: 99, good: 'sum(fast[{{window}}])', total: 'sum(total[{{window}}])'}
burnRateAlerts:
- {long: 20s, short: 5s, factor: 14.4, severity: Critical}
",
        )
        .expect("test spec parses")
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    /// availability at `availability` SLI on every window, latency at 100 %.
    fn measured(availability: f64) -> Measurements {
        let mut measurements = Measurements::new();
        for window in engine::query_windows(&spec()) {
            measurements = measurements
                .with(
                    "availability",
                    window,
                    Some(availability * 100.0),
                    Some(100.0),
                )
                .with("latency", window, Some(100.0), Some(100.0));
        }
        measurements
    }

    #[test]
    fn a_failed_objective_keeps_its_last_figures_and_its_freeze() {
        let spec = spec();
        let before = engine::evaluate(&spec, &measured(0.95), now());
        assert!(before.frozen, "{}", before.freeze_reason);
        // Prometheus fails for availability: what was measured of it is not trusted.
        let errors = BTreeMap::from([("availability".to_string(), "unreachable".to_string())]);
        let after = keep_failed(
            engine::evaluate(&spec, &Measurements::new(), now()),
            &before.objectives,
            &errors,
            &spec,
        );
        assert_eq!(after.objectives[0], before.objectives[0]);
        assert_eq!(after.objectives[1].state, ObjectiveState::Unknown);
        assert!(after.frozen, "an outage does not lift the freeze");
        assert_eq!(after.compliance_score, Some(0.0));
        assert!(after.firing.is_empty());
    }

    #[test]
    fn without_previous_figures_a_failed_objective_is_not_frozen() {
        let spec = spec();
        let errors = BTreeMap::from([
            ("availability".to_string(), "unreachable".to_string()),
            ("latency".to_string(), "unreachable".to_string()),
        ]);
        let report = keep_failed(
            engine::evaluate(&spec, &Measurements::new(), now()),
            &[],
            &errors,
            &spec,
        );
        assert!(!report.frozen);
        assert_eq!(report.compliance_score, None);
    }

    #[test]
    fn state_changes_are_events_warning_unless_meeting() {
        let spec = spec();
        let first = engine::evaluate(&spec, &measured(1.0), now());
        let changes = state_changes(&[], &first);
        assert_eq!(changes.len(), 2, "every new objective is announced");
        assert!(changes.iter().all(|c| !c.warning));
        assert_eq!(
            changes[0].note,
            "objective availability Meeting: 100.0 % of its error budget left (SLI 100.000 %)"
        );
        assert_eq!(state_changes(&first.objectives, &first), []);

        let burning = engine::evaluate(&spec, &measured(0.80), now());
        let changes = state_changes(&first.objectives, &burning);
        assert_eq!(
            changes,
            [StateChange {
                warning: true,
                note: "objective availability Meeting -> Critical: -1900.0 % of its error budget left (SLI 80.000 %); objective availability burning 20.0x over 20s/5s (critical pair 14.4)".to_string(),
            }]
        );
    }

    #[test]
    fn the_ready_message_sums_up_the_evaluation() {
        let report = engine::evaluate(&spec(), &measured(0.999), now());
        assert_eq!(
            summary(&report),
            "compliance 95.0; availability Meeting, 90.0 % of its error budget left (SLI 99.900 %); latency Meeting, 100.0 % of its error budget left (SLI 100.000 %); not frozen: the lowest error budget left is 90.0 % (objective availability), not under spec.policy.freezeBelowRemaining 10.0 %"
        );
    }
}
