//! CanaryRollout end to end with the Gateway API router, on the local control plane.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use support::eventually;

#[tokio::test]
async fn adoption_routes_all_traffic_to_stable_and_scales_the_target_to_zero() {
    let service = Service::start("adopt", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    assert_eq!(
        service.backends().await,
        vec![
            ("checkout-stable".to_string(), 100),
            ("checkout-canary".to_string(), 0)
        ]
    );
    let route = service.route().await;
    assert_eq!(
        route["spec"]["rules"][1]["backendRefs"][0]["name"], "static-assets",
        "other rules are left alone"
    );
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(service.replicas("checkout-stable").await, 3);
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:1.0.0"
    );
    let status = service.rollout().await.status.unwrap();
    assert_eq!(status.desired_replicas, Some(3));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.is_true(), "{ready:?}");
    assert!(
        service
            .event_reasons()
            .await
            .contains(&"Adopted".to_string())
    );
}

#[tokio::test]
async fn happy_path_moves_weights_through_the_stages_and_promotes() {
    let service = Service::start("happy", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    // Every distinct canary weight on the route, with when its watch event arrived.
    let weights = service.record_weights();
    service.set_image("registry.example/checkout:2.0.0").await;
    let rollout = service
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    weights.expect(&[0, 1, 5, 25, 100, 0]).await;
    // Each stage's weight is written in the reconcile that starts the stage, and the next one
    // once its 3 s pause is over: the route shows each for about the pause.
    for pair in weights.timeline().windows(2).skip(1).take(4) {
        let held = pair[1].1 - pair[0].1;
        assert!(
            held >= Duration::from_millis(2800),
            "weight {} held only {held:?}",
            pair[0].0
        );
    }
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(
        service.backends().await,
        vec![
            ("checkout-stable".to_string(), 100),
            ("checkout-canary".to_string(), 0)
        ]
    );
    let status = rollout.status.unwrap();
    assert_eq!(
        status.history.last().map(|h| h.result),
        Some(RolloutResult::Promoted)
    );
    let promoted = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Promoted")
        .expect("Promoted condition");
    assert!(promoted.is_true());
    let reasons = service.event_reasons().await;
    for reason in [
        "RolloutStarted",
        "StageAdvanced",
        "PromotionStarted",
        "Promoted",
    ] {
        assert!(
            reasons.contains(&reason.to_string()),
            "{reason} missing in {reasons:?}"
        );
    }
    // Each stage's event carries its own message (not folded into the first one).
    let advanced: Vec<String> = service
        .ns
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason == "StageAdvanced")
        .map(|e| e.message)
        .collect();
    for stage in ["stage 1 (5%)", "stage 2 (25%)", "stage 3 (100%)"] {
        assert!(
            advanced.iter().any(|m| m.contains(stage)),
            "{stage} missing in {advanced:?}"
        );
    }
}

#[tokio::test]
async fn failing_canary_is_rolled_back_with_an_event_naming_the_check() {
    let stages = "[{weight: 1, pause: 2s}, {weight: 5, pause: 60s}, {weight: 100, pause: 60s}]";
    let service = Service::start("failing", &rollout_yaml(GATEWAY, stages, "")).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(30), "stage 5%", async || {
        service.canary_weight_on_route().await == Some(5)
    })
    .await;
    // The canary's pods carry the track label, as the stable ones do.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = service.ns.api();
    for (track, image) in [
        ("canary", "registry.example/checkout:2.0.0"),
        ("stable", "registry.example/checkout:1.0.0"),
    ] {
        let selector = format!("sluice.dev/track={track}");
        let images = eventually(
            Duration::from_secs(10),
            &format!("3 {track} pods"),
            async || {
                let list = pods
                    .list(&kube::api::ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| vec![e.to_string()])?;
                let images: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
                    .collect();
                if images.len() == 3 {
                    Ok(images)
                } else {
                    Err(images)
                }
            },
        )
        .await;
        assert!(images.iter().all(|i| i == image), "{track}: {images:?}");
    }
    service.set_canary_error_ratio(0.2);
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(30))
        .await;
    assert_eq!(service.canary_weight_on_route().await, Some(0));
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(
        service.image("checkout").await,
        "registry.example/checkout:2.0.0",
        "the failed template stays on the target"
    );
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:1.0.0"
    );
    let status = rollout.status.unwrap();
    assert_eq!(
        status.history.last().map(|h| h.result),
        Some(RolloutResult::RolledBack)
    );
    let note = service.awaited_warning("RolledBack").await;
    assert!(note.contains("check error-rate = 0.2 > max 0.01"), "{note}");
    assert!(note.contains("(5%)"), "{note}");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert!(stalled.is_true() && stalled.reason == "RolledBack");
}
