//! Two environments of one service, staging and production, each a Deployment, a Service and
//! a CanaryRollout (replicas router) in one test namespace, with a ReleasePipeline over them.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use sluice::api::release_pipeline::{
    EnvironmentRelease, ReleasePhase, ReleasePipeline, ReleasePipelineStatus,
};

use crate::support::{FakeKubelet, MetricsExporter, Operator, TestEnv, TestNamespace, eventually};

pub const ERROR_METRIC: &str = "sluice_test_error_ratio";
pub const V1: &str = "registry.example/checkout:1.0.0";
pub const V2: &str = "registry.example/checkout:2.0.0";
pub const RELEASE: &str = "checkout:2.0.0";

pub struct Environments {
    pub env: TestEnv,
    pub ns: TestNamespace,
    pub kubelet: FakeKubelet,
    pub exporter: MetricsExporter,
    pub operator: Option<Operator>,
}

pub fn environment_yaml(name: &str, stages: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: app, image: \"{V1}\", ports: [{{containerPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {{name: {name}}}
spec:
  targetRef: {{name: {name}}}
  service: {{name: {name}, port: 80, targetPort: 8080}}
  trafficRouting: {{replicas: {{}}}}
  stages: {stages}
  progressDeadline: 60s
  analysis:
    interval: 1s
    failureLimit: 2
    checks:
    - name: error-rate
      query: 'max({ERROR_METRIC}{{namespace=\"{{{{namespace}}}}\",track=\"{{{{track}}}}\"}})'
      max: 0.01
"
    )
}

/// A pipeline over `checkout-staging` (soak 8s, verified every second) and
/// `checkout-production` (`promotion`); `staging_extra` is appended to the staging environment
/// (four-space indented keys).
pub fn pipeline_yaml(promotion: &str, staging_extra: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1
kind: ReleasePipeline
metadata: {{name: checkout}}
spec:
  release: {{containers: [app]}}
  environments:
  - name: staging
    rolloutRef: {{name: checkout-staging}}
    soak: 8s
    verification:
      interval: 1s
      failureLimit: 2
      checks:
      - name: error-rate
        query: 'max({ERROR_METRIC}{{namespace=\"{{{{namespace}}}}\",track=\"stable\"}})'
        max: 0.01
    riskBudget: {{maxCanaryWeight: 1}}
{staging_extra}  - name: production
    rolloutRef: {{name: checkout-production}}
    promotion: {promotion}
    riskBudget: {{maxCanaryWeight: 5}}
"
    )
}

impl Environments {
    /// Both environments on v1, adopted, with `pipeline` applied and the operator running.
    pub async fn start(prefix: &str, staging_stages: &str, pipeline: &str) -> Environments {
        let mut environments = Environments::deploy(prefix, staging_stages, pipeline).await;
        environments.operator = Some(Operator::start(
            &environments.env,
            environments.ns.name(),
            &[],
        ));
        for name in ["checkout-staging", "checkout-production"] {
            environments
                .wait_rollout_phase(name, Phase::Idle, Duration::from_secs(60))
                .await;
        }
        environments
    }

