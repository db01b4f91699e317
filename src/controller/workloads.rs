//! Deployments and Services: observing them for the engine and building what Sluice owns.
//!
//! The user's Deployment is never given an ownerReference and only ever has `spec.replicas`
//! changed (merge patch: Sluice owns that field by design while a CanaryRollout exists). The
//! stable Deployment and the two Services are Sluice's own, applied server-side with force.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::error::Error;
use crate::api::CanaryRollout;
use crate::engine::Workload;
use crate::engine::revision::template_revision;

pub const FIELD_MANAGER: &str = "sluice";
pub const TRACK_LABEL: &str = "sluice.dev/track";
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";

pub fn stable_name(target: &str) -> String {
    format!("{target}-stable")
}

pub fn target_revision(target: &Deployment) -> Result<String, Error> {
    let template = serde_json::to_value(target.spec.as_ref().map(|s| &s.template))?;
    Ok(template_revision(&template))
}

/// What the engine needs to know of a Deployment.
pub fn observe(deployment: &Deployment, revision: String) -> Workload {
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let current =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let available = current
        && status.updated_replicas.unwrap_or(0) >= replicas
        && status.available_replicas.unwrap_or(0) >= replicas
        && status.replicas.unwrap_or(0) == replicas;
    Workload {
        revision,
        replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available,
    }
}

pub fn stable_revision(stable: &Deployment) -> String {
    stable
        .annotations()
        .get(REVISION_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

fn owned_metadata(rollout: &CanaryRollout, name: &str) -> Result<serde_json::Value, Error> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingNamespace)?;
    Ok(json!({
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "sluice", ROLLOUT_LABEL: rollout.name_any()},
        "ownerReferences": [owner],
    }))
}

fn match_labels(target: &Deployment) -> BTreeMap<String, String> {
    target
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
}

/// The stable Deployment carrying the target's current template, with the track label added.
pub async fn apply_stable(
    api: &Api<Deployment>,
    rollout: &CanaryRollout,
    target: &Deployment,
    revision: &str,
    replicas: i32,
) -> Result<(), Error> {
    let name = stable_name(&target.name_any());
    let spec = target.spec.clone().unwrap_or_default();
    let mut template = serde_json::to_value(&spec.template)?;
    template["metadata"]["labels"][TRACK_LABEL] = json!("stable");
    let mut selector = serde_json::to_value(&spec.selector)?;
    selector["matchLabels"][TRACK_LABEL] = json!("stable");
    let mut metadata = owned_metadata(rollout, &name)?;
    metadata["annotations"] = json!({ REVISION_ANNOTATION: revision });
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
            "minReadySeconds": spec.min_ready_seconds,
            "strategy": spec.strategy,
        },
    });
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

