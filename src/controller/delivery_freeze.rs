//! The DeliveryFreeze reconciler: writes what `engine::delivery_freeze_status` decides (in
//! force or not, until when, the rollouts it selects) and its events. It never acts on a
//! rollout: rollouts read the freezes from their cache and the engine decides.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::error::Error;
use super::objects;
use crate::api::delivery_freeze::{AffectedRollout, DeliveryFreeze};
use crate::engine::delivery_freeze::{FreezeRef, selects};
use crate::engine::delivery_freeze_status;

pub async fn reconcile(freeze: Arc<DeliveryFreeze>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = freeze.namespace().ok_or(Error::MissingNamespace)?;
    let name = freeze.name_any();
    let place = FreezeRef {
        namespace: &namespace,
        name: &name,
        spec: &freeze.spec,
    };
    let selected: Vec<AffectedRollout> = ctx
        .caches
        .rollouts
        .state()
        .iter()
        .filter_map(|rollout| {
            let home = rollout.namespace()?;
            selects(place, &home, rollout.labels(), &ctx.freeze_namespace).then(|| {
                AffectedRollout {
                    namespace: home,
                    name: rollout.name_any(),
                    phase: rollout
                        .status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .map_or_else(|| "Pending".to_string(), |p| format!("{p:?}")),
                }
            })
        })
        .collect();
    let old = ctx
        .freeze_statuses
        .latest(freeze.as_ref(), freeze.status.as_ref())
        .unwrap_or_default();
    let plan = delivery_freeze_status::plan(
        place,
        &ctx.freeze_namespace,
        freeze.metadata.generation,
        &selected,
        &old,
        Timestamp::now(),
    );
    ctx.freeze_statuses
        .write(&ctx, freeze.as_ref(), &old, &plan.status)
        .await?;
    objects::publish_planned(&ctx, freeze.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(freeze.as_ref()).erase());
    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

pub fn error_policy(freeze: Arc<DeliveryFreeze>, error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(objects::retry_after_error(
        &ctx,
        "delivery_freeze",
        freeze.as_ref(),
        error,
    ))
}
