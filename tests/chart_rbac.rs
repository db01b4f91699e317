//! The operator under the chart's RBAC, on the local control plane.
//!
//! Each test renders the chart's ServiceAccount and RBAC for a unique release into its own
//! namespace (`watchNamespaces` = that namespace, so the rules are bound there only), takes a
//! token of that account through the TokenRequest API, and runs `sluice run` with a kubeconfig
//! holding nothing but that token.
//!
//! Least privilege is shown both ways:
//! - with the chart's role the operator adopts, promotes and hands back a service (electing
//!   itself on the chart's Lease, recording events, writing the status of a ParityPolicy and an
//!   SLOBudget too), while the account may not update (replace) Deployments, read Services,
//!   delete or create pods, read Secrets, act outside its namespace, or read CRDs: so the
//!   operator needs none of those (a `--namespace` operator needs no cluster-wide read at all);
//! - two granted verbs that look avoidable are not: without `delete` on Deployments, deleting the
//!   CanaryRollout stalls, the hand-back failing with a Forbidden error in the operator's log;
//!   without `create` on Deployments, nothing starts, because the apiserver authorises a
//!   server-side apply that creates `<target>-stable` as a create (with a Forbidden that names no
//!   verb).

mod helm;
mod rollout_fixture;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, Service as CoreService, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rollout_fixture::*;
use serde_json::{Value, json};
use sluice::api::canary_rollout::{Phase, RolloutResult};
use sluice::api::{CanaryRollout, ParityPolicy, SLOBudget};
use support::{Operator, eventually, scratch_dir, unique_suffix};

use helm::{ClusterScoped, documents, render};

const PARITY_POLICY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: ParityPolicy
metadata: {name: parity}
spec:
  query: 'sum(rate(orders_total{namespace="{{namespace}}",track="{{track}}"}[1m]))'
  window: 10m
  step: 1m
"#;

const SLO_BUDGET: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {name: budget}
spec:
  window: 1h
  interval: 1s
  objectives:
  - name: availability
    target: 99
    good: 'sum(rate(sluice_test_good{namespace="{{namespace}}"}[{{window}}]))'
    total: 'sum(rate(sluice_test_total{namespace="{{namespace}}"}[{{window}}]))'
"#;

/// The chart's ServiceAccount and RBAC for one release, and a way to act as that account.
struct ChartAccount {
    name: String,
    kubeconfig: PathBuf,
    client: Client,
    _cluster_role: ClusterScoped,
}

