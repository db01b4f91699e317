//! The foundation against the real apiserver and Prometheus: the CRDs and examples apply, the
//! schema defaults and rejects what it should, and the test fakes (kubelet, exporter, a
//! Prometheus of one's own) behave as the rollout tests need.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use kube::api::{ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::Value;
use sluice::api::canary_rollout::NoDataPolicy;
use sluice::api::{CanaryRollout, ParityPolicy, SLOBudget};
use support::{
    FAKE_NODE, FakeKubelet, MetricsExporter, PrometheusInstance, TestEnv, TestNamespace, eventually,
};

const SECONDS_30: Duration = Duration::from_secs(30);

/// `kubectl get <resource> -o json` as JSON.
async fn get_json(ns: &TestNamespace, resource: &str) -> Value {
    let output = ns.kubectl(&["get", resource, "-o", "json"]).await;
    assert!(
        output.status.success(),
        "kubectl get {resource}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}

#[tokio::test]
async fn checkout_examples_apply_and_read_back() {
    let env = TestEnv::get().await;
    let ns = env.namespace("examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/checkout");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/checkout")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    for file in &files {
        ns.apply_yaml(&std::fs::read_to_string(file).unwrap()).await;
    }

    let rollout = get_json(&ns, "canaryrollout/checkout").await;
    let weights: Vec<u64> = rollout["spec"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [1, 5, 25, 100]);
    assert_eq!(
        rollout["spec"]["trafficRouting"]["gatewayAPI"]["httpRoutes"][0],
        "checkout"
    );
    assert_eq!(
        rollout["spec"]["analysis"]["parityPolicyRef"]["name"],
        "checkout-parity"
    );
    // The Rust types read what users write.
    let typed = ns.api::<CanaryRollout>().get("checkout").await.unwrap();
    assert_eq!(typed.spec.analysis.checks.len(), 3);
    assert_eq!(typed.spec.analysis.checks[2].max_increase, Some(0.2));
    assert_eq!(typed.spec.analysis.interval.to_string(), "30s");
    assert_eq!(typed.spec.analysis.confidence, 0.99);
    assert_eq!(
        typed.spec.stages[1]
            .max_duration
            .map(|d| d.to_string())
            .as_deref(),
        Some("30m")
    );

    let parity = get_json(&ns, "paritypolicy/checkout-parity").await;
    assert_eq!(parity["spec"]["thresholds"]["criticalBps"], 50);
    let slo = get_json(&ns, "slobudget/checkout-slo").await;
    assert_eq!(slo["spec"]["objectives"][0]["target"], 99.5);
    let parity = ns
        .api::<ParityPolicy>()
        .get("checkout-parity")
        .await
        .unwrap();
    assert_eq!(parity.spec.components.len(), 2);
    let slo = ns.api::<SLOBudget>().get("checkout-slo").await.unwrap();
    assert_eq!(slo.spec.burn_rate_alerts.len(), 4);
    let route = get_json(&ns, "httproute/checkout").await;
    let backend = &route["spec"]["rules"][0]["backendRefs"][0];
    assert_eq!(
        (backend["name"].as_str(), backend["weight"].as_u64()),
        (Some("checkout"), Some(100))
    );
    assert_eq!(
        backend["kind"], "Service",
        "the HTTPRoute schema defaults the backend kind"
    );
    assert_eq!(
        ns.deployment("checkout").await.spec.unwrap().replicas,
        Some(3)
    );
}

#[tokio::test]
async fn omitted_rollout_fields_are_defaulted_by_the_schema() {
    let env = TestEnv::get().await;
    let ns = env.namespace("defaults").await;
    ns.apply_yaml(
        "apiVersion: sluice.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: minimal}\n\
         spec:\n  targetRef: {name: web}\n  service: {name: web, port: 80}\n  trafficRouting: {replicas: {}}\n",
    )
    .await;
    let spec = &get_json(&ns, "canaryrollout/minimal").await["spec"];
    assert_eq!(spec["analysis"]["noData"], "Hold");
    assert_eq!(spec["analysis"]["interval"], "30s");
    assert_eq!(spec["analysis"]["failureLimit"], 2);
    assert_eq!(spec["targetRef"]["kind"], "Deployment");
    assert_eq!(spec["progressDeadline"], "10m");
    let weights: Vec<&Value> = spec["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["weight"])
        .collect();
    assert_eq!(weights, [1, 5, 25, 100]);
    let typed = ns.api::<CanaryRollout>().get("minimal").await.unwrap();
    assert_eq!(typed.spec.analysis.no_data, NoDataPolicy::Hold);
}

#[tokio::test]
async fn kubectl_explain_documents_the_fields() {
    let env = TestEnv::get().await;
    let ns = env.namespace("explain").await;
    // kubectl reads the published OpenAPI, which follows CRD changes a moment later.
    let doc = eventually(
        SECONDS_30,
        "kubectl explain canaryrollouts.spec.stages",
        async || {
            let output = ns.kubectl(&["explain", "canaryrollouts.spec.stages"]).await;
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() && text.contains("Percent of traffic sent to the canary") {
                Ok(text)
            } else {
                Err(format!("{text}{}", String::from_utf8_lossy(&output.stderr)))
            }
        },
    )
    .await;
    assert!(doc.contains("weight"), "{doc}");
    assert!(doc.contains("Least time spent at this stage"), "{doc}");
}

#[tokio::test]
async fn invalid_rollouts_are_rejected_naming_the_field() {
    let env = TestEnv::get().await;
    let ns = env.namespace("invalid").await;
    // Kubernetes 1.20 names list items without their index (`spec.stages.weight`).
    let cases = [
        (
            "weight above 100",
            "trafficRouting: {replicas: {}}\n  stages: [{weight: 150}]",
            "spec.stages.weight: Invalid value: 150: spec.stages.weight in body should be less than or equal to 100",
        ),
        (
            "unknown noData",
            "trafficRouting: {replicas: {}}\n  analysis: {noData: Maybe}",
            r#"spec.analysis.noData: Unsupported value: "Maybe": supported values: "Hold", "Fail", "Pass""#,
        ),
        (
            "free-text pause",
            "trafficRouting: {replicas: {}}\n  stages: [{weight: 10, pause: ten minutes}]",
            r#"spec.stages.pause: Invalid value: "ten minutes": spec.stages.pause in body should match"#,
        ),
        (
            "free-text interval",
            "trafficRouting: {replicas: {}}\n  analysis: {interval: ten minutes}",
            r#"spec.analysis.interval: Invalid value: "ten minutes""#,
        ),
        (
            "empty stages",
            "trafficRouting: {replicas: {}}\n  stages: []",
            "spec.stages in body should have at least 1 items",
        ),
        (
            "two routers",
            "trafficRouting: {replicas: {}, gatewayAPI: {httpRoutes: [web]}}",
            "spec.trafficRouting in body should have at most 1 properties",
        ),
        (
            "no router",
            "trafficRouting: {}",
            "spec.trafficRouting in body should have at least 1 properties",
        ),
        (
            "empty HTTPRoute name",
            "trafficRouting: {gatewayAPI: {httpRoutes: ['']}}",
            "spec.trafficRouting.gatewayAPI.httpRoutes in body should be at least 1 chars long",
        ),
        (
            "zero interval",
            "trafficRouting: {replicas: {}}\n  analysis: {interval: 0s}",
            "spec.analysis.interval in body should match '^([0-9]+(ms|s|m|h|d|w|y))*[0-9]*[1-9]",
        ),
        (
            "empty sampleCountQuery",
            "trafficRouting: {replicas: {}}\n  analysis: {sampleCountQuery: ''}",
            "spec.analysis.sampleCountQuery in body should be at least 1 chars long",
        ),
        (
            "Prometheus address without a scheme",
            "trafficRouting: {replicas: {}}\n  analysis: {prometheus: {address: 'prometheus:9090'}}",
            "spec.analysis.prometheus.address in body should match '^https?://'",
        ),
    ];
    let head = "targetRef: {name: web}\n  service: {name: web, port: 80}\n  ";
    assert_rejected(&ns, "CanaryRollout", "canaryrollouts", head, &cases).await;
}

/// What the schema bounds in an SLOBudget: targets strictly between 0 and 100, factors above 0.
#[tokio::test]
async fn invalid_budgets_are_rejected_naming_the_field() {
    let env = TestEnv::get().await;
    let ns = env.namespace("invalid-budget").await;
    let objective = |target: &str| {
        format!("objectives: [{{name: a, target: {target}, good: 'sum(g)', total: 'sum(t)'}}]")
    };
    let (target_100, target_0) = (objective("100"), objective("0"));
    let valid = objective("99");
    let factor_0 = format!(
        "{valid}\n  burnRateAlerts: [{{long: 1h, short: 5m, factor: 0, severity: Critical}}]"
    );
    let cases = [
        (
            "target 100",
            target_100.as_str(),
            "spec.objectives.target in body should be less than 100",
        ),
        (
            "target 0",
            target_0.as_str(),
            "spec.objectives.target in body should be greater than 0",
        ),
        (
            "factor 0",
            factor_0.as_str(),
            "spec.burnRateAlerts.factor in body should be greater than 0",
        ),
    ];
    assert_rejected(&ns, "SLOBudget", "slobudgets", "", &cases).await;
}

/// What the schema bounds in a ParityPolicy: a query per track must name the track, and no
/// query or schedule is empty.
#[tokio::test]
async fn invalid_parity_policies_are_rejected_naming_the_field() {
    let env = TestEnv::get().await;
    let ns = env.namespace("invalid-parity").await;
    let cases = [
        (
            "query without {{track}}",
            "query: 'sum(order_value)'",
            "spec.query in body should match '\\{\\{track\\}\\}'",
        ),
        (
            "empty candidate",
            "candidate: ''\n  baseline: 'sum(b)'",
            "spec.candidate in body should be at least 1 chars long",
        ),
        (
            "empty schedule",
            "candidate: 'sum(c)'\n  baseline: 'sum(b)'\n  schedule: ''",
            "spec.schedule in body should be at least 1 chars long",
        ),
        (
            "component without {{track}}",
            "query: 'sum(v{track=\"{{track}}\"})'\n  components: [{name: fees, query: 'sum(fees)'}]",
            "spec.components.query in body should match '\\{\\{track\\}\\}'",
        ),
    ];
    assert_rejected(&ns, "ParityPolicy", "paritypolicies", "", &cases).await;
}

/// What the schema bounds in a ReleasePipeline: empty names in its lists, an empty namespace.
#[tokio::test]
async fn invalid_pipelines_are_rejected_naming_the_field() {
    let env = TestEnv::get().await;
    let ns = env.namespace("invalid-pipeline").await;
    let cases = [
        (
            "empty container name",
            "release: {containers: ['']}\n  environments: [{name: staging, rolloutRef: {name: web}}]",
            "spec.release.containers in body should be at least 1 chars long",
        ),
        (
            "empty namespace",
            "release: {containers: [app]}\n  environments: [{name: staging, rolloutRef: {name: web, namespace: ''}}]",
            "spec.environments.rolloutRef.namespace in body should be at least 1 chars long",
        ),
        (
            "empty SLOBudget name",
            "release: {containers: [app]}\n  environments: [{name: staging, rolloutRef: {name: web}, gates: {sloBudgets: ['']}}]",
            "spec.environments.gates.sloBudgets in body should be at least 1 chars long",
        ),
        (
            "empty matcher",
            "release: {containers: [app]}\n  environments: [{name: staging, rolloutRef: {name: web}, gates: {incidents: {matchers: ['']}}}]",
            "spec.environments.gates.incidents.matchers in body should be at least 1 chars long",
        ),
    ];
    assert_rejected(&ns, "ReleasePipeline", "releasepipelines", "", &cases).await;
}

/// Applies an object of `kind` named "bad" for each (case, spec after `head`, expected error)
/// and checks that the apiserver refuses each with the expected message and stores none.
async fn assert_rejected(
    ns: &TestNamespace,
    kind: &str,
    resource: &str,
    head: &str,
    cases: &[(&str, &str, &str)],
) {
    for (case, spec, expected) in cases {
        let yaml = format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: bad}}\n\
             spec:\n  {head}{spec}\n"
        );
        let output = ns
            .kubectl_with_input(&["apply", "-f", "-"], Some(&yaml))
            .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{case}: accepted\n{yaml}");
        assert!(
            stderr.contains(&format!(r#"The {kind} "bad" is invalid"#)),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{case}: expected {expected:?} in\n{stderr}"
        );
    }
    let left = ns.kubectl(&["get", resource, "-o", "name"]).await;
    assert_eq!(
        String::from_utf8_lossy(&left.stdout),
        "",
        "nothing invalid was stored"
    );
}

fn deployment_yaml(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n\
         \x20 selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n\
         \x20   spec: {{containers: [{{name: app, image: 'ghcr.io/example/{name}:1.0.0'}}]}}\n"
    )
}

