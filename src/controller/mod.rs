//! The I/O shell: reconcilers that fetch, let the engine decide, apply the plan, write status.

pub mod analysis;
pub mod error;
pub mod metrics;
pub mod objects;
pub mod parity;
pub mod parity_policy;
pub mod rollout;
pub mod server;
pub mod slo;
pub mod slo_budget;
pub mod workloads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Predicate;
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::slo_budget::SLOBudget;
use crate::metrics::PrometheusPool;
use metrics::Metrics;
use server::ServerState;

pub struct RunConfig {
    pub namespaces: Vec<String>,
    pub prometheus_url: String,
    /// Where to serve /metrics, /healthz and /readyz; None serves nothing.
    pub metrics_address: Option<SocketAddr>,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    reporter: Reporter,
    pub prometheus: PrometheusPool,
    pub metrics: Arc<Metrics>,
}

impl Context {
    /// A recorder for one event. kube's Recorder folds repeated events of the same reason into a
    /// series that keeps the first message; Sluice's messages carry the figures of each decision,
    /// so every event is recorded on its own.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    pub fn new(client: Client, prometheus: PrometheusPool) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        let reporter = Reporter {
            controller: "sluice".into(),
            instance,
        };
        Self {
            reporter,
            client,
            prometheus,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let context = Arc::new(Context::new(
        client.clone(),
        PrometheusPool::new(config.prometheus_url.clone()),
    ));
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    info!(namespaces = ?config.namespaces, prometheus = %config.prometheus_url, "sluice operator starting");
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(address) = config.metrics_address {
        let state = ServerState {
            metrics: context.metrics.clone(),
            ready: ready.clone(),
        };
        // Bind before starting, so a taken port is a clear start-up error, not a silent gap.
        let listener = tokio::net::TcpListener::bind(address).await?;
        tokio::spawn(async move {
            if let Err(error) = server::serve(listener, state).await {
                warn!(%address, "metrics endpoint stopped: {error}");
            }
        });
    }
    let controllers = scopes.into_iter().flat_map(|namespace| {
        [
            run_rollouts(client.clone(), namespace.clone(), context.clone()).boxed(),
            run_parity_policies(client.clone(), namespace.clone(), context.clone()).boxed(),
            run_slo_budgets(client.clone(), namespace, context.clone()).boxed(),
        ]
    });
    ready.store(true, Ordering::Relaxed);
    futures::future::join_all(controllers).await;
    Ok(())
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One CanaryRollout controller over a namespace (or all). Reconciles are triggered by spec,
/// annotation and finalizer changes (not by our own status writes), by the stable Deployment it
/// owns, by the user's target Deployment, mapped back through the rollouts' targetRef, and by
/// the ParityPolicy and SLOBudget they reference.
async fn run_rollouts(client: Client, namespace: Option<String>, context: Arc<Context>) {
    let rollouts: Api<CanaryRollout> = scoped(&client, &namespace);
    let deployments: Api<Deployment> = scoped(&client, &namespace);
    let (reader, writer) = reflector::store();
    let deletion = |r: &CanaryRollout| r.metadata.deletion_timestamp.as_ref().map(|_| 1u64);
    let trigger = watcher(rollouts, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers)
                .combine(deletion),
            Default::default(),
        );
    let policies: Api<ParityPolicy> = scoped(&client, &namespace);
    let store = reader.clone();
    let policy_store = reader.clone();
    let budget_store = reader.clone();
    Controller::for_stream(trigger, reader)
        .owns(
            deployments.clone(),
            watcher::Config::default().labels(workloads::ROLLOUT_LABEL),
        )
        .watches(deployments, watcher::Config::default(), move |deployment| {
            referencing(&store, &deployment, |r, name| {
                r.spec.target_ref.name == name
            })
        })
        .watches(policies, watcher::Config::default(), move |policy| {
            referencing(&policy_store, &policy, |r, name| {
                r.spec
                    .analysis
                    .parity_policy_ref
                    .as_ref()
                    .is_some_and(|p| p.name == name)
            })
        })
        .watches_stream(budget_changes(&client, &namespace), move |budget| {
            referencing(&budget_store, &budget, |r, name| {
                r.spec
                    .analysis
                    .slo_budget_ref
                    .as_ref()
                    .is_some_and(|b| b.name == name)
            })
        })
        .shutdown_on_signal()
        .run(rollout::reconcile, rollout::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("controller: {error}");
            }
        })
        .await;
}

/// The rollouts in `object`'s namespace that refer to it by name, as `refers` tells.
fn referencing<K: kube::Resource>(
    rollouts: &reflector::Store<CanaryRollout>,
    object: &K,
    refers: impl Fn(&CanaryRollout, &str) -> bool,
) -> Vec<ObjectRef<CanaryRollout>> {
    let namespace = object.namespace();
    let name = object.name_any();
    rollouts
        .state()
        .into_iter()
        .filter(|r| r.namespace() == namespace && refers(r, &name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// SLOBudgets as the rollouts care about them: created, deleted, or changed in spec or in
/// `status.frozen`. The budget's status changes at every evaluation; passing each of those on
/// would reconcile every referencing rollout at the budget's interval for nothing.
fn budget_changes(
    client: &Client,
    namespace: &Option<String>,
) -> impl futures::Stream<Item = Result<SLOBudget, watcher::Error>> + Send + 'static {
    let mut seen: HashMap<(Option<String>, String), (Option<i64>, bool)> = HashMap::new();
    watcher(
        scoped::<SLOBudget>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(move |event| {
        let passed = match event {
            Ok(watcher::Event::Apply(budget) | watcher::Event::InitApply(budget)) => {
                let key = (budget.namespace(), budget.name_any());
                let gate = (
                    budget.metadata.generation,
                    budget.status.as_ref().is_some_and(|s| s.frozen),
                );
                (seen.insert(key, gate) != Some(gate)).then_some(Ok(budget))
            }
            Ok(watcher::Event::Delete(budget)) => {
                seen.remove(&(budget.namespace(), budget.name_any()));
                Some(Ok(budget))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        std::future::ready(passed)
    })
}

/// The SLOBudget controller over a namespace (or all): the periodic evaluation of every budget.
async fn run_slo_budgets(client: Client, namespace: Option<String>, context: Arc<Context>) {
    let budgets: Api<SLOBudget> = scoped(&client, &namespace);
    Controller::new(budgets, watcher::Config::default())
        .shutdown_on_signal()
        .run(slo_budget::reconcile, slo_budget::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("SLO budget controller: {error}");
            }
        })
        .await;
}

/// The ParityPolicy controller over a namespace (or all): conditions for every policy and the
/// scheduled standalone evaluations.
async fn run_parity_policies(client: Client, namespace: Option<String>, context: Arc<Context>) {
    let policies: Api<ParityPolicy> = scoped(&client, &namespace);
    Controller::new(policies, watcher::Config::default())
        .shutdown_on_signal()
        .run(
            parity_policy::reconcile,
            parity_policy::error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("parity controller: {error}");
            }
        })
        .await;
}
