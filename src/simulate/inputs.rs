//! The documents of a simulation: one CanaryRollout and the ParityPolicy and SLOBudget it
//! refers to, read from YAML files, kept as JSON values (so `--set` can change them) and turned
//! into typed, validated resources.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::SimulateError;
use crate::api::{CanaryRollout, ParityPolicy, SLOBudget};
use crate::engine::validate::validate_rollout;
use crate::engine::{parity_gate, slo_gate};

/// Namespace of resources whose metadata names none, for `{{namespace}}`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The documents as read, before typing.
#[derive(Clone, Debug, PartialEq)]
pub struct RawDocuments {
    pub rollout: Value,
    pub parity: Option<Value>,
    pub slo: Option<Value>,
}

/// The typed, validated resources a replay runs on.
#[derive(Clone, Debug)]
pub struct Documents {
    pub rollout: CanaryRollout,
    pub parity: Option<ParityPolicy>,
    pub slo: Option<SLOBudget>,
}

impl RawDocuments {
    /// Reads every document of every file; each must be one of the three kinds.
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<Self, SimulateError> {
        let mut documents = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|e| SimulateError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            documents.extend(parse(path, &text)?);
        }
        Self::from_documents(documents)
    }

    /// Sorts `(kind, document)` pairs into the rollout and its policies.
    pub fn from_documents(documents: Vec<(String, Value)>) -> Result<Self, SimulateError> {
        let mut rollouts = Vec::new();
        let (mut parity, mut slo) = (Vec::new(), Vec::new());
        for (kind, document) in documents {
            match kind.as_str() {
                "CanaryRollout" => rollouts.push(document),
                "ParityPolicy" => parity.push(document),
                _ => slo.push(document),
            }
        }
        let rollout = match rollouts.len() {
            0 => return Err(SimulateError::NoRollout),
            1 => rollouts.remove(0),
            _ => {
                let names: Vec<String> = rollouts.iter().map(name_of).collect();
                return Err(SimulateError::SeveralRollouts(names.join(", ")));
            }
        };
        let analysis = &rollout["spec"]["analysis"];
        let parity = referenced(analysis, parity, "ParityPolicy", "parityPolicyRef")?;
        let slo = referenced(analysis, slo, "SLOBudget", "sloBudgetRef")?;
        Ok(Self {
            rollout,
            parity,
            slo,
        })
    }

    /// Types and validates the documents the way the operator would before a rollout.
    pub fn typed(&self) -> Result<Documents, SimulateError> {
        let mut rollout: CanaryRollout = typed("CanaryRollout", &self.rollout)?;
        let namespace = rollout
            .metadata
            .namespace
            .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string())
            .clone();
        let mut parity_policy: Option<ParityPolicy> = self
            .parity
            .as_ref()
            .map(|d| typed("ParityPolicy", d))
            .transpose()?;
        let mut slo_budget: Option<SLOBudget> = self
            .slo
            .as_ref()
            .map(|d| typed("SLOBudget", d))
            .transpose()?;
        if let Some(policy) = &mut parity_policy {
            policy.metadata.namespace = Some(namespace.clone());
        }
        if let Some(budget) = &mut slo_budget {
            budget.metadata.namespace = Some(namespace.clone());
        }
        let mut problems = validate_rollout(&rollout.spec);
        problems.extend(parity_policy.iter().flat_map(parity_gate::problems));
        problems.extend(slo_budget.iter().flat_map(slo_gate::problems));
        if !problems.is_empty() {
            return Err(SimulateError::InvalidSpec(problems));
        }
        rollout.status = None;
        Ok(Documents {
            rollout,
            parity: parity_policy,
            slo: slo_budget,
        })
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<(String, Value)>, SimulateError> {
    let yaml_error = |reason: String| SimulateError::Yaml {
        path: path.to_path_buf(),
        reason,
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| yaml_error(e.to_string()))?;
    let mut kinds = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        if !matches!(
            kind.as_str(),
            "CanaryRollout" | "ParityPolicy" | "SLOBudget"
        ) {
            let kind = if kind.is_empty() {
                "(none)".to_string()
            } else {
                kind
            };
            return Err(SimulateError::UnknownKind {
                path: path.to_path_buf(),
                kind,
            });
        }
        kinds.push((kind, document));
    }
    Ok(kinds)
}

fn name_of(document: &Value) -> String {
    document["metadata"]["name"]
        .as_str()
        .unwrap_or("(unnamed)")
        .to_string()
}

/// The document the rollout's `spec.analysis.<field>` names, when it names one; every document
/// given must be the one named.
fn referenced(
    analysis: &Value,
    documents: Vec<Value>,
    kind: &'static str,
    field: &'static str,
) -> Result<Option<Value>, SimulateError> {
    let wanted = analysis[field]["name"].as_str();
    let mut found = None;
    for document in documents {
        let name = name_of(&document);
        if Some(name.as_str()) != wanted || found.is_some() {
            return Err(SimulateError::Unreferenced { kind, name, field });
        }
        found = Some(document);
    }
    match (wanted, found) {
        (Some(name), None) => Err(SimulateError::MissingReference {
            kind,
            name: name.to_string(),
        }),
        (_, found) => Ok(found),
    }
}

fn typed<T: DeserializeOwned>(kind: &'static str, document: &Value) -> Result<T, SimulateError> {
    serde_json::from_value(document.clone()).map_err(|e| SimulateError::Document {
        kind,
        name: name_of(document),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLOUT: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {name: checkout}
spec:
  targetRef: {kind: Deployment, name: checkout}
  service: {name: checkout, port: 80}
  trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
  analysis:
    interval: 30s
    checks:
    - {name: error-rate, query: 'sum(rate(errors_total[1m]))', max: 0.01}
    parityPolicyRef: {name: checkout-parity}
"#;

    fn documents(text: &str) -> Result<RawDocuments, SimulateError> {
        RawDocuments::from_documents(parse(Path::new("test.yaml"), text)?)
    }

    #[test]
    fn a_kind_that_cannot_be_simulated_is_named() {
        let error = documents("kind: Deployment\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "test.yaml: kind \"Deployment\" cannot be simulated; expected CanaryRollout, ParityPolicy or SLOBudget"
        );
    }

    #[test]
    fn a_referenced_policy_must_be_given() {
        let error = documents(ROLLOUT).unwrap_err();
        assert_eq!(
            error,
            SimulateError::MissingReference {
                kind: "ParityPolicy",
                name: "checkout-parity".into()
            }
        );
    }

    #[test]
    fn a_policy_the_rollout_does_not_name_is_rejected() {
        let text = ROLLOUT.replace("    parityPolicyRef: {name: checkout-parity}\n", "")
            + "---\nkind: SLOBudget\nmetadata: {name: other}\nspec: {objectives: []}\n";
        let error = documents(&text).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("SLOBudget \"other\" is not referenced"),
            "{error}"
        );
    }

    #[test]
    fn a_spec_problem_is_reported_with_the_engines_words() {
        let text = ROLLOUT
            .replace("    parityPolicyRef: {name: checkout-parity}\n", "")
            .replace(
                "trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}",
                "trafficRouting: {}",
            );
        let error = documents(&text).unwrap().typed().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("exactly one of gatewayAPI or replicas"),
            "{error}"
        );
    }

    #[test]
    fn the_default_namespace_fills_in_for_a_rollout_without_one() {
        let text = ROLLOUT.replace("    parityPolicyRef: {name: checkout-parity}\n", "");
        let typed = documents(&text).unwrap().typed().unwrap();
        assert_eq!(typed.rollout.metadata.namespace.as_deref(), Some("default"));
    }
}
