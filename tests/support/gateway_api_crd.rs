//! The upstream HTTPRoute schema (Gateway API v1.5.1, standard channel), as the kube-rs
//! `gateway-api` bindings generate it, made acceptable to Kubernetes 1.20.
//!
//! With it the apiserver prunes every field the Gateway API does not define, so a route Sluice
//! writes must be one the real schema keeps (a `requestMirror.percent` included).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

/// `*.k8s.io` groups are protected: the apiserver wants the API review this group went through.
const API_APPROVAL: &str = "https://github.com/kubernetes-sigs/gateway-api/pull/1538";

pub fn upstream_httproute_crd() -> CustomResourceDefinition {
    let crd = gateway_api::apis::standard::httproutes::HttpRoute::crd();
    let mut value = serde_json::to_value(&crd).expect("the CRD serialises");
    value["metadata"]["annotations"]["api-approved.kubernetes.io"] = API_APPROVAL.into();
    // Kubernetes 1.20 compares the schema of each version after a round trip that does not keep
    // a null in an enum, and refuses the CRD; `nullable: true` already allows null there.
    drop_null_enum_values(&mut value);
    default_backend_kind(&mut value);
    serde_json::from_value(value).expect("still a CRD")
}

/// The upstream schema defaults a backend reference's `kind` to Service; the bindings' schema
/// carries no defaults.
fn default_backend_kind(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::Object(properties)) = fields.get_mut("properties")
                && ["name", "port", "kind"]
                    .iter()
                    .all(|k| properties.contains_key(*k))
            {
                properties["kind"]["default"] = "Service".into();
            }
            fields.values_mut().for_each(default_backend_kind);
        }
        Value::Array(items) => items.iter_mut().for_each(default_backend_kind),
        _ => {}
    }
}

fn drop_null_enum_values(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if let Some(Value::Array(values)) = fields.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            fields.values_mut().for_each(drop_null_enum_values);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_enum_values),
        _ => {}
    }
}
