//! The CanaryRollout reconciler: dereference (from the caches) → validate → observe →
//! evaluate (Prometheus, when due) → plan (engine) → apply (only what differs) → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::backoff::FAILING_AFTER;
use super::deployment_summary::DeploymentSummary;
use super::error::Error;
use super::objects;
use super::replica_set_summary::ReplicaSetSummary;
use super::saved_templates;
use super::workloads;
use super::{Announcement, Context, rollout_audit};
use crate::api::CanaryRollout;
use crate::api::canary_rollout::{CanaryRolloutStatus, Phase};
use crate::api::conditions::{Condition, RECONCILE_FAILING, set_condition};
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::api::slo_budget::SLOBudget;
use crate::engine::delivery_freeze::{self, FreezeInForce, FreezeRef};
use crate::engine::hand_back::HandBackStep;
use crate::engine::pipeline_gates::{self, Admission};
use crate::engine::{
    self, Plan, PlannedEvent, Snapshot, Workload, parity_gate, pipeline, slo_gate,
};
use crate::gather;
use crate::traffic::gateway_api::RouteTraffic;
use crate::traffic::{ServiceNames, TrafficError, gateway_api};

pub const FINALIZER: &str = "sluice.dev/hand-back";

pub async fn reconcile(rollout: Arc<CanaryRollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    if !ctx.caches.synced() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let api: Api<CanaryRollout> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut rollout = rollout.as_ref().clone();
    rollout.status = ctx.statuses.latest(&rollout, rollout.status.as_ref());
    let rollout = Arc::new(rollout);
    finalizer(&api, FINALIZER, rollout, |event| async {
        match event {
            FinalizerEvent::Apply(rollout) => apply(&rollout, &ctx).await,
            FinalizerEvent::Cleanup(rollout) => {
                let action = hand_back(&rollout, &ctx).await?;
                ctx.metrics.rollouts.forget(&namespace, &rollout.name_any());
                ctx.statuses.forget(rollout.as_ref());
                ctx.route_refusals.forget(rollout.as_ref());
                Ok(action)
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(inner)
        | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
        other => Error::Finalizer(Box::new(other)),
    })
}

pub fn error_policy(rollout: Arc<CanaryRollout>, error: &Error, ctx: Arc<Context>) -> Action {
    match error {
        // Waiting for the target to take the traffic back is no failure: not counted.
        Error::HandBackPending(why) => {
            info!(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), "{why}");
            Action::requeue(Duration::from_secs(1))
        }
        _ => {
            let delay = objects::retry_after_error(&ctx, "rollout", rollout.as_ref(), error);
            let failures = ctx
                .backoff
                .failures(&ObjectRef::from_obj(rollout.as_ref()).erase());
            if failures >= FAILING_AFTER {
                let message = format!(
                    "{failures} reconciles in a row failed, the last with: {error}; next try in {}s",
                    delay.as_secs()
                );
                tokio::spawn(report_failing(ctx, rollout, message));
            }
            Action::requeue(delay)
        }
    }
}

/// Shows in the rollout's status that its reconciles keep failing. Best effort: the status
/// write may fail for the same reason.
async fn report_failing(ctx: Arc<Context>, rollout: Arc<CanaryRollout>, message: String) {
    let old = ctx
        .statuses
        .latest(rollout.as_ref(), rollout.status.as_ref())
        .unwrap_or_default();
    let mut new = old.clone();
    set_condition(
        &mut new.conditions,
        Condition::new(
            RECONCILE_FAILING,
            true,
            "ReconcileError",
            message,
            Timestamp::now(),
        ),
    );
    if let Err(error) = ctx.statuses.write(&ctx, rollout.as_ref(), &old, &new).await {
        warn!(rollout = %rollout.name_any(), "failing reconciles not recorded in status: {error}");
    }
}

/// The objects a rollout refers to, as the caches hold them.
struct Dereferenced {
    target: Option<Arc<DeploymentSummary>>,
    stable: Option<Arc<DeploymentSummary>>,
    parity_policy: Option<Arc<ParityPolicy>>,
    slo_budget: Option<Arc<SLOBudget>>,
    /// The target's newest ReplicaSet: its pod-template-hash marks the canary's pods.
    target_replica_set: Option<Arc<ReplicaSetSummary>>,
    /// The ReleasePipelines that include the rollout, with its environment's index in each.
    pipelines: Vec<(Arc<ReleasePipeline>, usize)>,
}

fn dereference(rollout: &CanaryRollout, namespace: &str, ctx: &Context) -> Dereferenced {
    let caches = &ctx.caches;
    let spec = &rollout.spec;
    let target = caches.deployment(namespace, &spec.target_ref.name);
    let stable = caches.deployment(namespace, &workloads::stable_name(&spec.target_ref.name));
    let analysis = &spec.analysis;
    Dereferenced {
        target_replica_set: target.as_deref().and_then(|t| caches.newest_replica_set(t)),
        target,
        stable,
        parity_policy: analysis
            .parity_policy_ref
            .as_ref()
            .and_then(|r| caches.parity_policy(namespace, &r.name)),
        slo_budget: analysis
            .slo_budget_ref
            .as_ref()
            .and_then(|r| caches.slo_budget(namespace, &r.name))
            .map(|budget| with_latest_status(budget, ctx)),
        pipelines: ctx.pipelines_claiming(namespace, &rollout.name_any()),
    }
}

/// The budget with the status this operator last wrote on it, when its cache has not shown that
/// write yet: a freeze the budget's reconcile has just written holds a release whose target
/// changes a moment later, whichever watch event arrives first.
fn with_latest_status(budget: Arc<SLOBudget>, ctx: &Context) -> Arc<SLOBudget> {
    let latest = ctx
        .budget_statuses
        .latest(budget.as_ref(), budget.status.as_ref());
    if latest == budget.status {
        return budget;
    }
    let mut newer = budget.as_ref().clone();
    newer.status = latest;
    Arc::new(newer)
}

/// What the rollout's ReleasePipeline says: of the target's candidate, whether its stable
/// revision must be undone, and whether to keep stable templates for that. A pipeline in this cluster is read from the cache; one in another
/// cluster writes its verdict on the rollout (`sluice.dev/pipeline-gate`). Nothing outside a
/// pipeline, or with two claiming it (which `validate` reports).
fn pipeline_verdicts(
    rollout: &CanaryRollout,
    objects: &Dereferenced,
    status: &CanaryRolloutStatus,
) -> Result<(Option<Admission>, Option<String>, bool), String> {
    match objects.pipelines.as_slice() {
        [(pipeline, index)] => {
            let images = objects
                .target
                .as_deref()
                .and_then(|t| t.spec.as_ref()?.template.as_ref())
                .map(|template| template.images())
                .unwrap_or_default();
            let pipeline_status = pipeline.status.clone().unwrap_or_default();
            let admission =
                pipeline_gates::admission(&pipeline.spec, &pipeline_status, *index, &images);
            let revoked = status.stable_revision.as_deref().and_then(|stable| {
                pipeline_gates::stable_revoked(&pipeline.spec, &pipeline_status, *index, stable)
            });
            let keep = pipeline_gates::keeps_templates(&pipeline.spec, *index);
            Ok((Some(admission), revoked, keep))
        }
        [] => match rollout.annotations().get(pipeline_gates::GATE_ANNOTATION) {
            Some(text) => {
                let note = pipeline_gates::read_gate_note(text)?;
                let target = objects.target.as_deref().map(workloads::target_revision);
                let (admission, revoked) =
                    note.verdicts(target.as_deref(), status.stable_revision.as_deref());
                Ok((Some(admission), revoked, note.keep_templates))
            }
            None => Ok((None, None, false)),
        },
        _ => Ok((None, None, false)),
    }
}

/// Spec problems, and problems with what the spec refers to.
async fn validate(
    rollout: &CanaryRollout,
    namespace: &str,
    objects: &Dereferenced,
    ctx: &Context,
) -> Result<Vec<String>, Error> {
    let spec = &rollout.spec;
    let mut problems = engine::validate::validate_rollout(spec);
    if let Some(stable) = &objects.stable {
        let ours = stable
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == rollout.uid().as_ref());
        if !ours {
            problems.push(format!(
                "Deployment {} exists and does not belong to this CanaryRollout",
                stable.name_any()
            ));
        }
    }
    problems.extend(ctx.route_refusals.problem(rollout));
    let names = ServiceNames::for_service(&spec.service.name, spec.service.port);
    if let (Some(gateway), true) = (&spec.traffic_routing.gateway_api, problems.is_empty()) {
        let cached = |route: &str| ctx.caches.cached_route(namespace, route);
        match gateway_api::check_routes(
            &ctx.client,
            namespace,
            &gateway.http_routes,
            &cached,
            &names,
        )
        .await
        {
            Err(error) if error.is_permanent() => problems.push(error.to_string()),
            other => other?,
        }
    }
    let analysis = &spec.analysis;
    if let Some(reference) = &analysis.parity_policy_ref {
        match &objects.parity_policy {
            Some(policy) => problems.extend(parity_gate::problems(policy)),
            None => problems.push(format!("ParityPolicy {:?} not found", reference.name)),
        }
    }
    match objects.pipelines.as_slice() {
        [] => {}
        [(pipeline, index)] => problems.extend(pipeline::rollout_problems(
            *index,
            pipeline.spec.environments[*index]
                .risk_budget
                .max_canary_weight,
            &spec.stages,
        )),
        claims => {
            let mut names: Vec<String> = claims.iter().map(|(p, _)| p.name_any()).collect();
            // The store's order is arbitrary; the message must not change between reconciles.
            names.sort();
            problems.push(format!(
                "ReleasePipelines {} all include this rollout: one rollout belongs to one pipeline",
                names.join(", ")
            ));
        }
    }
    if let Some(reference) = &analysis.slo_budget_ref {
        match &objects.slo_budget {
            Some(budget) => problems.extend(slo_gate::problems(budget)),
            None => problems.push(format!("SLOBudget {:?} not found", reference.name)),
        }
    }
    Ok(problems)
}

