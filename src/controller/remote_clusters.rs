//! Environments in other clusters: a client from the kubeconfig in a Secret (read when a
//! pipeline first needs the cluster, then every [`SECRET_REFRESH`] to follow a rotated
//! credential), and caches of the rollouts, Deployments, SLOBudgets and ParityPolicies of the
//! environment's namespace there, fed by watches. A change of a rollout there nudges the pipelines that use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};

use super::caches::{feed, ready};
use super::deployment_summary::DeploymentSummary;
use super::pipeline_nudges::PipelineNudges;
use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::{ClusterRef, ReleasePipeline};
use crate::api::slo_budget::SLOBudget;

/// How long a Secret's kubeconfig is used before the Secret is read again.
pub const SECRET_REFRESH: Duration = Duration::from_secs(300);
/// A cluster no pipeline reconcile asked for this long is let go (a pipeline reconciles at least
/// every 5 minutes while it exists).
const UNUSED_FOR: Duration = Duration::from_secs(900);

/// One namespace of another cluster, as the pipeline reads it.
pub struct RemoteNamespace {
    pub client: Client,
    pub rollouts: Store<CanaryRollout>,
    pub deployments: Store<DeploymentSummary>,
    pub budgets: Store<SLOBudget>,
    pub parity_policies: Store<ParityPolicy>,
    secret_version: Option<String>,
    /// When the Secret was last read.
    fetched: Mutex<Instant>,
    /// When a pipeline reconcile last asked for it.
    used: Mutex<Instant>,
    watches: tokio::task::JoinHandle<()>,
}

impl RemoteNamespace {
    fn fresh(&self) -> bool {
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            < SECRET_REFRESH
    }

    fn touch(&self) {
        *self.fetched.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn use_now(&self) {
        *self.used.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn used_within(&self, period: Duration) -> bool {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            < period
    }

    /// Whether every store has had its first list.
    pub fn synced(&self) -> bool {
        ready(&self.rollouts)
            && ready(&self.deployments)
            && ready(&self.budgets)
            && ready(&self.parity_policies)
    }
}

impl Drop for RemoteNamespace {
    fn drop(&mut self) {
        self.watches.abort();
    }
}

#[derive(Default)]
pub struct RemoteClusters {
    namespaces: Mutex<HashMap<String, Arc<RemoteNamespace>>>,
}

impl RemoteClusters {
    /// The caches of `namespace` in the cluster `cluster` names (its Secret in `home`), connected
    /// on first use; an error says what is wrong with the Secret or its kubeconfig.
    pub async fn namespace(
        &self,
        client: &Client,
        home: &str,
        cluster: &ClusterRef,
        namespace: &str,
        pipeline: &ReleasePipeline,
        nudges: &PipelineNudges,
    ) -> Result<Arc<RemoteNamespace>, String> {
        let secret = &cluster.secret_ref;
        let key = format!(
            "{home}/{}/{}/{}/{namespace}",
            pipeline.name_any(),
            secret.name,
            secret.key
        );
        let known = {
            let mut entries = self.lock();
            // A deleted pipeline (or environment) stops using its entry: its watches end here.
            entries.retain(|_, remote| remote.used_within(UNUSED_FOR));
            entries.get(&key).cloned()
        };
        if let Some(remote) = &known {
            remote.use_now();
        }
        if let Some(remote) = known.as_ref().filter(|r| r.fresh()) {
            return Ok(remote.clone());
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), home);
        let found = secrets
            .get_opt(&secret.name)
            .await
            .map_err(|e| format!("reading Secret {home}/{}: {e}", secret.name))?
            .ok_or_else(|| format!("Secret {home}/{} not found", secret.name))?;
        let version = found.resource_version();
        if let Some(remote) = known.filter(|r| r.secret_version == version) {
            // The same credentials: keep the running watches.
            remote.touch();
            return Ok(remote);
        }
        let kubeconfig = found
            .data
            .as_ref()
            .and_then(|d| d.get(&secret.key))
            .ok_or_else(|| format!("Secret {home}/{} has no key {:?}", secret.name, secret.key))?;
        let text = String::from_utf8(kubeconfig.0.clone()).map_err(|_| {
            format!(
                "Secret {home}/{} key {:?} is not text",
                secret.name, secret.key
            )
        })?;
        let connected = connect(&text)
            .await
            .map_err(|e| format!("the kubeconfig in Secret {home}/{}: {e}", secret.name))?;
        let remote = Arc::new(watch(
            connected,
            namespace,
            version,
            ObjectRef::from_obj(pipeline),
            nudges.clone(),
        ));
        self.lock().insert(key, remote.clone());
        Ok(remote)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RemoteNamespace>>> {
        self.namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn connect(kubeconfig: &str) -> Result<Client, String> {
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    crate::client::named(config, crate::client::OPERATOR_USER_AGENT).map_err(|e| e.to_string())
}

/// Starts the watches of `namespace` in the remote cluster.
fn watch(
    client: Client,
    namespace: &str,
    secret_version: Option<String>,
    pipeline: ObjectRef<ReleasePipeline>,
    nudges: PipelineNudges,
) -> RemoteNamespace {
    let all = watcher::Config::default;
    let (rollouts, rollout_feed) =
        feed::<CanaryRollout>(Api::namespaced(client.clone(), namespace), all(), |_| {});
    let (deployments, deployment_feed) =
        feed::<DeploymentSummary>(Api::namespaced(client.clone(), namespace), all(), |_| {});
    let (budgets, budget_feed) =
        feed::<SLOBudget>(Api::namespaced(client.clone(), namespace), all(), |_| {});
    let (parity_policies, policy_feed) =
        feed::<ParityPolicy>(Api::namespaced(client.clone(), namespace), all(), |_| {});
    let watches = tokio::spawn(async move {
        let rollouts = rollout_feed.for_each(|event| {
            match event {
                Ok(_) => nudges.nudge_ref(pipeline.clone()),
                Err(error) => tracing::warn!("remote rollout watch: {error}"),
            }
            std::future::ready(())
        });
        let others = futures::stream::select_all([
            deployment_feed.map(|e| e.map(|_| ())).boxed(),
            budget_feed.map(|e| e.map(|_| ())).boxed(),
            policy_feed.map(|e| e.map(|_| ())).boxed(),
        ])
        .for_each(|event| {
            if let Err(error) = event {
                tracing::warn!("remote watch: {error}");
            }
            std::future::ready(())
        });
        futures::join!(rollouts, others);
    });
    RemoteNamespace {
        client,
        rollouts,
        deployments,
        budgets,
        parity_policies,
        secret_version,
        fetched: Mutex::new(Instant::now()),
        used: Mutex::new(Instant::now()),
        watches,
    }
}
