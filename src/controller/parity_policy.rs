//! The ParityPolicy reconciler, the only writer of the policy's status: it folds in the
//! evaluations rollouts ran with the policy (handed over through `ParityFeed`), runs a scheduled
//! evaluation when the engine says one is due, and writes the status and events
//! `engine::parity_policy::plan` decides.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::error::Error;
use super::objects;
use crate::api::parity_policy::ParityPolicy;
use crate::engine::parity_policy::{self, PolicySnapshot};
use crate::gather;

pub async fn reconcile(policy: Arc<ParityPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &policy.spec;
    let old = ctx
        .policy_statuses
        .latest(policy.as_ref(), policy.status.as_ref())
        .unwrap_or_default();
    let key = ObjectRef::from_obj(policy.as_ref());
    let measured = ctx.parity_feed.take(&key);
    let current = parity_policy::fold_measured(old.clone(), &measured);
    // The rollouts' evaluations are exported as they are folded in, oldest first.
    for report in parity_policy::unrecorded(&old, &measured) {
        ctx.metrics
            .record_parity(&namespace, &policy.name_any(), &report.evaluation);
    }
    let snapshot = PolicySnapshot {
        spec,
        generation: policy.metadata.generation,
        created: policy.meta().creation_timestamp.as_ref().map(|t| t.0),
        status: &current,
        now: Timestamp::now(),
    };
    let outcome = match parity_policy::evaluation_due(&snapshot) {
        true => Some(
            gather::parity::evaluate_scheduled(
                ctx.prometheus.as_ref(),
                &namespace,
                spec,
                current.consecutive_breaches,
                &parity_policy::sequential_context(&snapshot),
                snapshot.now,
            )
            .await,
        ),
        false => None,
    };
    if let Some(Ok(report)) = &outcome {
        ctx.metrics
            .record_parity(&namespace, &policy.name_any(), &report.evaluation);
    }
    let plan = parity_policy::plan(
        &snapshot,
        outcome.as_ref().map(|o| o.as_ref().map_err(String::as_str)),
    );
    let written = ctx
        .policy_statuses
        .write(&ctx, policy.as_ref(), &old, &plan.status)
        .await;
    if let Err(error) = written {
        // Kept for the next try, so no measurement is lost with a failed write.
        ctx.parity_feed.restore(&key, measured);
        return Err(error);
    }
    objects::publish_planned(&ctx, policy.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(policy.as_ref()).erase());
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

pub fn error_policy(policy: Arc<ParityPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(objects::retry_after_error(
        &ctx,
        "parity_policy",
        policy.as_ref(),
        error,
    ))
}
