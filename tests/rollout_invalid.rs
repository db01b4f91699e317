//! Specs the schema lets through but the operator cannot act on: each rollout is reported
//! Invalid (phase, Stalled condition, Warning event naming the problem) and touches nothing,
//! while the operator keeps serving the valid rollout beside them.

mod rollout_fixture;
mod support;

use std::time::Duration;

use kube::api::Api;
use rollout_fixture::*;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use support::{TestNamespace, eventually};

const GOOD_QUERY: &str = "max(up)";
const GOOD_STAGES: &str = "[{weight: 10, pause: 3s}, {weight: 100, pause: 3s}]";

/// A rollout of `target` behind Service `orders`.
fn rollout(name: &str, target: &str, routing: &str, stages: &str, query: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {{name: {name}}}
spec:
  targetRef: {{name: {target}}}
  service: {{name: orders, port: 80}}
  trafficRouting: {routing}
  stages: {stages}
  analysis:
    interval: 1s
    checks:
    - {{name: errors, query: '{query}', max: 0.01}}
"
    )
}

/// Waits until the rollout `name` is Invalid, and returns its status message and the note of
/// its InvalidSpec warning.
async fn invalid(ns: &TestNamespace, name: &str) -> (String, String) {
    let api: Api<CanaryRollout> = ns.api();
    let status = eventually(
        Duration::from_secs(20),
        &format!("{name} Invalid"),
        async || {
            let status = api
                .get(name)
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            if status.phase == Some(Phase::Invalid) {
                Ok(status)
            } else {
                Err(format!("{:?}: {:?}", status.phase, status.message))
            }
        },
    )
    .await;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled condition");
    assert!(
        stalled.is_true() && stalled.reason == "InvalidSpec",
        "{name}: {stalled:?}"
    );
    let note = eventually(
        Duration::from_secs(10),
        &format!("an InvalidSpec warning about {name}"),
        async || {
            ns.events().await.into_iter().find_map(|e| {
                (e.object_kind == "CanaryRollout"
                    && e.object_name == name
                    && e.reason == "InvalidSpec"
                    && e.type_ == "Warning")
                    .then_some(e.message)
            })
        },
    )
    .await;
    (status.message.unwrap_or_default(), note)
}

#[tokio::test]
async fn invalid_specs_are_reported_and_the_operator_keeps_serving_valid_rollouts() {
    let service = Service::start("invalid", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let ns = &service.ns;
    ns.apply_yaml(&named_deployment_yaml(
        "orders",
        "registry.example/orders:1.0.0",
        1,
    ))
    .await;
    let no_route = "{gatewayAPI: {httpRoutes: [no-such-route]}}";
    let bad_stages = "[{weight: 25}, {weight: 5}, {weight: 100}]";
    let bad_query = "sum(rate(http_requests_total{namespace=\"{{namespace}}\"}[1m])";
    // (name, target, routing, stages, query, what the report must say)
    let cases = [
        (
            "ghost",
            "ghost",
            REPLICAS,
            GOOD_STAGES,
            GOOD_QUERY,
            "target Deployment \"ghost\" not found",
        ),
        (
            "no-route",
            "orders",
            no_route,
            GOOD_STAGES,
            GOOD_QUERY,
            "HTTPRoute no-such-route not found",
        ),
        (
            "bad-stages",
            "orders",
            REPLICAS,
            bad_stages,
            GOOD_QUERY,
            "stages[1].weight 5 follows stages[0].weight 25",
        ),
        (
            "shadow-replicas",
            "orders",
            REPLICAS,
            "[{mirror: 100, pause: 3s}, {weight: 100}]",
            GOOD_QUERY,
            "spec.stages[0].mirror needs spec.trafficRouting.gatewayAPI",
        ),
        (
            "bad-query",
            "orders",
            REPLICAS,
            GOOD_STAGES,
            bad_query,
            "spec.analysis.checks[0].query (errors): PromQL does not parse",
        ),
    ];
    for (name, target, routing, stages, query, _) in cases {
        ns.apply_yaml(&rollout(name, target, routing, stages, query))
            .await;
    }
    for (name, .., problem) in cases {
        let (message, note) = invalid(ns, name).await;
        assert!(message.contains(problem), "{name} status: {message}");
        assert!(note.contains(problem), "{name} event: {note}");
    }

    // Invalid rollouts leave their target alone.
    assert_eq!(service.replicas("orders").await, 1);
    assert!(!service.has_deployment("orders-stable").await);
    assert!(!service.has_service("orders-canary").await);

    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
}
