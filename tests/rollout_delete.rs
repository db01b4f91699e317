//! Deleting a CanaryRollout hands the service back: the target at full size, the routes on the
//! user's Service, and nothing of Sluice's left behind.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::canary_rollout::Phase;
use support::eventually;

const V2: &str = "registry.example/checkout:2.0.0";

/// Deletes the rollout and checks what the user is left with.
async fn delete_and_check_hand_back(service: &Service, image: &str) {
    let other_rule = service.route().await["spec"]["rules"][1].clone();
    service.delete_rollout().await;
    service.wait_rollout_gone(Duration::from_secs(30)).await;
    assert_eq!(
        service.backends().await,
        vec![("checkout".to_string(), 100)],
        "operator log: {}",
        service.operator_log()
    );
    assert_eq!(
        service.route().await["spec"]["rules"][1],
        other_rule,
        "other rules are left alone"
    );
    assert_eq!(service.replicas("checkout").await, 3);
    assert_eq!(
        service.ready_pods("checkout").await,
        3,
        "traffic went back to a target with 3 ready pods"
    );
    eventually(
        Duration::from_secs(10),
        "the target Deployment reporting 3 available replicas",
        async || {
            let available = service.available_replicas("checkout").await;
            if available == Some(3) {
                Ok(())
            } else {
                Err(available)
            }
        },
    )
    .await;
    assert_eq!(service.image("checkout").await, image);
    eventually(
        Duration::from_secs(10),
        "Sluice's objects removed",
        async || {
            let left = [
                service.has_deployment("checkout-stable").await,
                service.has_service("checkout-stable").await,
                service.has_service("checkout-canary").await,
            ];
            if left == [false; 3] {
                Ok(())
            } else {
                Err(left)
            }
        },
    )
    .await;
    assert!(service.has_service("checkout").await);
    // The rollout's gauges went with it; waiting for the target to scale up was no error.
    let metrics = service.operator_metrics().await;
    assert!(!metrics.contains("sluice_rollout_phase{"), "{metrics}");
    assert!(!metrics.contains("hand_back_pending"), "{metrics}");
}

#[tokio::test]
async fn deleting_a_rollout_at_rest_hands_the_service_back() {
    let service = Service::start("delete-idle", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    assert_eq!(service.replicas("checkout").await, 0);
    delete_and_check_hand_back(&service, "registry.example/checkout:1.0.0").await;
}

#[tokio::test]
async fn deleting_a_rollout_mid_stage_hands_the_service_back() {
    let stages = "[{weight: 1, pause: 2s}, {weight: 5, pause: 5m}, {weight: 100, pause: 5m}]";
    let service = Service::start("delete-mid", &rollout_yaml(GATEWAY, stages, "")).await;
    service.set_image(V2).await;
    eventually(Duration::from_secs(30), "stage 1 (5%)", async || {
        service.canary_weight_on_route().await == Some(5)
    })
    .await;
    delete_and_check_hand_back(&service, V2).await;
}

#[tokio::test]
async fn deleting_a_rolled_back_rollout_warns_that_the_target_runs_the_failed_revision() {
    let stages = "[{weight: 1, pause: 5m}, {weight: 100, pause: 5m}]";
    let service = Service::start("delete-rb", &rollout_yaml(GATEWAY, stages, "")).await;
    service.set_image(V2).await;
    eventually(Duration::from_secs(30), "stage 0 (1%)", async || {
        service.canary_weight_on_route().await == Some(1)
    })
    .await;
    service.annotate("sluice.dev/abort", "now").await;
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(10))
        .await;
    delete_and_check_hand_back(&service, V2).await;
    let warning = service
        .warning("HandBackRolledBackRevision")
        .await
        .expect("a HandBackRolledBackRevision warning");
    assert!(warning.contains("rolled back"), "{warning}");
}
