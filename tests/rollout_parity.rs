//! ParityPolicy and relative checks gating a CanaryRollout, end to end: published series a
//! known number of basis points apart, judged by the real operator through the real Prometheus.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use rollout_fixture::parity::{
    PARITY_POLICY, policy_status, publish_order_values, with_parity, with_parity_policy,
};
use rollout_fixture::*;
use sluice::api::canary_rollout::Phase;
use sluice::api::parity_policy::ParityLevel;
use support::eventually;

const LATENCY: &str = "sluice_test_latency_seconds";

#[tokio::test]
async fn a_canary_60_bps_off_is_rolled_back_naming_the_parity_level() {
    let stages = "[{weight: 1, pause: 30s}, {weight: 100, pause: 3s}]";
    let service = with_parity("parity-critical", stages, 100.0, 100.6).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(45))
        .await;
    let note = service.awaited_warning("RolledBack").await;
    assert!(note.contains("parity Critical"), "{note}");
    assert!(note.contains("rms 60.0 bps"), "{note}");
    let parity = rollout
        .status
        .unwrap()
        .last_evaluation
        .and_then(|e| e.parity)
        .expect("parity verdict in lastEvaluation");
    assert_eq!(parity.level, ParityLevel::Critical);
    assert!(
        (parity.tracking_error_bps.unwrap() - 60.0).abs() < 0.5,
        "{parity:?}"
    );
    // The policy's own status shows the figures too, written by the policy's reconcile from
    // what the rollout measured.
    let last = eventually(
        Duration::from_secs(10),
        "the rollout's evaluation in the policy's status",
        async || {
            let status = policy_status(&service).await?;
            status
                .last_evaluation
                .filter(|e| e.level == ParityLevel::Critical && !status.history.is_empty())
                .ok_or(format!("not yet: {:?}", status.history))
        },
    )
    .await;
    assert!(
        (last.mean_difference_bps.unwrap() - 60.0).abs() < 0.5,
        "{last:?}"
    );
}

/// A canary 15 bps off passes every threshold (warning at 20 bps), but the sequential
/// statistics establish its mean active difference beyond a tolerance of 10 bps: the level is
/// raised to Critical, the rollout rolls back, and the reason names the confidence sequence.
#[tokio::test]
async fn a_shift_established_by_the_sequential_statistics_rolls_back() {
    let stages = "[{weight: 1, pause: 30s}, {weight: 100, pause: 3s}]";
    let policy = format!("{PARITY_POLICY}  statistics: {{tolerance: 0.001}}\n");
    let service = with_parity_policy("parity-sequential", stages, &policy, 100.0, 100.15).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(45))
        .await;
    let note = service.awaited_warning("RolledBack").await;
    assert!(
        note.contains("parity Critical: mean active difference +15.0 bps over ")
            && note.contains("beyond tolerance ±10.0 bps"),
        "{note}"
    );
    let status = rollout.status.expect("a status");
    // The policy's status shows the comparison the rollout ran: the shift, its samples (the
    // stage's evidence, which the rollback cleared from the rollout's status) and its interval.
    let sequential = eventually(
        Duration::from_secs(10),
        "the sequential comparison in the policy's status",
        async || {
            let last = policy_status(&service).await?.last_evaluation;
            let sequential = last.as_ref().and_then(|e| e.sequential.clone());
            sequential
                .filter(|s| s.failed)
                .ok_or(format!("not yet: {last:?}"))
        },
    )
    .await;
    let shift = sequential.shift.expect("the shift compared");
    assert!(shift.samples >= 5, "{shift:?}");
    assert!((shift.estimate - 0.0015).abs() < 1e-6, "{shift:?}");
    let [lower, _] = shift.interval.expect("an interval");
    assert!(lower > 0.001, "{shift:?}");
    let parity = status
        .last_evaluation
        .and_then(|e| e.parity)
        .expect("parity verdict in lastEvaluation");
    assert_eq!(parity.level, ParityLevel::Critical);
    assert!(parity.tracking_error_bps.unwrap() < 20.0, "{parity:?}");
}

#[tokio::test]
async fn a_canary_30_bps_off_holds_the_stage_until_it_comes_back_under_20() {
    let stages = "[{weight: 1, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = with_parity("parity-warning", stages, 100.0, 100.3).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(30), "stage 0 at 1%", async || {
        service.canary_weight_on_route().await == Some(1)
    })
    .await;
    let held_since = Instant::now();
    while held_since.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            service.canary_weight_on_route().await,
            Some(1),
            "no promotion while parity is at Warning"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = service.status().await;
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("parity Warning"),
        "{:?}",
        status.message
    );
    publish_order_values(&service, 100.0, 100.1);
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
}

#[tokio::test]
async fn an_emergency_rolls_back_and_freezes_until_unfrozen() {
    let stages = "[{weight: 1, pause: 30s}, {weight: 100, pause: 3s}]";
    let service = with_parity("parity-emergency", stages, 100.0, 101.5).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Frozen, Duration::from_secs(45))
        .await;
    assert_eq!(service.replicas("checkout").await, 0);
    let frozen = service.condition("Frozen").await.expect("Frozen condition");
    assert!(
        frozen.is_true() && frozen.reason == "RollbackAndFreeze",
        "{frozen:?}"
    );
    // A new template does not start a rollout while frozen...
    publish_order_values(&service, 100.0, 100.0);
    service.set_image("registry.example/checkout:3.0.0").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(service.phase().await, Some(Phase::Frozen));
    assert_eq!(service.replicas("checkout").await, 0);
    // ...until a person clears the freeze.
    service.annotate("sluice.dev/unfreeze", "1").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:3.0.0"
    );
}