pub async fn scale(api: &Api<Deployment>, name: &str, replicas: i32) -> Result<(), Error> {
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// The pod-template-hash of the target's newest ReplicaSet: what tells canary pods apart from
/// stable ones without touching the user's template.
pub async fn canary_pod_template_hash(
    client: &kube::Client,
    namespace: &str,
    target: &Deployment,
) -> Result<Option<String>, Error> {
    Ok(newest_replica_set(client, namespace, target)
        .await?
        .and_then(|rs| rs.labels().get("pod-template-hash").cloned()))
}

/// The Deployment's ReplicaSet with the highest revision: the one running its current template.
async fn newest_replica_set(
    client: &kube::Client,
    namespace: &str,
    deployment: &Deployment,
) -> Result<Option<ReplicaSet>, Error> {
    let selector = match_labels(deployment)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let uid = deployment.uid();
    let list = sets.list(&ListParams::default().labels(&selector)).await?;
    let revision = |rs: &ReplicaSet| {
        rs.annotations()
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .max_by_key(revision))
}

/// Labels the canary's pods `sluice.dev/track: canary` (the pods, not the user's template), so
/// queries and relabelling can tell the tracks apart as they can for stable pods.
pub async fn label_canary_pods(
    client: &kube::Client,
    namespace: &str,
    target: &Deployment,
    canary_hash: &str,
) -> Result<(), Error> {
    let mut selector: Vec<String> = match_labels(target)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    selector.push(format!("pod-template-hash={canary_hash}"));
    selector.push(format!("!{TRACK_LABEL}"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let unlabelled = pods
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?;
    let patch = json!({"metadata": {"labels": {TRACK_LABEL: "canary"}}});
    for pod in unlabelled.items {
        match pods
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// `workload` with `available` cleared unless the Deployment's newest ReplicaSet has acted on
/// its latest spec and has as many ready pods as the workload has replicas.
///
/// The Deployment's status is summed from ReplicaSet statuses, which for a moment after a
/// scale-down still count the pods being deleted: scaled 3 → 0 → 3, it can report 3 available
/// replicas while none is running. Pods alone are not enough either: until the ReplicaSet
/// reports the generation of its latest replica count, its controller may still be deleting
/// pods for an earlier one.
pub async fn confirm_available(
    client: &kube::Client,
    namespace: &str,
    deployment: &Deployment,
    workload: Workload,
) -> Result<Workload, Error> {
    if !workload.available || workload.replicas <= 0 {
        return Ok(workload);
    }
    let (settled, ready) = match newest_replica_set(client, namespace, deployment).await? {
        Some(set) => {
            let settled =
                set.status.as_ref().and_then(|s| s.observed_generation) >= set.metadata.generation;
            let hash = set.labels().get("pod-template-hash").cloned();
            let mut selector: Vec<String> = match_labels(deployment)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            selector.extend(hash.map(|hash| format!("pod-template-hash={hash}")));
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let list = pods
                .list(&ListParams::default().labels(&selector.join(",")))
                .await?;
            (settled, ready_pods(&list.items))
        }
        None => (false, 0),
    };
    Ok(if settled && ready >= workload.replicas {
        workload
    } else {
        Workload {
            available: false,
            ready_replicas: ready,
            ..workload
        }
    })
}

/// Pods that are Ready and not being deleted.
fn ready_pods(pods: &[Pod]) -> i32 {
    let ready = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    i32::try_from(ready).unwrap_or(i32::MAX)
}

/// `<service>-stable` and `<service>-canary`, selecting each track's pods.
pub async fn apply_services(
    client: &kube::Client,
    rollout: &CanaryRollout,
    target: &Deployment,
    canary_hash: Option<&str>,
) -> Result<(), Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let service = &rollout.spec.service;
    let target_port = service.target_port.unwrap_or(service.port);
    let base = match_labels(target);
    let mut stable_selector = base.clone();
    stable_selector.insert(TRACK_LABEL.to_string(), "stable".to_string());
    let mut canary_selector = base;
    match canary_hash {
        Some(hash) => canary_selector.insert("pod-template-hash".to_string(), hash.to_string()),
        // No canary pods exist: select nothing rather than the stable pods.
        None => canary_selector.insert(TRACK_LABEL.to_string(), "canary".to_string()),
    };
    for (suffix, selector) in [("stable", stable_selector), ("canary", canary_selector)] {
        let name = format!("{}-{suffix}", service.name);
        let object = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": owned_metadata(rollout, &name)?,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": service.port, "targetPort": target_port, "protocol": "TCP"}],
            },
        });
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?;
    }
    Ok(())
}

/// Removes what Sluice created for a rollout (also garbage-collected through ownerReferences,
/// but removed here at once so nothing lingers after a hand-back).
pub async fn delete_owned(client: &kube::Client, rollout: &CanaryRollout) -> Result<(), Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let ignore_missing = |r: Result<_, kube::Error>| match r {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()),
    };
    let params = kube::api::DeleteParams::background();
    ignore_missing(
        deployments
            .delete(&stable_name(&rollout.spec.target_ref.name), &params)
            .await
            .map(|_| ()),
    )?;
    for suffix in ["stable", "canary"] {
        let name = format!("{}-{suffix}", rollout.spec.service.name);
        ignore_missing(services.delete(&name, &params).await.map(|_| ()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(ready: &str, deleting: bool) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.deletion_timestamp = deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH));
        pod.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn only_ready_pods_that_are_not_being_deleted_count() {
        let pods = [
            pod("True", false),
            pod("True", true),
            pod("False", false),
            Pod::default(),
            pod("True", false),
        ];
        assert_eq!(ready_pods(&pods), 2);
        assert_eq!(ready_pods(&[]), 0);
    }
}
