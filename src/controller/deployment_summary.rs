//! What Sluice reads of a Deployment: its metadata, replica count, selector, rollout strategy,
//! status counts and, for a target, its pod template. Read from the Deployment endpoints as its
//! own type: a `k8s_openapi` Deployment takes 2.4 KB before any of its strings and each
//! container 2.1 KB more, and the cache holds two Deployments per rollout. The template is
//! decoded once, while the watch event is read, and kept as its compact JSON with its revision.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentStrategy;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::revision::template_revision;

/// A Deployment with only what Sluice reads; unknown fields are skipped while decoding.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct DeploymentSummary {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DeploymentSummarySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentSummaryStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSummarySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    /// None once dropped from the cache (a stable Deployment's copy is never read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSummaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
}

/// A pod template as the compact JSON of its `k8s_openapi` form, with the revision of that form:
/// the same revision a decoded `PodTemplateSpec` gives, so decoding this way changes no
/// revision Sluice has already written.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateJson {
    json: Box<str>,
    revision: Box<str>,
}

impl TemplateJson {
    pub fn new(template: &PodTemplateSpec) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(template)?;
        Ok(Self {
            revision: template_revision(&value).into(),
            json: value.to_string().into(),
        })
    }

    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Image per container name (init containers excluded).
    pub fn images(&self) -> BTreeMap<String, String> {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&self.json) else {
            return BTreeMap::new();
        };
        let containers = value["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        containers
            .iter()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.to_string(),
                    c["image"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// The template as JSON, to be written into another object.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

impl<'de> Deserialize<'de> for TemplateJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let template = PodTemplateSpec::deserialize(deserializer)?;
        Self::new(&template).map_err(serde::de::Error::custom)
    }
}

impl Serialize for TemplateJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

summary_resource!(DeploymentSummary, "Deployment", "apps", "v1", "deployments");

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::Resource;

    fn full() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "generation": 3,
                         "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "minReadySeconds": 5, "revisionHistoryLimit": 10,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "web:1",
                                           "ports": [{"containerPort": 8080}],
                                           "resources": {"limits": {"cpu": "1"}}}],
                                           "terminationGracePeriodSeconds": 30}}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]},
        })
    }

    #[test]
    fn addresses_the_deployment_endpoints() {
        assert_eq!(
            DeploymentSummary::url_path(&(), Some("shop")),
            Deployment::url_path(&(), Some("shop"))
        );
        assert_eq!(
            DeploymentSummary::api_version(&()),
            Deployment::api_version(&())
        );
        assert_eq!(DeploymentSummary::kind(&()), Deployment::kind(&()));
    }

    /// The revision is the one the full object's template gives (what Sluice wrote before the
    /// summary existed), and the template written back is the full object's, field for field.
    #[test]
    fn keeps_the_template_and_its_revision_as_the_full_object_has_them() {
        let deployment: Deployment = serde_json::from_value(full()).expect("decodes");
        let template = &deployment.spec.as_ref().expect("a spec").template;
        let expected = serde_json::to_value(template).expect("encodes");

        let summary: DeploymentSummary = serde_json::from_value(full()).expect("decodes");
        let spec = summary.spec.as_ref().expect("a spec");
        let kept = spec.template.as_ref().expect("a template");
        assert_eq!(kept.revision(), template_revision(&expected));
        assert_eq!(kept.to_value().expect("parses"), expected);
        assert_eq!(spec.strategy, deployment.spec.as_ref().unwrap().strategy);
        assert_eq!(spec.min_ready_seconds, Some(5));
        assert_eq!(
            summary.status,
            Some(DeploymentSummaryStatus {
                observed_generation: Some(3),
                replicas: Some(2),
                updated_replicas: Some(2),
                ready_replicas: Some(2),
                available_replicas: Some(2),
            })
        );
        let round_trip: DeploymentSummary =
            serde_json::from_value(serde_json::to_value(&summary).expect("encodes"))
                .expect("decodes again");
        assert_eq!(round_trip, summary);
        assert!(size_of::<DeploymentSummary>() < size_of::<Deployment>() / 3);
    }

    #[test]
    fn a_template_that_is_not_one_is_an_error() {
        let mut bad = full();
        bad["spec"]["template"]["spec"]["containers"] = serde_json::json!("web");
        assert!(serde_json::from_value::<DeploymentSummary>(bad).is_err());
    }
}
