//! The SLOBudget status plan: kept figures on failing queries, events, conditions, timing.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::*;

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
    for window in slo::query_windows(&spec()) {
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
    let before = slo::evaluate(&spec, &measured(0.95), now());
    assert!(before.frozen, "{}", before.freeze_reason);
    // Prometheus fails for availability: what was measured of it is not trusted.
    let errors = BTreeMap::from([("availability".to_string(), "unreachable".to_string())]);
    let after = keep_failed(
        slo::evaluate(&spec, &Measurements::new(), now()),
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
        slo::evaluate(&spec, &Measurements::new(), now()),
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
    let first = slo::evaluate(&spec, &measured(1.0), now());
    let changes = state_changes(&[], &first);
    assert_eq!(changes.len(), 2, "every new objective is announced");
    assert!(changes.iter().all(|c| !c.warning));
    assert_eq!(
        changes[0].note,
        "objective availability Meeting: 100.0 % of its error budget left (SLI 100.000 %)"
    );
    assert_eq!(state_changes(&first.objectives, &first), []);

    let burning = slo::evaluate(&spec, &measured(0.80), now());
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
    let report = slo::evaluate(&spec(), &measured(0.999), now());
    assert_eq!(
        summary(&report),
        "compliance 95.0; availability Meeting, 90.0 % of its error budget left (SLI 99.900 %); latency Meeting, 100.0 % of its error budget left (SLI 100.000 %); not frozen: the lowest error budget left is 90.0 % (objective availability), not under spec.policy.freezeBelowRemaining 10.0 %"
    );
}

#[test]
fn an_evaluation_is_due_once_the_interval_has_passed_or_the_spec_changed() {
    let mut spec = spec();
    // The shared spec sums range vectors, which validation refuses: make them rates.
    for objective in &mut spec.objectives {
        for query in [&mut objective.good, &mut objective.total] {
            *query = query.replace("sum(", "sum(rate(").replace("])", "]))");
        }
    }
    let mut old = SLOBudgetStatus {
        observed_generation: Some(1),
        last_evaluation_time: Some(now()),
        ..Default::default()
    };
    let later = |millis| {
        now()
            .checked_add(jiff::SignedDuration::from_millis(millis))
            .unwrap()
    };
    // The default interval is 1m.
    assert_eq!(
        step(&spec, Some(1), &old, later(20_000)),
        Step::Wait(Duration::from_secs(40))
    );
    assert_eq!(step(&spec, Some(1), &old, later(60_000)), Step::Measure);
    assert_eq!(step(&spec, Some(2), &old, later(20_000)), Step::Measure);
    old.last_evaluation_time = None;
    assert_eq!(step(&spec, Some(1), &old, now()), Step::Measure);
}

#[test]
fn an_invalid_spec_stalls_and_is_announced_once() {
    let mut spec = spec();
    spec.objectives[0].target = 100.0;
    let Step::Invalid(first) = step(&spec, Some(3), &SLOBudgetStatus::default(), now()) else {
        panic!("an invalid spec is not measured");
    };
    assert_eq!(first.requeue, None);
    assert_eq!(first.status.observed_generation, Some(3));
    let stalled = first.status.conditions.iter().find(|c| c.type_ == STALLED);
    assert!(stalled.is_some_and(|c| c.is_true() && c.reason == "InvalidSpec"));
    assert_eq!(first.events.len(), 1);
    assert!(first.events[0].warning && first.events[0].reason == "InvalidSpec");
    let Step::Invalid(again) = step(&spec, Some(3), &first.status, now()) else {
        panic!("still invalid");
    };
    assert_eq!(again.events, []);
}

#[test]
fn a_budget_spent_freezes_with_an_event_and_recovers_with_another() {
    let spec = spec();
    let none = BTreeMap::new();
    let healthy = plan(
        &spec,
        Some(1),
        &SLOBudgetStatus::default(),
        &measured(1.0),
        &none,
        now(),
    );
    assert!(!healthy.status.frozen);
    assert_eq!(healthy.status.last_evaluation_time, Some(now()));
    assert_eq!(healthy.requeue, Some(Duration::from_secs(60)));
    let reasons =
        |plan: &SloBudgetPlan| -> Vec<&str> { plan.events.iter().map(|e| e.reason).collect() };
    assert_eq!(
        reasons(&healthy),
        ["ObjectiveStateChanged", "ObjectiveStateChanged"]
    );
    let ready = healthy
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .unwrap();
    assert!(ready.is_true() && ready.reason == "Evaluated");

    let spent = plan(
        &spec,
        Some(1),
        &healthy.status,
        &measured(0.95),
        &none,
        now(),
    );
    assert!(spent.status.frozen);
    assert_eq!(reasons(&spent), ["ObjectiveStateChanged", "BudgetFrozen"]);
    let frozen = spent
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == FROZEN)
        .unwrap();
    assert!(frozen.is_true() && frozen.reason == "BudgetFrozen");

    let recovered = plan(&spec, Some(1), &spent.status, &measured(1.0), &none, now());
    assert_eq!(
        reasons(&recovered),
        ["ObjectiveStateChanged", "BudgetRecovered"]
    );
    assert!(!recovered.events[1].warning);
}

#[test]
fn failing_queries_keep_the_figures_and_are_announced_once() {
    let spec = spec();
    let none = BTreeMap::new();
    let spent = plan(
        &spec,
        Some(1),
        &SLOBudgetStatus::default(),
        &measured(0.95),
        &none,
        now(),
    );
    let errors = BTreeMap::from([("availability".to_string(), "unreachable".to_string())]);
    let failing = plan(
        &spec,
        Some(1),
        &spent.status,
        &measured(1.0),
        &errors,
        now(),
    );
    assert!(failing.status.frozen, "an outage does not lift the freeze");
    assert_eq!(failing.status.objectives[0], spent.status.objectives[0]);
    assert_eq!(failing.events.len(), 1);
    assert_eq!(failing.events[0].reason, "QueryFailed");
    assert_eq!(
        failing.events[0].note,
        "queries failed, the last figures of these objectives are kept: objective availability: unreachable"
    );
    let still = plan(
        &spec,
        Some(1),
        &failing.status,
        &measured(1.0),
        &errors,
        now(),
    );
    assert_eq!(still.events, []);
}
