//! What the operator asks of the apiserver, read from the test apiserver's audit log
//! (`hack/testenv up` with `SLUICE_AUDIT=1`, as `hack/test` runs it): every request carries the
//! User-Agent `sluice/<version>` (the plugin's with `(kubectl-sluice)`), reconciles read from
//! caches (no GET, no LIST beyond the watches' own), and reconciles that change nothing send
//! nothing.

mod rollout_fixture;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use rollout_fixture::*;
use serde_json::{Value, json};
use sluice::api::canary_rollout::Phase;

const OPERATOR_USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));
const PLUGIN_USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"), " (kubectl-sluice)");

/// One finished request of the audit log.
#[derive(Debug)]
struct Request {
    user_agent: String,
    verb: String,
    resource: String,
    subresource: String,
    name: String,
}

/// The finished requests about objects in `namespace`, in the order the apiserver logged them.
fn requests_in(namespace: &str) -> Vec<Request> {
    let path = std::env::var("SLUICE_AUDIT_LOG").expect(
        "SLUICE_AUDIT_LOG is not set: start the environment with SLUICE_AUDIT=1 hack/testenv up \
         (hack/test does)",
    );
    let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| {
            entry["objectRef"]["namespace"] == namespace
                // A watch is logged when it starts streaming; other requests when they finish.
                && matches!(
                    entry["stage"].as_str(),
                    Some("ResponseComplete" | "ResponseStarted")
                )
                && (entry["stage"] == "ResponseComplete") != (entry["verb"] == "watch")
        })
        .map(|entry| Request {
            user_agent: text(&entry["userAgent"]),
            verb: text(&entry["verb"]),
            resource: text(&entry["objectRef"]["resource"]),
            subresource: text(&entry["objectRef"]["subresource"]),
            name: text(&entry["objectRef"]["name"]),
        })
        .collect()
}

fn by_operator(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.user_agent == OPERATOR_USER_AGENT)
        .collect()
}

fn count_by_verb_and_resource(requests: &[&Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        let resource = match request.subresource.as_str() {
            "" => request.resource.clone(),
            sub => format!("{}/{sub}", request.resource),
        };
        *counts
            .entry(format!("{} {resource}", request.verb))
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn the_operator_names_itself_reads_from_caches_and_is_quiet_when_nothing_changes() {
    let stages = "[{weight: 50, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = Service::start("requests", &rollout_yaml(REPLICAS, stages, "")).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    let namespace = service.ns.name().to_string();

    let requests = requests_in(&namespace);
    let operator = by_operator(&requests);
    let counts = count_by_verb_and_resource(&operator);
    // The operator's own writes, each of which only it makes, all name it.
    for request in &requests {
        let writes = matches!(request.verb.as_str(), "create" | "patch" | "delete");
        let only_the_operator = writes
            && match (request.resource.as_str(), request.subresource.as_str()) {
                ("canaryrollouts", "status") => true,
                ("services", "") => {
                    request.name.ends_with("-stable") || request.name.ends_with("-canary")
                }
                ("deployments", "") => request.name.ends_with("-stable"),
                _ => false,
            };
        if only_the_operator {
            assert_eq!(request.user_agent, OPERATOR_USER_AGENT, "{request:?}");
        }
    }
    for wanted in [
        "patch canaryrollouts/status",
        "patch deployments",
        "create events",
    ] {
        assert!(counts.contains_key(wanted), "no {wanted} in {counts:#?}");
    }
    // Reads come from the caches: no GET of any kind, and a LIST only where a watch starts.
    for request in &operator {
        assert_ne!(request.verb, "get", "a GET per reconcile: {request:?}");
    }
    // One watch per cached kind (two for the kinds that also have their own controller), each
    // listing once as it starts. A watch lists again only when the apiserver ends it as
    // expired ("too old resource version", seen on the SLOBudget watches seconds after a fresh
    // cluster started); the operator logs each such end, and each allows one more LIST.
    let operator_log = service.operator.as_ref().expect("operator").log();
    let expired = operator_log.matches("too old resource version").count();
    let watched = [
        ("canaryrollouts", 1),
        ("deployments", 1),
        ("replicasets", 1),
        ("pods", 1),
        ("services", 1),
        ("httproutes", 1),
        ("paritypolicies", 2),
        ("slobudgets", 2),
        ("releasepipelines", 2),
        ("deliveryfreezes", 2),
        ("notifications", 2),
    ];
    for (key, count) in &counts {
        if let Some(resource) = key.strip_prefix("list ") {
            let watches = watched
                .iter()
                .find(|(kind, _)| *kind == resource)
                .map_or(0, |(_, n)| *n);
            assert!(
                *count <= watches + expired,
                "{key}: {count} LISTs for {watches} watches and {expired} expired watches: \
                 {counts:#?}"
            );
        }
    }

    // A change the plan does not care about reconciles the rollout (the target is watched)
    // and sends nothing.
    let operator = service.operator.as_ref().expect("operator");
    let reconciled_before = rollout_reconciles(operator).await;
    let before = by_operator(&requests_in(&namespace)).len();
    let deployments: Api<Deployment> = service.ns.api();
    for touch in 0..3 {
        let patch =
            json!({"metadata": {"annotations": {"example.com/touched": touch.to_string()}}});
        deployments
            .patch("checkout", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate the target");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = requests_in(&namespace);
    let quiet: Vec<&Request> = by_operator(&after).into_iter().skip(before).collect();
    assert!(quiet.is_empty(), "requests at rest: {quiet:#?}");
    let reconciled = rollout_reconciles(operator).await - reconciled_before;
    assert!(reconciled >= 3.0, "{reconciled} reconciles after 3 touches");

    // The kubectl plugin names itself too.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-sluice"))
        .args(["get", "-n", &namespace])
        .env("KUBECONFIG", &service.env.kubeconfig)
        .output()
        .await
        .expect("run kubectl-sluice");
    assert!(output.status.success(), "{output:?}");
    let plugin_lists = requests_in(&namespace)
        .into_iter()
        .filter(|r| r.verb == "list" && r.resource == "canaryrollouts")
        .filter(|r| r.user_agent == PLUGIN_USER_AGENT)
        .count();
    assert_eq!(plugin_lists, 1, "the plugin's list of rollouts");
}

/// Rollout reconciles the operator has run, from its /metrics.
async fn rollout_reconciles(operator: &support::Operator) -> f64 {
    let address = operator.metrics_address().await;
    let page = reqwest::get(format!("http://{address}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics page");
    let prefix = r#"sluice_reconcile_duration_seconds_count{controller="rollout"} "#;
    page.lines()
        .find_map(|line| line.strip_prefix(prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{page}"))
}
