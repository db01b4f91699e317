//! The demo's service: a Deployment `checkout`, its Service and HTTPRoute, and a CanaryRollout
//! with stages short enough to watch (a shadow stage copying every request to the canary, then
//! 1/5/25/100 %, 5 s each, an evaluation every 2 s).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, Error};
use serde_json::{Value, json};

use crate::api::{CanaryRollout, ParityPolicy, SLOBudget};

/// Field manager of everything the demo writes.
pub const FIELD_MANAGER: &str = "sluice-demo";
/// Name of the Deployment, Service, HTTPRoute and CanaryRollout.
pub const APP: &str = "checkout";
/// Port of the Service.
pub const SERVICE_PORT: i32 = 80;
/// Image repository of every version.
pub const IMAGE_REPOSITORY: &str = "registry.example/checkout";
/// The version deployed first and adopted without analysis.
pub const FIRST_VERSION: &str = "1.0.0";
/// A version the simulator serves with few errors.
pub const GOOD_VERSION: &str = "2.0.0";
/// A version the simulator serves with many errors ("bad" in the tag).
pub const BAD_VERSION: &str = "3.0.0-bad";
/// A version that quotes one symbol 60 bps high ("drift" in the tag).
pub const DRIFT_VERSION: &str = "4.0.0-drift";
/// The ParityPolicy judging the canary's quotes against stable's, per symbol.
pub const PARITY_POLICY: &str = "checkout-parity";
/// The SLOBudget of checkout's users' requests.
pub const SLO_BUDGET: &str = "checkout-slo";
/// A good version released during an incident.
pub const NEXT_VERSION: &str = "5.0.0";
/// Range of the check's `rate()`, in seconds.
pub const CHECK_WINDOW_SECONDS: u64 = 15;
/// Name of the rollout's single check.
pub const CHECK_NAME: &str = "error-rate";
/// Largest error ratio the check passes.
pub const CHECK_MAX: f64 = 0.02;

/// `registry.example/checkout:<version>`.
pub fn image(version: &str) -> String {
    format!("{IMAGE_REPOSITORY}:{version}")
}

/// The check's PromQL over the simulator's series: the share of 5xx answers of the current
/// canary, told apart from earlier canaries by the pod-template-hash of its ReplicaSet.
pub fn check_query() -> String {
    let canary =
        r#"namespace="{{namespace}}",track="canary",pod_template_hash="{{podTemplateHash}}""#;
    let window = CHECK_WINDOW_SECONDS;
    format!(
        r#"sum(rate(http_requests_total{{{canary},code=~"5.."}}[{window}s])) / sum(rate(http_requests_total{{{canary}}}[{window}s]))"#
    )
}

/// Server-side applies the Deployment (first version, 3 replicas), the Service, the HTTPRoute,
/// the ParityPolicy, the SLOBudget and the CanaryRollout in `namespace`.
pub async fn apply(client: &Client, namespace: &str) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    apply_service(client, namespace, FIRST_VERSION).await?;
    let policies: Api<ParityPolicy> = Api::namespaced(client.clone(), namespace);
    policies
        .patch(PARITY_POLICY, &params, &Patch::Apply(parity_policy()))
        .await?;
    let budgets: Api<SLOBudget> = Api::namespaced(client.clone(), namespace);
    budgets
        .patch(SLO_BUDGET, &params, &Patch::Apply(slo_budget()))
        .await?;
    let rollouts: Api<CanaryRollout> = Api::namespaced(client.clone(), namespace);
    rollouts
        .patch(APP, &params, &Patch::Apply(canary_rollout()))
        .await?;
    Ok(())
}

/// Server-side applies checkout itself: the Deployment at `version` (3 replicas), the Service
/// and the HTTPRoute.
pub async fn apply_service(client: &Client, namespace: &str, version: &str) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    deployments
        .patch(APP, &params, &Patch::Apply(deployment(version)))
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    services
        .patch(APP, &params, &Patch::Apply(service()))
        .await?;
    httproutes(client, namespace)
        .patch(APP, &params, &Patch::Apply(httproute()))
        .await?;
    Ok(())
}

/// What `kubectl set image deployment/checkout checkout=<image>` does: a strategic merge patch
/// of the container's image, so the replicas Sluice manages are left alone.
pub async fn set_image(client: &Client, namespace: &str, image: &str) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": APP, "image": image}]}}}});
    deployments
        .patch(
            APP,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Strategic(patch),
        )
        .await?;
    Ok(())
}

