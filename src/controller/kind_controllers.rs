//! The controllers of the kinds beside CanaryRollouts: SLOBudgets, ParityPolicies,
//! ReleasePipelines, DeliveryFreezes and Notifications, each over one watched namespace (or all).

use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tracing::warn;

use super::error::Error;
use super::{
    Context, delivery_freeze, notification, parity_policy, release_pipeline, scoped, slo_budget,
    traced,
};
use crate::api::delivery_freeze::DeliveryFreeze;
use crate::api::notification::Notification;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::api::slo_budget::SLOBudget;

/// The ReleasePipeline controller over a namespace (or all): its own watch of the pipelines,
/// and a reconcile whenever one of their rollouts moves.
pub async fn run_pipelines(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
    nudged: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<ReleasePipeline>>,
) {
    let pipelines: Api<ReleasePipeline> = scoped(&client, &namespace);
    Controller::new(pipelines, selected)
        .with_config(settings)
        .reconcile_on(stream_from(nudged))
        .shutdown_on_signal()
        .run(
            |pipeline, ctx| {
                traced(
                    "release_pipeline",
                    pipeline,
                    ctx,
                    release_pipeline::reconcile,
                )
            },
            release_pipeline::error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("release pipeline controller: {error}");
            }
        })
        .await;
}

/// The messages of `receiver`, as a stream a controller's reconciles can be triggered by.
pub(super) fn stream_from<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// The ParityPolicy controller over a namespace (or all): conditions for every policy, the
/// scheduled standalone evaluations, and the evaluations rollouts ran with the policy.
pub async fn run_parity_policies(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let policies: Api<ParityPolicy> = scoped(&client, &namespace);
    Controller::new(policies, selected)
        .with_config(settings)
        // Rollouts hand their parity measurements over for this controller to write.
        .reconcile_on(context.parity_feed.wakes())
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

/// A controller of one kind over a namespace (or all), triggered by its own watch only.
async fn run_kind<K, Fut>(
    controller: &'static str,
    api: Api<K>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    error_policy: fn(Arc<K>, &Error, Arc<Context>) -> Action,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    Controller::new(api, selected)
        .with_config(settings)
        .shutdown_on_signal()
        .run(
            move |object, ctx| traced(controller, object, ctx, reconcile),
            error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("{controller} controller: {error}");
            }
        })
        .await;
}

/// The SLOBudget controller: the periodic evaluation of every budget.
pub async fn run_slo_budgets(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let budgets: Api<SLOBudget> = scoped(&client, &namespace);
    run_kind(
        "slo_budget",
        budgets,
        selected,
        settings,
        context,
        slo_budget::reconcile,
        slo_budget::error_policy,
    )
    .await;
}

/// The DeliveryFreeze controller: each freeze's status at its window boundaries, and its list
/// of affected rollouts while in force.
pub async fn run_delivery_freezes(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let freezes: Api<DeliveryFreeze> = scoped(&client, &namespace);
    run_kind(
        "delivery_freeze",
        freezes,
        selected,
        settings,
        context,
        delivery_freeze::reconcile,
        delivery_freeze::error_policy,
    )
    .await;
}

/// The Notification controller: each sink's figures in the status.
pub async fn run_notifications(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let subscriptions: Api<Notification> = scoped(&client, &namespace);
    run_kind(
        "notification",
        subscriptions,
        selected,
        settings,
        context,
        notification::reconcile,
        notification::error_policy,
    )
    .await;
}