async fn available_replicas(ns: &TestNamespace, name: &str) -> i32 {
    ns.deployment(name)
        .await
        .status
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

async fn wait_available(ns: &TestNamespace, name: &str, wanted: i32) {
    let what = format!("Deployment {name} with {wanted} available replicas");
    eventually(SECONDS_30, &what, async || {
        let available = available_replicas(ns, name).await;
        if available == wanted {
            Ok(())
        } else {
            Err(format!("{available} available"))
        }
    })
    .await;
}

#[tokio::test]
async fn fake_kubelet_makes_deployments_available() {
    let env = TestEnv::get().await;
    let ns = env.namespace("kubelet").await;
    let _kubelet = FakeKubelet::start(env.client.clone(), ns.name());
    ns.apply_yaml(&deployment_yaml("web", 3)).await;
    wait_available(&ns, "web", 3).await;

    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 3);
    for pod in &pods.items {
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(FAKE_NODE)
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some());
    }
    let events = ns.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.reason == "ScalingReplicaSet" && e.object_name == "web"),
        "the deployment controller's events are listed: {events:?}"
    );
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

#[tokio::test]
async fn unready_deployment_stays_unavailable_until_made_ready() {
    let env = TestEnv::get().await;
    let ns = env.namespace("unready").await;
    let kubelet = FakeKubelet::start(env.client.clone(), ns.name());
    kubelet.keep_unready("broken");
    ns.apply_yaml(&deployment_yaml("broken", 2)).await;

    let pods = ns.api::<Pod>();
    eventually(SECONDS_30, "2 running pods of broken", async || {
        let list = pods
            .list(&ListParams::default().labels("app=broken"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|pod| phase(pod) == Some("Running"))
            .count();
        (running == 2).then_some(())
    })
    .await;
    // Running but never Ready: the Deployment must not count them, however long it looks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(available_replicas(&ns, "broken").await, 0);

    kubelet.make_ready("broken");
    wait_available(&ns, "broken", 2).await;
}

#[tokio::test]
async fn scaling_to_zero_leaves_no_pods() {
    let env = TestEnv::get().await;
    let ns = env.namespace("scale").await;
    let _kubelet = FakeKubelet::start(env.client.clone(), ns.name());
    ns.apply_yaml(&deployment_yaml("web", 2)).await;
    wait_available(&ns, "web", 2).await;

    let scaled = ns
        .kubectl(&["scale", "deployment/web", "--replicas=0"])
        .await;
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let pods = ns.api::<Pod>();
    eventually(
        SECONDS_30,
        "no pods left (terminating ones finished)",
        async || {
            let left: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| vec![e.to_string()])?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            if left.is_empty() { Ok(()) } else { Err(left) }
        },
    )
    .await;
    // The Deployment's status follows the pods a moment later.
    eventually(
        SECONDS_30,
        "Deployment web reporting 0 replicas",
        async || {
            let status = ns.deployment("web").await.status.unwrap_or_default();
            (status.replicas.unwrap_or(0) == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn events_written_through_events_k8s_io_are_listed() {
    let env = TestEnv::get().await;
    let ns = env.namespace("events").await;
    let config = ns
        .api::<ConfigMap>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "subject"}})).unwrap(),
        )
        .await
        .unwrap();
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: config.metadata.name.clone(),
        namespace: Some(ns.name().into()),
        uid: config.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "sluice-tests".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "Probed".into(),
        note: Some("written as events.k8s.io/v1".into()),
        action: "Probe".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();

    let events = ns.events().await;
    let probed = events
        .iter()
        .find(|e| e.reason == "Probed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(
        (
            probed.type_.as_str(),
            probed.message.as_str(),
            probed.object_kind.as_str(),
            probed.object_name.as_str()
        ),
        (
            "Warning",
            "written as events.k8s.io/v1",
            "ConfigMap",
            "subject"
        )
    );
}

