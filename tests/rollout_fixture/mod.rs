//! A small service (Deployment, Service, HTTPRoute) and CanaryRollout for end-to-end tests,
//! with the operator, the fake kubelet and a metrics exporter wired to one namespace.

#![allow(dead_code)]

pub mod parity;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service as CoreService};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::{CanaryRolloutStatus, Phase};
use sluice::api::conditions::Condition;
use tokio::task::JoinHandle;

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
    named_deployment_yaml("checkout", image, replicas)
}

/// A Deployment `name` whose pods are labelled `app: <name>`.
pub fn named_deployment_yaml(name: &str, image: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
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
/// lines appended after the checks: four-space indented they belong to `analysis`, two-space
/// indented to `spec`.
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
/// `rollout` with another progressDeadline (the default of [`rollout_yaml`] is 60s).
pub fn with_progress_deadline(rollout: &str, deadline: &str) -> String {
    assert!(rollout.contains("progressDeadline: 60s"), "{rollout}");
    rollout.replace(
        "progressDeadline: 60s",
        &format!("progressDeadline: {deadline}"),
    )
}

/// `extra` lines for [`rollout_yaml`] that make the analysis query the Prometheus at `url`.
pub fn analysis_prometheus(url: &str) -> String {
    format!("    prometheus: {{address: \"{url}\"}}\n")
}

/// Stages too long for a test to wait out after the first: only a request moves them on.
pub const LONG_STAGES: &str = "[{weight: 1, pause: 2s}, {weight: 5, pause: 5m}, {weight: 25, pause: 5m}, {weight: 100, pause: 5m}]";

pub const QUICK_STAGES: &str = "[{weight: 1, pause: 3s}, {weight: 5, pause: 3s}, {weight: 25, pause: 3s}, {weight: 100, pause: 3s}]";

impl Service {
    /// Deploys image v1 with a rollout over it and waits until the rollout adopted it.
    pub async fn start(prefix: &str, rollout: &str) -> Service {
        let service = Service::deploy(prefix, rollout).await;
        service
            .wait_phase(Phase::Idle, Duration::from_secs(60))
            .await;
        service
    }

    /// Deploys image v1 and the rollout and starts the operator, without waiting for anything.
    pub async fn deploy(prefix: &str, rollout: &str) -> Service {
        Service::deploy_with_operator_args(prefix, rollout, &[]).await
    }

    /// Like [`Service::deploy`], the operator started with more arguments.
    pub async fn deploy_with_operator_args(prefix: &str, rollout: &str, args: &[&str]) -> Service {
        let mut service = Service::deploy_without_operator(prefix, rollout).await;
        service.operator = Some(Operator::start(&service.env, service.ns.name(), args));
        service
    }

    /// Deploys image v1 and the rollout; the test starts the operators it needs.
    pub async fn deploy_without_operator(prefix: &str, rollout: &str) -> Service {
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
        Service {
            env,
            ns,
            kubelet,
            exporter,
            operator: None,
        }
    }

    pub fn operator(&mut self) -> &mut Operator {
        self.operator
            .as_mut()
            .expect("the operator of this service")
    }

    pub fn set_canary_error_ratio(&self, value: f64) {
        self.set_track_metric(ERROR_METRIC, "canary", value);
    }

    /// Sets `metric{namespace=<this namespace>, track}` on the exporter.
    pub fn set_track_metric(&self, metric: &str, track: &str, value: f64) {
        let labels = [("namespace", self.ns.name()), ("track", track)];
        self.exporter.set(metric, &labels, value);
    }

    /// Waits until Prometheus has scraped `metric{namespace=<this namespace>, track}`.
    pub async fn wait_track_scraped(&self, metric: &str, track: &str) {
        let labels = [("namespace", self.ns.name()), ("track", track)];
        self.exporter.wait_until_scraped(metric, &labels).await;
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

    pub async fn status(&self) -> CanaryRolloutStatus {
        self.rollout().await.status.unwrap_or_default()
    }

    /// The status condition `type_` (Ready, Reconciling, Stalled, Promoted, ...).
    pub async fn condition(&self, type_: &str) -> Option<Condition> {
        self.status()
            .await
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
    }

    /// Sets `metadata.annotations[key]` on the CanaryRollout (a manual request).
    pub async fn annotate(&self, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.patch_rollout(patch, "annotate the CanaryRollout")
            .await;
    }

    pub async fn set_paused(&self, paused: bool) {
        let patch = json!({"spec": {"paused": paused}});
        self.patch_rollout(patch, "set spec.paused").await;
    }

    async fn patch_rollout(&self, patch: Value, what: &str) {
        self.ns
            .api::<CanaryRollout>()
            .patch("checkout", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Deletes the CanaryRollout (the operator's finalizer hands the service back).
    pub async fn delete_rollout(&self) {
        self.ns
            .api::<CanaryRollout>()
            .delete("checkout", &DeleteParams::default())
            .await
            .expect("delete the CanaryRollout");
    }

    /// Waits until the CanaryRollout is gone (its finalizer has run).
    pub async fn wait_rollout_gone(&self, timeout: Duration) {
        let api = self.ns.api::<CanaryRollout>();
        eventually(timeout, "the CanaryRollout to be gone", async || match api
            .get_opt("checkout")
            .await
            .expect("read CanaryRollout")
        {
            None => Ok(()),
            Some(rollout) => Err(rollout.status.and_then(|s| s.message)),
        })
        .await
    }

    /// Whether the Deployment `name` exists.
    pub async fn has_deployment(&self, name: &str) -> bool {
        self.ns
            .api::<Deployment>()
            .get_opt(name)
            .await
            .expect("read Deployment")
            .is_some()
    }

    /// Whether the Service `name` exists.
    pub async fn has_service(&self, name: &str) -> bool {
        self.ns
            .api::<CoreService>()
            .get_opt(name)
            .await
            .expect("read Service")
            .is_some()
    }

    /// Pods of the Deployment `name` that are Ready and not being deleted, counted from the pods
    /// themselves (the Deployment's status can lag behind them).
    pub async fn ready_pods(&self, name: &str) -> usize {
        let sets: Vec<String> = self
            .ns
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("list ReplicaSets")
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && o.name == name)
            })
            .filter_map(|rs| rs.metadata.name)
            .collect();
        self.ns
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter(|pod| {
                pod.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| sets.contains(&o.name))
            })
            .filter(|pod| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count()
    }

    /// Available replicas of the Deployment `name`, once its status reflects its current spec.
    pub async fn available_replicas(&self, name: &str) -> Option<i32> {
        let deployment = self.ns.deployment(name).await;
        let status = deployment.status?;
        (status.observed_generation >= deployment.metadata.generation)
            .then(|| status.available_replicas.unwrap_or(0))
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

    fn routes(&self) -> Api<DynamicObject> {
        routes(&self.env, self.ns.name())
    }

    pub async fn route(&self) -> Value {
        read_route(&self.routes()).await
    }

    /// backendRefs of the first rule as (name, weight).
    pub async fn backends(&self) -> Vec<(String, i64)> {
        first_rule_backends(&self.route().await)
    }

    pub async fn canary_weight_on_route(&self) -> Option<i64> {
        canary_weight(&self.route().await)
    }

    /// Waits (up to 30 s) until the route gives the canary `weight`.
    pub async fn wait_canary_weight(&self, weight: i64) {
        eventually(
            Duration::from_secs(30),
            &format!("canary weight {weight} on the route"),
            async || {
                let seen = self.canary_weight_on_route().await;
                if seen == Some(weight) {
                    Ok(())
                } else {
                    Err(seen)
                }
            },
        )
        .await
    }

    /// Starts recording every distinct canary weight the route shows, from a watch of the route:
    /// each change is timestamped as it arrives, where a poll would see it up to a poll late (or
    /// not at all, had it lasted less than one).
    pub fn record_weights(&self) -> WeightLog {
        self.record_route(canary_weight)
    }

    /// Records every distinct (canary weight, percent mirrored to the canary) of the route, as
    /// [`Self::record_weights`] does.
    pub fn record_traffic(&self) -> RouteLog<(i64, Option<u32>)> {
        self.record_route(|route| {
            let names = sluice::traffic::ServiceNames::for_service("checkout", 80);
            let mirror = sluice::traffic::gateway_api::canary_mirror(route, &names);
            canary_weight(route).map(|weight| (weight, mirror))
        })
    }

    fn record_route<T: PartialEq + Clone + Send + 'static>(
        &self,
        read: fn(&Value) -> Option<T>,
    ) -> RouteLog<T> {
        let api = self.routes();
        let seen: Arc<Mutex<Vec<(T, Instant)>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let config = watcher::Config::default().fields("metadata.name=checkout");
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let (Ok(watcher::Event::Apply(route)) | Ok(watcher::Event::InitApply(route))) =
                    event
                else {
                    continue;
                };
                let route = serde_json::to_value(route).expect("route json");
                if let Some(value) = read(&route) {
                    let mut seen = log.lock().expect("route log");
                    if seen.last().map(|(v, _)| v) != Some(&value) {
                        seen.push((value, Instant::now()));
                    }
                }
            }
        });
        RouteLog { seen, task }
    }

    /// The note of the Warning event with this reason, once it is listed (within 10 s).
    pub async fn awaited_warning(&self, reason: &str) -> String {
        let what = format!("{reason} warning");
        eventually(Duration::from_secs(10), &what, async || {
            self.warning(reason).await
        })
        .await
    }

    pub async fn warning(&self, reason: &str) -> Option<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .find(|e| e.reason == reason && e.type_ == "Warning")
            .map(|e| e.message)
    }

    /// Messages of every event on a CanaryRollout with this reason.
    pub async fn notes(&self, reason: &str) -> Vec<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .filter(|e| e.object_kind == "CanaryRollout" && e.reason == reason)
            .map(|e| e.message)
            .collect()
    }

    /// (eventTime, note) of every event on the CanaryRollout with this reason, by time.
    pub async fn timed_notes(&self, reason: &str) -> Vec<(jiff::Timestamp, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> = self.ns.api();
        let mut notes: Vec<(jiff::Timestamp, String)> = events
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("CanaryRollout")
            })
            .filter_map(|e| Some((e.event_time?.0, e.note.unwrap_or_default())))
            .collect();
        notes.sort();
        notes
    }

    /// Messages of every Warning event with this reason, oldest first as listed.
    pub async fn warnings(&self, reason: &str) -> Vec<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .filter(|e| e.reason == reason && e.type_ == "Warning")
            .map(|e| e.message)
            .collect()
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

    /// Waits for an event with this reason on a CanaryRollout (events are published after the
    /// status is written, so they may trail the phase).
    pub async fn wait_event(&self, reason: &str) {
        eventually(
            Duration::from_secs(10),
            &format!("a {reason} event"),
            async || {
                let reasons = self.event_reasons().await;
                if reasons.iter().any(|r| r == reason) {
                    Ok(())
                } else {
                    Err(reasons)
                }
            },
        )
        .await
    }

    /// Waits for the adoption, releases `image` on the target and waits until it is promoted.
    pub async fn release(&self, image: &str) -> CanaryRollout {
        self.wait_phase(Phase::Idle, Duration::from_secs(60)).await;
        self.set_image(image).await;
        self.wait_phase(Phase::Succeeded, Duration::from_secs(90))
            .await
    }

    /// Asserts what a promotion of `image` leaves: it runs on the stable Deployment, which takes
    /// all traffic, and the target is scaled to 0.
    pub async fn assert_promoted(&self, image: &str) {
        assert_eq!(self.image("checkout-stable").await, image);
        assert_eq!(self.replicas("checkout").await, 0);
        assert_eq!(
            self.backends().await,
            vec![
                ("checkout-stable".to_string(), 100),
                ("checkout-canary".to_string(), 0)
            ]
        );
    }

    /// The operator's /metrics page, as it is now.
    pub async fn operator_metrics(&self) -> String {
        let operator = self
            .operator
            .as_ref()
            .expect("the operator of this service");
        let address = operator.metrics_address().await;
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics page")
    }

    pub fn operator_log(&self) -> String {
        self.operator.as_ref().map(|o| o.log()).unwrap_or_default()
    }
}