    /// Both environments on v1 and `pipeline` applied, with no operator of their own: the
    /// caller runs one (e.g. over every namespace) and waits for the adoption.
    pub async fn deploy(prefix: &str, staging_stages: &str, pipeline: &str) -> Environments {
        let env = TestEnv::get().await;
        let ns = env.namespace(prefix).await;
        let kubelet = FakeKubelet::start(env.client.clone(), ns.name());
        let exporter = MetricsExporter::start(&env, ns.name()).await;
        for track in ["canary", "stable"] {
            exporter.set(
                ERROR_METRIC,
                &[("namespace", ns.name()), ("track", track)],
                0.001,
            );
        }
        exporter
            .wait_until_scraped(
                ERROR_METRIC,
                &[("namespace", ns.name()), ("track", "stable")],
            )
            .await;
        ns.apply_yaml(&environment_yaml("checkout-staging", staging_stages))
            .await;
        ns.apply_yaml(&environment_yaml(
            "checkout-production",
            "[{weight: 5, pause: 2s}]",
        ))
        .await;
        ns.apply_yaml(pipeline).await;
        Environments {
            env,
            ns,
            kubelet,
            exporter,
            operator: None,
        }
    }

    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("the operator")
    }

    /// The operator's /metrics page, as it is now.
    pub async fn operator_metrics(&self) -> String {
        let address = self.operator().metrics_address().await;
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics page")
    }

    pub fn set_stable_error_ratio(&self, value: f64) {
        let labels = [("namespace", self.ns.name()), ("track", "stable")];
        self.exporter.set(ERROR_METRIC, &labels, value);
    }

    /// What Git would do: sets the image of the target Deployment `name`.
    pub async fn set_image(&self, name: &str, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.ns
            .api::<Deployment>()
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap_or_else(|e| panic!("setting the image of {name}: {e}"));
    }

    pub async fn image(&self, name: &str) -> String {
        let deployment = self.ns.deployment(name).await;
        deployment
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
            .unwrap_or_default()
    }

    pub async fn rollout(&self, name: &str) -> CanaryRollout {
        self.ns
            .api::<CanaryRollout>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading CanaryRollout {name}: {e}"))
    }

    pub async fn wait_rollout_phase(
        &self,
        name: &str,
        phase: Phase,
        timeout: Duration,
    ) -> CanaryRollout {
        let what = format!("CanaryRollout {name} in phase {phase:?}");
        eventually(timeout, &what, async || {
            let rollout = self.rollout(name).await;
            let seen = rollout.status.as_ref().and_then(|s| s.phase);
            if seen == Some(phase) {
                Ok(rollout)
            } else {
                Err(format!(
                    "{seen:?}: {:?}",
                    rollout.status.and_then(|s| s.message)
                ))
            }
        })
        .await
    }

    pub async fn pipeline_status(&self) -> ReleasePipelineStatus {
        self.ns
            .api::<ReleasePipeline>()
            .get("checkout")
            .await
            .expect("read ReleasePipeline")
            .status
            .unwrap_or_default()
    }

    /// The v2 release's entry for `environment`, once it is in `phase`.
    pub async fn wait_release_phase(
        &self,
        environment: &str,
        phase: ReleasePhase,
        timeout: Duration,
    ) -> EnvironmentRelease {
        let what = format!(
            "{RELEASE} {phase} in {environment}; operator log: {}",
            self.operator().log_path().display()
        );
        eventually(timeout, &what, async || {
            let status = self.pipeline_status().await;
            let entry = release_entry(&status, environment);
            match entry {
                Some(e) if e.phase == phase => Ok(e),
                other => Err(other.map(|e| (e.phase, e.message))),
            }
        })
        .await
    }

    /// Notes of the events with `reason` about the object `name`.
    pub async fn notes(&self, name: &str, reason: &str) -> Vec<String> {
        self.ns
            .events()
            .await
            .into_iter()
            .filter(|e| e.object_name == name && e.reason == reason)
            .map(|e| e.message)
            .collect()
    }

    /// The notes of `name`'s events with this reason, once there is one (within a minute).
    pub async fn awaited_notes(&self, name: &str, reason: &str) -> Vec<String> {
        let what = format!("{name}'s {reason} event");
        eventually(Duration::from_secs(60), &what, async || {
            let notes = self.notes(name, reason).await;
            (!notes.is_empty()).then_some(notes)
        })
        .await
    }
}

pub fn release_entry(
    status: &ReleasePipelineStatus,
    environment: &str,
) -> Option<EnvironmentRelease> {
    status
        .releases
        .iter()
        .find(|r| r.name == RELEASE)?
        .environments
        .iter()
        .find(|e| e.name == environment)
        .cloned()
}

/// A passing test hands the namespace back clean (see `support::clear_rollout_finalizers`).
impl Drop for Environments {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        drop(self.operator.take());
        crate::support::clear_rollout_finalizers(&self.env, self.ns.name());
    }
}
