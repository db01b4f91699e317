//! What the reconcilers read: reflector stores fed by watches, scoped to the operator's
//! namespace (or all) and, for ReplicaSets, pods and Services, to what Sluice looks at.
//!
//! A reconcile never LISTs and never GETs an object a store holds; it writes only what differs
//! from what the stores show. Each watch also triggers reconciles of the rollouts its objects
//! concern (see `controller::run_rollouts`), so the stores and the triggers are one stream.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::deployment_summary::DeploymentSummary;
use super::replica_set_summary::ReplicaSetSummary;
use super::scoped;
use super::service_summary::ServiceSummary;
use super::workloads::{
    self, MANAGED_BY_LABEL, REPLICA_SET_REVISION, REVISION_ANNOTATION, ROLLOUT_LABEL, TRACK_LABEL,
};
use crate::api::CanaryRollout;
use crate::api::delivery_freeze::DeliveryFreeze;
use crate::api::notification::Notification;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::api::slo_budget::SLOBudget;
use crate::engine::pipeline_gates;
use crate::traffic::gateway_api::{self, CachedRoute};

/// Read-only views of the watched objects, shared by every reconcile of one scope.
#[derive(Clone)]
pub struct Caches {
    pub rollouts: Store<CanaryRollout>,
    /// Every Deployment in scope, summarised: targets are the user's and carry no label of
    /// Sluice's.
    pub deployments: Store<DeploymentSummary>,
    /// ReplicaSets of Deployments (those with a `pod-template-hash`), without their templates.
    pub replica_sets: Store<ReplicaSetSummary>,
    /// Metadata of Deployment pods that carry no track label yet: canary pods to be labelled.
    pub unlabelled_pods: Store<PartialObjectMeta<Pod>>,
    /// The Services Sluice manages.
    pub services: Store<ServiceSummary>,
    /// HTTPRoutes; a store that is not ready means the HTTPRoute CRD is missing or still syncing.
    pub routes: Store<DynamicObject>,
    pub parity_policies: Store<ParityPolicy>,
    pub slo_budgets: Store<SLOBudget>,
    pub pipelines: Store<ReleasePipeline>,
    pub delivery_freezes: Store<DeliveryFreeze>,
    /// Notifications, matched against every event the operator records.
    pub notifications: Store<Notification>,
}

type Feed<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The watches behind [`Caches`]: polling a feed fills its store and yields the objects that
/// changed or went, for the controller to map to rollouts.
pub struct Feeds {
    pub rollouts: Feed<CanaryRollout>,
    pub deployments: Feed<DeploymentSummary>,
    pub replica_sets: Feed<ReplicaSetSummary>,
    pub services: Feed<ServiceSummary>,
    pub routes: Feed<DynamicObject>,
    pub parity_policies: Feed<ParityPolicy>,
    pub slo_budgets: Feed<SLOBudget>,
    pub pipelines: Feed<ReleasePipeline>,
    pub delivery_freezes: Feed<DeliveryFreeze>,
    /// Fills the pod store; pods trigger nothing (the rollouts requeue while a canary runs).
    pub pods: futures::future::BoxFuture<'static, ()>,
    /// Fills the notification store; notifications trigger nothing.
    pub notifications: futures::future::BoxFuture<'static, ()>,
}

