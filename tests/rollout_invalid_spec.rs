//! Specs the schema cannot reject on Kubernetes 1.20 make a rollout Invalid, with a Stalled
//! condition and a Warning event naming the problem, while the operator keeps serving others.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use support::eventually;

fn invalid_rollout(name: &str, target: &str, routing: &str, stages: &str, query: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {{name: {name}}}
spec:
  targetRef: {{name: {target}}}
  service: {{name: {target}, port: 80}}
  trafficRouting: {routing}
  stages: {stages}
  analysis:
    checks: [{{name: e, query: '{query}', max: 1}}]
"#
    )
}

#[tokio::test]
async fn invalid_specs_are_reported_and_other_rollouts_keep_going() {
    let service = Service::start("invalid", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let good_stages = "[{weight: 10}, {weight: 100}]";
    let cases = [
        (
            "missing-target",
            invalid_rollout("missing-target", "nowhere", REPLICAS, good_stages, "up"),
            r#"target Deployment "nowhere" not found"#,
        ),
        (
            "missing-route",
            invalid_rollout(
                "missing-route",
                "nowhere2",
                "{gatewayAPI: {httpRoutes: [ghost]}}",
                good_stages,
                "up",
            ),
            "HTTPRoute ghost not found",
        ),
        (
            "decreasing",
            invalid_rollout(
                "decreasing",
                "nowhere3",
                REPLICAS,
                "[{weight: 50}, {weight: 10}]",
                "up",
            ),
            "weights must increase strictly",
        ),
        (
            "bad-promql",
            invalid_rollout(
                "bad-promql",
                "nowhere4",
                REPLICAS,
                good_stages,
                "sum(rate(x[5m])",
            ),
            "PromQL does not parse",
        ),
    ];
    for (_, yaml, _) in &cases {
        service.ns.apply_yaml(yaml).await;
    }
    let rollouts = service.ns.api::<CanaryRollout>();
    for (name, _, expected) in &cases {
        let status = eventually(
            Duration::from_secs(30),
            &format!("{name} Invalid"),
            async || {
                let status = rollouts
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                if status.phase == Some(Phase::Invalid) {
                    Ok(status)
                } else {
                    Err(format!("{:?}", status.phase))
                }
            },
        )
        .await;
        let stalled = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .expect("Stalled");
        assert!(
            stalled.is_true() && stalled.reason == "InvalidSpec",
            "{name}: {stalled:?}"
        );
        assert!(
            stalled.message.contains(expected),
            "{name}: {}",
            stalled.message
        );
        let events = service.ns.events().await;
        assert!(
            events.iter().any(|e| e.object_name == *name
                && e.reason == "InvalidSpec"
                && e.type_ == "Warning"
                && e.message.contains(expected)),
            "{name}: {events:?}"
        );
    }
    // The valid rollout in the same namespace, served by the same operator, still promotes.
    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
}
