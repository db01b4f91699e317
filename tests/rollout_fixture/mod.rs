//! A small service (Deployment, Service, HTTPRoute) and CanaryRollout for end-to-end tests,
//! with the operator, the fake kubelet and a metrics exporter wired to one namespace.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;

use crate::support::{FakeKubelet, MetricsExporter, Operator, TestEnv, TestNamespace, eventually};

pub const ERROR_METRIC: &str = "sluice_test_error_ratio";

pub struct Service {
    pub env: TestEnv,
    pub ns: TestNamespace,
    pub kubelet: FakeKubelet,
    pub exporter: MetricsExporter,
    pub operator: Option<Operator>,
}

pub fn deployment_yaml(image: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: checkout}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: checkout}}}}
  template:
    metadata: {{labels: {{app: checkout}}}}
    spec:
      containers:
      - {{name: app, image: \"{image}\", ports: [{{containerPort: 8080}}]}}
"
    )
}

pub const SERVICE_YAML: &str = "apiVersion: v1
kind: Service
metadata: {name: checkout}
spec:
  selector: {app: checkout}
  ports: [{port: 80, targetPort: 8080}]
";

pub const ROUTE_YAML: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: checkout}
spec:
  parentRefs: [{name: public}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /checkout}}]
    backendRefs: [{name: checkout, port: 80, weight: 100}]
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static-assets, port: 80, weight: 100}]
";

/// A rollout with short stages for tests; `routing` is the trafficRouting body, `extra` more
/// spec lines (two-space indented).
pub fn rollout_yaml(routing: &str, stages: &str, extra: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {{name: checkout}}
spec:
  targetRef: {{name: checkout}}
  service: {{name: checkout, port: 80, targetPort: 8080}}
  trafficRouting: {routing}
  stages: {stages}
  progressDeadline: 60s
  analysis:
    interval: 1s
    failureLimit: 2
    checks:
    - name: error-rate
      query: 'max({ERROR_METRIC}{{namespace=\"{{{{namespace}}}}\",track=\"{{{{track}}}}\"}})'
      max: 0.01
{extra}"
    )
}

pub const GATEWAY: &str = "{gatewayAPI: {httpRoutes: [checkout]}}";
pub const REPLICAS: &str = "{replicas: {}}";
pub const QUICK_STAGES: &str = "[{weight: 1, pause: 3s}, {weight: 5, pause: 3s}, {weight: 25, pause: 3s}, {weight: 100, pause: 3s}]";

impl Service {
    /// Deploys image v1 with a rollout over it and waits until the rollout adopted it.
    pub async fn start(prefix: &str, rollout: &str) -> Service {
        let env = TestEnv::get().await;
        let ns = env.namespace(prefix).await;
        let kubelet = FakeKubelet::start(env.client.clone(), ns.name());
        let exporter = MetricsExporter::start(&env, ns.name()).await;
        exporter.set(
            ERROR_METRIC,
            &[("namespace", ns.name()), ("track", "canary")],
            0.001,
        );
        ns.apply_yaml(&deployment_yaml("registry.example/checkout:1.0.0", 3))
            .await;
        ns.apply_yaml(SERVICE_YAML).await;
        ns.apply_yaml(ROUTE_YAML).await;
        ns.apply_yaml(rollout).await;
        let operator = Operator::start(&env, ns.name(), &[]);
        let service = Service {
            env,
            ns,
            kubelet,
            exporter,
            operator: Some(operator),
        };
        service
            .wait_phase(Phase::Idle, Duration::from_secs(60))
            .await;
        service
    }

    pub fn set_canary_error_ratio(&self, value: f64) {
        self.exporter.set(
            ERROR_METRIC,
            &[("namespace", self.ns.name()), ("track", "canary")],
            value,
        );
    }

    pub async fn rollout(&self) -> CanaryRollout {
        self.ns
            .api::<CanaryRollout>()
            .get("checkout")
            .await
            .expect("read CanaryRollout")
    }

    pub async fn phase(&self) -> Option<Phase> {
        self.rollout().await.status.and_then(|s| s.phase)
    }

    pub async fn wait_phase(&self, phase: Phase, timeout: Duration) -> CanaryRollout {
        let what = format!("phase {phase:?}");
        eventually(timeout, &what, async || {
            let rollout = self.rollout().await;
            let status = rollout.status.clone().unwrap_or_default();
            if status.phase == Some(phase) {
                Ok(rollout)
            } else {
                Err((status.phase, status.message))
            }
        })
        .await
    }

    pub async fn set_image(&self, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.ns
            .api::<Deployment>()
            .patch(
                "checkout",
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .expect("patch target image");
    }

    pub async fn replicas(&self, name: &str) -> i32 {
        self.ns
            .deployment(name)
            .await
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(-1)
    }

    pub async fn image(&self, name: &str) -> String {
        let deployment = self.ns.deployment(name).await;
        deployment
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
            .unwrap_or_default()
    }

    pub async fn route(&self) -> Value {
        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.env.client.clone(),
            self.ns.name(),
            &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
        );
        serde_json::to_value(api.get("checkout").await.expect("read HTTPRoute"))
            .expect("route json")
    }

    /// backendRefs of the first rule as (name, weight).
    pub async fn backends(&self) -> Vec<(String, i64)> {
        let route = self.route().await;
        route["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .map(|r| {
                        (
                            r["name"].as_str().unwrap_or("").to_string(),
                            r["weight"].as_i64().unwrap_or(1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn canary_weight_on_route(&self) -> Option<i64> {
        self.backends()
            .await
            .into_iter()
            .find(|(name, _)| name == "checkout-canary")
            .map(|(_, w)| w)
    }

    pub async fn warning(&self, reason: &str) -> Option<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .find(|e| e.reason == reason && e.type_ == "Warning")
            .map(|e| e.message)
    }

    pub async fn event_reasons(&self) -> Vec<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .filter(|e| e.object_kind == "CanaryRollout")
            .map(|e| e.reason)
            .collect()
    }

    pub fn operator_log(&self) -> String {
        self.operator.as_ref().map(|o| o.log()).unwrap_or_default()
    }
}
