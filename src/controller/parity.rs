//! Writes what a rollout's parity evaluation found into the ParityPolicy's status. The status
//! itself is decided by `engine::parity_policy::record`.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::error::Error;
use super::workloads::FIELD_MANAGER;
use crate::api::parity_policy::ParityPolicy;
use crate::engine::parity::ParityReport;
use crate::engine::parity_policy;

/// Records an evaluation in the policy's status: lastEvaluation, the last 30, the breach count.
pub async fn record(
    client: &kube::Client,
    policy: &ParityPolicy,
    report: &ParityReport,
) -> Result<(), Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ParityPolicy> = Api::namespaced(client.clone(), &namespace);
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    parity_policy::record(&mut status, report);
    let patch =
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ParityPolicy", "status": status});
    api.patch_status(
        &policy.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}
