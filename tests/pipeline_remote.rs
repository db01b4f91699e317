//! A ReleasePipeline whose production environment lives in another cluster: a second control
//! plane with its own Sluice operator, reached through a kubeconfig Secret.

mod pipeline_fixture;
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use pipeline_fixture::*;
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use sluice::api::release_pipeline::{ReleasePhase, ReleasePipeline};
use support::{FakeKubelet, MetricsExporter, Operator, SecondCluster, TestEnv, eventually};

const MINUTE: Duration = Duration::from_secs(60);

fn image_of(deployment: k8s_openapi::api::apps::v1::Deployment) -> String {
    deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_production_environment_in_another_cluster_waits_for_staging_and_then_promotes() {
    let env = TestEnv::get().await;
    let cluster_b = SecondCluster::start(&env).await;
    let ns = env.namespace("remote-a").await;
    let ns_b = cluster_b.env.namespace("remote-b").await;
    let _kubelet = FakeKubelet::start(env.client.clone(), ns.name());
    let _kubelet_b = FakeKubelet::start(cluster_b.env.client.clone(), ns_b.name());
    let exporter = MetricsExporter::start(&env, ns.name()).await;
    for namespace in [ns.name(), ns_b.name()] {
        for track in ["canary", "stable"] {
            exporter.set(
                ERROR_METRIC,
                &[("namespace", namespace), ("track", track)],
                0.001,
            );
        }
        exporter
            .wait_until_scraped(
                ERROR_METRIC,
                &[("namespace", namespace), ("track", "stable")],
            )
            .await;
    }
    ns.apply_yaml(&environment_yaml(
        "checkout-staging",
        "[{weight: 1, pause: 2s}]",
    ))
    .await;
    ns_b.apply_yaml(&environment_yaml(
        "checkout-production",
        "[{weight: 5, pause: 2s}]",
    ))
    .await;

    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("production-cluster".into()),
            ..Default::default()
        },
        string_data: Some([("kubeconfig".to_string(), cluster_b.portable_kubeconfig())].into()),
        ..Default::default()
    };
    ns.api::<Secret>()
        .create(&Default::default(), &secret)
        .await
        .expect("create the cluster Secret");
    let pipeline = pipeline_yaml("GitOps", "").replace(
        "    rolloutRef: {name: checkout-production}\n",
        &format!(
            "    rolloutRef: {{name: checkout-production, namespace: {}}}\n    cluster: {{secretRef: {{name: production-cluster}}}}\n",
            ns_b.name()
        ),
    );
    assert!(pipeline.contains("production-cluster"), "{pipeline}");
    ns.apply_yaml(&pipeline).await;

    let operator = Operator::start(&env, ns.name(), &[]);
    let operator_b = Operator::start_as(
        &cluster_b.env.kubeconfig,
        ns_b.name(),
        &env.prometheus_url,
        &[],
        &[],
    );
    let rollouts_b: Api<CanaryRollout> = ns_b.api();
    let phase_b = async || {
        rollouts_b
            .get("checkout-production")
            .await
            .ok()
            .and_then(|r| r.status?.phase)
    };
    eventually(MINUTE, "production adopted in cluster B", async || {
        phase_b().await == Some(Phase::Idle)
    })
    .await;
    // Staging too: a target whose image changes before its first adoption is adopted with the
    // new image (no rollout), and the release would then wait in staging for a rollout that
    // never comes.
    let rollouts_a: Api<CanaryRollout> = ns.api();
    eventually(MINUTE, "staging adopted in cluster A", async || {
        let rollout = rollouts_a.get("checkout-staging").await.ok();
        rollout.and_then(|r| r.status?.phase) == Some(Phase::Idle)
    })
    .await;

    // Git changes both environments at once.
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": V2}]}}}});
    for (api, name) in [
        (
            ns.api::<k8s_openapi::api::apps::v1::Deployment>(),
            "checkout-staging",
        ),
        (
            ns_b.api::<k8s_openapi::api::apps::v1::Deployment>(),
            "checkout-production",
        ),
    ] {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(patch.clone()),
        )
        .await
        .expect("set image");
    }

    // Cluster B's operator holds production, with the reason the pipeline wrote on its rollout.
    let waiting = eventually(MINUTE, "production Waiting in cluster B", async || {
        let rollout = rollouts_b
            .get("checkout-production")
            .await
            .expect("rollout");
        let status = rollout.status.clone().unwrap_or_default();
        let condition = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Waiting")
            .cloned();
        match (status.phase, condition) {
            (Some(Phase::Waiting), Some(c)) if c.message.contains("in staging") => Ok(c.message),
            other => Err(format!(
                "{other:?}; log: {}",
                operator_b.log_path().display()
            )),
        }
    })
    .await;
    assert!(waiting.starts_with(RELEASE), "{waiting}");

    eventually(2 * MINUTE, "production promoted in cluster B", async || {
        phase_b().await == Some(Phase::Succeeded)
    })
    .await;
    let stable = ns_b.deployment("checkout-production-stable").await;
    assert_eq!(image_of(stable), V2);
    let rollout = rollouts_b
        .get("checkout-production")
        .await
        .expect("rollout");
    let note = &rollout.metadata.annotations.unwrap_or_default()["sluice.dev/pipeline-gate"];
    assert!(note.contains(r#""verdict":"Admit""#), "{note}");

    let pipelines: Api<ReleasePipeline> = ns.api();
    eventually(MINUTE, "production Promoted in the pipeline", async || {
        let status = pipelines.get("checkout").await.ok()?.status?;
        release_entry(&status, "production").filter(|e| e.phase == ReleasePhase::Promoted)
    })
    .await;
    drop((operator, operator_b));
    support::clear_rollout_finalizers(&cluster_b.env, ns_b.name());
    support::clear_rollout_finalizers(&env, ns.name());
}