#[tokio::test]
async fn exporter_series_are_scraped_by_the_shared_prometheus() {
    let env = TestEnv::get().await;
    let exporter = MetricsExporter::start(&env, "scrape").await;
    let labels = [("track", "canary"), ("code", "200")];
    exporter.set("sluice_test_requests_total", &labels, 42.0);
    assert_eq!(
        exporter
            .wait_until_scraped("sluice_test_requests_total", &labels)
            .await,
        42.0
    );
    exporter.set("sluice_test_requests_total", &labels, 43.5);
    assert_eq!(
        exporter
            .wait_until_scraped("sluice_test_requests_total", &labels)
            .await,
        43.5
    );

    exporter.remove("sluice_test_requests_total", &labels);
    let client = prometheus_http_query::Client::try_from(env.prometheus_url.as_str()).unwrap();
    let query = exporter.selector("sluice_test_requests_total", &labels);
    eventually(SECONDS_30, "the removed series to go stale", async || {
        let result = client.query(&query).get().await.ok()?;
        result
            .data()
            .as_vector()
            .is_some_and(|v| v.is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn own_prometheus_stops_and_starts_again() {
    let env = TestEnv::get().await;
    let exporter = MetricsExporter::start(&env, "own-prometheus").await;
    exporter.set("sluice_test_up", &[], 1.0);
    let mut prometheus = PrometheusInstance::start(&env).await;
    let url = prometheus.url();
    assert!(prometheus.is_ready().await);
    assert_eq!(
        exporter
            .wait_until_scraped_by(&url, "sluice_test_up", &[])
            .await,
        1.0
    );

    prometheus.stop().await;
    assert!(
        !prometheus.is_ready().await,
        "/-/ready answers while stopped"
    );

    prometheus.start_again().await;
    assert_eq!(prometheus.url(), url, "same port after a restart");
    assert!(prometheus.is_ready().await);
    exporter.set("sluice_test_up", &[], 2.0);
    assert_eq!(
        exporter
            .wait_until_scraped_by(&url, "sluice_test_up", &[])
            .await,
        2.0
    );
}
