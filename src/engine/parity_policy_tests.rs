//! The ParityPolicy status plan: validation, the schedule, evaluations and their history.

use super::*;
use crate::engine::parity::{BPS, ParityInput, evaluate};

const SCHEDULED: &str = "candidate: 'fund_nav'\nbaseline: 'index_level'\nschedule: '0 6,18 * * *'\nminSamples: 5\nconsecutiveBreaches: 1\n";

fn spec(yaml: &str) -> ParityPolicySpec {
    serde_saphyr::from_str(yaml).expect("test spec parses")
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("a time")
}

/// An evaluation at `now` of a candidate `offset_bps` off its baseline over 10 samples.
fn report(spec: &ParityPolicySpec, offset_bps: f64, previous: u32, now: Timestamp) -> ParityReport {
    let baseline: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i) * 60.0, 100.0)).collect();
    let candidate: Vec<(f64, f64)> = baseline
        .iter()
        .map(|&(t, v)| (t, v * (1.0 + offset_bps / BPS)))
        .collect();
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &[],
        proportions: None,
    };
    evaluate(spec, &input, previous, now)
}

fn snapshot<'a>(
    spec: &'a ParityPolicySpec,
    status: &'a ParityPolicyStatus,
    now: Timestamp,
) -> PolicySnapshot<'a> {
    PolicySnapshot {
        spec,
        generation: Some(1),
        created: Some(at("2026-11-21T05:00:00Z")),
        status,
        now,
    }
}

fn ready(status: &ParityPolicyStatus) -> &Condition {
    status.conditions.iter().find(|c| c.type_ == READY).unwrap()
}

#[test]
fn an_invalid_policy_stalls_and_is_announced_once() {
    let spec = spec("query: 'x'\n");
    let status = ParityPolicyStatus::default();
    let now = at("2026-11-21T05:30:00Z");
    assert!(!evaluation_due(&snapshot(&spec, &status, now)));
    let first = plan(&snapshot(&spec, &status, now), None);
    assert_eq!(first.requeue, Some(IDLE_REQUEUE));
    assert_eq!(first.status.observed_generation, Some(1));
    assert_eq!(ready(&first.status).reason, "InvalidSpec");
    assert_eq!(first.events.len(), 1);
    assert!(first.events[0].warning && first.events[0].reason == "InvalidSpec");
    let again = plan(&snapshot(&spec, &first.status, now), None);
    assert_eq!(again.events, []);
}

#[test]
fn a_policy_without_a_schedule_waits_for_rollouts() {
    let spec = spec("query: 'x{track=\"{{track}}\"}'\n");
    let status = ParityPolicyStatus::default();
    let now = at("2026-11-21T05:30:00Z");
    assert!(!evaluation_due(&snapshot(&spec, &status, now)));
    let plan = plan(&snapshot(&spec, &status, now), None);
    assert_eq!(plan.requeue, None);
    assert_eq!(ready(&plan.status).reason, "Referenced");
    assert!(ready(&plan.status).is_true());
}

#[test]
fn a_scheduled_policy_waits_for_its_next_run() {
    let spec = spec(SCHEDULED);
    let status = ParityPolicyStatus::default();
    let now = at("2026-11-21T05:59:00Z");
    assert!(!evaluation_due(&snapshot(&spec, &status, now)));
    let plan = plan(&snapshot(&spec, &status, now), None);
    assert_eq!(plan.next_run, Some(at("2026-11-21T06:00:00Z")));
    assert_eq!(plan.requeue, Some(Duration::from_secs(60)));
    assert_eq!(plan.events, []);
    let far = at("2026-11-21T00:00:00Z");
    let mut early = snapshot(&spec, &status, far);
    early.created = Some(far);
    let plan = super::plan(&early, None);
    assert_eq!(plan.requeue, Some(IDLE_REQUEUE), "never longer than 5 min");
}

#[test]
fn a_due_evaluation_is_recorded_and_a_new_level_announced() {
    let spec = spec(SCHEDULED);
    let status = ParityPolicyStatus::default();
    let now = at("2026-11-21T06:00:30Z");
    let snap = snapshot(&spec, &status, now);
    assert!(evaluation_due(&snap));
    let first = report(&spec, 30.0, 0, now);
    let plan = plan(&snap, Some(Ok(&first)));
    assert_eq!(plan.status.last_evaluation, Some(first.evaluation.clone()));
    assert_eq!(plan.status.history.len(), 1);
    assert_eq!(plan.status.consecutive_breaches, 1);
    assert_eq!(
        ready(&plan.status).message,
        "parity Warning: rms 30.0 bps (mean 30.0 bps, tracking error 0.0 bps, rms 30.0 bps) over 10 samples"
    );
    assert_eq!(plan.events.len(), 1);
    assert!(plan.events[0].warning && plan.events[0].reason == "ParityLevelChanged");
    assert_eq!(plan.next_run, Some(at("2026-11-21T18:00:00Z")));
    assert_eq!(plan.requeue, Some(IDLE_REQUEUE));
    assert!(!evaluation_due(&snapshot(&spec, &plan.status, now)));

    let later = at("2026-11-21T18:00:00Z");
    let same = report(&spec, 30.0, 1, later);
    let next = super::plan(&snapshot(&spec, &plan.status, later), Some(Ok(&same)));
    assert_eq!(next.events, [], "the level did not change");
    assert_eq!(next.status.history.len(), 2);
}

