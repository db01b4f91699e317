//! Stage deadlines, shared failures and relative checks judged on the stage's evidence, through
//! the state machine.

use super::*;

const HELD: &str = "
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
stages: [{weight: 1, pause: 1m, maxDuration: 5m}, {weight: 100, pause: 1m}]
analysis:
  interval: 30s
  failureLimit: 2
  checks: [{name: error-rate, query: 'sum(x{track=\"{{track}}\"})', max: 0.01}]
";

/// Adopted, then a new template whose canary is available: stage 0 has started.
fn at_stage_zero(yaml: &str) -> World {
    let mut world = World::adopted(yaml);
    world.new_template("rev2");
    world.step(None);
    world.step(None);
    assert!(world.status.stage_started_at.is_some());
    world
}

/// HELD with a relative latency check besides the error rate.
fn held_with_latency() -> String {
    HELD.replace(
        "max: 0.01}]",
        "max: 0.01}, {name: latency, query: 'l{track=\"{{track}}\"}', maxIncrease: 0.1}]",
    )
}

/// The query results of one evaluation: each check's canary value and its stable value.
fn tracks(values: &[(Option<f64>, Option<f64>)]) -> AnalysisInput {
    AnalysisInput {
        checks: values.iter().map(|(canary, _)| Ok(*canary)).collect(),
        baselines: values
            .iter()
            .map(|(_, stable)| stable.map(|s| Ok(Some(s))))
            .collect(),
        ..Default::default()
    }
}

/// Runs in 10-second reconciles, evaluating with `input` whenever an evaluation is due.
fn run_with(world: &mut World, secs: i64, input: &AnalysisInput) {
    for _ in 0..secs / 10 {
        world.advance(10);
        let due = evaluation_due(&world.spec, &world.status, world.now);
        world.step(due.then(|| input.clone()));
    }
}

/// Reconciles every 10 seconds until one evaluation has run with `input`.
fn evaluate_once(world: &mut World, input: &AnalysisInput) {
    loop {
        world.advance(10);
        if evaluation_due(&world.spec, &world.status, world.now) {
            world.step(Some(input.clone()));
            return;
        }
        world.step(None);
    }
}

/// Runs with one check's `canary` and `stable` values.
fn run_tracks(world: &mut World, secs: i64, canary: Option<f64>, stable: Option<f64>) {
    run_with(world, secs, &tracks(&[(canary, stable)]));
}

#[test]
fn a_stage_held_until_its_max_duration_rolls_back_by_default() {
    let mut world = at_stage_zero(HELD);
    world.run_for(280, None); // no data: held
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.stage, Some(0));
    world.run_for(30, None);
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    let note = &world.status.history.last().expect("history").reason;
    assert!(
        note.contains("stage 0 (1%) still held after its maxDuration 5m"),
        "{note}"
    );
    assert_eq!(world.target.replicas, 0);
}

#[test]
fn on_max_duration_promote_passes_a_stage_nothing_was_established_against() {
    let yaml = HELD.replace(
        "failureLimit: 2",
        "failureLimit: 2\n  onMaxDuration: Promote",
    );
    let mut world = at_stage_zero(&yaml);
    world.run_for(310, None);
    assert_eq!(world.status.stage, Some(1), "{:?}", world.status.message);
    let event = world
        .events
        .iter()
        .find(|e| e.reason == "StageDeadline")
        .expect("StageDeadline event");
    assert!(event.warning && event.note.contains("passes at its maxDuration 5m"));
}

#[test]
fn on_max_duration_promote_leaves_a_failing_evaluation_to_the_failure_limit() {
    let yaml = HELD.replace(
        "failureLimit: 2",
        "failureLimit: 3\n  onMaxDuration: Promote",
    );
    let mut world = at_stage_zero(&yaml);
    world.run_for(280, None);
    run_tracks(&mut world, 30, Some(0.2), Some(0.001)); // fails once, stable healthy
    assert_eq!(world.status.failed_evaluations, 1);
    assert_eq!(
        world.status.stage,
        Some(0),
        "a failing stage does not pass at its deadline"
    );
}

#[test]
fn a_failure_stable_shares_holds_until_max_hold_then_counts() {
    let yaml = HELD.replace("maxDuration: 5m", "maxDuration: 1h").replace(
        "failureLimit: 2",
        "failureLimit: 2\n  sharedFailures: {maxHold: 3m}",
    );
    let mut world = at_stage_zero(&yaml);
    run_tracks(&mut world, 170, Some(0.3), Some(0.25));
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.failed_evaluations, 0);
    assert!(world.status.shared_failure_since.is_some());
    let message = world
        .status
        .last_evaluation
        .as_ref()
        .and_then(|e| e.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("shared failure: stable fails too (0.25)")),
        "{message:?}"
    );
    // Past maxHold the failures count again, and failureLimit decides.
    run_tracks(&mut world, 70, Some(0.3), Some(0.25));
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    let note = &world.status.history.last().expect("history").reason;
    assert!(
        note.contains("for longer than a shared failure may hold"),
        "{note}"
    );
}

