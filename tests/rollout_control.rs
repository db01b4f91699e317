//! A person steering a rollout: spec.paused, the promote / abort / retry annotations, and a new
//! template pushed while a rollout runs.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use support::eventually;

const V2: &str = "registry.example/checkout:2.0.0";

#[tokio::test]
async fn a_paused_rollout_holds_its_stage_until_resumed() {
    let service = Service::start("paused", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let weights = service.record_weights();
    service.set_image(V2).await;
    service.wait_canary_weight(1).await;
    service.set_paused(true).await;
    service
        .wait_phase(Phase::Paused, Duration::from_secs(10))
        .await;

    // Stage 0 passes after 3 s; paused, it stays.
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(6) {
        assert_eq!(service.phase().await, Some(Phase::Paused));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(weights.weights(), vec![0, 1]);
    let reconciling = service.condition("Reconciling").await.expect("Reconciling");
    assert!(
        !reconciling.is_true() && reconciling.reason == "Paused",
        "{reconciling:?}"
    );

    service.set_paused(false).await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(30))
        .await;
    weights.expect(&[0, 1, 5, 25, 100, 0]).await;
    for reason in ["Paused", "Resumed", "Promoted"] {
        service.wait_event(reason).await;
    }
    let advanced = service.notes("StageAdvanced").await;
    for stage in ["stage 1 (5%)", "stage 2 (25%)", "stage 3 (100%)"] {
        assert!(
            advanced.iter().any(|note| note.starts_with(stage)),
            "each stage has its own StageAdvanced note: {stage} missing in {advanced:?}"
        );
    }
}

#[tokio::test]
async fn a_promote_request_skips_the_remaining_stages() {
    let service = Service::start("promote", &rollout_yaml(GATEWAY, LONG_STAGES, "")).await;
    let weights = service.record_weights();
    service.set_image(V2).await;
    service.wait_canary_weight(5).await;

    service.annotate("sluice.dev/promote", "1").await;
    let rollout = service
        .wait_phase(Phase::Succeeded, Duration::from_secs(15))
        .await;
    weights.expect(&[0, 1, 5, 0]).await;
    assert_eq!(service.image("checkout-stable").await, V2);
    assert_eq!(service.replicas("checkout").await, 0);
    let status = rollout.status.expect("status");
    assert_eq!(
        status.history.last().map(|h| h.result),
        Some(RolloutResult::Promoted)
    );
    service.wait_event("PromoteRequested").await;
}

#[tokio::test]
async fn an_abort_request_rolls_back_and_a_retry_runs_the_same_revision_from_stage_0() {
    let service = Service::start("abort", &rollout_yaml(GATEWAY, LONG_STAGES, "")).await;
    let weights = service.record_weights();
    service.set_image(V2).await;
    service.wait_canary_weight(5).await;
    let revision = service.status().await.canary_revision;
    assert!(revision.is_some());

    service.annotate("sluice.dev/abort", "1").await;
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(10))
        .await;
    let status = rollout.status.expect("status");
    let last = status.history.last().expect("a history entry");
    assert_eq!(last.result, RolloutResult::RolledBack);
    assert!(last.reason.contains("aborted by request"), "{last:?}");
    assert_eq!(service.canary_weight_on_route().await, Some(0));
    eventually(Duration::from_secs(10), "the target at 0", async || {
        service.replicas("checkout").await == 0
    })
    .await;
    assert_eq!(service.image("checkout").await, V2, "the template stays");
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:1.0.0"
    );
    weights.expect(&[0, 1, 5, 0]).await;

    service.annotate("sluice.dev/retry", "1").await;
    service.wait_canary_weight(1).await;
    let status = service.status().await;
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert_eq!(status.stage, Some(0));
    assert_eq!(status.canary_revision, revision, "the same revision again");
    service.wait_event("RetryRequested").await;
    service.wait_canary_weight(5).await;
    weights.expect(&[0, 1, 5, 0, 1, 5]).await;
}

#[tokio::test]
async fn a_new_template_mid_rollout_restarts_the_rollout_with_it() {
    let stages = "[{weight: 1, pause: 2s}, {weight: 5, pause: 4s}, {weight: 100, pause: 2s}]";
    let service = Service::start("newrev", &rollout_yaml(GATEWAY, stages, "")).await;
    let weights = service.record_weights();
    service.set_image(V2).await;
    service.wait_canary_weight(5).await;
    let first = service.status().await.canary_revision;

    service.set_image("registry.example/checkout:3.0.0").await;
    service.wait_event("NewRevision").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    weights.expect(&[0, 1, 5, 0, 1, 5, 100, 0]).await;
    let status = service.status().await;
    assert!(status.canary_revision.is_some());
    assert_ne!(status.canary_revision, first);
    assert_eq!(status.stable_revision, status.canary_revision);
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:3.0.0"
    );
    assert_eq!(service.replicas("checkout").await, 0);
}
