//! What Sluice reads of the Services it manages: metadata, selector and ports. Read from the
//! Service endpoints as its own type, so that the cache holds neither the cluster IPs, IP
//! families and other defaults the apiserver fills in, nor the status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A Service with only what Sluice reads; unknown fields are skipped while decoding.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ServiceSummary {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSummarySpec>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ServiceSummarySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
}

summary_resource!(ServiceSummary, "Service", "", "v1", "services");

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::Resource;

    #[test]
    fn addresses_the_service_endpoints() {
        assert_eq!(
            ServiceSummary::url_path(&(), Some("shop")),
            Service::url_path(&(), Some("shop"))
        );
        assert_eq!(ServiceSummary::api_version(&()), Service::api_version(&()));
        assert_eq!(ServiceSummary::kind(&()), Service::kind(&()));
    }

    #[test]
    fn decodes_a_full_service_keeping_selector_and_ports() {
        let full = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-stable", "namespace": "shop",
                         "labels": {"sluice.dev/rollout": "web"}},
            "spec": {"selector": {"app": "web", "sluice.dev/track": "stable"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}],
                     "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "sessionAffinity": "None", "type": "ClusterIP"},
            "status": {"loadBalancer": {}},
        });
        let service: Service = serde_json::from_value(full.clone()).expect("decodes");
        let summary: ServiceSummary = serde_json::from_value(full).expect("decodes");
        let (spec, kept) = (service.spec.unwrap(), summary.spec.unwrap());
        assert_eq!(kept.selector, spec.selector);
        assert_eq!(kept.ports, spec.ports);
        assert_eq!(summary.metadata, service.metadata);
    }
}
