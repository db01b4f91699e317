//! A `PrometheusRule` (Prometheus Operator) of an SLOBudget: the same figures and alerts as the
//! operator's own evaluation, computed by Prometheus, for dashboards and paging. Pure: a budget
//! in, the object out; `sluice prometheus-rule` prints it, nothing applies it.

use std::collections::BTreeMap;

use crate::api::Duration;
use crate::api::slo_budget::{Objective, SLOBudget, Severity};
use crate::engine::slo;
use crate::engine::slo_gate::{percent, service_vars, spec_problems};
use crate::metrics::template::{TemplateVars, render};

/// A `PrometheusRule` of the Prometheus Operator, as [`prometheus_rule`] writes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRule {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: RuleMetadata,
    pub spec: RuleSpec,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RuleMetadata {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RuleGroup {
    pub name: String,
    pub interval: String,
    pub rules: Vec<Rule>,
}

/// A recording rule (`record`) or an alerting rule (`alert`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A `PrometheusRule` computing the budget's figures in Prometheus for `namespace`: per
/// objective, a recording rule of the burn rate over every window
/// (`sluice_slo:burn_rate:<window>`) and of the budget left (`sluice_slo:budget_remaining`),
/// then one alert per burn-rate pair, firing when both its windows burn faster than its factor
/// (`SLOBudgetBurnRate`), and one while the budget left is under `freezeBelowRemaining`
/// (`SLOBudgetFrozen`). The same rules as the operator's evaluation, with `{{track}}` = `.*`.
pub fn prometheus_rule(budget: &SLOBudget, namespace: &str) -> Result<PrometheusRule, String> {
    let spec = &budget.spec;
    let name = super::name_of(&budget.metadata).to_string();
    let problems = spec_problems(spec);
    if !problems.is_empty() {
        return Err(format!(
            "SLOBudget {name}: invalid spec: {}",
            problems.join("; ")
        ));
    }
    let windows = slo::query_windows(spec);
    let mut rules = Vec::new();
    for objective in &spec.objectives {
        let budget_fraction = slo::error_budget(objective.target)
            .ok_or_else(|| format!("objective {}: target out of range", objective.name))?;
        let objective_labels =
            labels([("sluice_slo", &name), ("sluice_objective", &objective.name)]);
        let selector = format!(
            r#"{{sluice_slo="{name}",sluice_objective="{}"}}"#,
            objective.name
        );
        let burn_rate = |window: Duration| format!("sluice_slo:burn_rate:{window}{selector}");
        let record = |record: String, expr: String| Rule {
            record: Some(record),
            alert: None,
            expr,
            labels: objective_labels.clone(),
            annotations: BTreeMap::new(),
        };
        for window in &windows {
            let (good, total) = render_pair(objective, &service_vars(namespace, *window))?;
            rules.push(record(
                format!("sluice_slo:burn_rate:{window}"),
                format!("clamp_min(1 - ({good}) / ({total}), 0) / {budget_fraction}"),
            ));
        }
        rules.push(record(
            "sluice_slo:budget_remaining".to_string(),
            format!("1 - {}", burn_rate(spec.window)),
        ));
        for pair in &spec.burn_rate_alerts {
            let severity = match pair.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
            };
            let (long, short) = (pair.long.to_string(), pair.short.to_string());
            let mut pair_labels = objective_labels.clone();
            pair_labels.extend(labels([
                ("severity", severity),
                ("long_window", &long),
                ("short_window", &short),
            ]));
            let summary = format!(
                "Objective {} of SLOBudget {name} burns its error budget faster than {}x over {long}/{short}",
                objective.name, pair.factor
            );
            let description = format!(
                "Over both the last {long} and the last {short}, more than {} % of requests failed the objective ({} % target); at {}x the whole budget of {} lasts {}.",
                decimal(pair.factor * budget_fraction * 100.0),
                objective.target,
                pair.factor,
                spec.window,
                lasts(spec.window, pair.factor)
            );
            rules.push(Rule {
                record: None,
                alert: Some("SLOBudgetBurnRate".to_string()),
                expr: format!(
                    "{} > {factor} and {} > {factor}",
                    burn_rate(pair.long),
                    burn_rate(pair.short),
                    factor = pair.factor
                ),
                labels: pair_labels,
                annotations: labels([("summary", &summary), ("description", &description)]),
            });
        }
        let mut frozen_labels = objective_labels.clone();
        frozen_labels.extend(labels([("severity", "warning")]));
        let summary = format!(
            "Objective {} of SLOBudget {name} has less than {} of its error budget left: Sluice starts no rollout",
            objective.name,
            percent(spec.policy.freeze_below_remaining)
        );
        rules.push(Rule {
            record: None,
            alert: Some("SLOBudgetFrozen".to_string()),
            expr: format!(
                "sluice_slo:budget_remaining{selector} < {}",
                spec.policy.freeze_below_remaining
            ),
            labels: frozen_labels,
            annotations: labels([("summary", &summary)]),
        });
    }
    Ok(PrometheusRule {
        api_version: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: RuleMetadata {
            name: name.clone(),
            namespace: namespace.to_string(),
            labels: labels([("sluice.dev/slo-budget", &name)]),
        },
        spec: RuleSpec {
            groups: vec![RuleGroup {
                name: format!("sluice-slo-{name}"),
                interval: spec.interval.to_string(),
                rules,
            }],
        },
    })
}

