//! ReleasePipeline end to end: staging and production on the local control plane, with soak
//! and verification scaled to seconds.

mod pipeline_fixture;
mod support;

use std::time::Duration;

use pipeline_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use sluice::api::release_pipeline::ReleasePhase;
use support::{AlertmanagerInstance, eventually};

const STAGING_STAGES: &str = "[{weight: 1, pause: 2s}]";
const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_good_release_soaks_in_staging_then_is_pushed_to_production() {
    let envs =
        Environments::start("pipeline-push", STAGING_STAGES, &pipeline_yaml("Push", "")).await;
    envs.set_image("checkout-staging", V2).await;

    let soaking = envs
        .wait_release_phase("staging", ReleasePhase::Soaking, MINUTE)
        .await;
    assert_eq!(
        envs.image("checkout-production").await,
        V1,
        "nothing pushed during the soak"
    );
    assert_eq!(soaking.risk_spent.canary_weight, Some(1));
    let promoted_at = soaking
        .promoted_at
        .expect("the soak counts from the promotion");

    let production = envs
        .wait_rollout_phase("checkout-production", Phase::Succeeded, 2 * MINUTE)
        .await;
    assert_eq!(envs.image("checkout-production").await, V2);
    assert_eq!(envs.image("checkout-production-stable").await, V2);
    let history = production.status.expect("status").history;
    let started = history
        .iter()
        .find(|h| h.result == RolloutResult::Promoted)
        .map(|h| h.started_at)
        .expect("production promoted the release");
    let soaked = started.duration_since(promoted_at);
    assert!(
        soaked >= jiff::SignedDuration::from_secs(8),
        "production started {soaked:?} after staging promoted: before the 8s soak"
    );

    let staging = envs
        .wait_release_phase("staging", ReleasePhase::Verified, MINUTE)
        .await;
    assert_eq!(staging.soak.as_deref(), Some("8s of 8s"));
    envs.wait_release_phase("production", ReleasePhase::Promoted, MINUTE)
        .await;
    let pushed = envs.awaited_notes("checkout", "ReleasePushed").await;
    assert_eq!(
        pushed,
        vec![format!(
            "{RELEASE} pushed to production: cleared in staging"
        )]
    );
    // The plugin shows the matrix.
    let plugin = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-sluice"))
        .env("KUBECONFIG", &envs.env.kubeconfig)
        .args(["pipeline", "checkout", "-n", envs.ns.name()])
        .output()
        .expect("run kubectl-sluice");
    let matrix = String::from_utf8_lossy(&plugin.stdout);
    assert!(
        plugin.status.success(),
        "{matrix}{}",
        String::from_utf8_lossy(&plugin.stderr)
    );
    let row = matrix
        .lines()
        .find(|l| l.starts_with(RELEASE))
        .unwrap_or_default();
    assert!(
        row.contains("Verified") && row.contains("Promoted"),
        "{matrix}"
    );
    assert!(
        matrix.contains(&format!("{RELEASE} in staging: canary weight 1% of 1%")),
        "{matrix}"
    );
    let metrics = envs.operator_metrics().await;
    let promoted = format!(
        "sluice_pipeline_release_phase{{namespace=\"{}\",pipeline=\"checkout\",environment=\"production\",phase=\"Promoted\"}} 1",
        envs.ns.name()
    );
    assert!(
        metrics.contains(&promoted),
        "{promoted} missing from:\n{metrics}"
    );
}

