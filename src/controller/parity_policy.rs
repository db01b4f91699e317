//! The ParityPolicy reconciler: fetches, runs a scheduled evaluation when the engine says one is
//! due, and writes the status and events `engine::parity_policy::plan` decides.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::error::Error;
use super::objects;
use crate::api::parity_policy::ParityPolicy;
use crate::engine::parity_policy::{self, PolicySnapshot};
use crate::gather;

pub async fn reconcile(policy: Arc<ParityPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &policy.spec;
    let old = policy.status.clone().unwrap_or_default();
    let snapshot = PolicySnapshot {
        spec,
        generation: policy.metadata.generation,
        created: policy.meta().creation_timestamp.as_ref().map(|t| t.0),
        status: &old,
        now: Timestamp::now(),
    };
    let outcome = match parity_policy::evaluation_due(&snapshot) {
        true => Some(
            gather::parity::evaluate_scheduled(
                &ctx.prometheus,
                &namespace,
                spec,
                old.consecutive_breaches,
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
    objects::apply_status(&ctx, policy.as_ref(), &old, &plan.status).await?;
    for event in &plan.events {
        objects::publish(
            &ctx,
            policy.as_ref(),
            event.warning,
            event.reason,
            &event.note,
        )
        .await;
    }
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

pub fn error_policy(policy: Arc<ParityPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.record_error("parity_policy", error.category());
    warn!(policy = %policy.name_any(), namespace = policy.namespace().unwrap_or_default(), category = error.category(), "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(10))
}
