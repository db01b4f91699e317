//! Every query a replay will ask, rendered, so a recording can be checked before any replay:
//! a query with no recorded series is bad input, not a silent "no data" hold.
//!
//! Range lengths vary during a replay (`{{window}}` over the burn-rate windows, cut to the
//! canary's age); the series a query selects do not, so each query is rendered once per track
//! with the longest window.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::inputs::Documents;
use super::world::{CANARY_REVISION, STABLE_REVISION};
use crate::api::{CanaryRollout, CanaryRolloutStatus};
use crate::engine::slo_gate::service_vars;
use crate::gather::template_vars;
use crate::metrics::{TemplateError, render};

/// The distinct rendered queries of the rollout, its parity policy and its SLO budget, sorted.
pub fn rendered_queries(documents: &Documents) -> Result<Vec<String>, TemplateError> {
    let mut rollout: CanaryRollout = documents.rollout.clone();
    rollout.status = Some(CanaryRolloutStatus {
        stable_revision: Some(STABLE_REVISION.to_string()),
        canary_revision: Some(CANARY_REVISION.to_string()),
        ..CanaryRolloutStatus::default()
    });
    let canary = template_vars(&rollout, "canary", Some(CANARY_REVISION));
    let stable = template_vars(&rollout, "stable", None);
    let analysis = &rollout.spec.analysis;
    let mut queries = BTreeSet::new();
    if let Some(query) = &analysis.sample_count_query {
        queries.insert(render(query, &canary)?);
    }
    for check in &analysis.checks {
        queries.insert(render(&check.query, &canary)?);
        if check.is_relative() {
            queries.insert(render(&check.query, &stable)?);
        }
    }
    if let Some(policy) = &documents.parity {
        let spec = &policy.spec;
        let statistics = spec.statistics.iter().flat_map(|s| [&s.good, &s.total]);
        let templates = spec
            .query
            .iter()
            .chain(spec.components.iter().map(|c| &c.query))
            .chain(statistics.flatten());
        for template in templates {
            queries.insert(render(template, &canary)?);
            queries.insert(render(template, &stable)?);
        }
    }
    if let Some(budget) = &documents.slo {
        let spec = &budget.spec;
        let window = spec.window.to_string();
        let namespace = rollout.namespace().unwrap_or_default();
        let service = service_vars(&namespace, spec.window);
        let canary = canary.clone().set("window", window);
        for objective in &spec.objectives {
            for template in [&objective.good, &objective.total] {
                queries.insert(render(template, &service)?);
                queries.insert(render(template, &canary)?);
            }
        }
    }
    Ok(queries.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::inputs::RawDocuments;

    #[test]
    fn every_query_is_rendered_for_each_track_it_is_asked_on() {
        let rollout = serde_json::json!({
            "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {
                "targetRef": {"kind": "Deployment", "name": "checkout"},
                "service": {"name": "checkout", "port": 80},
                "trafficRouting": {"replicas": {}},
                "analysis": {
                    "interval": "30s",
                    "sampleCountQuery": "sum(increase(requests_total{namespace=\"{{namespace}}\",track=\"canary\"}[{{interval}}]))",
                    "checks": [
                        {"name": "errors", "query": "sum(rate(errors_total{track=\"{{track}}\"}[1m]))", "max": 0.01},
                        {"name": "latency", "query": "sum(latency{track=\"{{track}}\"})", "maxIncrease": 0.1}
                    ],
                    "sloBudgetRef": {"name": "slo"}
                }
            }
        });
        let budget = serde_json::json!({
            "kind": "SLOBudget",
            "metadata": {"name": "slo"},
            "spec": {
                "window": "30d",
                "objectives": [{
                    "name": "availability", "target": 99.5,
                    "good": "sum(rate(ok_total{track=~\"{{track}}\"}[{{window}}]))",
                    "total": "sum(rate(all_total{track=~\"{{track}}\"}[{{window}}]))"
                }]
            }
        });
        let raw = RawDocuments::from_documents(vec![
            ("CanaryRollout".into(), rollout),
            ("SLOBudget".into(), budget),
        ])
        .unwrap();
        let queries = rendered_queries(&raw.typed().unwrap()).unwrap();
        assert_eq!(
            queries,
            [
                "sum(increase(requests_total{namespace=\"shop\",track=\"canary\"}[30s]))",
                "sum(latency{track=\"canary\"})",
                "sum(latency{track=\"stable\"})",
                "sum(rate(all_total{track=~\".*\"}[30d]))",
                "sum(rate(all_total{track=~\"canary\"}[30d]))",
                "sum(rate(errors_total{track=\"canary\"}[1m]))",
                "sum(rate(ok_total{track=~\".*\"}[30d]))",
                "sum(rate(ok_total{track=~\"canary\"}[30d]))",
            ]
        );
    }
}