/// The operator stops with the test, before the namespace is deleted, so nothing would run the
/// CanaryRollouts' hand-back finalizer and the namespace would stay Terminating for good. A
/// passing test clears those finalizers; a failed one keeps everything for inspection.
impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // Killed first (its child is killed on drop), so it cannot add the finalizer back.
        drop(self.operator.take());
        crate::support::clear_rollout_finalizers(&self.env, self.ns.name());
    }
}

/// Distinct values seen on the route, in order, with when each was first seen.
pub struct RouteLog<T> {
    seen: Arc<Mutex<Vec<(T, Instant)>>>,
    task: JoinHandle<()>,
}

/// Distinct canary weights seen on the route.
pub type WeightLog = RouteLog<i64>;

impl<T: PartialEq + Clone + std::fmt::Debug> RouteLog<T> {
    pub fn weights(&self) -> Vec<T> {
        self.timeline().into_iter().map(|(w, _)| w).collect()
    }

    pub fn timeline(&self) -> Vec<(T, Instant)> {
        self.seen.lock().expect("route log").clone()
    }

    /// Waits (up to 5 s, the recorder polls) until the values seen are `expected`; panics as
    /// soon as they are not a prefix of it.
    pub async fn expect(&self, expected: &[T]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.weights();
            if seen == expected {
                return;
            }
            assert!(
                expected.starts_with(&seen) && Instant::now() < deadline,
                "seen on the route: {seen:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long the last value has been on the route.
    pub fn held_for(&self) -> Duration {
        self.timeline()
            .last()
            .map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }
}

impl<T> Drop for RouteLog<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn routes(env: &TestEnv, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        env.client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

async fn read_route(api: &Api<DynamicObject>) -> Value {
    serde_json::to_value(api.get("checkout").await.expect("read HTTPRoute")).expect("route json")
}

fn first_rule_backends(route: &Value) -> Vec<(String, i64)> {
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

fn canary_weight(route: &Value) -> Option<i64> {
    first_rule_backends(route)
        .into_iter()
        .find(|(name, _)| name == "checkout-canary")
        .map(|(_, w)| w)
}