fn relative_latency_rollout() -> String {
    let check = r#"    - name: p99-latency
      query: 'max(sluice_test_latency_seconds{namespace="{{namespace}}",track="{{track}}"})'
      maxIncrease: 0.10
"#;
    rollout_yaml(
        GATEWAY,
        "[{weight: 1, pause: 4s}, {weight: 100, pause: 2s}]",
        "",
    )
    .replace("      max: 0.01\n", &format!("      max: 0.01\n{check}"))
}

async fn with_latency(prefix: &str, canary_seconds: f64) -> Service {
    let service = Service::start(prefix, &relative_latency_rollout()).await;
    service.set_track_metric(LATENCY, "stable", 0.200);
    service.set_track_metric(LATENCY, "canary", canary_seconds);
    service.wait_track_scraped(LATENCY, "canary").await;
    service
}

#[tokio::test]
async fn a_relative_latency_check_fails_a_canary_15_percent_slower() {
    let service = with_latency("relative-slow", 0.230).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(40))
        .await;
    let note = service.awaited_warning("RolledBack").await;
    assert!(
        note.contains("check p99-latency: canary mean 0.23 vs stable 0.2 over ")
            && note.contains("change +15.0 % (confidence sequence at ")
            && note.contains("established beyond maxIncrease +10.0 %"),
        "{note}"
    );
}

#[tokio::test]
async fn a_relative_latency_check_passes_a_canary_5_percent_slower() {
    let service = with_latency("relative-ok", 0.210).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    let rollout = service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    let history = rollout.status.unwrap().history;
    assert_eq!(history.len(), 1);
}

/// An incident both tracks share (stable failing the same check) holds the stage instead of
/// counting against the canary; once stable recovers, the canary's own failure rolls it back.
#[tokio::test]
async fn a_failure_stable_shares_holds_until_stable_recovers() {
    let rollout = rollout_yaml(
        GATEWAY,
        "[{weight: 1, pause: 2s}, {weight: 100, pause: 2s}]",
        "",
    );
    let service = Service::start("shared-failure", &rollout).await;
    service.set_track_metric(ERROR_METRIC, "stable", 0.3);
    service.set_track_metric(ERROR_METRIC, "canary", 0.3);
    service.wait_track_scraped(ERROR_METRIC, "stable").await;
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(30), "stage 0 at 1%", async || {
        service.canary_weight_on_route().await == Some(1)
    })
    .await;
    let held_since = Instant::now();
    while held_since.elapsed() < Duration::from_secs(8) {
        let status = service.status().await;
        assert_eq!(
            status.phase,
            Some(Phase::Progressing),
            "{:?}",
            status.message
        );
        assert_eq!(status.failed_evaluations, 0, "{:?}", status.message);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = service.status().await;
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("shared failure: stable fails too (0.3)")),
        "{:?}",
        status.message
    );
    assert!(status.shared_failure_since.is_some());
    service.set_track_metric(ERROR_METRIC, "stable", 0.001);
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(40))
        .await;
    let note = service.awaited_warning("RolledBack").await;
    assert!(note.contains("check error-rate = 0.3 > max 0.01"), "{note}");
    assert!(!note.contains("shared"), "{note}");
}

/// A check with no data holds the stage; `maxDuration` ends the hold as `onMaxDuration` says.
fn held_rollout(on_max_duration: &str) -> String {
    let check = "    - name: queue-depth\n      query: 'max(sluice_test_not_exported{namespace=\"{{namespace}}\",track=\"{{track}}\"})'\n      max: 10\n";
    rollout_yaml(
        GATEWAY,
        "[{weight: 1, pause: 2s, maxDuration: 8s}, {weight: 100, pause: 2s, maxDuration: 8s}]",
        &format!("    onMaxDuration: {on_max_duration}\n"),
    )
    .replace("      max: 0.01\n", &format!("      max: 0.01\n{check}"))
}

#[tokio::test]
async fn a_stage_held_past_its_max_duration_rolls_back() {
    let service = Service::start("deadline-rollback", &held_rollout("Rollback")).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(30), "stage 0 at 1%", async || {
        service.canary_weight_on_route().await == Some(1)
    })
    .await;
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(40))
        .await;
    let note = service.awaited_warning("RolledBack").await;
    assert!(
        note.contains("stage 0 (1%) still held after its maxDuration 8s"),
        "{note}"
    );
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(service.canary_weight_on_route().await, Some(0));
}

#[tokio::test]
async fn on_max_duration_promote_passes_held_stages() {
    let service = Service::start("deadline-promote", &held_rollout("Promote")).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    let notes = service.warnings("StageDeadline").await;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("stage 0 (1%) passes at its maxDuration 8s")),
        "{notes:?}"
    );
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
}
