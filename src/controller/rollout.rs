//! The CanaryRollout reconciler: fetch → validate → evaluate → plan (engine) → apply → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::Context;
use super::error::Error;
use super::objects;
use super::parity;
use super::workloads;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::Phase;
use crate::api::parity_policy::ParityPolicy;
use crate::api::slo_budget::SLOBudget;
use crate::engine::{self, Plan, PlannedEvent, Snapshot, parity_gate, slo_gate};
use crate::gather;
use crate::traffic::{ServiceNames, gateway_api};

pub const FINALIZER: &str = "sluice.dev/hand-back";

pub async fn reconcile(rollout: Arc<CanaryRollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<CanaryRollout> = Api::namespaced(ctx.client.clone(), &namespace);
    // Decide on the latest status, not the controller's cached copy: a watch that stalls or
    // restarts leaves the cache behind the status the last reconcile wrote, and planning from an
    // old status repeats old decisions (a cache from before adoption adopts the next template
    // without analysis).
    let Some(rollout) = api.get_opt(&rollout.name_any()).await? else {
        return Ok(Action::await_change());
    };
    finalizer(&api, FINALIZER, Arc::new(rollout), |event| async {
        match event {
            FinalizerEvent::Apply(rollout) => apply(&rollout, &ctx).await,
            FinalizerEvent::Cleanup(rollout) => {
                let action = hand_back(&rollout, &ctx).await?;
                ctx.metrics.rollouts.forget(&namespace, &rollout.name_any());
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
            ctx.metrics.record_error("rollout", error.category());
            warn!(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default(), category = error.category(), "reconcile failed: {error}");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

async fn apply(rollout: &CanaryRollout, ctx: &Context) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);

    let target = deployments.get_opt(&spec.target_ref.name).await?;
    let stable = deployments
        .get_opt(&workloads::stable_name(&spec.target_ref.name))
        .await?;
    let mut problems = engine::validate::validate_rollout(spec);
    if let Some(stable) = &stable {
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
    let names = ServiceNames::for_service(&spec.service.name, spec.service.port);
    if let (Some(gateway), true) = (&spec.traffic_routing.gateway_api, problems.is_empty()) {
        match gateway_api::check_routes(&ctx.client, &namespace, &gateway.http_routes, &names).await
        {
            Err(error) if error.is_permanent() => problems.push(error.to_string()),
            other => other?,
        }
    }

    let parity_policy = match &spec.analysis.parity_policy_ref {
        Some(reference) => {
            let policies: Api<ParityPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
            let policy = policies.get_opt(&reference.name).await?;
            match &policy {
                Some(policy) => problems.extend(parity_gate::problems(policy)),
                None => problems.push(format!("ParityPolicy {:?} not found", reference.name)),
            }
            policy
        }
        None => None,
    };
    let slo_budget = match &spec.analysis.slo_budget_ref {
        Some(reference) => {
            let budgets: Api<SLOBudget> = Api::namespaced(ctx.client.clone(), &namespace);
            let budget = budgets.get_opt(&reference.name).await?;
            match &budget {
                Some(budget) => problems.extend(slo_gate::problems(budget)),
                None => problems.push(format!("SLOBudget {:?} not found", reference.name)),
            }
            budget
        }
        None => None,
    };
    let freeze = slo_budget.as_ref().and_then(slo_gate::freeze_reason);

    let target_observed = match &target {
        Some(target) => {
            let observed = workloads::observe(target, workloads::target_revision(target)?);
            Some(workloads::confirm_available(&ctx.client, &namespace, target, observed).await?)
        }
        None => None,
    };
    let stable_observed = stable
        .as_ref()
        .map(|s| workloads::observe(s, workloads::stable_revision(s)));
    let canary_hash = match &target {
        Some(target)
            if status.phase.is_some_and(|p| {
                matches!(p, Phase::Progressing | Phase::Paused | Phase::Promoting)
            }) =>
        {
            workloads::canary_pod_template_hash(&ctx.client, &namespace, target).await?
        }
        _ => None,
    };

    let now = Timestamp::now();
    let evaluate = problems.is_empty()
        && target_observed.as_ref().map(|t| &t.revision) == status.canary_revision.as_ref()
        && engine::evaluation_due(spec, &status, now);
    let (analysis, parity_report) = if evaluate {
        let (input, report) = gather::run(
            &ctx.prometheus,
            rollout,
            canary_hash.as_deref(),
            parity_policy.as_ref(),
            slo_budget.as_ref(),
            now,
        )
        .await;
        (Some(input), report)
    } else {
        (None, None)
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
        now,
    };
    let plan = engine::plan(&snapshot);

    if let Some(target) = &target {
        carry_out(
            ctx,
            rollout,
            &deployments,
            target,
            stable_observed.as_ref(),
            &names,
            &plan,
        )
        .await?;
        if plan.status.phase != Some(Phase::Invalid) {
            workloads::apply_services(&ctx.client, rollout, target, canary_hash.as_deref()).await?;
            if let Some(hash) = &canary_hash {
                workloads::label_canary_pods(&ctx.client, &namespace, target, hash).await?;
            }
        }
    }
    objects::apply_status(ctx, rollout, &status, &plan.status).await?;
    ctx.metrics.rollouts.record(
        &namespace,
        &rollout.name_any(),
        &status,
        &plan.status,
        plan.rollback_cause,
    );
    if let (Some(policy), Some(report)) = (&parity_policy, &parity_report)
        && let Err(error) = parity::record(&ctx.client, policy, report).await
    {
        warn!(rollout = %rollout.name_any(), "parity status not recorded: {error}");
    }
    publish(ctx, rollout, &plan.events).await;
    Ok(Action::requeue(plan.requeue_after))
}

/// Applies the plan in the order that keeps traffic safe: the stable Deployment first (it takes
/// traffic back), then the route weights, then the target's replicas. A shrinking stable
/// Deployment (replicas router) waits until the canary has grown.
pub async fn carry_out(
    ctx: &Context,
    rollout: &CanaryRollout,
    deployments: &Api<Deployment>,
    target: &Deployment,
    stable: Option<&engine::Workload>,
    names: &ServiceNames,
    plan: &Plan,
) -> Result<(), Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let target_name = target.name_any();
    let mut shrink_stable_to = None;
    if let Some(change) = &plan.stable {
        if change.copy_target_template || stable.is_none() {
            let revision = workloads::target_revision(target)?;
            workloads::apply_stable(deployments, rollout, target, &revision, change.replicas)
                .await?;
        } else if let Some(stable) = stable.filter(|s| s.replicas != change.replicas) {
            if change.replicas > stable.replicas {
                workloads::scale(
                    deployments,
                    &workloads::stable_name(&target_name),
                    change.replicas,
                )
                .await?;
            } else {
                shrink_stable_to = Some(change.replicas);
            }
        }
    }
    if let (Some(weight), Some(gateway)) = (
        plan.canary_weight,
        &rollout.spec.traffic_routing.gateway_api,
    ) {
        gateway_api::set_weights(&ctx.client, &namespace, &gateway.http_routes, names, weight)
            .await?;
    }
    let current_target_replicas = target.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if let Some(replicas) = plan
        .target_replicas
        .filter(|r| *r != current_target_replicas)
    {
        workloads::scale(deployments, &target_name, replicas).await?;
    }
    if let Some(replicas) = shrink_stable_to {
        workloads::scale(deployments, &workloads::stable_name(&target_name), replicas).await?;
    }
    Ok(())
}

async fn publish(ctx: &Context, rollout: &CanaryRollout, events: &[PlannedEvent]) {
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
    }
}

/// Deleting a CanaryRollout hands the service back: the target runs at full size, every route
/// sends all traffic to the user's Service, and Sluice's own objects go.
async fn hand_back(rollout: &CanaryRollout, ctx: &Context) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(target) = deployments.get_opt(&spec.target_ref.name).await? else {
        workloads::delete_owned(&ctx.client, rollout).await?;
        return Ok(Action::await_change());
    };
    let revision = workloads::target_revision(&target)?;
    let size = status.desired_replicas.unwrap_or(1).max(1);
    let observed = workloads::observe(&target, revision.clone());
    let observed = workloads::confirm_available(&ctx.client, &namespace, &target, observed).await?;
    if observed.replicas != size {
        if matches!(status.phase, Some(Phase::RolledBack | Phase::Frozen))
            && status.canary_revision.as_deref() == Some(revision.as_str())
        {
            let note = format!(
                "handing back {}: it holds revision {revision}, which was rolled back; it now runs at full size without a canary",
                spec.target_ref.name
            );
            publish(
                ctx,
                rollout,
                &[PlannedEvent {
                    warning: true,
                    reason: "HandBackRolledBackRevision",
                    note,
                }],
            )
            .await;
        }
        workloads::scale(&deployments, &spec.target_ref.name, size).await?;
        return Err(Error::HandBackPending(format!(
            "scaling {} to {size}",
            spec.target_ref.name
        )));
    }
    if !observed.available {
        return Err(Error::HandBackPending(format!(
            "waiting for {} to be available ({}/{size} ready)",
            spec.target_ref.name, observed.ready_replicas
        )));
    }
    if let Some(gateway) = &spec.traffic_routing.gateway_api {
        let names = ServiceNames::for_service(&spec.service.name, spec.service.port);
        gateway_api::hand_back(&ctx.client, &namespace, &gateway.http_routes, &names).await?;
    }
    workloads::delete_owned(&ctx.client, rollout).await?;
    info!(rollout = %rollout.name_any(), namespace, "handed back to {}", spec.target_ref.name);
    Ok(Action::await_change())
}
