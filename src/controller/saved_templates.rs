//! The pod templates of a rollout's current and previous stable revisions, kept as
//! ControllerRevisions `<rollout>-<revision>` owned by the rollout, so that a promotion a
//! ReleasePipeline revokes can be undone. Two are kept: the one a revert would put back, and the
//! current one (the previous of the next promotion); older ones are deleted as they drop out.

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::Context;
use super::deployment_summary::DeploymentSummary;
use super::error::Error;
use super::workloads::{FIELD_MANAGER, owned_metadata};
use crate::api::CanaryRollout;

fn name(rollout: &CanaryRollout, revision: &str) -> String {
    format!("{}-{revision}", rollout.name_any())
}

fn api(ctx: &Context, rollout: &CanaryRollout) -> Result<Api<ControllerRevision>, Error> {
    let namespace = rollout.namespace().ok_or(Error::MissingNamespace)?;
    Ok(Api::namespaced(ctx.client.clone(), &namespace))
}

/// Keeps the target's template as revision `revision`, before it becomes stable.
pub async fn save(
    ctx: &Context,
    rollout: &CanaryRollout,
    target: &DeploymentSummary,
    revision: &str,
) -> Result<(), Error> {
    let Some(template) = target.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return Ok(());
    };
    let name = name(rollout, revision);
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": owned_metadata(rollout, &name)?,
        // ControllerRevision numbers order the revisions; the time of saving does.
        "revision": jiff::Timestamp::now().as_second(),
        "data": template.to_value()?,
    });
    api(ctx, rollout)?
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?;
    Ok(())
}

/// The template kept for `revision`. Read when a revert needs it, which is rare: these objects
/// are not cached.
pub async fn read(
    ctx: &Context,
    rollout: &CanaryRollout,
    revision: &str,
) -> Result<serde_json::Value, Error> {
    let name = name(rollout, revision);
    let saved = api(ctx, rollout)?.get_opt(&name).await?;
    saved.and_then(|r| r.data.map(|d| d.0)).ok_or_else(|| {
        Error::Invalid(format!(
            "no saved template for revision {revision} (ControllerRevision {name})"
        ))
    })
}

/// Deletes the templates of `revisions` (the plan's: neither stable nor previous any more).
pub async fn forget(
    ctx: &Context,
    rollout: &CanaryRollout,
    revisions: &[String],
) -> Result<(), Error> {
    for revision in revisions {
        let name = name(rollout, revision);
        match api(ctx, rollout)?
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
