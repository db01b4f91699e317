//! The ReleasePipeline reconciler: dereference each environment's rollout, target and budgets
//! (from the caches) → validate → measure the environments due a verification → plan
//! (`engine::pipeline`) → push images where the plan says → status and events.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::error::Error;
use super::objects;
use super::workloads;
use crate::api::CanaryRollout;
use crate::api::release_pipeline::{ReleasePipeline, ReleasePipelineSpec};
use crate::api::slo_budget::SLOBudget;
use crate::engine::pipeline::{self, EnvironmentView, Snapshot, TargetView};
use crate::engine::pipeline_gates::{self, BudgetView};
use crate::gather;

/// What one environment refers to, as the caches hold it.
struct Environment {
    namespace: String,
    rollout: Option<Arc<CanaryRollout>>,
    target: Option<TargetView>,
    budgets: Vec<(String, Option<Arc<SLOBudget>>)>,
}

pub async fn reconcile(pipeline: Arc<ReleasePipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pipeline.namespace().ok_or(Error::MissingNamespace)?;
    if !ctx.caches.synced() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let spec = &pipeline.spec;
    let old = ctx
        .pipeline_statuses
        .latest(pipeline.as_ref(), pipeline.status.as_ref())
        .unwrap_or_default();
    let environments = dereference(spec, &namespace, &ctx);
    let problems = validate(&pipeline, &namespace, &environments, &ctx);

    let now = Timestamp::now();
    let mut views: Vec<EnvironmentView> = environments
        .iter()
        .map(|env| EnvironmentView {
            rollout: env.rollout.as_ref().and_then(|r| r.status.as_ref()),
            target: env.target.clone(),
            budgets: env
                .budgets
                .iter()
                .map(|(name, budget)| BudgetView {
                    name: name.clone(),
                    status: budget.as_ref().and_then(|b| b.status.as_ref()),
                })
                .collect(),
            measured: None,
        })
        .collect();
    if problems.is_empty() {
        for (index, env) in environments.iter().enumerate() {
            let (Some(rollout), Some(target)) = (&env.rollout, &env.target) else {
                continue;
            };
            if !pipeline::verification_due(spec, &old, index, Some(target), now) {
                continue;
            }
            let since = entered_at(&old, spec, index, target).unwrap_or(now);
            let measured = gather::pipeline::measure(
                ctx.prometheus.as_ref(),
                rollout,
                &spec.environments[index],
                since,
                now,
            )
            .await;
            views[index].measured = Some(measured);
        }
    }
    let plan = pipeline::plan(&Snapshot {
        spec,
        status: &old,
        generation: pipeline.metadata.generation,
        environments: views,
        problems: &problems,
        now,
    });

    for push in &plan.pushes {
        let env = &environments[push.environment];
        let Some(rollout) = &env.rollout else {
            continue;
        };
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &env.namespace);
        workloads::set_images(&deployments, &rollout.spec.target_ref.name, &push.images).await?;
    }
    ctx.pipeline_statuses
        .write(&ctx, pipeline.as_ref(), &old, &plan.status)
        .await?;
    ctx.metrics
        .pipelines
        .record(&namespace, &pipeline.name_any(), spec, &plan.status, now);
    objects::publish_planned(&ctx, pipeline.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(pipeline.as_ref()).erase());
    Ok(Action::requeue(plan.requeue_after))
}

fn dereference(spec: &ReleasePipelineSpec, namespace: &str, ctx: &Context) -> Vec<Environment> {
    spec.environments
        .iter()
        .map(|env| {
            let (rollout_namespace, name) = pipeline::rollout_key(env, namespace);
            let rollout = ctx
                .caches
                .rollouts
                .get(&ObjectRef::new(name).within(&rollout_namespace));
            let target = rollout.as_ref().and_then(|r| {
                let deployment = ctx
                    .caches
                    .deployment(&rollout_namespace, &r.spec.target_ref.name)?;
                let template = deployment.spec.as_ref()?.template.as_ref()?;
                Some(TargetView {
                    images: template.images(),
                    revision: template.revision().to_string(),
                })
            });
            let mut names = env.gates.slo_budgets.clone();
            if let Some(reference) = rollout
                .as_ref()
                .and_then(|r| r.spec.analysis.slo_budget_ref.as_ref())
                && !names.contains(&reference.name)
            {
                names.push(reference.name.clone());
            }
            let budgets = names
                .into_iter()
                .map(|name| {
                    let budget = ctx.caches.slo_budget(&rollout_namespace, &name);
                    (name, budget)
                })
                .collect();
            Environment {
                namespace: rollout_namespace,
                rollout,
                target,
                budgets,
            }
        })
        .collect()
}

/// The spec's own problems, then what its environments refer to.
fn validate(
    pipeline: &ReleasePipeline,
    namespace: &str,
    environments: &[Environment],
    ctx: &Context,
) -> Vec<String> {
    let spec = &pipeline.spec;
    let mut problems = pipeline::validate(spec, namespace);
    for (index, (env, found)) in spec.environments.iter().zip(environments).enumerate() {
        let (rollout_namespace, name) = pipeline::rollout_key(env, namespace);
        let Some(rollout) = &found.rollout else {
            problems.push(format!(
                "spec.environments[{index}].rolloutRef: CanaryRollout {rollout_namespace}/{name} not found"
            ));
            continue;
        };
        problems.extend(pipeline::rollout_problems(
            index,
            env.risk_budget.max_canary_weight,
            &rollout.spec.stages,
        ));
        let mut others: Vec<String> = ctx
            .caches
            .pipelines_claiming(&rollout_namespace, name)
            .into_iter()
            .map(|(p, _)| p.name_any())
            .filter(|other| *other != pipeline.name_any())
            .collect();
        others.sort();
        if !others.is_empty() {
            problems.push(format!(
                "spec.environments[{index}].rolloutRef {rollout_namespace}/{name} is also in ReleasePipeline {}: one rollout belongs to one pipeline",
                others.join(", ")
            ));
        }
        if found.target.is_none() {
            problems.push(format!(
                "spec.environments[{index}]: the target Deployment {:?} of CanaryRollout {rollout_namespace}/{name} not found",
                rollout.spec.target_ref.name
            ));
        }
    }
    problems
}

/// When the release now in environment `index` entered it, as the status recorded.
fn entered_at(
    status: &crate::api::release_pipeline::ReleasePipelineStatus,
    spec: &ReleasePipelineSpec,
    index: usize,
    target: &TargetView,
) -> Option<Timestamp> {
    let images = pipeline_gates::release_of(spec, &target.images)?;
    let release = status.releases.iter().find(|r| r.images == images)?;
    let entry = pipeline_gates::entry_of(release, &spec.environments[index].name)?;
    entry.started_at.or(entry.promoted_at)
}

pub fn error_policy(pipeline: Arc<ReleasePipeline>, error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(objects::retry_after_error(
        &ctx,
        "release_pipeline",
        pipeline.as_ref(),
        error,
    ))
}
