//! The custom resources of group `sluice.dev/v1alpha1`, one file per kind.

pub mod canary_rollout;
pub mod conditions;
pub mod delivery_freeze;
pub mod duration;
pub mod evidence;
pub mod notification;
pub mod parity_policy;
pub mod prometheus;
pub mod release_pipeline;
pub mod slo_budget;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use canary_rollout::{CanaryRollout, CanaryRolloutSpec, CanaryRolloutStatus};
pub use delivery_freeze::{DeliveryFreeze, DeliveryFreezeSpec, DeliveryFreezeStatus};
pub use duration::Duration;
pub use notification::{Notification, NotificationSpec, NotificationStatus};
pub use parity_policy::{ParityPolicy, ParityPolicySpec, ParityPolicyStatus};
pub use release_pipeline::{ReleasePipeline, ReleasePipelineSpec, ReleasePipelineStatus};
pub use slo_budget::{SLOBudget, SLOBudgetSpec, SLOBudgetStatus};

/// All CRDs, in the order they are written to crds/.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CanaryRollout::crd(),
        ParityPolicy::crd(),
        SLOBudget::crd(),
        ReleasePipeline::crd(),
        DeliveryFreeze::crd(),
        Notification::crd(),
    ]
}

/// Each CRD as (file name under crds/, YAML), as `sluice crd --out-dir` writes them.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_saphyr::ser::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"));
            Ok((name, serde_saphyr::to_string(&crd)?))
        })
        .collect()
}

/// The CRDs as one multi-document YAML stream, as `sluice crd` prints it.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for (_, yaml) in crd_files()? {
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parity_policy::ParityLevel;
    use super::slo_budget::ObjectiveState;

    #[test]
    fn level_names_are_the_serialised_names() {
        use ParityLevel as P;
        for level in [
            P::Pass,
            P::Warning,
            P::Critical,
            P::Emergency,
            P::Insufficient,
        ] {
            assert_eq!(serde_json::json!(level), level.as_str());
            assert_eq!(level.to_string(), level.as_str());
        }
        use ObjectiveState as S;
        for state in [S::Meeting, S::AtRisk, S::Violated, S::Critical, S::Unknown] {
            assert_eq!(serde_json::json!(state), state.as_str());
            assert_eq!(state.to_string(), state.as_str());
        }
    }
}
