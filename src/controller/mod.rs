//! The I/O shell: reconcilers that fetch, let the engine decide, apply the plan, write status.

/// `kube::Resource` for a type that reads a built-in namespaced kind's endpoints as fewer fields
/// (the `*_summary` modules); its `metadata` field is the object's.
macro_rules! summary_resource {
    ($summary:ty, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        impl kube::Resource for $summary {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

mod announce;
pub mod backoff;
pub mod caches;
pub mod delivery_freeze;
mod delivery_metrics;
pub mod deployment_summary;
pub mod error;
mod kind_controllers;
pub mod leader;
pub mod metrics;
pub mod notification;
pub mod objects;
pub mod parity_feed;
pub mod parity_policy;
mod pipeline_metrics;
pub mod pipeline_nudges;
pub mod release_pipeline;
pub mod remote_clusters;
pub mod replica_set_summary;
pub mod rollout;
mod rollout_audit;
mod rollout_metrics;
mod route_refusals;
mod saved_templates;
pub mod scopes;
pub mod server;
pub mod service_summary;
pub mod slo_budget;
pub mod status_memory;
pub mod workloads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::utils::Predicate;
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use crate::api::CanaryRollout;
use crate::api::canary_rollout::CanaryRolloutStatus;
use crate::api::delivery_freeze::{DeliveryFreeze, DeliveryFreezeStatus};
use crate::api::notification::NotificationStatus;
use crate::api::parity_policy::{ParityPolicy, ParityPolicyStatus};
use crate::api::release_pipeline::{ReleasePipeline, ReleasePipelineStatus};
use crate::api::slo_budget::{SLOBudget, SLOBudgetStatus};
use crate::audit::buffer::AuditMetrics;
use crate::audit::{AuditConfig, Auditor};
use crate::engine::delivery_freeze::{FreezeRef, selects};
use crate::metrics::{PrometheusAuth, PrometheusPool};
use crate::notify::Notifier;
pub use announce::{Announcement, environment_of};
use backoff::ErrorBackoff;
use caches::Caches;
use deployment_summary::DeploymentSummary;
use leader::LeaseConfig;
use metrics::Metrics;
use parity_feed::ParityFeed;
use pipeline_nudges::PipelineNudges;
use replica_set_summary::ReplicaSetSummary;
use server::ServerState;
use service_summary::ServiceSummary;
use status_memory::StatusMemory;

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
    /// Reconciles of one kind that may run at once in one watched namespace.
    pub concurrency: u16,
    /// The namespace whose DeliveryFreezes may freeze every namespace (`allNamespaces`).
    pub freeze_namespace: String,
    /// Where audit records go besides the log.
    pub audit: AuditConfig,
}

/// The default of `RunConfig::freeze_namespace`.
pub const DEFAULT_FREEZE_NAMESPACE: &str = "sluice-system";

/// The default of `RunConfig::concurrency`.
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// What every reconcile of one watched namespace (or of all) shares.
pub struct Context {
    pub client: Client,
    reporter: Reporter,
    pub prometheus: Arc<PrometheusPool>,
    pub metrics: Arc<Metrics>,
    /// What reconciles read instead of asking the apiserver.
    pub caches: Caches,
    /// The statuses last written, ahead of the caches.
    pub statuses: StatusMemory<CanaryRolloutStatus>,
    pub policy_statuses: StatusMemory<ParityPolicyStatus>,
    pub budget_statuses: StatusMemory<SLOBudgetStatus>,
    pub pipeline_statuses: StatusMemory<ReleasePipelineStatus>,
    /// Retry delays of objects whose reconciles fail.
    pub backoff: ErrorBackoff,
    /// Parity measured by rollouts, for the ParityPolicy reconcile to write.
    pub parity_feed: ParityFeed,
    /// Pipelines to reconcile now because one of their rollouts moved.
    pub pipeline_nudges: PipelineNudges,
    /// The other watched namespaces, for pipelines whose rollouts live in them.
    pub scopes: scopes::Scopes,
    /// Environments of pipelines in other clusters.
    pub remote_clusters: Arc<remote_clusters::RemoteClusters>,
    /// The namespace whose DeliveryFreezes may freeze every namespace.
    pub freeze_namespace: String,
    pub freeze_statuses: StatusMemory<DeliveryFreezeStatus>,
    pub notification_statuses: StatusMemory<NotificationStatus>,
    /// Sends the events of every scope to the sinks of the Notifications that subscribe.
    pub notifier: Arc<Notifier>,
    /// Records every decision (`audit`).
    pub auditor: Arc<Auditor>,
    /// What routes refused of rollouts' specs, until the specs change.
    pub route_refusals: route_refusals::RouteRefusals,
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
        let notifier = Arc::new(Notifier::new(client.clone(), metrics.notifications.clone()));
        Self::from_parts(
            client,
            reporter,
            Arc::new(prometheus),
            metrics,
            Caches::empty(),
            notifier,
        )
    }

    /// The caches of `namespace`'s objects; None when the operator does not watch it.
    pub fn caches_of(&self, namespace: &str) -> Option<&Caches> {
        self.scopes.caches_of(&self.caches, namespace)
    }

    /// The pipelines of every watched namespace that include the rollout `namespace/name`.
    pub fn pipelines_claiming(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<(Arc<crate::api::release_pipeline::ReleasePipeline>, usize)> {
        self.scopes
            .pipelines_claiming(&self.caches, namespace, name)
    }

    /// Queues a reconcile of `pipeline`, whichever watched namespace holds it.
    pub fn nudge_pipeline(&self, pipeline: &crate::api::release_pipeline::ReleasePipeline) {
        self.scopes.nudge(&self.pipeline_nudges, pipeline);
    }

    /// A context for one watched namespace (or all), reading from `caches`.
    fn for_scope(&self, caches: Caches) -> Self {
        let mut scope = Self::from_parts(
            self.client.clone(),
            self.reporter.clone(),
            self.prometheus.clone(),
            self.metrics.clone(),
            caches,
            self.notifier.clone(),
        );
        scope.freeze_namespace = self.freeze_namespace.clone();
        scope.auditor = self.auditor.clone();
        scope
    }

    /// Shared parts, and nothing remembered yet.
    fn from_parts(
        client: Client,
        reporter: Reporter,
        prometheus: Arc<PrometheusPool>,
        metrics: Arc<Metrics>,
        caches: Caches,
        notifier: Arc<Notifier>,
    ) -> Self {
        Self {
            client,
            reporter,
            prometheus,
            metrics,
            caches,
            statuses: StatusMemory::default(),
            policy_statuses: StatusMemory::default(),
            budget_statuses: StatusMemory::default(),
            pipeline_statuses: StatusMemory::default(),
            backoff: ErrorBackoff::default(),
            parity_feed: ParityFeed::default(),
            pipeline_nudges: PipelineNudges::default(),
            scopes: scopes::Scopes::default(),
            remote_clusters: Arc::default(),
            freeze_namespace: DEFAULT_FREEZE_NAMESPACE.to_string(),
            freeze_statuses: StatusMemory::default(),
            notification_statuses: StatusMemory::default(),
            notifier,
            auditor: Arc::new(Auditor::new(
                &AuditConfig::default(),
                AuditMetrics::default(),
            )),
            route_refusals: route_refusals::RouteRefusals::default(),
        }
    }
}

pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let client = crate::client::operator().await?;
    let metrics = Arc::new(Metrics::new());
    let prometheus = PrometheusPool::new(config.prometheus_url.clone())
        .with_auth(config.prometheus_auth.clone())
        .with_telemetry(metrics.queries.clone());
    let mut context = Context::with_metrics(client.clone(), prometheus, metrics);
    context.freeze_namespace = config.freeze_namespace.clone();
    context.auditor = Arc::new(Auditor::new(&config.audit, context.metrics.audit.clone()));
    let context = Arc::new(context);
    info!(namespaces = ?config.namespaces, selector = config.selector.as_deref().unwrap_or(""), prometheus = %config.prometheus_url, concurrency = config.concurrency, "sluice operator starting");
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

/// The three controllers over every watched namespace, until a shutdown signal. Each namespace
/// (or the whole cluster) gets its own caches and context.
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
    let settings = kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let watched: Vec<_> = scopes
        .into_iter()
        .map(|namespace| {
            let (caches, feeds) = caches::watch(client, &namespace, selected());
            let (nudges, nudged) = PipelineNudges::channel();
            let (rollout_nudges, rollouts_nudged) = tokio::sync::mpsc::unbounded_channel();
            let scope = (namespace, caches, nudges, rollout_nudges);
            (scope, feeds, nudged, rollouts_nudged)
        })
        .collect();
    // With a list of namespaces, a pipeline in one may include rollouts in another.
    let others = scopes::Scopes::new(watched.iter().filter_map(
        |((namespace, caches, nudges, rollouts), ..)| {
            Some((
                namespace.clone()?,
                caches.clone(),
                nudges.clone(),
                rollouts.clone(),
            ))
        },
    ));
    let controllers = watched.into_iter().flat_map(
        |((namespace, caches, nudges, _), feeds, nudged, rollouts_nudged)| {
            let mut scope = context.for_scope(caches);
            scope.pipeline_nudges = nudges;
            scope.scopes = others.clone();
            let context = Arc::new(scope);
            [
                run_rollouts(feeds, rollouts_nudged, settings.clone(), context.clone()).boxed(),
                kind_controllers::run_parity_policies(
                    client.clone(),
                    namespace.clone(),
                    selected(),
                    settings.clone(),
                    context.clone(),
                )
                .boxed(),
                kind_controllers::run_slo_budgets(
                    client.clone(),
                    namespace.clone(),
                    selected(),
                    settings.clone(),
                    context.clone(),
                )
                .boxed(),
                kind_controllers::run_delivery_freezes(
                    client.clone(),
                    namespace.clone(),
                    selected(),
                    settings.clone(),
                    context.clone(),
                )
                .boxed(),
                kind_controllers::run_notifications(
                    client.clone(),
                    namespace.clone(),
                    selected(),
                    settings.clone(),
                    context.clone(),
                )
                .boxed(),
                kind_controllers::run_pipelines(
                    client.clone(),
                    namespace,
                    selected(),
                    settings.clone(),
                    context,
                    nudged,
                )
                .boxed(),
            ]
        },
    );
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
/// annotation and finalizer changes of the rollout (not by its own status writes), by the
/// Deployments, ReplicaSets and Services it owns or targets, by its HTTPRoutes, and by the
/// ParityPolicy and SLOBudget it references: every watch that fills the caches. `nudged`
/// asks for reconciles from other namespaces' controllers (a pipeline there changed).
async fn run_rollouts(
    feeds: caches::Feeds,
    nudged: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<CanaryRollout>>,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let caches = &context.caches;
    let deletion = |r: &CanaryRollout| r.metadata.deletion_timestamp.as_ref().map(|_| 1u64);
    let trigger = feeds.rollouts.predicate_filter(
        predicates::generation
            .combine(predicates::annotations)
            .combine(predicates::finalizers)
            .combine(deletion),
        Default::default(),
    );
    let rollouts = caches.rollouts.clone();
    let by_deployment = {
        let store = rollouts.clone();
        move |deployment: DeploymentSummary| owned_or_targeted(&store, &deployment)
    };
    let by_replica_set = {
        let store = rollouts.clone();
        move |set: ReplicaSetSummary| {
            let owner = set
                .owner_references()
                .iter()
                .find(|o| o.kind == "Deployment")
                .map(|o| o.name.clone());
            referencing(&store, &set, |r, _| {
                owner.as_deref().is_some_and(|deployment| {
                    deployment == r.spec.target_ref.name
                        || deployment == workloads::stable_name(&r.spec.target_ref.name)
                })
            })
        }
    };
    let by_service = {
        let store = rollouts.clone();
        move |service: ServiceSummary| {
            let owner = service.labels().get(workloads::ROLLOUT_LABEL).cloned();
            referencing(&store, &service, |r, _| {
                owner.as_deref() == Some(&r.name_any())
            })
        }
    };
    let by_route = {
        let store = rollouts.clone();
        move |route: DynamicObject| {
            referencing(&store, &route, |r, name| {
                r.spec
                    .traffic_routing
                    .gateway_api
                    .as_ref()
                    .is_some_and(|g| g.http_routes.iter().any(|route| route == name))
            })
        }
    };
    let by_policy = {
        let store = rollouts.clone();
        move |policy: ParityPolicy| {
            referencing(&store, &policy, |r, name| {
                r.spec
                    .analysis
                    .parity_policy_ref
                    .as_ref()
                    .is_some_and(|p| p.name == name)
            })
        }
    };
    let by_budget = {
        let store = rollouts.clone();
        move |budget: SLOBudget| {
            referencing(&store, &budget, |r, name| {
                r.spec
                    .analysis
                    .slo_budget_ref
                    .as_ref()
                    .is_some_and(|b| b.name == name)
            })
        }
    };
    let by_pipeline = {
        let store = rollouts.clone();
        let scopes = context.scopes.clone();
        move |pipeline: ReleasePipeline| {
            scopes.nudge_rollouts_of(&pipeline);
            let home = pipeline.namespace().unwrap_or_default();
            store
                .state_filter(|r| {
                    let namespace = r.namespace().unwrap_or_default();
                    crate::engine::pipeline_gates::claimed_environment(
                        &pipeline.spec,
                        &home,
                        &namespace,
                        &r.name_any(),
                    )
                    .is_some()
                })
                .iter()
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let by_freeze = {
        let store = rollouts.clone();
        let freeze_namespace = context.freeze_namespace.clone();
        move |freeze: DeliveryFreeze| {
            let place = FreezeRef {
                namespace: freeze.metadata.namespace.as_deref().unwrap_or_default(),
                name: freeze.metadata.name.as_deref().unwrap_or_default(),
                spec: &freeze.spec,
            };
            store
                .state_filter(|r| {
                    let namespace = r.namespace().unwrap_or_default();
                    selects(place, &namespace, r.labels(), &freeze_namespace)
                })
                .iter()
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let controller = Controller::for_stream(trigger, rollouts)
        .with_config(settings)
        .watches_stream(feeds.deployments, by_deployment)
        .watches_stream(feeds.replica_sets, by_replica_set)
        .watches_stream(feeds.services, by_service)
        .watches_stream_with(
            feeds.routes,
            by_route,
            crate::traffic::gateway_api::http_route_resource(),
        )
        .watches_stream(feeds.parity_policies, by_policy)
        .watches_stream(feeds.pipelines, by_pipeline)
        .reconcile_on(kind_controllers::stream_from(nudged))
        .watches_stream(
            gate_changes(
                feeds.delivery_freezes,
                caches.delivery_freezes.clone(),
                |freeze| freeze.status.as_ref().is_some_and(|s| s.active),
            ),
            by_freeze,
        )
        .watches_stream(
            gate_changes(feeds.slo_budgets, caches.slo_budgets.clone(), |budget| {
                budget.status.as_ref().is_some_and(|s| s.frozen)
            }),
            by_budget,
        )
        .shutdown_on_signal()
        .run(
            |rollout, ctx| traced("rollout", rollout, ctx, rollout::reconcile),
            rollout::error_policy,
            context.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("controller: {error}");
            }
        });
    // The pod and notification caches trigger nothing; they only need driving while the
    // controller runs.
    tokio::select! {
        () = controller => {}
        () = feeds.pods => {}
        () = feeds.notifications => {}
    }
}

/// The rollout owning a stable Deployment, and the rollouts targeting a Deployment.
fn owned_or_targeted(
    rollouts: &reflector::Store<CanaryRollout>,
    deployment: &DeploymentSummary,
) -> Vec<ObjectRef<CanaryRollout>> {
    let owner = deployment
        .owner_references()
        .iter()
        .find(|o| o.kind == "CanaryRollout" && o.controller == Some(true))
        .map(|o| o.name.clone());
    referencing(rollouts, deployment, |r, name| {
        r.spec.target_ref.name == name || owner.as_deref() == Some(&r.name_any())
    })
}

/// The rollouts in `object`'s namespace that refer to it by name, as `refers` tells.
fn referencing<K: kube::Resource>(
    rollouts: &reflector::Store<CanaryRollout>,
    object: &K,
    refers: impl Fn(&CanaryRollout, &str) -> bool,
) -> Vec<ObjectRef<CanaryRollout>> {
    let namespace = object.meta().namespace.clone();
    let name = object.meta().name.clone().unwrap_or_default();
    rollouts
        .state_filter(|r| r.namespace() == namespace && refers(r, &name))
        .iter()
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Objects as the rollouts care about them: created, deleted, or changed in spec or in the one
/// status flag that gates rollouts (`SLOBudget.status.frozen`, `DeliveryFreeze.status.active`).
/// Their status changes at every evaluation (a budget) or with the affected list (a freeze);
/// passing each of those on would reconcile every referencing rollout for nothing.
fn gate_changes<K>(
    feed: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    store: reflector::Store<K>,
    gate: fn(&K) -> bool,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut seen: HashMap<(Option<String>, String), (Option<i64>, bool)> = HashMap::new();
    feed.filter_map(move |event| {
        let passed = match event {
            Ok(object) => {
                let key = (object.namespace(), object.name_any());
                if store.get(&ObjectRef::from_obj(&object)).is_none() {
                    // Deleted: the rollouts referencing it must notice.
                    seen.remove(&key);
                    Some(Ok(object))
                } else {
                    let now = (object.meta().generation, gate(&object));
                    (seen.insert(key, now) != Some(now)).then_some(Ok(object))
                }
            }
            Err(error) => Some(Err(error)),
        };
        std::future::ready(passed)
    })
}
