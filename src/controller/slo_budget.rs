//! The SLOBudget reconciler: every `spec.interval` it measures the whole service
//! (`gather::slo`), and writes the status, the events and the operator metrics that
//! `engine::slo_budget` decides. It never acts on a rollout: rollouts read `status.frozen`.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::error::Error;
use super::metrics::SloFigures;
use super::objects;
use crate::api::slo_budget::SLOBudget;
use crate::engine::slo_budget::{self, Step};
use crate::gather;

pub async fn reconcile(budget: Arc<SLOBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = budget.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &budget.spec;
    let generation = budget.metadata.generation;
    let old = ctx
        .budget_statuses
        .latest(budget.as_ref(), budget.status.as_ref())
        .unwrap_or_default();
    let now = Timestamp::now();

    let plan = match slo_budget::step(spec, generation, &old, now) {
        Step::Wait(wait) => return Ok(Action::requeue(wait)),
        Step::Invalid(plan) => plan,
        Step::Measure => {
            let (measurements, errors) =
                gather::slo::measure_budget(ctx.prometheus.as_ref(), &namespace, spec).await;
            let plan = slo_budget::plan(spec, generation, &old, &measurements, &errors, now);
            ctx.metrics.record_slo(
                &namespace,
                &budget.name_any(),
                &SloFigures {
                    objectives: &plan.status.objectives,
                    compliance_score: plan.status.compliance_score,
                    frozen: plan.status.frozen,
                },
            );
            plan
        }
    };
    ctx.budget_statuses
        .write(&ctx, budget.as_ref(), &old, &plan.status)
        .await?;
    objects::publish_planned(&ctx, budget.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(budget.as_ref()).erase());
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

pub fn error_policy(budget: Arc<SLOBudget>, error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(objects::retry_after_error(
        &ctx,
        "slo_budget",
        budget.as_ref(),
        error,
    ))
}
