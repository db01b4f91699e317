//! The status of a ParityPolicy: its conditions for every policy, and for a policy with a
//! `schedule` (the daily parity job, no rollout involved) when the schedule falls due, what an
//! evaluation does to lastEvaluation, the last 30 evaluations, the breach count and the events,
//! and when to look again. [`fold_measured`] records the evaluations rollouts ran with the
//! policy the same way. Pure: running the queries belongs to `gather::parity`, writing
//! the status and the events to the shell.

use std::time::Duration;

use jiff::Timestamp;

use super::PlannedEvent;
use super::parity::{self, ParityReport};
use super::parity_sequential::SequentialContext;
use super::schedule;
use crate::api::conditions::{Condition, READY, RECONCILING, STALLED, set_condition};
use crate::api::parity_policy::{ParityLevel, ParityPolicySpec, ParityPolicyStatus};

/// Evaluations kept in `status.history`.
pub const HISTORY_LIMIT: usize = 30;

/// The longest wait between two reconciles of a policy.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// The shortest wait for the next run of a schedule.
const MIN_REQUEUE: Duration = Duration::from_millis(500);

/// What the reconcile observed of a policy.
#[derive(Clone, Copy, Debug)]
pub struct PolicySnapshot<'a> {
    pub spec: &'a ParityPolicySpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`: a schedule counts from there until the first evaluation.
    pub created: Option<Timestamp>,
    pub status: &'a ParityPolicyStatus,
    pub now: Timestamp,
}

/// What one reconcile writes and records.
#[derive(Clone, Debug, PartialEq)]
pub struct ParityPolicyPlan {
    pub status: ParityPolicyStatus,
    pub events: Vec<PlannedEvent>,
    /// The next run of the schedule; none without one.
    pub next_run: Option<Timestamp>,
    /// When to look again (the next run, or sooner); none waits for a change of the policy.
    pub requeue: Option<Duration>,
}

/// What a scheduled evaluation's sequential statistics are judged with: the evidence of the
/// scheduled evaluations since the spec last changed, at the policy's `1 - confidence`.
pub fn sequential_context<'a>(snapshot: &PolicySnapshot<'a>) -> SequentialContext<'a> {
    let spec = snapshot.spec;
    let current = snapshot.status.observed_generation == snapshot.generation;
    SequentialContext {
        evidence: match current {
            true => &snapshot.status.statistics_evidence,
            false => &[],
        },
        since: None,
        alpha: 1.0 - spec.statistics.as_ref().map_or(1.0, |s| s.confidence),
        window: spec.window.as_std(),
    }
}

/// Whether the shell should evaluate the policy now: it is valid, has a schedule, and a run of
/// the schedule has come since the last evaluation (or the policy's creation).
pub fn evaluation_due(snapshot: &PolicySnapshot<'_>) -> bool {
    if !problems(snapshot.spec).is_empty() {
        return false;
    }
    let Some(cron) = snapshot
        .spec
        .schedule
        .as_deref()
        .and_then(|e| schedule::parse(e).ok())
    else {
        return false;
    };
    schedule::next_after(&cron, since(snapshot)).is_some_and(|at| at <= snapshot.now)
}

/// The status after this reconcile. `outcome` is the evaluation the shell ran because
/// [`evaluation_due`] said so (the report, or why there is none); none when it ran nothing.
pub fn plan(
    snapshot: &PolicySnapshot<'_>,
    outcome: Option<Result<&ParityReport, &str>>,
) -> ParityPolicyPlan {
    let (spec, old, now) = (snapshot.spec, snapshot.status, snapshot.now);
    let mut status = old.clone();
    if old.observed_generation != snapshot.generation {
        // Evidence gathered under another spec does not count under this one.
        status.statistics_evidence.clear();
    }
    status.observed_generation = snapshot.generation;
    let mut events = Vec::new();

    let problems = problems(spec);
    if !problems.is_empty() {
        let message = format!("invalid spec: {}", problems.join("; "));
        let was_invalid = old
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
        set_conditions(&mut status, false, "InvalidSpec", &message, now);
        if !was_invalid {
            events.push(event(true, "InvalidSpec", message));
        }
        return ParityPolicyPlan {
            status,
            events,
            next_run: None,
            requeue: Some(IDLE_REQUEUE),
        };
    }
    // Validation parsed the schedule: a policy without one is only referenced by rollouts.
    let Some(cron) = spec
        .schedule
        .as_deref()
        .and_then(|e| schedule::parse(e).ok())
    else {
        set_conditions(
            &mut status,
            true,
            "Referenced",
            "evaluated by the CanaryRollouts that reference it",
            now,
        );
        return ParityPolicyPlan {
            status,
            events,
            next_run: None,
            requeue: None,
        };
    };

    match outcome {
        Some(Ok(report)) => {
            let previous_level = old.last_evaluation.as_ref().map(|e| e.level);
            record(&mut status, report);
            status.statistics_evidence = report.evidence.clone();
            let summary = summary(spec, report);
            set_conditions(&mut status, true, "Evaluated", &summary, now);
            if previous_level != Some(report.counted_level) {
                let breach = parity::is_breach(report.counted_level);
                events.push(event(breach, "ParityLevelChanged", summary));
            }
        }
        Some(Err(error)) => {
            let message = format!("evaluation failed: {error}");
            set_conditions(&mut status, false, "EvaluationFailed", &message, now);
            events.push(event(true, "EvaluationFailed", message));
        }
        None => {}
    }
    let from = if outcome.is_some() {
        now
    } else {
        since(snapshot)
    };
    let next_run = schedule::next_after(&cron, from);
    let next = next_run.unwrap_or(now);
    let wait =
        Duration::from_millis(u64::try_from(next.duration_since(now).as_millis()).unwrap_or(0))
            .max(MIN_REQUEUE);
    ParityPolicyPlan {
        status,
        events,
        next_run,
        requeue: Some(wait.min(IDLE_REQUEUE)),
    }
}

