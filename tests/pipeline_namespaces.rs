//! A ReleasePipeline whose environments live in other namespaces than its own, with the
//! operator given the list (`--namespace` three times): it keeps one set of caches per
//! namespace, and the pipeline, its rollouts and their gate must still see one another.

mod pipeline_fixture;
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use sluice::api::release_pipeline::{ReleasePhase, ReleasePipeline};

use pipeline_fixture::{ERROR_METRIC, RELEASE, V2, environment_yaml, release_entry};
use support::{FakeKubelet, MetricsExporter, Operator, TestEnv, TestNamespace, eventually};

const MINUTE: Duration = Duration::from_secs(60);

/// A pipeline `name` from the rollout `staging` (namespace/name) to `production`.
fn pipeline_yaml(name: &str, staging: (&str, &str), production: (&str, &str)) -> String {
    let ((staging_ns, staging), (production_ns, production)) = (staging, production);
    format!(
        "apiVersion: sluice.dev/v1alpha1
kind: ReleasePipeline
metadata: {{name: {name}}}
spec:
  release: {{containers: [app]}}
  environments:
  - name: staging
    rolloutRef: {{name: {staging}, namespace: {staging_ns}}}
    soak: 8s
    verification:
      interval: 1s
      checks:
      - name: error-rate
        query: 'max({ERROR_METRIC}{{namespace=\"{{{{namespace}}}}\",track=\"stable\"}})'
        max: 0.01
    riskBudget: {{maxCanaryWeight: 1}}
  - name: production
    rolloutRef: {{name: {production}, namespace: {production_ns}}}
"
    )
}

async fn set_image(ns: &TestNamespace, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    ns.api::<Deployment>()
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .expect("set the image");
}

async fn phase_of(ns: &TestNamespace) -> (Option<Phase>, Option<String>) {
    let rollout = ns.api::<CanaryRollout>().get("checkout").await;
    let status = rollout.ok().and_then(|r| r.status).unwrap_or_default();
    (status.phase, status.message)
}

async fn wait_phase(ns: &TestNamespace, phase: Phase, timeout: Duration) {
    let what = format!("checkout in {} {phase:?}", ns.name());
    eventually(timeout, &what, async || {
        let seen = phase_of(ns).await;
        (seen.0 == Some(phase)).then_some(()).ok_or(seen)
    })
    .await
}

#[tokio::test]
async fn a_pipeline_gates_and_moves_rollouts_in_other_watched_namespaces() {
    let env = TestEnv::get().await;
    let home = env.namespace("pipens-home").await;
    let staging = env.namespace("pipens-stg").await;
    let production = env.namespace("pipens-prod").await;
    let _kubelets =
        [&staging, &production].map(|ns| FakeKubelet::start(env.client.clone(), ns.name()));
    let exporter = MetricsExporter::start(&env, home.name()).await;
    for ns in [&staging, &production] {
        for track in ["canary", "stable"] {
            exporter.set(
                ERROR_METRIC,
                &[("namespace", ns.name()), ("track", track)],
                0.001,
            );
        }
    }
    exporter
        .wait_until_scraped(
            ERROR_METRIC,
            &[("namespace", production.name()), ("track", "stable")],
        )
        .await;
    staging
        .apply_yaml(&environment_yaml("checkout", "[{weight: 1, pause: 2s}]"))
        .await;
    production
        .apply_yaml(&environment_yaml("checkout", "[{weight: 5, pause: 2s}]"))
        .await;
    home.apply_yaml(&pipeline_yaml(
        "checkout",
        (staging.name(), "checkout"),
        (production.name(), "checkout"),
    ))
    .await;
    // Another names a namespace the operator does not watch.
    home.apply_yaml(&pipeline_yaml(
        "elsewhere",
        (staging.name(), "absent"),
        ("pipens-unwatched", "checkout"),
    ))
    .await;

    let operator = Operator::start(
        &env,
        home.name(),
        &[
            "--namespace",
            staging.name(),
            "--namespace",
            production.name(),
        ],
    );
    for ns in [&staging, &production] {
        wait_phase(ns, Phase::Idle, MINUTE).await;
    }

    // Git sets the release in production first: the production rollout, two namespaces away
    // from its pipeline, waits for staging.
    set_image(&staging, V2).await;
    set_image(&production, V2).await;
    wait_phase(&production, Phase::Waiting, MINUTE).await;
    let waiting = production
        .api::<CanaryRollout>()
        .get("checkout")
        .await
        .expect("production's rollout")
        .status
        .expect("status");
    let condition = waiting
        .conditions
        .iter()
        .find(|c| c.type_ == "Waiting")
        .expect("a Waiting condition");
    assert!(
        condition.message.starts_with(RELEASE) && condition.message.contains("in staging"),
        "{condition:?}"
    );
    assert_eq!(waiting.canary_weight, Some(0));

    // Staging's promotion and soak reach the pipeline, and its verdict reaches production,
    // whose rollout starts by itself.
    wait_phase(&production, Phase::Succeeded, 2 * MINUTE).await;
    // The pipeline records the promotion in the reconcile the rollout's move nudges.
    let pipelines: Api<ReleasePipeline> = home.api();
    let status = eventually(MINUTE, "the pipeline's status", async || {
        let status = pipelines
            .get("checkout")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        let phases =
            ["staging", "production"].map(|env| release_entry(&status, env).map(|e| e.phase));
        (phases == [Some(ReleasePhase::Verified), Some(ReleasePhase::Promoted)])
            .then_some(status)
            .ok_or(format!("{phases:?}"))
    })
    .await;
    let in_staging = release_entry(&status, "staging").expect("the release in staging");
    let in_production = release_entry(&status, "production").expect("the release in production");
    let soaked = in_production
        .started_at
        .expect("production's start")
        .duration_since(in_staging.promoted_at.expect("staging's promotion"));
    assert!(soaked >= jiff::SignedDuration::from_secs(8), "{soaked:?}");
    // Production starts on the pipeline's verdict, which nudges it from the pipeline's
    // namespace, not at its next periodic check (every 30 s while Waiting).
    let after_verdict = in_production
        .started_at
        .expect("production's start")
        .duration_since(in_staging.since);
    assert!(
        after_verdict < jiff::SignedDuration::from_secs(15),
        "production started {after_verdict:?} after staging's verdict"
    );
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.is_true()),
        "{:?}",
        status.conditions
    );

    let stalled = eventually(MINUTE, "the other pipeline Stalled", async || {
        let elsewhere = pipelines
            .get("elsewhere")
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        elsewhere
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.is_true())
            .cloned()
            .ok_or(format!("{:?}", elsewhere.conditions))
    })
    .await;
    assert!(
        stalled.message.contains(
            "spec.environments[1].rolloutRef.namespace: namespace pipens-unwatched is not among the namespaces this operator watches"
        ),
        "{stalled:?}"
    );
    drop(operator);
    for ns in [&home, &staging, &production] {
        support::clear_rollout_finalizers(&env, ns.name());
    }
}
