//! The template variables of a rollout's queries.

use crate::api::CanaryRollout;
use crate::metrics::TemplateVars;

/// Template variables of a rollout, for the given track.
pub fn template_vars(
    rollout: &CanaryRollout,
    track: &str,
    pod_template_hash: Option<&str>,
) -> TemplateVars {
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    TemplateVars::new()
        .set(
            "namespace",
            rollout.metadata.namespace.clone().unwrap_or_default(),
        )
        .set("target", spec.target_ref.name.clone())
        .set("service", spec.service.name.clone())
        .set("interval", spec.analysis.interval.to_string())
        .set("track", track)
        .set("canaryRevision", status.canary_revision.unwrap_or_default())
        .set("stableRevision", status.stable_revision.unwrap_or_default())
        .set("podTemplateHash", pod_template_hash.unwrap_or_default())
}
