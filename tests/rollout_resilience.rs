//! A rollout survives what goes away under it (its Prometheus, the operator itself) and gives up
//! on a canary whose pods never become available.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use support::{LOOKBACK, PrometheusInstance, TestEnv, eventually};

#[tokio::test]
async fn prometheus_outage_holds_the_stage_and_the_rollout_resumes_when_it_is_back() {
    let env = TestEnv::get().await;
    let launched = Instant::now();
    let mut prometheus = PrometheusInstance::start(&env).await;
    let lookback = Duration::from_secs(10);
    assert_eq!(LOOKBACK, "10s");
    // Stage 1 could pass after 4 s; the outage must hold it far longer.
    let stages = "[{weight: 1, pause: 2s}, {weight: 5, pause: 4s}, {weight: 100, pause: 2s}]";
    let rollout = rollout_yaml(GATEWAY, stages, &analysis_prometheus(&prometheus.url()));
    let service = Service::start("prom-down", &rollout).await;
    let weights = service.record_weights();
    service.set_image("registry.example/checkout:2.0.0").await;

    // Waits on the recorder's watch, not a read of the route: the watch event that timestamps
    // the weight can arrive after a read already shows it.
    eventually(Duration::from_secs(45), "stage 1 (5%)", async || {
        weights.weights().last() == Some(&5)
    })
    .await;
    // Its answers count only from one lookback after it started.
    assert_eq!(weights.weights(), vec![0, 1, 5]);
    let (_, five_at) = weights.timeline()[2];
    assert!(five_at - launched >= lookback, "{:?}", five_at - launched);
    prometheus.stop().await;
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(10) {
        let phase = service.phase().await;
        assert_eq!(
            phase,
            Some(Phase::Progressing),
            "{}",
            service.operator_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(weights.weights(), vec![0, 1, 5]);
    assert!(weights.held_for() >= Duration::from_secs(8));
    let reconciling = service.condition("Reconciling").await.expect("Reconciling");
    assert!(reconciling.is_true(), "{reconciling:?}");
    assert_eq!(reconciling.reason, "AnalysisHeld", "{reconciling:?}");
    assert!(
        reconciling.message.contains("query failed") && reconciling.message.contains("unreachable"),
        "{reconciling:?}"
    );
    let held = service.warnings("AnalysisHeld").await;
    assert!(
        held.iter().any(|note| note.contains(&prometheus.url())),
        "an AnalysisHeld warning names the unreachable Prometheus: {held:?}"
    );

    // Back, it may answer with samples of series that went away while it was down: the stage,
    // long enough held to pass, waits one lookback more, and says why.
    let relaunched = Instant::now();
    prometheus.start_again().await;
    eventually(Duration::from_secs(8), "held for the restart", async || {
        service.condition("Reconciling").await.is_some_and(|c| {
            c.message
                .contains(&format!("Prometheus at {} started", prometheus.url()))
                && c.message.contains("query.lookback-delta 10s")
        })
    })
    .await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    weights.expect(&[0, 1, 5, 100, 0]).await;
    let (_, full_at) = weights.timeline()[3];
    assert!(
        full_at - relaunched >= lookback,
        "{:?}",
        full_at - relaunched
    );
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
}

#[tokio::test]
async fn a_restarted_operator_continues_the_stage_where_the_last_one_stopped() {
    let stages = "[{weight: 1, pause: 2s}, {weight: 5, pause: 8s}, {weight: 25, pause: 2s}, {weight: 100, pause: 2s}]";
    let mut service = Service::start("restart", &rollout_yaml(GATEWAY, stages, "")).await;
    let weights = service.record_weights();
    service.set_image("registry.example/checkout:2.0.0").await;

    // Kill it between reconciles: once both the route and the status show stage 1.
    eventually(Duration::from_secs(30), "stage 1 (5%)", async || {
        service.canary_weight_on_route().await == Some(5) && service.status().await.stage == Some(1)
    })
    .await;
    service.operator().kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        weights.weights(),
        vec![0, 1, 5],
        "nothing moves without the operator"
    );
    let status = service.status().await;
    assert_eq!(
        (status.phase, status.stage),
        (Some(Phase::Progressing), Some(1))
    );
    let stage_1_started = status.stage_started_at.expect("stageStartedAt");
    service.operator().restart().await;

    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    weights.expect(&[0, 1, 5, 25, 100, 0]).await;
    // Stage 1 kept its 8 s pause across the restart: stage 2 was recorded no earlier than 8 s
    // after the stage 1 start the status held when the operator was killed.
    let advanced = service.timed_notes("StageAdvanced").await;
    let stage_2_started = advanced
        .iter()
        .find(|(_, note)| note.starts_with("stage 2 (25%)"))
        .map(|(time, _)| *time)
        .unwrap_or_else(|| panic!("no StageAdvanced for stage 2: {advanced:?}"));
    let stage_1 = stage_2_started.duration_since(stage_1_started);
    assert!(
        stage_1 >= jiff::SignedDuration::from_secs(8),
        "stage 1 lasted {stage_1:?}: {advanced:?}"
    );
}

#[tokio::test]
async fn a_canary_not_available_within_the_progress_deadline_is_rolled_back() {
    let rollout = with_progress_deadline(&rollout_yaml(GATEWAY, QUICK_STAGES, ""), "8s");
    let service = Service::start("deadline", &rollout).await;
    let weights = service.record_weights();
    service.kubelet.keep_unready("checkout");
    service.set_image("registry.example/checkout:2.0.0").await;

    let started = Instant::now();
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(30))
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "not before the deadline: {:?}",
        started.elapsed()
    );
    let status = rollout.status.expect("status");
    let last = status.history.last().expect("a history entry");
    assert_eq!(last.result, RolloutResult::RolledBack);
    assert!(last.reason.contains("progressDeadline 8s"), "{last:?}");
    assert_eq!(weights.weights(), vec![0], "the canary never got traffic");
    eventually(Duration::from_secs(10), "the target at 0", async || {
        service.replicas("checkout").await == 0
    })
    .await;
    assert_eq!(service.replicas("checkout-stable").await, 3);
    let stalled = service.condition("Stalled").await.expect("Stalled");
    assert!(
        stalled.is_true() && stalled.reason == "RolledBack",
        "{stalled:?}"
    );
}