/// Records one evaluation in the status: lastEvaluation, the last [`HISTORY_LIMIT`], the
/// breach count.
pub fn record(status: &mut ParityPolicyStatus, report: &ParityReport) {
    status.last_evaluation = Some(report.evaluation.clone());
    status.consecutive_breaches = report.consecutive_breaches;
    status.history.push(report.evaluation.clone());
    let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
    status.history.drain(..excess);
}

/// The status with the evaluations rollouts ran with this policy recorded in time order, each
/// as [`record`] does. Reports not newer than the last evaluation recorded are left out: they
/// are in the status already, or too old to replace it.
pub fn fold_measured<'a>(
    mut status: ParityPolicyStatus,
    reports: impl IntoIterator<Item = &'a ParityReport>,
) -> ParityPolicyStatus {
    for report in unrecorded(&status, reports) {
        record(&mut status, report);
    }
    status
}

/// The reports [`fold_measured`] records into `status`, in time order: each newer than the
/// last evaluation recorded before it.
pub fn unrecorded<'a>(
    status: &ParityPolicyStatus,
    reports: impl IntoIterator<Item = &'a ParityReport>,
) -> Vec<&'a ParityReport> {
    let mut reports: Vec<&ParityReport> = reports.into_iter().collect();
    reports.sort_by_key(|r| r.evaluation.time);
    let mut last = status.last_evaluation.as_ref().map(|e| e.time);
    reports.retain(|report| {
        let newer = last.is_none_or(|last| report.evaluation.time > last);
        if newer {
            last = Some(report.evaluation.time);
        }
        newer
    });
    reports
}

fn problems(spec: &ParityPolicySpec) -> Vec<String> {
    parity::validate_policy_with_schedule(spec, &|expression| schedule::parse(expression).map(drop))
}

/// Where the schedule counts from: the last evaluation, else the policy's creation.
fn since(snapshot: &PolicySnapshot<'_>) -> Timestamp {
    snapshot
        .status
        .last_evaluation
        .as_ref()
        .map(|e| e.time)
        .or(snapshot.created)
        .unwrap_or(snapshot.now)
}

fn event(warning: bool, reason: &'static str, note: String) -> PlannedEvent {
    PlannedEvent {
        warning,
        reason,
        note,
    }
}

/// The Ready message of an evaluation: the counted level and every figure.
pub fn summary(spec: &ParityPolicySpec, report: &ParityReport) -> String {
    let figures = &report.figures;
    let measure = spec.measure.as_str();
    let judged = parity::judged_value(figures, spec.measure);
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    let mut text = format!(
        "parity {}: {measure} {} bps (mean {} bps, tracking error {} bps, rms {} bps) over {} samples",
        report.counted_level,
        fmt(judged),
        fmt(figures.mean_bps),
        fmt(figures.stddev_bps),
        fmt(figures.rms_bps),
        figures.samples
    );
    if report.counted_level == ParityLevel::Insufficient
        && let Some(problem) = report.data_problem()
    {
        text.push_str(&format!("; {problem}"));
    }
    text
}

fn set_conditions(
    status: &mut ParityPolicyStatus,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    set_condition(
        &mut status.conditions,
        Condition::new(READY, ok, reason, message, now),
    );
    set_condition(
        &mut status.conditions,
        Condition::new(RECONCILING, false, reason, message, now),
    );
    set_condition(
        &mut status.conditions,
        Condition::new(STALLED, reason == "InvalidSpec", reason, message, now),
    );
}

#[cfg(test)]
#[path = "parity_policy_tests.rs"]
mod tests;
