//! Scale-out on Kubernetes itself. Two operators with leader election: one acts, the other
//! stands by and takes over a rollout in progress when the first dies, without repeating or
//! skipping a stage. Shards: an operator acts only on the rollouts its label selector matches.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use rollout_fixture::*;
use sluice::api::canary_rollout::Phase;
use support::{Operator, eventually};

const LEASE_DURATION: Duration = Duration::from_secs(4);
/// How often a standby looks at the lease: a sixth of its duration.
const RETRY: Duration = Duration::from_millis(666);
/// Stages long enough that the handover happens inside one of them.
const STAGES: &str = "[{weight: 1, pause: 3s}, {weight: 5, pause: 8s}, {weight: 25, pause: 3s}, {weight: 100, pause: 3s}]";

fn start_operator(service: &Service, identity: &str) -> Operator {
    let ns = service.ns.name();
    Operator::start_with_env(
        &service.env,
        ns,
        &service.env.prometheus_url,
        &[
            "--leader-elect",
            "--lease-namespace",
            ns,
            "--lease-duration",
            "4s",
        ],
        &[("POD_NAME", identity)],
    )
}

async fn holder(service: &Service) -> Option<String> {
    let leases: Api<Lease> = service.ns.api();
    leases
        .get_opt("sluice")
        .await
        .expect("get lease")
        .and_then(|l| l.spec?.holder_identity)
}

async fn wait_holder(service: &Service, identity: &str, timeout: Duration) {
    eventually(
        timeout,
        &format!("{identity} holding the lease"),
        async || {
            let holder = holder(service).await;
            if holder.as_deref() == Some(identity) {
                Ok(())
            } else {
                Err(holder)
            }
        },
    )
    .await
}

/// `reportingInstance` of every event on the CanaryRollout.
async fn reporters(service: &Service) -> Vec<String> {
    let events: Api<Event> = service.ns.api();
    events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("CanaryRollout"))
        .map(|e| e.reporting_instance.unwrap_or_default())
        .collect()
}

fn reconciled(log: &str) -> bool {
    log.contains("reconcile{controller=")
}

#[tokio::test]
async fn one_operator_acts_and_a_standby_takes_over_a_rollout_in_progress() {
    let mut service =
        Service::deploy_without_operator("leader", &rollout_yaml(GATEWAY, STAGES, "")).await;
    let mut first = start_operator(&service, "operator-a");
    wait_holder(&service, "operator-a", Duration::from_secs(20)).await;
    let second = start_operator(&service, "operator-b");
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;

    let weights = service.record_weights();
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(30), "the 5 % stage", async || {
        service.canary_weight_on_route().await == Some(5)
    })
    .await;
    weights.expect(&[0, 1, 5]).await;
    // The route is written before the reconcile records its event: a kill in between would
    // lose the event (the status keeps the step). Kill inside the stage, not that reconcile.
    eventually(
        Duration::from_secs(10),
        "the 5 % stage's event",
        async || service.notes("StageAdvanced").await.len() == 1,
    )
    .await;
    // Inside the 8 s stage at 5 %: the acting operator dies without a word.
    assert!(
        !reconciled(&second.log()),
        "the standby acted:\n{}",
        second.log()
    );
    assert!(
        reporters(&service).await.iter().all(|r| r == "operator-a"),
        "events from another reporter than the leader: {:?}",
        reporters(&service).await
    );
    first.kill().await;
    let killed = Instant::now();
    wait_holder(&service, "operator-b", Duration::from_secs(20)).await;
    let handover = killed.elapsed();
    eprintln!("handover {handover:?} after the leader was killed (lease {LEASE_DURATION:?})");
    // The standby takes a lease that stood still for its duration; it looks every RETRY, and
    // the last renewal may have been up to RETRY before the kill.
    assert!(
        handover <= LEASE_DURATION + RETRY * 2 + Duration::from_millis(500),
        "handover took {handover:?}"
    );

    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    weights.expect(&[0, 1, 5, 25, 100, 0]).await;
    let status = service.status().await;
    let history = status.history.last().expect("history");
    assert_eq!(
        history.result,
        sluice::api::canary_rollout::RolloutResult::Promoted
    );
    let reporters = reporters(&service).await;
    assert!(reporters.iter().any(|r| r == "operator-b"), "{reporters:?}");
    assert!(
        reporters
            .iter()
            .all(|r| r == "operator-a" || r == "operator-b"),
        "{reporters:?}"
    );
    // Each stage started once: no stage repeated by the new leader.
    for reason in ["StageStarted", "StageAdvanced", "Promoted"] {
        let notes = service.notes(reason).await;
        let expected = if reason == "StageAdvanced" { 3 } else { 1 };
        assert_eq!(notes.len(), expected, "{reason}: {notes:?}");
    }
    assert!(reconciled(&second.log()));
    service.operator = Some(second);
}

#[tokio::test]
async fn a_terminated_leader_releases_the_lease_for_an_immediate_handover() {
    let service =
        Service::deploy_without_operator("release", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let mut first = start_operator(&service, "operator-a");
    wait_holder(&service, "operator-a", Duration::from_secs(20)).await;
    let _second = start_operator(&service, "operator-b");
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    let status = first.terminate(Duration::from_secs(15)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM should end the operator cleanly: {status:?}\n{}",
        first.log()
    );
    assert!(
        first.log().contains("released the lease"),
        "{}",
        first.log()
    );
    let terminated = Instant::now();
    wait_holder(&service, "operator-b", Duration::from_secs(10)).await;
    // Without the release, the standby could take over only once the lease had gone unrenewed
    // for its whole duration (4 s, so more than 3 s from here); with it, at its next look.
    // Half the lease tells the two apart with room for a loaded machine.
    assert!(
        terminated.elapsed() < LEASE_DURATION / 2,
        "took {:?} after a release",
        terminated.elapsed()
    );
}

#[tokio::test]
async fn an_operator_acts_only_on_the_rollouts_its_selector_matches() {
    let rollout = rollout_yaml(GATEWAY, QUICK_STAGES, "").replace(
        "metadata: {name: checkout}",
        "metadata: {name: checkout, labels: {sluice.dev/shard: b}}",
    );
    let service = Service::deploy_with_operator_args(
        "shard",
        &rollout,
        &["--selector", "sluice.dev/shard=a"],
    )
    .await;
    // The other shard's rollout: left alone, not even adopted.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let untouched = service.rollout().await;
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(
        untouched.metadata.finalizers.is_none(),
        "{:?}",
        untouched.metadata
    );
    assert_eq!(service.replicas("checkout").await, 3);
    // Moved into this operator's shard, it is adopted.
    let relabelled = rollout.replace("sluice.dev/shard: b", "sluice.dev/shard: a");
    service.ns.apply_yaml(&relabelled).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(30))
        .await;
}

#[test]
fn a_lease_too_short_to_renew_is_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--leader-elect", "--lease-duration", "1s"])
        .output()
        .expect("run sluice");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1s is too short: a lease lasts at least 2s"),
        "{stderr}"
    );
}