/// HTTPRoutes (gateway.networking.k8s.io/v1) in `namespace`.
pub fn httproutes(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn deployment(version: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{
                    "name": APP,
                    "image": image(version),
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
                }]}
            }
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "selector": {"app": APP},
            "ports": [{"name": "http", "protocol": "TCP", "port": SERVICE_PORT, "targetPort": 8080}]
        }
    })
}

fn httproute() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": APP},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/checkout"}}],
                "backendRefs": [{"name": APP, "port": SERVICE_PORT, "weight": 100}]
            }]
        }
    })
}

/// Parity of the canary's quotes with stable's, per symbol, weighted by notional: the default
/// levels (20 / 50 / 100 bps: hold, roll back, roll back and freeze), seen twice in a row.
fn parity_policy() -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ParityPolicy",
        "metadata": {"name": PARITY_POLICY},
        "spec": {
            "query": r#"sum by (symbol) (demo_order_value{namespace="{{namespace}}",track="{{track}}"})"#,
            "window": "1m",
            "step": "1s",
            "minSamples": 4,
            "consecutiveBreaches": 2,
            "groups": {
                "by": ["symbol"],
                "weightQuery": r#"sum by (symbol) (demo_order_notional{namespace="{{namespace}}"})"#
            }
        }
    })
}

/// 99 % of users' requests answered without a 5xx over 30 s: short enough to watch an
/// incident spend the budget. Below 10 % of the budget left, no release starts.
fn slo_budget() -> Value {
    let users = r#"namespace="{{namespace}}",track=~"{{track}}""#;
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "SLOBudget",
        "metadata": {"name": SLO_BUDGET},
        "spec": {
            "window": "30s",
            "interval": "1s",
            "objectives": [{
                "name": "availability",
                "target": 99,
                "good": format!(r#"sum(rate(checkout_user_requests_total{{{users},code!~"5.."}}[{{{{window}}}}]))"#),
                "total": format!(r#"sum(rate(checkout_user_requests_total{{{users}}}[{{{{window}}}}]))"#)
            }],
            "burnRateAlerts": [{"long": "10s", "short": "2s", "factor": 14.4, "severity": "Critical"}],
            "policy": {"freezeBelowRemaining": 0.1, "canaryMaxBudgetSpend": 0.5}
        }
    })
}

pub(super) fn canary_rollout() -> Value {
    let stage = |weight: u32| json!({"weight": weight, "pause": "5s"});
    let shadow = json!({"mirror": 100, "pause": "5s"});
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": APP},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": APP},
            "service": {"name": APP, "port": SERVICE_PORT, "targetPort": 8080},
            "trafficRouting": {"gatewayAPI": {"httpRoutes": [APP]}},
            "stages": [shadow, stage(1), stage(5), stage(25), stage(100)],
            "analysis": {
                "interval": "2s",
                "failureLimit": 2,
                "noData": "Hold",
                "checks": [{"name": CHECK_NAME, "query": check_query(), "max": CHECK_MAX}],
                "parityPolicyRef": {"name": PARITY_POLICY},
                "sloBudgetRef": {"name": SLO_BUDGET}
            },
            "progressDeadline": "60s"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{TemplateVars, render, validate_promql};

    #[test]
    fn the_rollout_is_a_valid_canary_rollout_whose_check_parses() {
        let rollout: CanaryRollout = serde_json::from_value(canary_rollout()).unwrap();
        assert_eq!(
            rollout
                .spec
                .stages
                .iter()
                .map(|s| (s.mirror, s.weight))
                .collect::<Vec<_>>(),
            [
                (Some(100), 0),
                (None, 1),
                (None, 5),
                (None, 25),
                (None, 100)
            ]
        );
        let query = &rollout.spec.analysis.checks[0].query;
        let rendered = render(query, &TemplateVars::placeholders()).unwrap();
        validate_promql(&rendered).unwrap();
        assert_eq!(
            render(
                query,
                &TemplateVars::new()
                    .set("namespace", "demo")
                    .set("podTemplateHash", "5d8f7c9b6")
            )
            .unwrap(),
            r#"sum(rate(http_requests_total{namespace="demo",track="canary",pod_template_hash="5d8f7c9b6",code=~"5.."}[15s])) / sum(rate(http_requests_total{namespace="demo",track="canary",pod_template_hash="5d8f7c9b6"}[15s]))"#
        );
    }
}