/// `x` with at most 6 decimals and no trailing zeros: 14.4, not 14.400000000000002.
fn decimal(x: f64) -> String {
    let text = format!("{x:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How long the SLO window's budget lasts at `burn_rate`, e.g. "2d2h" for 30d at 14.4.
fn lasts(window: Duration, burn_rate: f64) -> Duration {
    let seconds = window.as_secs_f64() / burn_rate;
    Duration::from_secs(if seconds.is_finite() {
        seconds as u64
    } else {
        0
    })
}

/// `good` and `total` of `objective` rendered with `vars`.
fn render_pair(objective: &Objective, vars: &TemplateVars) -> Result<(String, String), String> {
    let good = render(&objective.good, vars).map_err(|e| e.to_string())?;
    let total = render(&objective.total, vars).map_err(|e| e.to_string())?;
    Ok((good, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::slo_fixtures::{GOOD, TOTAL, budget, query};

    #[test]
    fn a_prometheus_rule_records_every_window_and_alerts_on_each_pair() {
        let budget = budget("  policy: {freezeBelowRemaining: 0.2}\n");
        let rule = serde_json::to_value(prometheus_rule(&budget, "shop").expect("a rule"))
            .expect("serialises");
        assert_eq!(rule["kind"], "PrometheusRule");
        assert_eq!(rule["metadata"]["namespace"], "shop");
        let group = &rule["spec"]["groups"][0];
        assert_eq!(group["interval"], "1s");
        let rules = group["rules"].as_array().expect("rules");
        let records: Vec<&str> = rules.iter().filter_map(|r| r["record"].as_str()).collect();
        assert_eq!(
            records,
            [
                "sluice_slo:burn_rate:5s",
                "sluice_slo:burn_rate:20s",
                "sluice_slo:burn_rate:2m",
                "sluice_slo:budget_remaining"
            ]
        );
        let good = query(GOOD, ".*", "5s");
        let total = query(TOTAL, ".*", "5s");
        assert_eq!(
            rules[0]["expr"],
            format!("clamp_min(1 - ({good}) / ({total}), 0) / 0.01")
        );
        assert_eq!(rules[0]["labels"]["sluice_objective"], "availability");
        let selector = r#"{sluice_slo="checkout-slo",sluice_objective="availability"}"#;
        assert_eq!(
            rules[3]["expr"],
            format!("1 - sluice_slo:burn_rate:2m{selector}")
        );
        assert_eq!(rules[4]["alert"], "SLOBudgetBurnRate");
        assert_eq!(
            rules[4]["expr"],
            format!(
                "sluice_slo:burn_rate:20s{selector} > 14.4 and sluice_slo:burn_rate:5s{selector} > 14.4"
            )
        );
        assert_eq!(rules[4]["labels"]["severity"], "critical");
        assert_eq!(
            rules[4]["annotations"]["description"],
            "Over both the last 20s and the last 5s, more than 14.4 % of requests failed the objective (99 % target); at 14.4x the whole budget of 2m lasts 8s."
        );
        assert_eq!(rules[5]["alert"], "SLOBudgetFrozen");
        assert_eq!(
            rules[5]["expr"],
            format!("sluice_slo:budget_remaining{selector} < 0.2")
        );
        for rule in rules.iter().filter_map(|r| r["expr"].as_str()) {
            crate::metrics::validate_promql(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        }
    }

    #[test]
    fn no_rule_is_made_of_an_invalid_budget() {
        let mut budget = budget("");
        budget.spec.objectives[0].target = 100.0;
        let error = prometheus_rule(&budget, "shop").expect_err("invalid");
        assert!(
            error.starts_with("SLOBudget checkout-slo: invalid spec: "),
            "{error}"
        );
    }
}
