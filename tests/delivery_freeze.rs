//! DeliveryFreezes on a real cluster: a window that holds a new release until it closes, the
//! kill switch that rolls back every in-flight canary it selects across namespaces, and a
//! malformed freeze that says so and blocks nothing.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan};
use kube::api::{Api, DeleteParams};
use rollout_fixture::*;
use sluice::api::CanaryRollout;
use sluice::api::DeliveryFreeze;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use sluice::api::delivery_freeze::DeliveryFreezeStatus;
use support::{Operator, TestNamespace, eventually};

const V2: &str = "registry.example/checkout:2.0.0";
const V3: &str = "registry.example/checkout:3.0.0";

async fn freeze_status(ns: &TestNamespace, name: &str) -> DeliveryFreezeStatus {
    ns.api::<DeliveryFreeze>()
        .get(name)
        .await
        .expect("read DeliveryFreeze")
        .status
        .unwrap_or_default()
}

async fn wait_freeze(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    done: impl Fn(&DeliveryFreezeStatus) -> bool,
) -> DeliveryFreezeStatus {
    eventually(Duration::from_secs(30), what, async || {
        let status = freeze_status(ns, name).await;
        if done(&status) {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await
}

/// Reasons of the events on the DeliveryFreeze `name`, with their notes.
async fn freeze_events(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    ns.events()
        .await
        .into_iter()
        .filter(|e| e.object_kind == "DeliveryFreeze" && e.object_name == name)
        .map(|e| (e.reason, e.message))
        .collect()
}

/// Waits until the freeze is Stalled and not in force, and returns its InvalidSpec event's note.
async fn wait_invalid(ns: &TestNamespace, name: &str) -> String {
    let status = wait_freeze(ns, name, "the freeze stalled", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.is_true())
    })
    .await;
    assert!(!status.active, "{status:?}");
    eventually(
        Duration::from_secs(10),
        "an InvalidSpec event",
        async || {
            freeze_events(ns, name)
                .await
                .into_iter()
                .find(|(reason, _)| reason == "InvalidSpec")
                .map(|(_, note)| note)
        },
    )
    .await
}

#[tokio::test]
async fn a_freeze_window_holds_a_new_release_and_the_release_starts_when_it_closes() {
    let service = Service::start("freeze-window", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let weights = service.record_weights();
    // A daily window (cron with seconds) that opened two to three seconds ago and lasts 16 s.
    let now = Timestamp::now();
    let opened = Timestamp::from_second(now.as_second() - 2).expect("a time");
    let closes_in = Duration::try_from((opened + 16.seconds()).duration_since(now)).expect("ahead");
    let closes = Instant::now() + closes_in;
    let time = opened.to_zoned(jiff::tz::TimeZone::UTC);
    let schedule = format!("{} {} {} * * *", time.second(), time.minute(), time.hour());
    service
        .ns
        .apply_yaml(&format!(
            "apiVersion: sluice.dev/v1alpha1
kind: DeliveryFreeze
metadata: {{name: release-train}}
spec:
  action: Hold
  reason: change freeze for the release train
  windows: [{{schedule: '{schedule}', duration: 16s, timeZone: UTC}}]
"
        ))
        .await;
    let active = wait_freeze(&service.ns, "release-train", "the window open", |s| {
        s.active
    })
    .await;
    assert!(active.active_until.is_some(), "{active:?}");

    service.set_image(V2).await;
    let frozen = service
        .wait_phase(Phase::Frozen, Duration::from_secs(10))
        .await;
    let status = frozen.status.expect("status");
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("DeliveryFreeze")
            && message.contains("release-train")
            && message.contains("change freeze for the release train"),
        "{message}"
    );
    let condition = service.condition("Frozen").await.expect("Frozen");
    assert!(condition.is_true() && condition.reason == "DeliveryFreeze");
    let stalled = service.condition("Stalled").await.expect("Stalled");
    assert!(
        stalled.is_true() && stalled.reason == "Frozen",
        "{stalled:?}"
    );
    assert_eq!(service.replicas("checkout").await, 0, "no canary scaled up");
    let note = service.awaited_warning("Frozen").await;
    assert!(note.contains("release-train"), "{note}");
    let listed = wait_freeze(&service.ns, "release-train", "the rollout listed", |s| {
        s.affected.iter().any(|a| a.name == "checkout")
    })
    .await;
    assert_eq!(listed.affected_count, 1);

    // The window closes: the release starts, and never before.
    service
        .wait_phase(Phase::Succeeded, closes_in + Duration::from_secs(40))
        .await;
    let first_weight = weights
        .timeline()
        .into_iter()
        .find(|(weight, _)| *weight > 0)
        .expect("the canary got weight");
    assert!(
        first_weight.1 >= closes,
        "the canary got weight {:?} before the window closed",
        closes - first_weight.1
    );
    weights.expect(&[0, 1, 5, 25, 100, 0]).await;
    assert!(service.condition("Frozen").await.is_none());
    service.wait_event("Thawed").await;
    let ended = wait_freeze(&service.ns, "release-train", "the window closed", |s| {
        !s.active
    })
    .await;
    assert!(ended.affected.is_empty() && ended.next_window_at.is_some());
    let reasons: Vec<String> = freeze_events(&service.ns, "release-train")
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    assert!(
        reasons.contains(&"FreezeStarted".to_string())
            && reasons.contains(&"FreezeEnded".to_string()),
        "{reasons:?}"
    );
}

/// A second service in `ns`: Deployment, Service, HTTPRoute and CanaryRollout named `name`.
async fn add_service(ns: &TestNamespace, name: &str, labels: &str) {
    ns.apply_yaml(&named_deployment_yaml(
        name,
        "registry.example/checkout:1.0.0",
        2,
    ))
    .await;
    ns.apply_yaml(&SERVICE_YAML.replace("checkout", name)).await;
    ns.apply_yaml(&ROUTE_YAML.replace("checkout", name)).await;
    ns.apply_yaml(&labelled(
        &rollout_yaml(GATEWAY, LONG_STAGES, "").replace("checkout", name),
        labels,
    ))
    .await;
}

/// `rollout` with these labels (a flow mapping body, e.g. "tier: critical").
fn labelled(rollout: &str, labels: &str) -> String {
    let name_line = rollout
        .lines()
        .find(|l| l.starts_with("metadata: {name: "))
        .expect("metadata line");
    let name = name_line
        .trim_start_matches("metadata: {name: ")
        .trim_end_matches('}');
    rollout.replace(
        name_line,
        &format!("metadata: {{name: {name}, labels: {{{labels}}}}}"),
    )
}

async fn set_image(ns: &TestNamespace, deployment: &str, image: &str) {
    let patch = format!(
        "{{\"spec\":{{\"template\":{{\"spec\":{{\"containers\":[{{\"name\":\"app\",\"image\":\"{image}\"}}]}}}}}}}}"
    );
    let output = ns
        .kubectl(&["patch", "deployment", deployment, "-p", &patch])
        .await;
    assert!(output.status.success(), "{output:?}");
}

async fn rollout_of(ns: &TestNamespace, name: &str) -> CanaryRollout {
    ns.api::<CanaryRollout>()
        .get(name)
        .await
        .expect("read CanaryRollout")
}

async fn wait_rollout_phase(ns: &TestNamespace, name: &str, phase: Phase) -> CanaryRollout {
    eventually(
        Duration::from_secs(30),
        &format!("{}/{name} {phase:?}", ns.name()),
        async || {
            let rollout = rollout_of(ns, name).await;
            let seen = rollout.status.as_ref().and_then(|s| s.phase);
            if seen == Some(phase) {
                Ok(rollout)
            } else {
                Err(seen)
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_kill_switch_rolls_back_every_in_flight_canary_it_selects_in_every_namespace() {
    // Two namespaces of rollouts and a freeze namespace, one operator over the whole cluster
    // that handles only this test's rollouts (its shard label).
    let shard = format!("kill-{}", std::process::id());
    let shard_label = format!("sluice.dev/shard: {shard}");
    let first = Service::deploy_without_operator(
        "kill-a",
        &labelled(
            &rollout_yaml(GATEWAY, LONG_STAGES, ""),
            &format!("{shard_label}, tier: critical"),
        ),
    )
    .await;
    add_service(&first.ns, "search", &shard_label).await;
    let second = Service::deploy_without_operator(
        "kill-b",
        &labelled(
            &rollout_yaml(GATEWAY, LONG_STAGES, ""),
            &format!("{shard_label}, tier: critical"),
        ),
    )
    .await;
    let home = first.env.namespace("freeze-home").await;
    let _operator = Operator::start_cluster_wide(
        &first.env,
        &first.env.prometheus_url,
        &[
            "--selector",
            &format!("sluice.dev/shard={shard}"),
            "--freeze-namespace",
            home.name(),
        ],
        &[],
    );
    let in_flight = [
        (&first.ns, "checkout"),
        (&first.ns, "search"),
        (&second.ns, "checkout"),
    ];
    for (ns, name) in in_flight {
        wait_rollout_phase(ns, name, Phase::Idle).await;
        set_image(ns, name, V2).await;
    }
    for (ns, name) in in_flight {
        eventually(
            Duration::from_secs(30),
            &format!("{}/{name} at stage 1", ns.name()),
            async || rollout_of(ns, name).await.status.and_then(|s| s.stage) == Some(1),
        )
        .await;
    }

    // The same freeze outside the freeze namespace is refused, and freezes nothing.
    let kill_switch = |namespace_label: &str| {
        format!(
            "apiVersion: sluice.dev/v1alpha1
kind: DeliveryFreeze
metadata: {{name: incident-4711, labels: {{{shard_label}}}}}
spec:
  action: Rollback
  reason: incident 4711{namespace_label}
  allNamespaces: true
  selector: {{matchLabels: {{tier: critical}}}}
"
        )
    };
    first.ns.apply_yaml(&kill_switch(" (misplaced)")).await;
    let invalid = wait_invalid(&first.ns, "incident-4711").await;
    assert!(
        invalid.contains("spec.allNamespaces") && invalid.contains(home.name()),
        "{invalid}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (ns, name) in in_flight {
        let status = rollout_of(ns, name).await.status.expect("status");
        assert_eq!(
            status.phase,
            Some(Phase::Progressing),
            "{}/{name}",
            ns.name()
        );
    }
    first
        .ns
        .api::<DeliveryFreeze>()
        .delete("incident-4711", &DeleteParams::default())
        .await
        .expect("delete the misplaced freeze");

    // In the freeze namespace, it rolls back the critical canaries everywhere, at once.
    let pulled = Instant::now();
    home.apply_yaml(&kill_switch("")).await;
    for ns in [&first.ns, &second.ns] {
        let rolled_back = wait_rollout_phase(ns, "checkout", Phase::RolledBack).await;
        let status = rolled_back.status.expect("status");
        let last = status.history.last().expect("history");
        assert_eq!(last.result, RolloutResult::RolledBack);
        assert_eq!(
            last.reason,
            format!(
                "DeliveryFreeze {}/incident-4711 (Rollback): incident 4711",
                home.name()
            )
        );
    }
    let took = pulled.elapsed();
    for service in [&first, &second] {
        service.wait_canary_weight(0).await;
        eventually(Duration::from_secs(10), "canary scaled to 0", async || {
            service.replicas("checkout").await == 0
        })
        .await;
        let notes = service.notes("RolledBack").await;
        assert!(
            notes.iter().any(|n| n.contains("incident-4711")),
            "{notes:?}"
        );
    }
    eprintln!("kill switch: both canaries rolled back {took:?} after the freeze was applied");
    let search = rollout_of(&first.ns, "search")
        .await
        .status
        .expect("status");
    assert_eq!(search.phase, Some(Phase::Progressing), "not selected");
    assert_eq!(search.stage, Some(1));

    // The list is refreshed every 15 s while the freeze is in force.
    let listed = wait_freeze(&home, "incident-4711", "both listed rolled back", |s| {
        s.affected_count == 2 && s.affected.iter().all(|a| a.phase == "RolledBack")
    })
    .await;
    let mut affected: Vec<(String, String)> = listed
        .affected
        .iter()
        .map(|a| (a.namespace.clone(), a.phase.clone()))
        .collect();
    affected.sort();
    let mut expected = vec![
        (first.ns.name().to_string(), "RolledBack".to_string()),
        (second.ns.name().to_string(), "RolledBack".to_string()),
    ];
    expected.sort();
    assert_eq!(affected, expected);

    // While it is in force, a new release does not start; deleted, it does.
    set_image(&second.ns, "checkout", V3).await;
    wait_rollout_phase(&second.ns, "checkout", Phase::Frozen).await;
    assert_eq!(second.replicas("checkout").await, 0);
    let freezes: Api<DeliveryFreeze> = home.api();
    freezes
        .delete("incident-4711", &DeleteParams::default())
        .await
        .expect("thaw");
    wait_rollout_phase(&second.ns, "checkout", Phase::Progressing).await;
}

#[tokio::test]
async fn a_malformed_window_is_stalled_with_an_event_and_blocks_nothing() {
    let service = Service::start("freeze-bad", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    service
        .ns
        .apply_yaml(
            "apiVersion: sluice.dev/v1alpha1
kind: DeliveryFreeze
metadata: {name: weekend}
spec:
  action: Rollback
  windows: [{schedule: 'every friday at six', duration: 62h, timeZone: Europe/London}]
",
        )
        .await;
    let note = wait_invalid(&service.ns, "weekend").await;
    assert!(
        note.contains("spec.windows[0]") && note.contains("every friday at six"),
        "{note}"
    );
    // The schema refuses what it can: a duration that is no duration.
    let refused = service
        .ns
        .kubectl_with_input(
            &["apply", "-f", "-"],
            Some(
                "apiVersion: sluice.dev/v1alpha1
kind: DeliveryFreeze
metadata: {name: forever}
spec:
  windows: [{schedule: '0 18 * * FRI', duration: ten minutes}]
",
            ),
        )
        .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // Kubernetes 1.20 names the field without the index.
    assert!(stderr.contains("spec.windows.duration"), "{stderr}");

    service.release(V2).await;
    service.assert_promoted(V2).await;
}