/// The two workloads as the engine sees them.
fn observe(objects: &Dereferenced) -> (Option<Workload>, Option<Workload>) {
    let target = match &objects.target {
        Some(target) => {
            let observed = workloads::observe(target, workloads::target_revision(target));
            Some(workloads::confirm_available(
                observed,
                objects.target_replica_set.as_deref(),
            ))
        }
        None => None,
    };
    let stable = objects
        .stable
        .as_deref()
        .map(|s| workloads::observe(s, workloads::stable_revision(s)));
    (target, stable)
}

/// The DeliveryFreeze in force on the rollout now, from the cache (`engine::delivery_freeze`).
fn delivery_freeze_in_force(
    rollout: &CanaryRollout,
    namespace: &str,
    ctx: &Context,
) -> Option<FreezeInForce> {
    let freezes = ctx.caches.delivery_freezes.state();
    delivery_freeze::in_force(
        freezes.iter().map(|f| FreezeRef {
            namespace: f.metadata.namespace.as_deref().unwrap_or_default(),
            name: f.metadata.name.as_deref().unwrap_or_default(),
            spec: &f.spec,
        }),
        namespace,
        rollout.labels(),
        &ctx.freeze_namespace,
        Timestamp::now(),
    )
}

async fn apply(rollout: &CanaryRollout, ctx: &Context) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let objects = dereference(rollout, &namespace, ctx);
    let mut problems = validate(rollout, &namespace, &objects, ctx).await?;
    let freeze = objects
        .slo_budget
        .as_deref()
        .and_then(slo_gate::freeze_reason);
    let delivery_freeze = delivery_freeze_in_force(rollout, &namespace, ctx);
    let (target_observed, stable_observed) = observe(&objects);
    let (admission, revoke_stable, keep_templates) =
        match pipeline_verdicts(rollout, &objects, &status) {
            Ok(verdicts) => verdicts,
            Err(problem) => {
                problems.push(problem);
                (None, None, false)
            }
        };
    let canary_hash = match &objects.target {
        Some(_)
            if status.phase.is_some_and(|p| {
                matches!(p, Phase::Progressing | Phase::Paused | Phase::Promoting)
            }) =>
        {
            workloads::pod_template_hash(objects.target_replica_set.as_deref())
        }
        _ => None,
    };

    let now = Timestamp::now();
    let evaluate =
        engine::evaluation_wanted(spec, &status, &problems, target_observed.as_ref(), now);
    let (analysis, parity_report) = if evaluate {
        let (input, report) = gather::run(
            ctx.prometheus.as_ref(),
            rollout,
            canary_hash.as_deref(),
            objects.parity_policy.as_deref(),
            objects.slo_budget.as_deref(),
            now,
        )
        .await;
        (Some(input), report)
    } else {
        (None, None)
    };
    // The plan is stamped after the queries, which can take a while: a stage's clock starts
    // when its weight is set, so the weight stays for the whole pause.
    let now = match evaluate {
        true => Timestamp::now(),
        false => now,
    };

    let annotations: BTreeMap<String, String> = rollout.annotations().clone();
    let snapshot = Snapshot {
        spec,
        status: &status,
        generation: rollout.metadata.generation,
        annotations: &annotations,
        target: target_observed.as_ref(),
        stable: stable_observed.as_ref(),
        problems: &problems,
        analysis: analysis.as_ref(),
        freeze: freeze.as_deref(),
        delivery_freeze: delivery_freeze.as_ref(),
        pipeline: admission.as_ref(),
        revoke_stable: revoke_stable.as_deref(),
        keep_templates,
        now,
    };
    let mut plan = engine::plan(&snapshot);
    // This reconcile got this far: whatever kept failing has passed.
    plan.status
        .conditions
        .retain(|c| c.type_ != RECONCILE_FAILING);

    if let Some(target) = &objects.target {
        let observed = Observed {
            target,
            stable: objects.stable.as_deref(),
            stable_workload: stable_observed.as_ref(),
        };
        carry_out(ctx, rollout, &observed, &plan).await?;
        if plan.track_services {
            workloads::apply_services(
                &ctx.client,
                rollout,
                target,
                canary_hash.as_deref(),
                |name| ctx.caches.service(&namespace, name),
            )
            .await?;
            if let Some(hash) = &canary_hash {
                let mut selector = workloads::match_labels(target);
                selector.insert("pod-template-hash".into(), hash.clone());
                let pods = ctx.caches.unlabelled_pods(&namespace, &selector);
                workloads::label_canary_pods(&ctx.client, &namespace, &pods).await?;
            }
        }
    }
    ctx.statuses
        .write(ctx, rollout, &status, &plan.status)
        .await?;
    saved_templates::forget(ctx, rollout, &plan.forget_templates).await?;
    ctx.metrics.rollouts.record(
        &namespace,
        &rollout.name_any(),
        &status,
        &plan.status,
        plan.rollback_cause,
    );
    if let (Some(policy), Some(report)) = (&objects.parity_policy, parity_report) {
        ctx.parity_feed.submit(policy, report);
    }
    let moved = (
        status.phase,
        &status.stable_revision,
        &status.canary_revision,
    ) != (
        plan.status.phase,
        &plan.status.stable_revision,
        &plan.status.canary_revision,
    );
    if moved {
        for (pipeline, _) in &objects.pipelines {
            ctx.nudge_pipeline(pipeline.as_ref());
        }
    }
    let actor = rollout_audit::requested_by(rollout, &status, &plan);
    rollout_audit::record(ctx, rollout, &status, &plan, analysis.is_some());
    ctx.metrics.delivery.record(
        &namespace,
        &rollout.name_any(),
        &super::environment_of(&rollout.metadata),
        &status,
        &plan.status,
    );
    let revision = plan.status.canary_revision.clone();
    publish(
        ctx,
        rollout,
        &plan.events,
        actor.as_deref(),
        revision.as_deref(),
    )
    .await;
    ctx.backoff.succeeded(&ObjectRef::from_obj(rollout).erase());
    Ok(Action::requeue(plan.requeue_after))
}