/// Fields no reconcile reads, dropped before caching to keep the operator small at thousands of
/// rollouts.
fn trim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A store of `api`'s objects and the watch that fills it (each object `modify`d first).
pub(super) fn feed<K>(
    api: Api<K>,
    config: watcher::Config,
    modify: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, Feed<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(modify)
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Starts nothing: returns the stores and the feeds that fill them once polled. `selected` is
/// the shard's selector on CanaryRollouts.
pub fn watch(
    client: &Client,
    namespace: &Option<String>,
    selected: watcher::Config,
) -> (Caches, Feeds) {
    let all = watcher::Config::default;
    let (rollouts, rollout_feed) = feed(scoped(client, namespace), selected, trim);
    let (deployments, deployment_feed) = feed(
        scoped(client, namespace),
        all(),
        |deployment: &mut DeploymentSummary| {
            trim(deployment);
            let meta = &mut deployment.metadata;
            // A stable Deployment is known by its label, then by its owner and revision
            // annotation; its template, a copy of a target's, is never read. No other label or
            // annotation of a Deployment is read.
            let stable = meta
                .labels
                .take()
                .is_some_and(|l| l.contains_key(ROLLOUT_LABEL));
            if let Some(annotations) = meta.annotations.as_mut() {
                annotations.retain(|key, _| key == REVISION_ANNOTATION);
                if annotations.is_empty() {
                    meta.annotations = None;
                }
            }
            if stable && let Some(spec) = deployment.spec.as_mut() {
                spec.template = None;
            }
        },
    );
    let (replica_sets, replica_set_feed) = feed(
        scoped(client, namespace),
        all().labels("pod-template-hash"),
        |set: &mut ReplicaSetSummary| {
            trim(set);
            if let Some(annotations) = set.metadata.annotations.as_mut() {
                annotations.retain(|key, _| key == REPLICA_SET_REVISION);
            }
        },
    );
    let (services, service_feed) = feed(
        scoped(client, namespace),
        all().labels(&format!("{MANAGED_BY_LABEL}=sluice")),
        trim,
    );
    let (parity_policies, policy_feed) = feed(scoped(client, namespace), all(), trim);
    let (slo_budgets, budget_feed) = feed(scoped(client, namespace), all(), trim);
    let (pipelines, pipeline_feed) = feed(scoped(client, namespace), all(), trim);
    let (delivery_freezes, freeze_feed) = feed(scoped(client, namespace), all(), trim);
    let (notifications, notification_feed) = feed(scoped(client, namespace), all(), trim);
    let notification_feed = notification_feed
        .for_each(|event| {
            if let Err(error) = event {
                tracing::warn!("notification watch: {error}");
            }
            std::future::ready(())
        })
        .boxed();

    let pod_api: Api<PartialObjectMeta<Pod>> = scoped(client, namespace);
    let (unlabelled_pods, pod_writer) = reflector::store();
    let pods = watcher(
        pod_api,
        all().labels(&format!("pod-template-hash,!{TRACK_LABEL}")),
    )
    .default_backoff()
    .modify(|pod| {
        // Labels, name and deletion are all that is read.
        let meta = &mut pod.metadata;
        (meta.managed_fields, meta.annotations, meta.owner_references) = (None, None, None);
    })
    .reflect(pod_writer)
    .for_each(|event| {
        // The other watches' errors reach the controller's log through its triggers.
        if let Err(error) = event {
            tracing::warn!("pod watch: {error}");
        }
        std::future::ready(())
    })
    .boxed();

    let resource = gateway_api::http_route_resource();
    let route_api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let route_writer = reflector::store::Writer::new(resource);
    let routes = route_writer.as_reader();
    // Without the HTTPRoute CRD the list fails and is retried with backoff; the store then
    // stays unready and rollouts on routes report the route missing.
    let route_feed = watcher(route_api, all())
        .default_backoff()
        .modify(trim)
        .reflect(route_writer)
        .touched_objects()
        .boxed();

    let caches = Caches {
        rollouts,
        deployments,
        replica_sets,
        unlabelled_pods,
        services,
        routes,
        parity_policies,
        slo_budgets,
        pipelines,
        delivery_freezes,
        notifications,
    };
    let feeds = Feeds {
        rollouts: rollout_feed,
        deployments: deployment_feed,
        replica_sets: replica_set_feed,
        services: service_feed,
        routes: route_feed,
        parity_policies: policy_feed,
        slo_budgets: budget_feed,
        pipelines: pipeline_feed,
        delivery_freezes: freeze_feed,
        pods,
        notifications: notification_feed,
    };
    (caches, feeds)
}

impl Caches {
    /// Stores that stay empty: for driving the apply step without watches.
    pub fn empty() -> Self {
        Self {
            rollouts: reflector::store().0,
            deployments: reflector::store().0,
            replica_sets: reflector::store().0,
            unlabelled_pods: reflector::store().0,
            services: reflector::store().0,
            routes: reflector::store::Writer::new(gateway_api::http_route_resource()).as_reader(),
            parity_policies: reflector::store().0,
            slo_budgets: reflector::store().0,
            pipelines: reflector::store().0,
            delivery_freezes: reflector::store().0,
            notifications: reflector::store().0,
        }
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<DeploymentSummary>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<Arc<ServiceSummary>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn parity_policy(&self, namespace: &str, name: &str) -> Option<Arc<ParityPolicy>> {
        self.parity_policies
            .get(&ObjectRef::new(name).within(namespace))
    }

    pub fn slo_budget(&self, namespace: &str, name: &str) -> Option<Arc<SLOBudget>> {
        self.slo_budgets
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// Whether every store a reconcile reads has had its first full list (the route store may
    /// never: the HTTPRoute CRD is optional).
    pub fn synced(&self) -> bool {
        ready(&self.rollouts)
            && ready(&self.deployments)
            && ready(&self.replica_sets)
            && ready(&self.unlabelled_pods)
            && ready(&self.services)
            && ready(&self.parity_policies)
            && ready(&self.slo_budgets)
            && ready(&self.pipelines)
            && ready(&self.delivery_freezes)
            && ready(&self.notifications)
    }

    /// The pipelines whose environments include the rollout, with the environment's index.
    pub fn pipelines_claiming(
        &self,
        namespace: &str,
        name: &str,
    ) -> Vec<(Arc<ReleasePipeline>, usize)> {
        self.pipelines
            .state()
            .into_iter()
            .filter_map(|pipeline| {
                let home = pipeline.metadata.namespace.clone().unwrap_or_default();
                let index =
                    pipeline_gates::claimed_environment(&pipeline.spec, &home, namespace, name)?;
                Some((pipeline, index))
            })
            .collect()
    }

    /// The route as the cache holds it; Unknown while the route store has not synced (the
    /// HTTPRoute CRD may be missing) or has no watch behind it, so the caller reads it instead.
    pub fn cached_route(&self, namespace: &str, name: &str) -> CachedRoute {
        if !ready(&self.routes) {
            return CachedRoute::Unknown;
        }
        let reference =
            ObjectRef::new_with(name, gateway_api::http_route_resource()).within(namespace);
        CachedRoute::Known(self.routes.get(&reference))
    }

    /// The Deployment's ReplicaSet with the highest revision: the one running its current
    /// template.
    pub fn newest_replica_set(
        &self,
        deployment: &DeploymentSummary,
    ) -> Option<Arc<ReplicaSetSummary>> {
        let uid = deployment.uid()?;
        let owned = self
            .replica_sets
            .state_filter(|set| set.owner_references().iter().any(|o| o.uid == uid));
        workloads::newest_replica_set(deployment, owned)
    }

    /// Names of the Deployment pods in `namespace` that match every label of `selector` and carry
    /// no track label.
    pub fn unlabelled_pods(
        &self,
        namespace: &str,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Vec<String> {
        self.unlabelled_pods
            .state_filter(|pod| {
                pod.metadata.namespace.as_deref() == Some(namespace)
                    && pod.metadata.deletion_timestamp.is_none()
                    && selector.iter().all(|(k, v)| pod.labels().get(k) == Some(v))
            })
            .iter()
            .map(|pod| pod.name_any())
            .collect()
    }
}

/// Whether the store has had its first full list. A store whose writer is gone (its watch
/// ended, or there never was one) never catches up again, so it is not ready either.
pub(super) fn ready<K>(store: &Store<K>) -> bool
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores without a watch behind them (a context built for one-off writes) are neither
    /// synced nor trusted for routes: a caller reads the route from the apiserver instead.
    #[test]
    fn stores_without_a_watch_are_not_synced() {
        let caches = Caches::empty();
        assert!(!caches.synced());
        assert!(matches!(
            caches.cached_route("shop", "checkout"),
            CachedRoute::Unknown
        ));
    }
}