#[tokio::test]
async fn a_release_git_puts_in_production_before_it_soaked_waits() {
    let envs = Environments::start(
        "pipeline-gitops",
        STAGING_STAGES,
        &pipeline_yaml("GitOps", ""),
    )
    .await;
    envs.set_image("checkout-staging", V2).await;
    envs.set_image("checkout-production", V2).await;

    let waiting = envs
        .wait_rollout_phase("checkout-production", Phase::Waiting, MINUTE)
        .await;
    let status = waiting.status.expect("status");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Waiting")
        .expect("a Waiting condition");
    assert!(condition.message.starts_with(RELEASE), "{condition:?}");
    assert!(condition.message.contains("in staging"), "{condition:?}");
    assert_eq!(
        envs.rollout("checkout-production")
            .await
            .status
            .and_then(|s| s.canary_weight),
        Some(0)
    );

    // While staging soaks, the reason says how long is left.
    let soaking_note = eventually(
        MINUTE,
        "a Waiting condition counting the soak",
        async || {
            let rollout = envs.rollout("checkout-production").await;
            let status = rollout.status.unwrap_or_default();
            let message = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Waiting")
                .map(|c| c.message.clone())
                .unwrap_or_default();
            if message.contains("has soaked") {
                Ok(message)
            } else {
                Err((status.phase, message))
            }
        },
    )
    .await;
    assert!(
        soaking_note.starts_with(&format!("{RELEASE} has soaked "))
            && soaking_note.ends_with(" of 8s in staging"),
        "{soaking_note}"
    );
    let events = envs
        .awaited_notes("checkout-production", "PipelineWaiting")
        .await;
    assert!(
        !events.is_empty(),
        "a PipelineWaiting event on the production rollout"
    );

    envs.wait_rollout_phase("checkout-production", Phase::Succeeded, 2 * MINUTE)
        .await;
    assert!(
        envs.notes("checkout", "ReleasePushed").await.is_empty(),
        "a GitOps environment is never pushed"
    );
    let status = envs
        .rollout("checkout-production")
        .await
        .status
        .expect("status");
    assert!(
        !status.conditions.iter().any(|c| c.type_ == "Waiting"),
        "{:?}",
        status.conditions
    );
}

