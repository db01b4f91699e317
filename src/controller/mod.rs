//! The I/O shell: reconcilers that fetch, let the engine decide, apply the plan, write status.

pub mod error;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod parity;
pub mod parity_policy;
pub mod rollout;
mod rollout_metrics;
pub mod server;
pub mod slo_budget;
pub mod workloads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Predicate;
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::slo_budget::SLOBudget;
use crate::metrics::{PrometheusAuth, PrometheusPool};
use leader::LeaseConfig;
use metrics::Metrics;
use server::ServerState;

pub struct RunConfig {
    pub namespaces: Vec<String>,
    /// Label selector on CanaryRollouts, ParityPolicies and SLOBudgets: this operator's shard.
    pub selector: Option<String>,
    pub prometheus_url: String,
    pub prometheus_auth: PrometheusAuth,
    /// Where to serve /metrics, /healthz and /readyz; None serves nothing.
    pub metrics_address: Option<SocketAddr>,
    /// Act only while holding this lease; None acts at once (a single replica).
    pub lease: Option<LeaseConfig>,
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
        Self::with_metrics(client, prometheus, Arc::new(Metrics::new()))
    }

    /// A context recording into `metrics` (the registry /metrics serves).
    pub fn with_metrics(client: Client, prometheus: PrometheusPool, metrics: Arc<Metrics>) -> Self {
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
            metrics,
        }
    }
}

pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let prometheus = PrometheusPool::new(config.prometheus_url.clone())
        .with_auth(config.prometheus_auth.clone())
        .with_telemetry(metrics.queries.clone());
    let context = Arc::new(Context::with_metrics(client.clone(), prometheus, metrics));
    info!(namespaces = ?config.namespaces, selector = config.selector.as_deref().unwrap_or(""), prometheus = %config.prometheus_url, "sluice operator starting");
    if let Some(address) = config.metrics_address {
        let state = ServerState {
            metrics: context.metrics.clone(),
        };
        // Bind before starting, so a taken port is a clear start-up error, not a silent gap.
        let listener = tokio::net::TcpListener::bind(address).await?;
        tokio::spawn(async move {
            if let Err(error) = server::serve(listener, state).await {
                warn!(%address, "metrics endpoint stopped: {error}");
            }
        });
    }
    let holder = match &config.lease {
        None => None,
        Some(lease) => tokio::select! {
            holder = leader::acquire(&client, lease) => Some(holder),
            () = shutdown_signal() => return Ok(()),
        },
    };
    context.metrics.set_leader(true);
    let controllers = run_until_shutdown(&client, &config, context.clone());
    let Some(holder) = holder else {
        controllers.await;
        return Ok(());
    };
    tokio::select! {
        () = controllers => {
            holder.release().await;
            Ok(())
        }
        lost = holder.keep() => {
            context.metrics.set_leader(false);
            // Another replica may act from now on: stop at once, the restart stands by.
            anyhow::bail!("lost the lease: {lost}")
        }
    }
}

/// How long in-flight reconciles may take to finish after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the controllers until they end or a shutdown signal arrives; then in-flight reconciles
/// get [`SHUTDOWN_GRACE`] to finish.
async fn run_until_shutdown(client: &Client, config: &RunConfig, context: Arc<Context>) {
    let controllers = run_controllers(client, config, context);
    tokio::pin!(controllers);
    tokio::select! {
        () = &mut controllers => {}
        () = shutdown_signal() => {
            info!("shutting down");
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut controllers).await;
        }
    }
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The three controllers over every watched namespace, until a shutdown signal.
async fn run_controllers(client: &Client, config: &RunConfig, context: Arc<Context>) {
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let selected = || match &config.selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let controllers = scopes.into_iter().flat_map(|namespace| {
        [
            run_rollouts(
                client.clone(),
                namespace.clone(),
                selected(),
                context.clone(),
            )
            .boxed(),
            run_parity_policies(
                client.clone(),
                namespace.clone(),
                selected(),
                context.clone(),
            )
            .boxed(),
            run_slo_budgets(client.clone(), namespace, selected(), context.clone()).boxed(),
        ]
    });
    futures::future::join_all(controllers).await;
}

/// Runs one reconcile inside a span naming the object, so every log line it writes carries the
/// namespace and name, and times it.
async fn traced<K, F, Fut>(
    controller: &'static str,
    object: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, error::Error>
where
    K: kube::Resource,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, error::Error>>,
{
    let span = info_span!(
        "reconcile",
        controller,
        namespace = object.meta().namespace.as_deref().unwrap_or(""),
        object = object.meta().name.as_deref().unwrap_or(""),
    );
    let started = Instant::now();
    let result = reconcile(object, ctx.clone()).instrument(span).await;
    ctx.metrics
        .rollouts
        .observe_reconcile(controller, started.elapsed().as_secs_f64());
    result
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
async fn run_rollouts(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    context: Arc<Context>,
) {
    let rollouts: Api<CanaryRollout> = scoped(&client, &namespace);
    let deployments: Api<Deployment> = scoped(&client, &namespace);
    let (reader, writer) = reflector::store();
    let deletion = |r: &CanaryRollout| r.metadata.deletion_timestamp.as_ref().map(|_| 1u64);
    let trigger = watcher(rollouts, selected)
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
        .run(
            |rollout, ctx| traced("rollout", rollout, ctx, rollout::reconcile),
            rollout::error_policy,
            context,
        )
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
async fn run_slo_budgets(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    context: Arc<Context>,
) {
    let budgets: Api<SLOBudget> = scoped(&client, &namespace);
    Controller::new(budgets, selected)
        .shutdown_on_signal()
        .run(
            |budget, ctx| traced("slo_budget", budget, ctx, slo_budget::reconcile),
            slo_budget::error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("SLO budget controller: {error}");
            }
        })
        .await;
}

/// The ParityPolicy controller over a namespace (or all): conditions for every policy and the
/// scheduled standalone evaluations.
async fn run_parity_policies(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    context: Arc<Context>,
) {
    let policies: Api<ParityPolicy> = scoped(&client, &namespace);
    Controller::new(policies, selected)
        .shutdown_on_signal()
        .run(
            |policy, ctx| traced("parity_policy", policy, ctx, parity_policy::reconcile),
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
