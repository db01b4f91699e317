//! Deployments and Services: observing them for the engine and building what Sluice owns.
//!
//! The user's Deployment is never given an ownerReference and only ever has `spec.replicas`
//! changed (merge patch: Sluice owns that field by design while a CanaryRollout exists). The
//! stable Deployment and the two Services are Sluice's own, applied server-side with force.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::deployment_summary::DeploymentSummary;
use super::error::Error;
use super::replica_set_summary::ReplicaSetSummary;
use super::service_summary::ServiceSummary;
use crate::api::CanaryRollout;
use crate::engine::Workload;
use crate::engine::revision::template_revision;

pub const FIELD_MANAGER: &str = "sluice";
pub const TRACK_LABEL: &str = "sluice.dev/track";
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

pub fn stable_name(target: &str) -> String {
    format!("{target}-stable")
}

/// The revision of the target's pod template (see [`super::deployment_summary::TemplateJson`]).
pub fn target_revision(target: &DeploymentSummary) -> String {
    match target.spec.as_ref().and_then(|s| s.template.as_ref()) {
        Some(template) => template.revision().to_string(),
        None => template_revision(&serde_json::Value::Null),
    }
}

/// What the engine needs to know of a Deployment.
pub fn observe(deployment: &DeploymentSummary, revision: String) -> Workload {
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

pub fn stable_revision(stable: &DeploymentSummary) -> String {
    stable
        .annotations()
        .get(REVISION_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

pub fn owned_metadata(rollout: &CanaryRollout, name: &str) -> Result<serde_json::Value, Error> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingNamespace)?;
    Ok(json!({
        "name": name,
        "labels": {MANAGED_BY_LABEL: "sluice", ROLLOUT_LABEL: rollout.name_any()},
        "ownerReferences": [owner],
    }))
}

pub fn match_labels(target: &DeploymentSummary) -> BTreeMap<String, String> {
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
    target: &DeploymentSummary,
    revision: &str,
    replicas: i32,
) -> Result<(), Error> {
    let template = match target.spec.as_ref().and_then(|s| s.template.as_ref()) {
        Some(template) => template.to_value()?,
        None => serde_json::json!({}),
    };
    apply_stable_template(api, rollout, target, template, revision, replicas).await
}

/// The stable Deployment carrying `template` (the target's, or an earlier stable one put back)
/// with the track label added; selector, strategy and readiness come from the target.
pub async fn apply_stable_template(
    api: &Api<Deployment>,
    rollout: &CanaryRollout,
    target: &DeploymentSummary,
    mut template: serde_json::Value,
    revision: &str,
    replicas: i32,
) -> Result<(), Error> {
    let name = stable_name(&target.name_any());
    let spec = target.spec.clone().unwrap_or_default();
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

/// The annotation in which the deployment controller numbers a Deployment's ReplicaSets.
pub const REPLICA_SET_REVISION: &str = "deployment.kubernetes.io/revision";

/// Among `sets`, the one `deployment` owns with the highest revision: the one running its
/// current template.
pub fn newest_replica_set<R: std::borrow::Borrow<ReplicaSetSummary>>(
    deployment: &impl Resource,
    sets: impl IntoIterator<Item = R>,
) -> Option<R> {
    let uid = deployment.uid()?;
    let revision = |set: &ReplicaSetSummary| {
        set.annotations()
            .get(REPLICA_SET_REVISION)
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    sets.into_iter()
        .filter(|set| {
            let set = set.borrow();
            set.namespace() == deployment.namespace()
                && set.owner_references().iter().any(|o| o.uid == uid)
        })
        .max_by_key(|set| revision(set.borrow()))
}

/// The pod-template-hash of the target's newest ReplicaSet: what tells canary pods apart from
/// stable ones without touching the user's template.
pub fn pod_template_hash(newest: Option<&ReplicaSetSummary>) -> Option<String> {
    newest.and_then(|set| set.labels().get("pod-template-hash").cloned())
}

/// Labels the canary's pods `sluice.dev/track: canary` (the pods, not the user's template), so
/// queries and relabelling can tell the tracks apart as they can for stable pods. `pods` are the
/// unlabelled ones the cache shows; a labelled pod leaves that cache.
pub async fn label_canary_pods(
    client: &kube::Client,
    namespace: &str,
    pods: &[String],
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"labels": {TRACK_LABEL: "canary"}}});
    for pod in pods {
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
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
/// its latest spec and reports as many ready pods as the workload has replicas.
///
/// The Deployment's status is summed from ReplicaSet statuses, which for a moment after a
/// scale-down still count the pods being deleted: scaled 3 → 0 → 3, it can report 3 available
/// replicas while none is running. The ReplicaSet's own status, once it reports the generation
/// of its latest replica count, counts only active pods (not those being deleted).
pub fn confirm_available(workload: Workload, newest: Option<&ReplicaSetSummary>) -> Workload {
    if !workload.available || workload.replicas <= 0 {
        return workload;
    }
    let (settled, ready) = match newest {
        Some(set) => {
            let status = set.status.as_ref();
            let settled = status.and_then(|s| s.observed_generation) >= set.metadata.generation;
            (settled, status.and_then(|s| s.ready_replicas).unwrap_or(0))
        }
        None => (false, 0),
    };
    if settled && ready >= workload.replicas {
        workload
    } else {
        Workload {
            available: false,
            ready_replicas: ready,
            ..workload
        }
    }
}

/// `<service>-stable` and `<service>-canary`, selecting each track's pods; each is applied only
/// when `observed` (the cache) shows it missing or different.
pub async fn apply_services(
    client: &kube::Client,
    rollout: &CanaryRollout,
    target: &DeploymentSummary,
    canary_hash: Option<&str>,
    observed: impl Fn(&str) -> Option<std::sync::Arc<ServiceSummary>>,
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
        if observed(&name).is_some_and(|existing| {
            service_matches(&existing, rollout, &selector, service.port, target_port)
        }) {
            continue;
        }
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

/// Whether an existing Service already says what [`apply_services`] would write.
fn service_matches(
    existing: &ServiceSummary,
    rollout: &CanaryRollout,
    selector: &BTreeMap<String, String>,
    port: i32,
    target_port: i32,
) -> bool {
    let owned = existing
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == rollout.uid().as_ref() && o.controller == Some(true));
    let labelled = existing.labels().get(ROLLOUT_LABEL) == Some(&rollout.name_any())
        && existing.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some("sluice");
    let spec = existing.spec.as_ref();
    let ports_match = spec.and_then(|s| s.ports.as_deref()).is_some_and(|ports| {
        matches!(ports, [only] if only.name.as_deref() == Some("http")
            && only.port == port
            && only.protocol.as_deref().unwrap_or("TCP") == "TCP"
            && only.target_port == Some(IntOrString::Int(target_port)))
    });
    owned && labelled && ports_match && spec.and_then(|s| s.selector.as_ref()) == Some(selector)
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

/// Sets the images of named containers of a Deployment's pod template (a ReleasePipeline's
/// push); a strategic merge patch leaves every other field of the containers alone.
pub async fn set_images(
    api: &Api<Deployment>,
    name: &str,
    images: &std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let containers: Vec<serde_json::Value> = images
        .iter()
        .map(|(container, image)| json!({"name": container, "image": image}))
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::replica_set_summary::ReplicaSetSummaryStatus;

    fn replica_set(generation: i64, observed: Option<i64>, ready: i32) -> ReplicaSetSummary {
        let mut set = ReplicaSetSummary::default();
        set.metadata.generation = Some(generation);
        set.status = Some(ReplicaSetSummaryStatus {
            observed_generation: observed,
            ready_replicas: Some(ready),
        });
        set
    }

    fn available(replicas: i32) -> Workload {
        Workload {
            revision: "r".into(),
            replicas,
            ready_replicas: replicas,
            available: true,
        }
    }

    #[test]
    fn availability_needs_a_settled_newest_replica_set_with_enough_ready_pods() {
        let confirmed = |set: Option<&ReplicaSetSummary>| confirm_available(available(3), set);
        assert!(confirmed(Some(&replica_set(4, Some(4), 3))).available);
        // Not yet acted on its latest replica count: the pods it counts may be going away.
        assert!(!confirmed(Some(&replica_set(4, Some(3), 3))).available);
        let short = confirmed(Some(&replica_set(4, Some(4), 1)));
        assert!(!short.available);
        assert_eq!(short.ready_replicas, 1);
        assert!(!confirmed(None).available);
        // Nothing to confirm for a workload already unavailable or scaled to 0.
        assert!(confirm_available(available(0), None).available);
    }

    fn owned_set(owner: &str, namespace: &str, revision: &str) -> ReplicaSetSummary {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("{owner}-{revision}"), "namespace": namespace,
                "annotations": {REPLICA_SET_REVISION: revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "checkout", "uid": owner}],
            },
        }))
        .expect("replica set")
    }

    #[test]
    fn the_newest_replica_set_is_the_owned_one_with_the_highest_revision() {
        let mut deployment = Deployment::default();
        deployment.metadata.uid = Some("u1".into());
        deployment.metadata.namespace = Some("shop".into());
        let sets = [
            owned_set("u1", "shop", "2"),
            owned_set("u1", "shop", "10"),
            owned_set("u2", "shop", "11"),
            owned_set("u1", "cart", "12"),
        ];
        let newest = newest_replica_set(&deployment, sets.iter()).expect("one is owned");
        assert_eq!(newest.metadata.name.as_deref(), Some("u1-10"));
        assert!(newest_replica_set(&Deployment::default(), sets.iter()).is_none());
    }
}
