//! The ReleasePipeline reconciler: dereference each environment's rollout, target and budgets
//! (from the caches) → validate → measure the environments due a verification → plan
//! (`engine::pipeline`) → push images where the plan says → status and events.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::caches::Caches;
use super::deployment_summary::DeploymentSummary;
use super::error::Error;
use super::objects;
use super::remote_clusters::RemoteNamespace;
use super::workloads;
use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::{ReleasePipeline, ReleasePipelineSpec};
use crate::api::slo_budget::SLOBudget;
use crate::engine::pipeline::{self, EnvironmentView, Snapshot, TargetView};
use crate::engine::pipeline_gates::{self, BudgetView, ParityView};
use crate::gather;

/// What one environment refers to, as the caches hold it.
struct Environment {
    namespace: String,
    rollout: Option<Arc<CanaryRollout>>,
    target: Option<TargetView>,
    budgets: Vec<(String, Option<Arc<SLOBudget>>)>,
    parity: Vec<(String, Option<Arc<ParityPolicy>>)>,
    /// The other cluster it lives in, if any.
    remote: Option<Arc<RemoteNamespace>>,
    /// Why its objects cannot be read.
    unreachable: Option<Unreachable>,
}

/// Why an environment's objects cannot be read.
enum Unreachable {
    /// Its cluster: the Secret or the cluster itself.
    Cluster(String),
    /// Its namespace, in this cluster, is outside the operator's `--namespace` list.
    Unwatched(String),
}