impl ChartAccount {
    /// Applies the chart's ServiceAccount and RBAC into the service's namespace, less the
    /// `(resource, verb)` pairs in `withheld`, and takes a token for the account.
    async fn install(service: &Service, withheld: &[(&str, &str)]) -> ChartAccount {
        let namespace = service.ns.name();
        let release = format!("r{}", unique_suffix());
        let name = format!("{release}-sluice");
        let cluster_role = ClusterScoped(vec![("clusterrole", name.clone())]);
        let rendered = render(
            &release,
            namespace,
            &[&format!("watchNamespaces={{{namespace}}}")],
            &["templates/serviceaccount.yaml", "templates/rbac.yaml"],
        );
        let mut objects = documents(&rendered);
        for object in objects.iter_mut().filter(|o| o["kind"] == "ClusterRole") {
            for rule in object["rules"].as_array_mut().into_iter().flatten() {
                withhold(rule, withheld);
            }
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        helm::apply(&list.to_string(), &[]);

        let accounts: Api<ServiceAccount> = service.ns.api();
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = accounts
            .create_token_request(&name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {name}: {e}"))
            .status
            .expect("TokenRequest status")
            .token;
        let kubeconfig = scratch_dir().join(format!("kubeconfig-{name}"));
        std::fs::write(
            &kubeconfig,
            token_kubeconfig(&service.env.kubeconfig, namespace, &token),
        )
        .expect("write the account's kubeconfig");
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig).expect("read the account's kubeconfig"),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("config from the account's kubeconfig");
        ChartAccount {
            name,
            kubeconfig,
            client: Client::try_from(config).expect("client for the account"),
            _cluster_role: cluster_role,
        }
    }

    /// `sluice run --namespace <the service's namespace>` as this account, electing a leader on
    /// the chart's Lease as the chart's Deployment does.
    fn operator(&self, service: &Service) -> Operator {
        let namespace = service.ns.name();
        Operator::start_as(
            &self.kubeconfig,
            namespace,
            &service.env.prometheus_url,
            &[
                "--leader-elect",
                "--lease-name",
                &self.name,
                "--lease-namespace",
                namespace,
            ],
            &[("POD_NAME", &format!("{}-0", self.name))],
        )
    }
}

/// Removes each withheld verb from a rule that lists the resource.
fn withhold(rule: &mut Value, withheld: &[(&str, &str)]) {
    for (resource, verb) in withheld {
        let names_resource = rule["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == resource));
        if let (true, Some(verbs)) = (names_resource, rule["verbs"].as_array_mut()) {
            verbs.retain(|v| v != verb);
        }
    }
}

/// A kubeconfig for the apiserver of `admin_kubeconfig` that authenticates with `token` only.
fn token_kubeconfig(admin_kubeconfig: &std::path::Path, namespace: &str, token: &str) -> String {
    let admin = Kubeconfig::read_from(admin_kubeconfig).expect("read the environment's kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("a cluster in the environment's kubeconfig");
    let server = cluster.server.expect("the cluster's server");
    let authority = match (
        cluster.certificate_authority,
        cluster.certificate_authority_data,
    ) {
        (Some(file), _) => format!("certificate-authority: {file}"),
        (None, Some(data)) => format!("certificate-authority-data: {data}"),
        (None, None) => "insecure-skip-tls-verify: true".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: \"{server}\", {authority}}}
users:
- name: chart-account
  user: {{token: \"{token}\"}}
contexts:
- name: chart-account
  context: {{cluster: local, user: chart-account, namespace: {namespace}}}
current-context: chart-account
"
    )
}

/// The fixture's service and rollout, with the operator running under the chart's role less
/// the `withheld` verbs.
async fn service_under_chart_role(
    prefix: &str,
    withheld: &[(&str, &str)],
) -> (Service, ChartAccount) {
    let rollout = rollout_yaml(GATEWAY, QUICK_STAGES, "");
    let mut service = Service::deploy_without_operator(prefix, &rollout).await;
    let account = ChartAccount::install(&service, withheld).await;
    service.operator = Some(account.operator(&service));
    (service, account)
}

/// Waits for a line of the operator's log that `matches`.
async fn wait_for_log_line(service: &Service, what: &str, matches: impl Fn(&str) -> bool) {
    eventually(Duration::from_secs(60), what, async || {
        let log = service.operator_log();
        log.lines().find(|l| matches(l)).map(String::from).ok_or(())
    })
    .await;
}

fn assert_forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) if status.is_forbidden() => {}
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn operator_under_the_charts_role_promotes_a_release_and_hands_back() {
    let (service, account) = service_under_chart_role("chart-rbac", &[]).await;
    service.ns.apply_yaml(PARITY_POLICY).await;
    service.ns.apply_yaml(SLO_BUDGET).await;

    let promoted = service.release("registry.example/checkout:2.0.0").await;
    assert_eq!(
        promoted
            .status
            .and_then(|s| s.history.last().map(|h| h.result)),
        Some(RolloutResult::Promoted)
    );
    service
        .assert_promoted("registry.example/checkout:2.0.0")
        .await;
    service.wait_event("Promoted").await;
    // It acted as the leader, on the chart's Lease in the release namespace.
    let lease: Lease = service
        .ns
        .api::<Lease>()
        .get(&account.name)
        .await
        .expect("the chart's Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        Some(format!("{}-0", account.name))
    );
    let operator = service.operator.as_ref().expect("operator");
    let page = reqwest::get(format!(
        "http://{}/metrics",
        operator.metrics_address().await
    ))
    .await
    .and_then(|r| r.error_for_status())
    .expect("GET /metrics");
    let page = page.text().await.expect("metrics page");
    let ns = service.ns.name();
    for line in [
        "sluice_leader 1".to_string(),
        format!(r#"sluice_rollout_phase{{namespace="{ns}",name="checkout",phase="Succeeded"}} 1"#),
        format!(r#"sluice_rollout_promotions_total{{namespace="{ns}",name="checkout"}} 1"#),
    ] {
        // Whole lines: the HELP text of sluice_leader begins with "1 while ...".
        assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
    }
    // The two other controllers wrote their status too.
    let policies: Api<ParityPolicy> = service.ns.api();
    let budgets: Api<SLOBudget> = service.ns.api();
    eventually(
        Duration::from_secs(30),
        "conditions on the ParityPolicy and the SLOBudget",
        async || {
            let policy = policies.get("parity").await.map_err(|e| e.to_string())?;
            let budget = budgets.get("budget").await.map_err(|e| e.to_string())?;
            let written = (
                policy.status.map_or(0, |s| s.conditions.len()),
                budget.status.map_or(0, |s| s.conditions.len()),
            );
            (written.0 > 0 && written.1 > 0)
                .then_some(())
                .ok_or(format!("{written:?}"))
        },
    )
    .await;
    let reasons = service.event_reasons().await;
    for reason in ["Adopted", "RolloutStarted", "StageAdvanced", "Promoted"] {
        assert!(
            reasons.contains(&reason.to_string()),
            "{reason} missing in {reasons:?}"
        );
    }

    // What the chart leaves out, the operator did without.
    let namespace = service.ns.name();
    let deployments: Api<Deployment> = Api::namespaced(account.client.clone(), namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut target = service.ns.deployment("checkout").await;
    target.metadata.managed_fields = None;
    assert_forbidden(
        "replace (update) a Deployment",
        deployments.replace("checkout", &dry_run, &target).await,
    );
    let services: Api<CoreService> = Api::namespaced(account.client.clone(), namespace);
    assert_forbidden("read a Service", services.get("checkout-stable").await);
    let pods: Api<Pod> = Api::namespaced(account.client.clone(), namespace);
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    assert_forbidden(
        "delete pods",
        pods.delete_collection(&dry_delete, &ListParams::default())
            .await,
    );
    let mut pod = Pod::default();
    pod.metadata.name = Some("intruder".into());
    assert_forbidden("create a pod", pods.create(&dry_run, &pod).await);
    let secrets: Api<Secret> = Api::namespaced(account.client.clone(), namespace);
    assert_forbidden("list Secrets", secrets.list(&ListParams::default()).await);
    let elsewhere: Api<Deployment> = Api::namespaced(account.client.clone(), "default");
    assert_forbidden(
        "list Deployments in another namespace",
        elsewhere.list(&ListParams::default()).await,
    );
    let everywhere: Api<Deployment> = Api::all(account.client.clone());
    assert_forbidden(
        "list Deployments in all namespaces",
        everywhere.list(&ListParams::default()).await,
    );
    let crds: Api<CustomResourceDefinition> = Api::all(account.client.clone());
    assert_forbidden("list CRDs", crds.list(&ListParams::default()).await);

    // Hand-back: deleting the rollout gives the service back and removes Sluice's objects,
    // which is what `delete` on Deployments and Services is for.
    service.delete_rollout().await;
    service.wait_rollout_gone(Duration::from_secs(60)).await;
    assert!(!service.has_deployment("checkout-stable").await);
    assert!(!service.has_service("checkout-stable").await);
    assert!(!service.has_service("checkout-canary").await);
    assert_eq!(
        service.backends().await,
        vec![("checkout".to_string(), 100)]
    );
    assert_eq!(service.replicas("checkout").await, 3);
}

#[tokio::test]
async fn without_delete_on_deployments_the_hand_back_is_forbidden() {
    let (service, account) =
        service_under_chart_role("chart-rbac-nodelete", &[("deployments", "delete")]).await;
    // Adoption and rollouts never delete a Deployment...
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;

    // ...the hand-back does, and stalls without the verb.
    service.delete_rollout().await;
    let refusal = format!(
        "User \"system:serviceaccount:{}:{}\" cannot delete resource \"deployments\"",
        service.ns.name(),
        account.name
    );
    wait_for_log_line(
        &service,
        "a Forbidden delete in the operator's log",
        |line| line.contains(&refusal) && line.contains("forbidden"),
    )
    .await;
    let stalled: CanaryRollout = service
        .ns
        .api::<CanaryRollout>()
        .get("checkout")
        .await
        .expect("the CanaryRollout is still there");
    assert!(stalled.metadata.deletion_timestamp.is_some());
    assert!(service.has_deployment("checkout-stable").await);
    // Everything before the delete went through: the route points at the user's Service.
    assert_eq!(
        service.backends().await,
        vec![("checkout".to_string(), 100)]
    );
}

#[tokio::test]
async fn without_create_on_deployments_the_stable_deployment_is_never_applied() {
    let (service, _account) =
        service_under_chart_role("chart-rbac-nocreate", &[("deployments", "create")]).await;
    // Server-side apply of <target>-stable, which does not exist yet, needs create as well as
    // patch: the 1.20 apiserver refuses it with a Forbidden that names no verb.
    wait_for_log_line(&service, "a Forbidden apply of checkout-stable", |line| {
        line.contains(r#"deployments.apps \"checkout-stable\" is forbidden"#)
    })
    .await;
    // Retried with backoff (2 s, 4 s, ...); from the third failure in a row the status says so.
    let failing = eventually(
        Duration::from_secs(40),
        "a ReconcileFailing condition",
        async || service.condition("ReconcileFailing").await.ok_or("not yet"),
    )
    .await;
    assert!(failing.is_true(), "{failing:?}");
    assert_eq!(failing.reason, "ReconcileError");
    assert!(
        failing.message.contains("reconciles in a row failed")
            && failing.message.contains("forbidden"),
        "{failing:?}"
    );
    assert!(!service.has_deployment("checkout-stable").await);
    assert_eq!(service.phase().await, None, "the rollout never got going");
    assert_eq!(
        service.replicas("checkout").await,
        3,
        "the target is untouched"
    );
}