#[test]
fn relative_evidence_belongs_to_its_stage() {
    let mut world = at_stage_zero(&held_with_latency());
    let alike = tracks(&[(Some(0.001), None), (Some(0.2), Some(0.2))]);
    run_with(&mut world, 60, &alike);
    assert_eq!(
        world.status.stage,
        Some(0),
        "5 pairs are needed before a pass"
    );
    assert_eq!(world.status.stage_evidence[0].evidence.pairs, 2);
    run_with(&mut world, 100, &alike);
    assert_eq!(world.status.stage, Some(1), "{:?}", world.status.message);
    assert!(
        world
            .status
            .stage_evidence
            .iter()
            .all(|e| e.evidence.pairs <= 1),
        "a new stage gathers its own evidence: {:?}",
        world.status.stage_evidence
    );
}

/// Failures far apart, with evaluations in between in which every check measured the canary and
/// only a relative check held for evidence, are not "in a row".
#[test]
fn a_failure_streak_ends_where_the_checks_measured_and_passed() {
    let mut world = at_stage_zero(&held_with_latency());
    let evaluate = |world: &mut World, error_ratio: f64, noisy_latency: f64| {
        let input = tracks(&[
            (Some(error_ratio), Some(0.001)),
            (Some(noisy_latency), Some(0.2)),
        ]);
        evaluate_once(world, &input);
    };
    for latency in [0.1, 0.3, 0.15, 0.25, 0.1, 0.3] {
        evaluate(&mut world, 0.001, latency); // latency too noisy to decide: holds
    }
    evaluate(&mut world, 0.2, 0.2);
    assert_eq!(world.status.failed_evaluations, 1);
    evaluate(&mut world, 0.001, 0.3);
    assert_eq!(
        world.status.failed_evaluations, 0,
        "measured and not failing"
    );
    evaluate(&mut world, 0.2, 0.1);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    assert_eq!(world.status.failed_evaluations, 1);
}

/// A production canary of 48 to 72 hours: `pause: 48h, maxDuration: 72h` (rollback at the
/// deadline, the default).
const LONG_CANARY: &str = "
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
stages: [{weight: 5, pause: 48h, maxDuration: 72h}, {weight: 100, pause: 1m}]
analysis:
  interval: 30s
  failureLimit: 2
  checks:
  - {name: error-rate, query: 'sum(x{track=\"{{track}}\"})', max: 0.01}
  - {name: latency, query: 'l{track=\"{{track}}\"}', maxIncrease: 0.1}
";

#[test]
fn a_long_canary_holds_48_hours_then_promotes_with_a_status_that_does_not_grow() {
    let mut world = at_stage_zero(LONG_CANARY);
    let healthy = |i: i64| {
        let noise = (i % 7) as f64 * 0.001;
        tracks(&[
            (Some(0.001), None),
            (Some(0.200 + noise), Some(0.201 + noise)),
        ])
    };
    let size = |world: &World| serde_json::to_string(&world.status).unwrap().len();
    let mut sizes = Vec::new();
    for hour in 0..48 {
        for i in 0..360 {
            world.advance(10);
            let due = evaluation_due(&world.spec, &world.status, world.now);
            world.step(due.then(|| healthy(i)));
        }
        sizes.push(size(&world));
        if hour < 47 {
            assert_eq!(
                world.status.stage,
                Some(0),
                "hour {hour}: {:?}",
                world.status.message
            );
        }
    }
    run_with(&mut world, 120, &healthy(0));
    assert_ne!(
        world.status.stage,
        Some(0),
        "promoted past 48h: {:?}",
        world.status.message
    );
    assert_ne!(world.status.phase, Some(Phase::RolledBack));
    // 5760 evaluations later the status is as large as after the first hour.
    let (first, last) = (sizes[0], sizes[46]);
    assert!(
        last <= first + 64,
        "status grew from {first} to {last} bytes"
    );
}

#[test]
fn a_long_canary_still_held_at_72_hours_is_rolled_back() {
    let mut world = at_stage_zero(LONG_CANARY);
    world.run_for(72 * 3600 - 60, None);
    assert_eq!(world.status.phase, Some(Phase::Progressing));
    world.run_for(120, None);
    assert_eq!(world.status.phase, Some(Phase::RolledBack));
    let reason = &world.status.history.last().expect("history").reason;
    assert!(
        reason.contains("still held after its maxDuration 3d"),
        "{reason}"
    );
}
