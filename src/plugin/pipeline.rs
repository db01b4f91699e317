//! `kubectl sluice pipeline NAME`: a ReleasePipeline as the release × environment matrix, the
//! risk each release spent against its budgets, and in words why each release waits. Pure.

use jiff::Timestamp;

use super::format::{age_since, number, table};
use crate::api::release_pipeline::{
    Environment, EnvironmentRelease, ReleasePhase, ReleasePipeline, ReleaseStatus,
};

pub fn pipeline_matrix(pipeline: &ReleasePipeline, now: Timestamp) -> String {
    let spec = &pipeline.spec;
    let status = pipeline.status.clone().unwrap_or_default();
    let names: Vec<&str> = spec.environments.iter().map(|e| e.name.as_str()).collect();
    let mut out = format!(
        "ReleasePipeline {} ({}): {}\n",
        pipeline.metadata.name.as_deref().unwrap_or("NAME"),
        pipeline.metadata.namespace.as_deref().unwrap_or("default"),
        names.join(" → ")
    );
    if let Some(stalled) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.is_true())
    {
        out.push_str(&format!("Stalled: {}\n", stalled.message));
    }
    if status.releases.is_empty() {
        out.push_str("\nNo release seen yet.\n");
        return out;
    }
    let mut headers = vec!["RELEASE"];
    let upper: Vec<String> = names.iter().map(|n| n.to_uppercase()).collect();
    headers.extend(upper.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = status
        .releases
        .iter()
        .map(|release| {
            let mut row = vec![release.name.clone()];
            row.extend(spec.environments.iter().map(|env| cell(release, env, now)));
            row
        })
        .collect();
    out.push('\n');
    out.push_str(&table(&headers, &rows));

    let mut risk = Vec::new();
    let mut why = Vec::new();
    for release in &status.releases {
        for env in &spec.environments {
            let Some(entry) = release.environments.iter().find(|e| e.name == env.name) else {
                continue;
            };
            if let Some(spent) = risk_line(env, entry) {
                risk.push(format!("  {} in {}: {spent}", release.name, env.name));
            }
            if !entry.message.is_empty() && entry.phase != ReleasePhase::Promoted {
                why.push(format!(
                    "  {} in {}: {}",
                    release.name, env.name, entry.message
                ));
            }
        }
    }
    if !risk.is_empty() {
        out.push_str("\nRisk spent:\n");
        out.push_str(&(risk.join("\n") + "\n"));
    }
    if !why.is_empty() {
        out.push_str("\nWhy:\n");
        out.push_str(&(why.join("\n") + "\n"));
    }
    out
}

/// "Soaking 3d of 7d", "Verified 2h", "-" where the release has not come.
fn cell(release: &ReleaseStatus, env: &Environment, now: Timestamp) -> String {
    let Some(entry) = release.environments.iter().find(|e| e.name == env.name) else {
        return "-".to_string();
    };
    match (entry.phase, &entry.soak) {
        (ReleasePhase::Soaking, Some(soak)) => format!("Soaking {soak}"),
        (phase, _) => format!("{phase} {}", age_since(Some(entry.since), now)),
    }
}

/// Spent against the budget, for each part of the budget that has a figure.
fn risk_line(env: &Environment, entry: &EnvironmentRelease) -> Option<String> {
    let budget = &env.risk_budget;
    let spent = &entry.risk_spent;
    let of = |max: Option<String>| max.map_or(String::new(), |m| format!(" of {m}"));
    let mut parts = Vec::new();
    if let Some(weight) = spent.canary_weight {
        let max = budget.max_canary_weight.map(|m| format!("{m}%"));
        parts.push(format!("canary weight {weight}%{}", of(max)));
    }
    if let Some(burnt) = spent.error_budget {
        let max = budget.max_error_budget_spend.map(number);
        parts.push(format!("error budget {}{}", number(burnt), of(max)));
    }
    if let Some(shortfall) = spent.shortfall {
        let unit = budget
            .shortfall
            .as_ref()
            .and_then(|s| s.unit.clone())
            .map_or(String::new(), |u| format!(" {u}"));
        let max = budget
            .shortfall
            .as_ref()
            .map(|s| format!("{}{unit}", number(s.max)));
        parts.push(format!("shortfall {}{unit}{}", number(shortfall), of(max)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: ReleasePipeline
metadata: {name: checkout, namespace: shop}
spec:
  release: {containers: [app]}
  environments:
  - {name: staging, rolloutRef: {name: checkout-staging}, soak: 7d, riskBudget: {maxCanaryWeight: 1, maxErrorBudgetSpend: 0.01}}
  - {name: production, rolloutRef: {name: checkout}, promotion: Push, riskBudget: {maxCanaryWeight: 5, shortfall: {query: q, max: 1000, unit: USD}}}
status:
  releases:
  - name: checkout:2.1
    images: {app: registry/checkout:2.1}
    firstSeen: "2026-11-30T08:00:00Z"
    environments:
    - {name: staging, phase: Soaking, since: "2026-11-30T09:00:00Z", soak: 3d of 7d, riskSpent: {canaryWeight: 1, errorBudget: 0.002}, message: soaked 3d of 7d}
    - {name: production, phase: Waiting, since: "2026-11-30T08:00:00Z", message: checkout:2.1 has soaked 3d of 7d in staging}
  - name: checkout:2.0
    images: {app: registry/checkout:2.0}
    firstSeen: "2026-11-20T08:00:00Z"
    environments:
    - {name: staging, phase: Verified, since: "2026-11-27T08:00:00Z", message: soaked 7d and verified}
    - {name: production, phase: Promoted, since: "2026-11-28T08:00:00Z", riskSpent: {canaryWeight: 5, shortfall: 12.5}, message: promoted; no soak here}
"#;

    #[test]
    fn the_matrix_shows_phases_risk_and_why_each_release_waits() {
        let pipeline: ReleasePipeline = serde_saphyr::from_str(PIPELINE).unwrap();
        let now: Timestamp = "2026-12-03T09:00:00Z".parse().unwrap();
        let text = pipeline_matrix(&pipeline, now);
        let expected = "\
ReleasePipeline checkout (shop): staging → production

RELEASE        STAGING            PRODUCTION
checkout:2.1   Soaking 3d of 7d   Waiting 3d1h
checkout:2.0   Verified 6d1h      Promoted 5d1h

Risk spent:
  checkout:2.1 in staging: canary weight 1% of 1%; error budget 0.002 of 0.01
  checkout:2.0 in production: canary weight 5% of 5%; shortfall 12.5 USD of 1000 USD

Why:
  checkout:2.1 in staging: soaked 3d of 7d
  checkout:2.1 in production: checkout:2.1 has soaked 3d of 7d in staging
  checkout:2.0 in staging: soaked 7d and verified
";
        assert_eq!(text, expected, "\n{text}");
    }
}