/// What the cluster holds of the workloads a plan changes, as the caches show them.
pub struct Observed<'a> {
    pub target: &'a DeploymentSummary,
    pub stable: Option<&'a DeploymentSummary>,
    pub stable_workload: Option<&'a Workload>,
}

/// Applies the plan in the order that keeps traffic safe: the stable Deployment first (it takes
/// traffic back), then the route weights, then the target's replicas. A shrinking stable
/// Deployment (replicas router) waits until the canary has grown. Each write goes out only when
/// the observed object differs from what the plan wants.
pub async fn carry_out(
    ctx: &Context,
    rollout: &CanaryRollout,
    observed: &Observed<'_>,
    plan: &Plan,
) -> Result<(), Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = observed.target;
    let target_name = target.name_any();
    let stable_name = workloads::stable_name(&target_name);
    let mut shrink_stable_to = None;
    if let Some(change) = &plan.stable {
        let stable = observed.stable_workload;
        if let Some(revision) = &change.restore_revision {
            let in_place = observed
                .stable
                .is_some_and(|deployment| workloads::stable_revision(deployment) == *revision);
            if !in_place {
                let template = saved_templates::read(ctx, rollout, revision).await?;
                workloads::apply_stable_template(
                    &deployments,
                    rollout,
                    target,
                    template,
                    revision,
                    change.replicas,
                )
                .await?;
            }
        } else if change.copy_target_template || stable.is_none() {
            let revision = workloads::target_revision(target);
            let in_place = observed.stable.is_some_and(|deployment| {
                workloads::stable_revision(deployment) == revision
                    && deployment.spec.as_ref().and_then(|s| s.replicas) == Some(change.replicas)
            });
            if !in_place {
                if plan.save_template {
                    saved_templates::save(ctx, rollout, target, &revision).await?;
                }
                workloads::apply_stable(&deployments, rollout, target, &revision, change.replicas)
                    .await?;
            }
        } else if let Some(stable) = stable.filter(|s| s.replicas != change.replicas) {
            if change.replicas > stable.replicas {
                workloads::scale(&deployments, &stable_name, change.replicas).await?;
            } else {
                shrink_stable_to = Some(change.replicas);
            }
        }
    }
    if let (Some(weight), Some(gateway)) = (
        plan.canary_weight,
        &rollout.spec.traffic_routing.gateway_api,
    ) {
        let names =
            ServiceNames::for_service(&rollout.spec.service.name, rollout.spec.service.port);
        let cached = |route: &str| ctx.caches.cached_route(&namespace, route);
        let traffic = RouteTraffic {
            weight,
            mirror: plan.canary_mirror.unwrap_or(0),
        };
        let result = gateway_api::set_traffic(
            &ctx.client,
            &namespace,
            &gateway.http_routes,
            &cached,
            &names,
            traffic,
        )
        .await;
        if let Err(refusal @ TrafficError::MirrorPercentUnsupported { .. }) = &result {
            let stage = plan.status.stage.unwrap_or(0);
            let problem = format!("spec.stages[{stage}].mirror {}: {refusal}", traffic.mirror);
            ctx.route_refusals.record(rollout, problem);
        }
        result?;
    }
    let current_target_replicas = target.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if let Some(replicas) = plan
        .target_replicas
        .filter(|r| *r != current_target_replicas)
    {
        workloads::scale(&deployments, &target_name, replicas).await?;
    }
    if let Some(replicas) = shrink_stable_to {
        workloads::scale(&deployments, &stable_name, replicas).await?;
    }
    Ok(())
}

