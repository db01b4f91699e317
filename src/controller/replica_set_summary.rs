//! What Sluice reads of a ReplicaSet: its metadata (owner, revision, pod-template-hash) and two
//! status figures. Read from the ReplicaSet endpoints as its own type, so that neither the
//! watch nor the cache ever builds the pod template: a `k8s_openapi` ReplicaSet takes about
//! 2.3 KB before its strings even with its template empty, and the cache holds several per
//! rollout.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A ReplicaSet with only what Sluice reads; unknown fields are skipped while decoding.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ReplicaSetSummary {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetSummaryStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSummaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}

summary_resource!(ReplicaSetSummary, "ReplicaSet", "apps", "v1", "replicasets");

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::Resource;

    #[test]
    fn addresses_the_replica_set_endpoints() {
        assert_eq!(
            ReplicaSetSummary::url_path(&(), Some("shop")),
            ReplicaSet::url_path(&(), Some("shop"))
        );
        assert_eq!(
            ReplicaSetSummary::api_version(&()),
            ReplicaSet::api_version(&())
        );
        assert_eq!(ReplicaSetSummary::kind(&()), ReplicaSet::kind(&()));
    }

    #[test]
    fn decodes_a_full_replica_set_keeping_what_is_read() {
        let full = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d9c", "namespace": "shop", "generation": 3,
                         "labels": {"pod-template-hash": "5d9c"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 3},
        });
        let summary: ReplicaSetSummary = serde_json::from_value(full).expect("decodes");
        assert_eq!(summary.metadata.generation, Some(3));
        assert_eq!(
            summary.status,
            Some(ReplicaSetSummaryStatus {
                observed_generation: Some(3),
                ready_replicas: Some(2)
            })
        );
        assert!(std::mem::size_of::<ReplicaSetSummary>() < std::mem::size_of::<ReplicaSet>() / 3);
    }
}