#[test]
fn a_failed_evaluation_is_a_condition_and_a_warning() {
    let spec = spec(SCHEDULED);
    let status = ParityPolicyStatus::default();
    let now = at("2026-11-21T06:00:30Z");
    let plan = plan(&snapshot(&spec, &status, now), Some(Err("unreachable")));
    assert_eq!(ready(&plan.status).reason, "EvaluationFailed");
    assert!(!ready(&plan.status).is_true());
    assert_eq!(plan.events[0].note, "evaluation failed: unreachable");
    assert_eq!(plan.status.last_evaluation, None);
}

#[test]
fn the_history_keeps_the_last_30() {
    let spec = spec(SCHEDULED);
    let mut status = ParityPolicyStatus::default();
    let start = at("2026-11-21T06:00:00Z");
    for i in 0..35 {
        let now = start
            .checked_add(jiff::SignedDuration::from_mins(i))
            .unwrap();
        record(&mut status, &report(&spec, 0.0, 0, now));
    }
    assert_eq!(status.history.len(), HISTORY_LIMIT);
    assert_eq!(
        status.history.last().map(|e| e.time),
        Some(at("2026-11-21T06:34:00Z"))
    );
}

#[test]
fn reports_measured_by_rollouts_are_folded_in_time_order_once() {
    let spec = spec(SCHEDULED);
    let first = report(&spec, 30.0, 0, at("2026-11-21T06:00:00Z"));
    let second = report(&spec, 30.0, 1, at("2026-11-21T06:01:00Z"));
    let status = fold_measured(ParityPolicyStatus::default(), [&second, &first]);
    let times: Vec<Timestamp> = status.history.iter().map(|e| e.time).collect();
    assert_eq!(times, [first.evaluation.time, second.evaluation.time]);
    assert_eq!(status.last_evaluation, Some(second.evaluation.clone()));
    assert_eq!(status.consecutive_breaches, 2);
    // Folding the same reports again changes nothing.
    assert_eq!(fold_measured(status.clone(), [&first, &second]), status);
}

/// Scheduled evaluations with sequential statistics add to the evidence in the status; a new
/// generation of the spec starts it afresh.
#[test]
fn scheduled_sequential_evidence_accumulates_until_the_spec_changes() {
    let spec = spec(&format!("{SCHEDULED}statistics: {{tolerance: 0.01}}\n"));
    let evaluate_at = |status: &ParityPolicyStatus, generation: i64, now: Timestamp| {
        let snapshot = PolicySnapshot {
            generation: Some(generation),
            ..snapshot(&spec, status, now)
        };
        let context = sequential_context(&snapshot);
        let baseline: Vec<(f64, f64)> = (0..10)
            .map(|i| ((now.as_second() - 600 + i * 60) as f64, 100.0))
            .collect();
        let candidate: Vec<(f64, f64)> = baseline.iter().map(|&(t, v)| (t, v * 1.001)).collect();
        let input = ParityInput {
            candidate: &candidate,
            baseline: &baseline,
            components: &[],
            proportions: None,
        };
        let report = parity::evaluate_with(&spec, &input, 0, Some(&context), now);
        plan(&snapshot, Some(Ok(&report))).status
    };
    let first = evaluate_at(
        &ParityPolicyStatus::default(),
        1,
        at("2026-11-21T06:00:00Z"),
    );
    assert_eq!(first.statistics_evidence.len(), 1);
    assert_eq!(first.statistics_evidence[0].evidence.pairs, 10);
    let sequential = first
        .last_evaluation
        .as_ref()
        .and_then(|e| e.sequential.clone());
    // The shift and the distribution share 1 - confidence.
    assert_eq!(sequential.map(|s| s.confidence), Some(0.99));
    let second = evaluate_at(&first, 1, at("2026-11-21T18:00:00Z"));
    assert_eq!(second.statistics_evidence[0].evidence.pairs, 20);
    let changed = evaluate_at(&second, 2, at("2026-11-22T06:00:00Z"));
    assert_eq!(changed.statistics_evidence[0].evidence.pairs, 10);
}
