//! Rollback latency on the local control plane: from the evaluation that decides a rollback to
//! both patches (canary weight 0 on the HTTPRoute, target scaled to 0) acknowledged by the
//! apiserver. Runs the real engine and the reconciler's apply step 50 times and prints the
//! median and p99. Needs `hack/testenv up` and its env sourced.

#[path = "../tests/rollout_fixture/mod.rs"]
mod rollout_fixture;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::{CanaryRolloutStatus, Phase};
use sluice::controller::deployment_summary::DeploymentSummary;
use sluice::controller::rollout::{Observed, carry_out};
use sluice::controller::{Context, workloads};
use sluice::engine::analysis::AnalysisInput;
use sluice::engine::{Snapshot, Workload, plan};
use sluice::metrics::PrometheusPool;
use sluice::traffic::{ServiceNames, gateway_api};

const RUNS: usize = 50;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = support::TestEnv::get().await;
    let ns = env.namespace("bench-rollback").await;
    ns.apply_yaml(&rollout_fixture::deployment_yaml(
        "registry.example/checkout:2.0.0",
        3,
    ))
    .await;
    ns.apply_yaml(rollout_fixture::SERVICE_YAML).await;
    ns.apply_yaml(rollout_fixture::ROUTE_YAML).await;
    let rollout_yaml =
        rollout_fixture::rollout_yaml(rollout_fixture::GATEWAY, rollout_fixture::QUICK_STAGES, "");
    ns.apply_yaml(&rollout_yaml).await;

    let client = env.client.clone();
    let ctx = Context::new(
        client.clone(),
        PrometheusPool::new(env.prometheus_url.clone()),
    );
    let rollouts: Api<CanaryRollout> = ns.api();
    let deployments: Api<DeploymentSummary> = ns.api();
    let rollout = rollouts.get("checkout").await.expect("rollout");
    let names = ServiceNames::for_service("checkout", 80);
    let routes = vec!["checkout".to_string()];
    let stable = Workload {
        revision: "stable".into(),
        replicas: 3,
        ready_replicas: 3,
        available: true,
    };
    let failing = AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.2))],
        baselines: vec![],
        gates: vec![],
        ..Default::default()
    };
    let annotations = BTreeMap::new();

    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        // A canary at 5% with one failed evaluation behind it (failureLimit 2).
        let uncached = |_: &str| gateway_api::CachedRoute::Unknown;
        let five_percent = gateway_api::RouteTraffic {
            weight: 5,
            mirror: 0,
        };
        gateway_api::set_traffic(&client, ns.name(), &routes, &uncached, &names, five_percent)
            .await
            .expect("set 5%");
        let scale = json!({"spec": {"replicas": 3}});
        deployments
            .patch("checkout", &PatchParams::default(), &Patch::Merge(scale))
            .await
            .expect("scale up");
        let target = deployments.get("checkout").await.expect("target");
        let revision = workloads::target_revision(&target);
        let observed = workloads::observe(&target, revision.clone());
        let status = CanaryRolloutStatus {
            phase: Some(Phase::Progressing),
            stage: Some(1),
            canary_weight: Some(5),
            stable_revision: Some("stable".into()),
            canary_revision: Some(revision),
            stage_started_at: Some(jiff::Timestamp::now() - Duration::from_secs(60)),
            rollout_started_at: Some(jiff::Timestamp::now() - Duration::from_secs(120)),
            failed_evaluations: 1,
            desired_replicas: Some(3),
            ..Default::default()
        };

        let started = Instant::now();
        let snapshot = Snapshot {
            spec: &rollout.spec,
            status: &status,
            generation: Some(1),
            annotations: &annotations,
            target: Some(&observed),
            stable: Some(&stable),
            problems: &[],
            analysis: Some(&failing),
            freeze: None,
            delivery_freeze: None,
            pipeline: None,
            revoke_stable: None,
            keep_templates: false,
            now: jiff::Timestamp::now(),
        };
        let decided = plan(&snapshot);
        // No caches here: the routes are read before they are written, as an operator whose
        // route cache has not synced would.
        let observed_objects = Observed {
            target: &target,
            stable: None,
            stable_workload: Some(&stable),
        };
        carry_out(&ctx, &rollout, &observed_objects, &decided)
            .await
            .expect("rollback applied");
        samples.push(started.elapsed());

        assert_eq!(decided.status.phase, Some(Phase::RolledBack));
        let after = deployments.get("checkout").await.expect("target");
        assert_eq!(
            after.spec.and_then(|s| s.replicas),
            Some(0),
            "target scaled to 0"
        );
    }

    samples.sort();
    let median = samples[RUNS / 2];
    let p99 = samples[(RUNS * 99).div_ceil(100) - 1];
    println!(
        "rollback latency over {RUNS} runs (decision -> route weight 0 and target replicas 0 acknowledged):"
    );
    println!("  median {:.1} ms", median.as_secs_f64() * 1e3);
    println!("  p99    {:.1} ms", p99.as_secs_f64() * 1e3);
    println!("  max    {:.1} ms", samples[RUNS - 1].as_secs_f64() * 1e3);
}
