//! Shadow stages on the local control plane, with the upstream HTTPRoute schema: the canary
//! gets a copy of stable's requests through a RequestMirror filter and serves no user.

mod rollout_fixture;
mod support;

use std::time::Duration;

use kube::api::{Api, PostParams};
use rollout_fixture::*;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::{Phase, RolloutResult};

const SHADOW_THEN_WEIGHTS: &str =
    "[{mirror: 50, pause: 8s}, {weight: 5, pause: 2s}, {weight: 100, pause: 2s}]";

/// Sluice's mirror filters on the route: rule-level RequestMirror filters to the canary.
fn canary_mirrors(route: &serde_json::Value) -> Vec<serde_json::Value> {
    route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["filters"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["requestMirror"]["backendRef"]["name"] == "checkout-canary")
        .collect()
}

#[tokio::test]
async fn the_route_mirrors_to_the_canary_exactly_during_the_shadow_stage() {
    let rollout = rollout_yaml(GATEWAY, SHADOW_THEN_WEIGHTS, "");
    let service = Service::start("shadow", &rollout).await;
    let traffic = service.record_traffic();
    service.set_image("registry.example/checkout:2.0.0").await;

    let shadow = (0, Some(50));
    service.wait_canary_weight(0).await;
    let mirrored = eventually_mirrored(&service).await;
    assert_eq!(
        mirrored,
        vec![serde_json::json!({
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"kind": "Service", "name": "checkout-canary", "port": 80}, "percent": 50}
        })],
        "one filter, on the rule that routes to checkout, with the percent kept by the schema \
         (and the kind it defaults)"
    );
    let version = service.route().await["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.route().await["metadata"]["resourceVersion"],
        version,
        "a route that says what the stage wants is not written again"
    );
    let status = service.status().await;
    assert_eq!(
        (status.stage, status.canary_weight, status.canary_mirror),
        (Some(0), Some(0), Some(50))
    );

    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    traffic
        .expect(&[(0, None), shadow, (5, None), (100, None), (0, None)])
        .await;
    let timeline = traffic.timeline();
    let held = timeline[2].1 - timeline[1].1;
    assert!(
        held >= Duration::from_millis(7800),
        "the mirror lasted the shadow stage's 8 s pause, not {held:?}"
    );
    let route = service.route().await;
    assert_eq!(canary_mirrors(&route), Vec::<serde_json::Value>::new());
    assert_eq!(
        route["spec"]["rules"][1]["backendRefs"][0]["name"], "static-assets",
        "other rules are left alone"
    );
    assert_eq!(service.status().await.canary_mirror, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        traffic.weights().last(),
        Some(&(0, None)),
        "no mirror after the rollout"
    );
}

async fn eventually_mirrored(service: &Service) -> Vec<serde_json::Value> {
    support::eventually(
        Duration::from_secs(30),
        "a mirror filter on the route",
        async || {
            let mirrors = canary_mirrors(&service.route().await);
            if mirrors.is_empty() {
                Err("none")
            } else {
                Ok(mirrors)
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_candidate_failing_on_mirrored_traffic_is_rolled_back_before_it_has_any_weight() {
    let stages = "[{mirror: 100, pause: 30s}, {weight: 5, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = Service::start("shadow-fail", &rollout_yaml(GATEWAY, stages, "")).await;
    service.set_canary_error_ratio(0.2);
    service.wait_track_scraped(ERROR_METRIC, "canary").await;
    let traffic = service.record_traffic();
    service.set_image("registry.example/checkout:2.0.0").await;

    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(60))
        .await;
    traffic
        .expect(&[(0, None), (0, Some(100)), (0, None)])
        .await;
    let last = rollout.status.unwrap().history.pop().unwrap();
    assert_eq!(last.result, RolloutResult::RolledBack);
    assert!(last.reason.contains("error-rate"), "{}", last.reason);
    let note = service.awaited_warning("RolledBack").await;
    assert!(note.contains("at stage 0 (shadow 100%)"), "{note}");
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(
        canary_mirrors(&service.route().await),
        Vec::<serde_json::Value>::new()
    );
}

#[tokio::test]
async fn a_mirror_percentage_out_of_range_is_refused_by_the_schema() {
    let service = Service::start("shadow-range", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let rollout = rollout_yaml(GATEWAY, "[{mirror: 150}, {weight: 100}]", "").replacen(
        "name: checkout}",
        "name: out-of-range}",
        1,
    );
    let object: CanaryRollout = serde_saphyr::from_str(&rollout).expect("rollout yaml");
    let api: Api<CanaryRollout> = service.ns.api();
    let error = api
        .create(&PostParams::default(), &object)
        .await
        .expect_err("mirror 150 is refused");
    let message = error.to_string();
    assert!(
        message.contains("spec.stages.mirror") || message.contains("spec.stages[0].mirror"),
        "{message}"
    );
    assert!(message.contains("100"), "{message}");
}
