//! The controllers of the kinds beside CanaryRollouts: SLOBudgets, ParityPolicies and
//! ReleasePipelines, each over one watched namespace (or all).

use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tracing::warn;

use super::{
    Context, delivery_freeze, notification, parity_policy, release_pipeline, scoped, slo_budget,
    traced,
};
use crate::api::delivery_freeze::DeliveryFreeze;
use crate::api::notification::Notification;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::api::slo_budget::SLOBudget;

/// The SLOBudget controller over a namespace (or all): the periodic evaluation of every budget.
pub async fn run_slo_budgets(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let budgets: Api<SLOBudget> = scoped(&client, &namespace);
    Controller::new(budgets, selected)
        .with_config(settings)
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
        .reconcile_on(tokio_stream_from(nudged))
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

fn tokio_stream_from<T: Send + 'static>(
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

/// The DeliveryFreeze controller over a namespace (or all): each freeze's status at its window
/// boundaries, and its list of affected rollouts while in force.
pub async fn run_delivery_freezes(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let freezes: Api<DeliveryFreeze> = scoped(&client, &namespace);
    Controller::new(freezes, selected)
        .with_config(settings)
        .shutdown_on_signal()
        .run(
            |freeze, ctx| traced("delivery_freeze", freeze, ctx, delivery_freeze::reconcile),
            delivery_freeze::error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("delivery freeze controller: {error}");
            }
        })
        .await;
}

/// The Notification controller over a namespace (or all): each sink's figures in the status.
pub async fn run_notifications(
    client: Client,
    namespace: Option<String>,
    selected: watcher::Config,
    settings: kube::runtime::controller::Config,
    context: Arc<Context>,
) {
    let subscriptions: Api<Notification> = scoped(&client, &namespace);
    Controller::new(subscriptions, selected)
        .with_config(settings)
        .shutdown_on_signal()
        .run(
            |subscription, ctx| traced("notification", subscription, ctx, notification::reconcile),
            notification::error_policy,
            context,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!("notification controller: {error}");
            }
        })
        .await;
}
