//! `sluice demo` end to end on the local test environment, as `hack/demo --exit-when-done` runs
//! it: the built binary in a namespace of its own, its timeline on stdout, and what it leaves in
//! the cluster.

mod support;

use std::process::Stdio;

use k8s_openapi::api::apps::v1::Deployment;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use sluice::api::release_pipeline::{ReleasePhase, ReleasePipeline};
use support::TestEnv;

#[tokio::test]
async fn the_demo_tells_the_whole_story_and_ends_with_the_pipeline_release_in_production() {
    let env = TestEnv::get().await;
    let ns = env.namespace("demo").await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--namespace", ns.name(), "--exit-when-done"])
        .args(["--timeout", "5m", "--dashboard-address", "127.0.0.1:0"])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("SLUICE_PROMETHEUS_URL", &env.prometheus_url)
        .env("SLUICE_PROM_SD_DIR", &env.sd_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run sluice demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sluice demo failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    for expected in [
        "traffic simulator (not real traffic)",
        "adopted: checkout-stable runs 1.0.0",
        "event   Promoted: ",
        "RESULT: 2.0.0 promoted",
        "RESULT: 4.0.0-drift rolled back: parity Critical: group symbol=MSFT rms ",
        "warning RolledBack: ",
        "rolled back at stage 0 (shadow 100%)",
        "RESULT: 3.0.0-bad rolled back: check error-rate = ",
        "RESULT: SLOBudget checkout-slo frozen: ",
        "RESULT: 5.0.0 waits, phase Frozen: frozen: SLOBudget checkout-slo: objective availability has ",
        "RESULT: 5.0.0 promoted through the freeze by request",
        "[staging] Idle",
        "RESULT: 6.0.0 promoted in staging",
        "[pipeline] event   ReleaseSuperseded: checkout:5.0.0 in staging: replaced by checkout:6.0.0",
        "[pipeline] event   ReleasePushed: checkout:6.0.0 pushed to production: cleared in staging",
        "[production] Progressing",
        "RESULT: 6.0.0 pushed to production by the pipeline after ",
        "kubectl sluice pipeline checkout",
        "DASHBOARD: http://127.0.0.1:",
        "the story is over",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in the demo's output:\n{stdout}"
        );
    }

    let rollout = ns
        .api::<CanaryRollout>()
        .get("checkout")
        .await
        .expect("read the demo's CanaryRollout");
    let status = rollout.status.unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(Phase::Succeeded),
        "{status:?}\n--- demo output ---\n{stdout}"
    );
    let stable = ns.deployment("checkout-stable").await;
    assert_eq!(
        first_image(stable).as_deref(),
        Some("registry.example/checkout:6.0.0"),
        "the image of checkout-stable\n--- demo output ---\n{stdout}"
    );
    let target: Deployment = ns.deployment("checkout").await;
    assert_eq!(
        target.spec.and_then(|spec| spec.replicas),
        Some(0),
        "the replicas of checkout\n--- demo output ---\n{stdout}"
    );

    // 6.0.0 reached production only through staging, after its soak there.
    let pipeline = ns
        .api::<ReleasePipeline>()
        .get("checkout")
        .await
        .expect("read the demo's ReleasePipeline");
    let releases = pipeline.status.unwrap_or_default().releases;
    let entry = |release: &str, environment: &str| {
        releases
            .iter()
            .find(|r| r.name == release)
            .and_then(|r| r.environments.iter().find(|e| e.name == environment))
            .unwrap_or_else(|| panic!("no {release} in {environment} in {releases:?}\n{stdout}"))
    };
    let (staging, production) = (
        entry("checkout:6.0.0", "staging"),
        entry("checkout:6.0.0", "production"),
    );
    assert_eq!(
        (staging.phase, production.phase),
        (ReleasePhase::Verified, ReleasePhase::Promoted),
        "{releases:?}"
    );
    // 5.0.0 was soaking in staging (its 10 s from the pipeline's start) when 6.0.0 came.
    let replaced = entry("checkout:5.0.0", "staging");
    assert_eq!(
        (replaced.phase, replaced.message.as_str()),
        (
            ReleasePhase::Superseded,
            "replaced by checkout:6.0.0 before it was verified"
        ),
        "{replaced:?}"
    );
    assert_eq!(staging.risk_spent.canary_weight, Some(1), "{staging:?}");
    let soaked = production
        .started_at
        .expect("production's canary start")
        .duration_since(staging.promoted_at.expect("staging's promotion"));
    assert!(
        soaked >= jiff::SignedDuration::from_secs(10),
        "production started {soaked:?} after staging's promotion, before the 10 s soak"
    );
    let staging_ns = format!("{}-staging", ns.name());
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(env.client.clone(), &staging_ns);
    let staging_stable = deployments
        .get("checkout-stable")
        .await
        .expect("staging's stable Deployment");
    assert_eq!(
        first_image(staging_stable).as_deref(),
        Some("registry.example/checkout:6.0.0")
    );
}

fn first_image(deployment: Deployment) -> Option<String> {
    deployment
        .spec?
        .template
        .spec?
        .containers
        .first()?
        .image
        .clone()
}
