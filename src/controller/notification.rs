//! The Notification reconciler: writes what each sink did (`notify`) and the conditions and
//! events `engine::notification` decides from it. Delivery itself never waits on this.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::error::Error;
use super::objects;
use crate::api::notification::Notification;
use crate::engine::notification;

/// How often the sinks' figures are written while the Notification exists.
const REFRESH: Duration = Duration::from_secs(10);

pub async fn reconcile(
    subscription: Arc<Notification>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let old = ctx
        .notification_statuses
        .latest(subscription.as_ref(), subscription.status.as_ref())
        .unwrap_or_default();
    let plan = notification::plan(
        &subscription.spec,
        subscription.metadata.generation,
        ctx.notifier.figures(&subscription),
        &old,
        Timestamp::now(),
    );
    ctx.notification_statuses
        .write(&ctx, subscription.as_ref(), &old, &plan.status)
        .await?;
    objects::publish_planned(&ctx, subscription.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(subscription.as_ref()).erase());
    Ok(Action::requeue(REFRESH))
}

pub fn error_policy(subscription: Arc<Notification>, error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(objects::retry_after_error(
        &ctx,
        "notification",
        subscription.as_ref(),
        error,
    ))
}