#[tokio::test]
async fn a_release_that_breaks_during_the_staging_soak_is_revoked_and_never_reaches_production() {
    let pipeline = pipeline_yaml("Push", "    onRevoke: Rollback\n");
    let envs = Environments::start("pipeline-revoke", STAGING_STAGES, &pipeline).await;
    envs.set_image("checkout-staging", V2).await;
    envs.wait_release_phase("staging", ReleasePhase::Soaking, MINUTE)
        .await;
    envs.set_stable_error_ratio(0.05);

    let revoked = envs
        .wait_release_phase("staging", ReleasePhase::Revoked, MINUTE)
        .await;
    assert!(
        revoked
            .message
            .starts_with("revoked in staging: check error-rate = 0.05 above max 0.01"),
        "{}",
        revoked.message
    );
    let production = envs
        .wait_release_phase("production", ReleasePhase::Revoked, MINUTE)
        .await;
    assert_eq!(production.message, revoked.message);
    let warnings = envs.awaited_notes("checkout", "ReleaseRevoked").await;
    assert!(
        warnings.iter().any(|n| n.contains("check error-rate")),
        "{warnings:?}"
    );
    // Staging says onRevoke: Rollback: its stable Deployment goes back to the release before.
    let staging = envs
        .wait_rollout_phase("checkout-staging", Phase::RolledBack, MINUTE)
        .await;
    let status = staging.status.expect("status");
    let last = status.history.last().expect("history");
    assert_eq!(last.result, RolloutResult::RolledBack);
    assert!(
        last.reason
            .starts_with("checkout:2.0.0 revoked in staging: check error-rate"),
        "{}",
        last.reason
    );
    eventually(
        MINUTE,
        "staging's stable Deployment back on v1",
        async || envs.image("checkout-staging-stable").await == V1,
    )
    .await;
    assert_eq!(
        envs.image("checkout-staging").await,
        V2,
        "Git's template stays on the target"
    );
    let target_replicas = envs
        .ns
        .deployment("checkout-staging")
        .await
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(target_replicas, Some(0));
    // Events are recorded after the objects are written, in the same reconcile.
    assert!(
        !envs
            .awaited_notes("checkout-staging", "StableReverted")
            .await
            .is_empty()
    );
    // The revoked revision's saved template is gone; the restored one's stays.
    let saved: kube::Api<k8s_openapi::api::apps::v1::ControllerRevision> = envs.ns.api();
    let images: Vec<String> = saved
        .list(&kube::api::ListParams::default().labels("sluice.dev/rollout=checkout-staging"))
        .await
        .expect("list ControllerRevisions")
        .items
        .into_iter()
        .map(|r| {
            r.data
                .map(|d| {
                    d.0["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(images, vec![V1.to_string()]);

    // Past the soak, nothing reaches production.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(envs.image("checkout-production").await, V1);
    let phase = envs
        .rollout("checkout-production")
        .await
        .status
        .and_then(|s| s.phase);
    assert_eq!(phase, Some(Phase::Idle));
    // The revoked release stays on staging's target and does not start again.
    let phase = envs
        .rollout("checkout-staging")
        .await
        .status
        .and_then(|s| s.phase);
    assert_eq!(phase, Some(Phase::RolledBack));
}

#[tokio::test]
async fn an_active_alertmanager_alert_holds_the_promotion_until_it_is_silenced() {
    let alertmanager = AlertmanagerInstance::start().await;
    let gate = format!(
        "    gates: {{incidents: {{alertmanager: \"{}\", matchers: [service=checkout]}}}}\n",
        alertmanager.url()
    );
    let envs = Environments::start(
        "pipeline-alert",
        STAGING_STAGES,
        &pipeline_yaml("Push", &gate),
    )
    .await;
    alertmanager
        .fire(&[
            ("alertname", "CheckoutLatencyHigh"),
            ("service", "checkout"),
        ])
        .await;
    // Another service's alert does not hold this pipeline.
    alertmanager
        .fire(&[("alertname", "SearchDown"), ("service", "search")])
        .await;
    envs.set_image("checkout-staging", V2).await;

    let held = eventually(MINUTE, "staging soaked and held by the alert", async || {
        let status = envs.pipeline_status().await;
        match release_entry(&status, "staging") {
            Some(e) if e.soak.as_deref() == Some("8s of 8s") && !e.held_by.is_empty() => Ok(e),
            other => Err(other.map(|e| (e.phase, e.message))),
        }
    })
    .await;
    assert_eq!(held.phase, ReleasePhase::Soaking);
    assert_eq!(
        held.held_by,
        vec!["unresolved incident: alert CheckoutLatencyHigh active"]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        envs.image("checkout-production").await,
        V1,
        "held: nothing pushed"
    );

    alertmanager
        .silence("alertname", "CheckoutLatencyHigh")
        .await;
    envs.wait_release_phase("staging", ReleasePhase::Verified, MINUTE)
        .await;
    envs.wait_rollout_phase("checkout-production", Phase::Succeeded, 2 * MINUTE)
        .await;
    assert_eq!(envs.image("checkout-production").await, V2);
}

#[tokio::test]
async fn a_risk_budget_overrun_rolls_the_canary_back_naming_the_budget() {
    let shortfall = "    riskBudget: {maxCanaryWeight: 1, shortfall: {query: 'max(sluice_test_shortfall_usd{namespace=\"{{namespace}}\"})', max: 100, unit: USD}}\n";
    let pipeline =
        pipeline_yaml("Push", "").replace("    riskBudget: {maxCanaryWeight: 1}\n", shortfall);
    assert!(pipeline.contains("shortfall"), "{pipeline}");
    let envs = Environments::start("pipeline-risk", "[{weight: 1, pause: 30s}]", &pipeline).await;
    let labels = [("namespace", envs.ns.name())];
    envs.exporter
        .set("sluice_test_shortfall_usd", &labels, 250.0);
    envs.exporter
        .wait_until_scraped("sluice_test_shortfall_usd", &labels)
        .await;
    envs.set_image("checkout-staging", V2).await;

    let rolled_back = envs
        .wait_rollout_phase("checkout-staging", Phase::RolledBack, MINUTE)
        .await;
    let status = rolled_back.status.expect("status");
    let reason = &status.history.last().expect("a history entry").reason;
    assert_eq!(
        reason,
        "checkout:2.0.0 revoked in staging: risk budget shortfall exceeded: 250 USD > max 100 USD"
    );
    assert_eq!(
        envs.rollout("checkout-staging")
            .await
            .status
            .and_then(|s| s.canary_weight),
        Some(0)
    );
    assert_eq!(
        envs.ns
            .deployment("checkout-staging")
            .await
            .spec
            .and_then(|s| s.replicas),
        Some(0)
    );
    let revoked = envs
        .wait_release_phase("staging", ReleasePhase::Revoked, MINUTE)
        .await;
    assert_eq!(revoked.risk_spent.shortfall, Some(250.0));
    assert!(
        envs.awaited_notes("checkout", "ReleaseRevoked")
            .await
            .iter()
            .any(|n| n.contains("risk budget shortfall")),
    );
}

#[tokio::test]
async fn bad_pipelines_get_a_stalled_condition_and_an_event_naming_the_field() {
    let cycle = pipeline_yaml("Push", "").replace(
        "rolloutRef: {name: checkout-production}",
        "rolloutRef: {name: checkout-staging}",
    );
    let envs = Environments::start("pipeline-invalid", STAGING_STAGES, &cycle).await;
    let stalled = eventually(MINUTE, "a Stalled condition", async || {
        let status = envs.pipeline_status().await;
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Stalled" && c.is_true())
    })
    .await;
    assert!(
        stalled.message.contains("spec.environments[1].rolloutRef")
            && stalled.message.contains("a release would cycle"),
        "{stalled:?}"
    );
    assert!(
        !envs
            .awaited_notes("checkout", "InvalidSpec")
            .await
            .is_empty()
    );

    // A missing rollout, and a second pipeline claiming a rollout another already has.
    envs.ns
        .apply_yaml(
            &pipeline_yaml("Push", "")
                .replace("name: checkout}", "name: checkout-2}")
                .replace("{name: checkout-production}", "{name: checkout-qa}"),
        )
        .await;
    let rollout = envs
        .wait_rollout_phase("checkout-staging", Phase::Invalid, MINUTE)
        .await;
    let message = rollout.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("ReleasePipelines checkout, checkout-2 all include this rollout"),
        "{message}"
    );
    let notes = envs.awaited_notes("checkout-2", "InvalidSpec").await;
    assert!(
        notes[0].contains("spec.environments[1].rolloutRef: CanaryRollout")
            && notes[0].contains("checkout-qa not found"),
        "{notes:?}"
    );
    // An environment in another cluster whose kubeconfig Secret does not exist.
    let remote = pipeline_yaml("Push", "")
        .replace("name: checkout}", "name: checkout-3}")
        .replace("{name: checkout-staging}", "{name: checkout-dev}")
        .replace(
            "    rolloutRef: {name: checkout-production}\n",
            "    rolloutRef: {name: checkout-production}\n    cluster: {secretRef: {name: no-such-cluster}}\n",
        );
    envs.ns.apply_yaml(&remote).await;
    let notes = envs.awaited_notes("checkout-3", "InvalidSpec").await;
    assert!(
        notes[0].contains(&format!(
            "spec.environments[1].cluster: Secret {}/no-such-cluster not found",
            envs.ns.name()
        )),
        "{notes:?}"
    );
    // A verification query that is not PromQL.
    let unparsable = pipeline_yaml("Push", "")
        .replace("name: checkout}", "name: checkout-4}")
        .replace(r#"track="stable"})'"#, r#"track="stable"}'"#);
    assert!(unparsable.contains(r#"track="stable"}'"#), "{unparsable}");
    envs.ns.apply_yaml(&unparsable).await;
    let notes = envs.awaited_notes("checkout-4", "InvalidSpec").await;
    assert!(
        notes[0].contains("spec.environments[0].verification.checks[0].query: ")
            && notes[0].contains("PromQL"),
        "{notes:?}"
    );
}

/// An operator of the test namespace that takes part in leader election as `identity`.
fn elected_operator(envs: &Environments, identity: &str) -> support::Operator {
    let ns = envs.ns.name();
    support::Operator::start_with_env(
        &envs.env,
        ns,
        &envs.env.prometheus_url,
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

async fn lease_holder(envs: &Environments) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = envs.ns.api();
    leases
        .get_opt("sluice")
        .await
        .expect("get lease")
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn a_kill_and_a_leader_change_during_the_soak_lose_nothing() {
    let pipeline = pipeline_yaml("Push", "").replace("soak: 8s", "soak: 25s");
    let mut envs = Environments::start("pipeline-restart", STAGING_STAGES, &pipeline).await;
    envs.set_image("checkout-staging", V2).await;
    let soaking = envs
        .wait_release_phase("staging", ReleasePhase::Soaking, MINUTE)
        .await;
    let promoted_at = soaking.promoted_at.expect("promotion time");

    // kill -9 and a restart of the only operator.
    envs.operator.as_mut().expect("operator").restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_restart = release_entry(&envs.pipeline_status().await, "staging").expect("entry");
    assert_eq!(after_restart.phase, ReleasePhase::Soaking);
    assert_eq!(after_restart.promoted_at, Some(promoted_at));

    // Two replicas with leader election; the leader is killed mid-soak.
    drop(envs.operator.take());
    let mut first = elected_operator(&envs, "sluice-a");
    eventually(MINUTE, "sluice-a leading", async || {
        lease_holder(&envs).await.as_deref() == Some("sluice-a")
    })
    .await;
    let second = elected_operator(&envs, "sluice-b");
    assert_eq!(envs.image("checkout-production").await, V1, "still soaking");
    first.kill().await;
    eventually(MINUTE, "sluice-b leading", async || {
        lease_holder(&envs).await.as_deref() == Some("sluice-b")
    })
    .await;
    envs.operator = Some(second);

    let production = envs
        .wait_rollout_phase("checkout-production", Phase::Succeeded, 2 * MINUTE)
        .await;
    let started = production
        .status
        .expect("status")
        .history
        .last()
        .map(|h| h.started_at)
        .expect("history");
    assert!(
        started.duration_since(promoted_at) >= jiff::SignedDuration::from_secs(25),
        "production started before the soak ended"
    );
    let staging = release_entry(&envs.pipeline_status().await, "staging").expect("entry");
    assert_eq!(
        staging.promoted_at,
        Some(promoted_at),
        "the soak's start survived"
    );
    assert_eq!(staging.phase, ReleasePhase::Verified);
    assert_eq!(
        envs.awaited_notes("checkout", "ReleasePushed").await.len(),
        1,
        "pushed once, not once per operator"
    );
}

#[tokio::test]
async fn without_alertmanager_a_firing_alert_in_prometheus_holds_the_promotion() {
    // The gate reads `ALERTS{alertstate="firing"}` from Prometheus: here the series comes from
    // the test exporter, as Prometheus' rule evaluation would write it. The matchers name the
    // test's namespace, known once it exists.
    let envs = Environments::start(
        "pipeline-alerts-series",
        STAGING_STAGES,
        &pipeline_yaml("Push", ""),
    )
    .await;
    let gate = format!(
        "    gates: {{incidents: {{matchers: [service=checkout, namespace={}]}}}}\n",
        envs.ns.name()
    );
    envs.ns.apply_yaml(&pipeline_yaml("Push", &gate)).await;
    let alert = [
        ("alertname", "CheckoutErrors"),
        ("alertstate", "firing"),
        ("service", "checkout"),
        ("namespace", envs.ns.name()),
    ];
    envs.exporter.set("ALERTS", &alert, 1.0);
    envs.exporter.wait_until_scraped("ALERTS", &alert).await;
    envs.set_image("checkout-staging", V2).await;

    let held = eventually(MINUTE, "staging soaked and held by ALERTS", async || {
        let status = envs.pipeline_status().await;
        match release_entry(&status, "staging") {
            Some(e) if e.soak.as_deref() == Some("8s of 8s") && !e.held_by.is_empty() => Ok(e),
            other => Err(other.map(|e| (e.phase, e.message))),
        }
    })
    .await;
    assert_eq!(
        held.held_by,
        vec!["unresolved incident: 1 alert firing in Prometheus ALERTS"]
    );
    assert_eq!(envs.image("checkout-production").await, V1);

    envs.exporter.remove("ALERTS", &alert);
    envs.wait_release_phase("staging", ReleasePhase::Verified, MINUTE)
        .await;
    envs.wait_rollout_phase("checkout-production", Phase::Succeeded, 2 * MINUTE)
        .await;
}