/// Where an environment's objects are read: this operator's caches, or another cluster's.
enum Source<'a> {
    Local(&'a Caches),
    Remote(&'a RemoteNamespace),
}

impl Source<'_> {
    fn rollout(&self, namespace: &str, name: &str) -> Option<Arc<CanaryRollout>> {
        let reference = ObjectRef::new(name).within(namespace);
        match self {
            Source::Local(caches) => caches.rollouts.get(&reference),
            Source::Remote(remote) => remote.rollouts.get(&reference),
        }
    }

    fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<DeploymentSummary>> {
        match self {
            Source::Local(caches) => caches.deployment(namespace, name),
            Source::Remote(remote) => remote
                .deployments
                .get(&ObjectRef::new(name).within(namespace)),
        }
    }

    fn budget(&self, namespace: &str, name: &str) -> Option<Arc<SLOBudget>> {
        match self {
            Source::Local(caches) => caches.slo_budget(namespace, name),
            Source::Remote(remote) => remote.budgets.get(&ObjectRef::new(name).within(namespace)),
        }
    }
    fn parity_policy(&self, namespace: &str, name: &str) -> Option<Arc<ParityPolicy>> {
        match self {
            Source::Local(caches) => caches.parity_policy(namespace, name),
            Source::Remote(remote) => remote
                .parity_policies
                .get(&ObjectRef::new(name).within(namespace)),
        }
    }
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
    let Some(environments) = dereference(&pipeline, &namespace, &ctx).await else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
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
            parity: env
                .parity
                .iter()
                .map(|(name, policy)| ParityView {
                    name: name.clone(),
                    status: policy.as_ref().and_then(|p| p.status.as_ref()),
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

    // Status first: a rollout that sees the pushed images then finds the release cleared.
    ctx.pipeline_statuses
        .write(&ctx, pipeline.as_ref(), &old, &plan.status)
        .await?;
    for push in &plan.pushes {
        let env = &environments[push.environment];
        let Some(rollout) = &env.rollout else {
            continue;
        };
        let client = env.remote.as_ref().map_or(&ctx.client, |r| &r.client);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &env.namespace);
        workloads::set_images(&deployments, &rollout.spec.target_ref.name, &push.images).await?;
    }
    if problems.is_empty() {
        let name = format!("{namespace}/{}", pipeline.name_any());
        tell_remote_rollouts(&name, spec, &plan.status, &environments).await?;
    }
    ctx.metrics
        .pipelines
        .record(&namespace, &pipeline.name_any(), spec, &plan.status, now);
    objects::publish_planned(&ctx, pipeline.as_ref(), &plan.events).await;
    ctx.backoff
        .succeeded(&ObjectRef::from_obj(pipeline.as_ref()).erase());
    Ok(Action::requeue(plan.requeue_after))
}

/// Each environment's rollout, target and budgets; None while another cluster's caches have
/// not synced yet.
async fn dereference(
    pipeline: &ReleasePipeline,
    namespace: &str,
    ctx: &Context,
) -> Option<Vec<Environment>> {
    let mut environments = Vec::new();
    for env in &pipeline.spec.environments {
        let (rollout_namespace, name) = pipeline::rollout_key(env, namespace);
        let (remote, unreachable) = match &env.cluster {
            None => (None, None),
            Some(cluster) => match ctx
                .remote_clusters
                .namespace(
                    &ctx.client,
                    namespace,
                    cluster,
                    &rollout_namespace,
                    pipeline,
                    &ctx.pipeline_nudges,
                )
                .await
            {
                Ok(remote) if !remote.synced() => return None,
                Ok(remote) => (Some(remote), None),
                Err(why) => (None, Some(Unreachable::Cluster(why))),
            },
        };
        let (source, unreachable) = match (&remote, &env.cluster) {
            (Some(remote), _) => (Source::Remote(remote), unreachable),
            // Another cluster that cannot be read: `unreachable` says why.
            (None, Some(_)) => (Source::Local(&ctx.caches), unreachable),
            (None, None) => match ctx.caches_of(&rollout_namespace) {
                // Another watched namespace's caches may sync after this one's.
                Some(caches) if !caches.synced() => return None,
                Some(caches) => (Source::Local(caches), None),
                None => (
                    Source::Local(&ctx.caches),
                    Some(Unreachable::Unwatched(format!(
                        "namespace {rollout_namespace} is not among the namespaces this operator watches (--namespace)"
                    ))),
                ),
            },
        };
        let rollout = match &unreachable {
            Some(_) => None,
            None => source.rollout(&rollout_namespace, name),
        };
        let target = rollout.as_ref().and_then(|r| {
            let deployment = source.deployment(&rollout_namespace, &r.spec.target_ref.name)?;
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
                let budget = source.budget(&rollout_namespace, &name);
                (name, budget)
            })
            .collect();
        let parity = env
            .gates
            .parity_policies
            .iter()
            .map(|name| (name.clone(), source.parity_policy(&rollout_namespace, name)))
            .collect();
        environments.push(Environment {
            namespace: rollout_namespace,
            rollout,
            target,
            budgets,
            parity,
            remote,
            unreachable,
        });
    }
    Some(environments)
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
        match &found.unreachable {
            Some(Unreachable::Cluster(why)) => {
                problems.push(format!("spec.environments[{index}].cluster: {why}"));
                continue;
            }
            Some(Unreachable::Unwatched(why)) => {
                problems.push(format!(
                    "spec.environments[{index}].rolloutRef.namespace: {why}"
                ));
                continue;
            }
            None => {}
        }
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
        let claims = match found.remote {
            Some(_) => Vec::new(),
            None => ctx.pipelines_claiming(&rollout_namespace, name),
        };
        let mut others: Vec<String> = claims
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

/// Writes the pipeline's verdict on each rollout in another cluster, where the operator of that
/// cluster reads it; only when it changed.
async fn tell_remote_rollouts(
    pipeline: &str,
    spec: &ReleasePipelineSpec,
    status: &crate::api::release_pipeline::ReleasePipelineStatus,
    environments: &[Environment],
) -> Result<(), Error> {
    for (index, env) in environments.iter().enumerate() {
        let (Some(remote), Some(rollout)) = (&env.remote, &env.rollout) else {
            continue;
        };
        let Some(target) = &env.target else {
            continue;
        };
        let stable = rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_revision.as_deref());
        let candidate = (target.revision.as_str(), &target.images);
        let note = pipeline_gates::gate_note(pipeline, spec, status, index, candidate, stable);
        let text = serde_json::to_string(&note)?;
        if rollout.annotations().get(pipeline_gates::GATE_ANNOTATION) == Some(&text) {
            continue;
        }
        let rollouts: Api<CanaryRollout> = Api::namespaced(remote.client.clone(), &env.namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {pipeline_gates::GATE_ANNOTATION: text}}});
        rollouts
            .patch(
                &rollout.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
    }
    Ok(())
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
