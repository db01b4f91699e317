//! Writes every reconciler makes on its own object: its status and its events.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

use super::Context;
use super::error::Error;
use super::workloads::FIELD_MANAGER;
use crate::engine::PlannedEvent;

/// Server-side apply of the whole status (so fields that were cleared disappear too), skipped
/// when nothing changed, to keep reconciles from feeding themselves.
pub async fn apply_status<K, S>(ctx: &Context, object: &K, old: &S, new: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Serialize + PartialEq,
{
    if old == new {
        return Ok(());
    }
    let namespace = object.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": new});
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Records an event on `object`; a failure to record is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    warning: bool,
    reason: &str,
    note: &str,
) {
    let event = KubeEvent {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder()
        .publish(&event, &object.object_ref(&()))
        .await
    {
        warn!(object = %object.name_any(), reason, "event not recorded: {error}");
    }
    ctx.notify(&K::kind(&()), object.meta(), warning, reason, note);
}

/// Records a plan's events on `object`, in order.
pub async fn publish_planned<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    events: &[PlannedEvent],
) {
    for event in events {
        publish(ctx, object, event.warning, event.reason, &event.note).await;
    }
}

/// After a failed reconcile of `object`: counts and logs the error, and returns how long the
/// object waits before its next try (per-object backoff).
pub fn retry_after_error<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    controller: &'static str,
    object: &K,
    error: &Error,
) -> std::time::Duration {
    ctx.metrics.record_error(controller, error.category());
    let delay = ctx.backoff.failed(&ObjectRef::from_obj(object).erase());
    warn!(controller, object = %object.name_any(), namespace = object.namespace().unwrap_or_default(), category = error.category(), retry_in = ?delay, "reconcile failed: {error}");
    delay
}