async fn publish(
    ctx: &Context,
    rollout: &CanaryRollout,
    events: &[PlannedEvent],
    actor: Option<&str>,
    revision: Option<&str>,
) {
    let reference = rollout.object_ref(&());
    for event in events {
        let note: String = event.note.chars().take(1000).collect();
        let kube_event = KubeEvent {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.to_string(),
            note: Some(note),
            action: event.reason.to_string(),
            secondary: None,
        };
        if event.warning {
            warn!(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), reason = event.reason, "{}", event.note);
        } else {
            info!(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), reason = event.reason, "{}", event.note);
        }
        if let Err(error) = ctx.recorder().publish(&kube_event, &reference).await {
            warn!(rollout = %rollout.name_any(), "event not recorded: {error}");
        }
        ctx.announce(&Announcement {
            kind: "CanaryRollout",
            meta: &rollout.metadata,
            warning: event.warning,
            reason: event.reason,
            note: &event.note,
            actor,
            revision,
        });
    }
}

/// Deleting a CanaryRollout hands the service back, one step per reconcile as the engine
/// plans it: the target runs at full size, every route sends all traffic to the user's Service,
/// and Sluice's own objects go.
async fn hand_back(rollout: &CanaryRollout, ctx: &Context) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let target = ctx.caches.deployment(&namespace, &spec.target_ref.name);
    let observed = match &target {
        Some(target) => {
            let observed = workloads::observe(target, workloads::target_revision(target));
            let newest = ctx.caches.newest_replica_set(target);
            Some(workloads::confirm_available(observed, newest.as_deref()))
        }
        None => None,
    };
    match engine::hand_back::hand_back(&spec.target_ref.name, &status, observed.as_ref()) {
        HandBackStep::TargetGone => {
            workloads::delete_owned(&ctx.client, rollout).await?;
            Ok(Action::await_change())
        }
        HandBackStep::ScaleTarget { replicas, warning } => {
            publish(ctx, rollout, warning.as_slice(), None, None).await;
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
            workloads::scale(&deployments, &spec.target_ref.name, replicas).await?;
            Err(Error::HandBackPending(format!(
                "scaling {} to {replicas}",
                spec.target_ref.name
            )))
        }
        HandBackStep::WaitForTarget { why } => Err(Error::HandBackPending(why)),
        HandBackStep::Release => {
            if let Some(gateway) = &spec.traffic_routing.gateway_api {
                let names = ServiceNames::for_service(&spec.service.name, spec.service.port);
                let cached = |route: &str| ctx.caches.cached_route(&namespace, route);
                gateway_api::hand_back(
                    &ctx.client,
                    &namespace,
                    &gateway.http_routes,
                    &cached,
                    &names,
                )
                .await?;
            }
            workloads::delete_owned(&ctx.client, rollout).await?;
            info!(rollout = %rollout.name_any(), namespace, "handed back to {}", spec.target_ref.name);
            Ok(Action::await_change())
        }
    }
}
