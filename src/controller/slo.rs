//! The SLOBudget gate of a CanaryRollout, and the queries the standalone SLOBudget controller
//! shares with it.
//!
//! Before a rollout starts, the gate reads the budget's status: while `status.frozen` is true no
//! rollout starts (the engine's freeze). At every evaluation of a running rollout it runs the
//! objectives' queries on the canary track only and lets the pure SLO engine judge them: a
//! Critical burn-rate pair firing on the canary, or a canary spend above
//! `policy.canaryMaxBudgetSpend`, rolls back; failing queries hold the stage. It decides nothing
//! else: the figures come from `engine::slo`, the effect is applied by the rollout engine.
//!
//! Template variables of a budget's queries: `{{namespace}}`, `{{window}}` and `{{track}}`.
//! For the whole service `{{track}}` is [`ALL_TRACKS`] (`.*`), on the canary it is `canary`, so
//! queries select the track with a regex matcher: `track=~"{{track}}"`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::future::join_all;
use jiff::Timestamp;
use kube::ResourceExt;

use super::analysis::template_vars;
use crate::api::canary_rollout::SloVerdict;
use crate::api::slo_budget::{
    Objective, ObjectiveState, SLOBudget, SLOBudgetSpec, SLOBudgetStatus,
};
use crate::api::{CanaryRollout, Duration};
use crate::engine::analysis::{GateEffect, GateVerdict};
use crate::engine::slo::{
    self, CanaryBurn, CanarySpend, Measurements, WindowMeasurement, WindowMeasurements,
};
use crate::metrics::{MetricsSource, TemplateVars, render};

/// What `{{track}}` expands to when a budget is evaluated for the whole service: a regex
/// matching every track, for queries written `track=~"{{track}}"`.
pub const ALL_TRACKS: &str = ".*";

/// The template variables an SLOBudget's queries may use.
pub const BUDGET_VARIABLES: [&str; 3] = ["namespace", "window", "track"];

/// What a query gave: a number, no data, or why it could not run.
pub type QueryResult = Result<Option<f64>, String>;

/// Variables of a budget's queries for the whole service over `window`.
pub fn service_vars(namespace: &str, window: Duration) -> TemplateVars {
    TemplateVars::new()
        .set("namespace", namespace)
        .set("window", window.to_string())
        .set("track", ALL_TRACKS)
}

/// Problems of the spec: those of [`slo::validate_budget`], and queries using template
/// variables the standalone evaluation cannot fill.
pub fn spec_problems(spec: &SLOBudgetSpec) -> Vec<String> {
    let mut problems = slo::validate_budget(spec);
    let vars = BUDGET_VARIABLES
        .iter()
        .fold(TemplateVars::new(), |vars, name| {
            vars.set(*name, TemplateVars::placeholders().get(name).unwrap_or("x"))
        });
    for (i, objective) in spec.objectives.iter().enumerate() {
        for (field, query) in [("good", &objective.good), ("total", &objective.total)] {
            if let Err(crate::metrics::TemplateError::MissingValue { name, .. }) =
                render(query, &vars)
            {
                problems.push(format!(
                    "spec.objectives[{i}].{field} uses {{{{{name}}}}}, but an SLOBudget's queries may only use {{{{namespace}}}}, {{{{window}}}} and {{{{track}}}}"
                ));
            }
        }
    }
    problems
}

/// Problems that make a CanaryRollout referencing `budget` invalid: an invalid spec, and
/// queries that cannot be scoped to the canary (no `{{track}}`).
pub fn problems(budget: &SLOBudget) -> Vec<String> {
    let name = budget.name_any();
    let mut problems: Vec<String> = spec_problems(&budget.spec)
        .into_iter()
        .map(|p| format!("SLOBudget {name}: {p}"))
        .collect();
    for (i, objective) in budget.spec.objectives.iter().enumerate() {
        for (field, query) in [("good", &objective.good), ("total", &objective.total)] {
            if !mentions_track(query) {
                problems.push(format!(
                    "SLOBudget {name}: spec.objectives[{i}].{field} has no {{{{track}}}} placeholder, so the canary's own SLI cannot be measured (select the track with track=~\"{{{{track}}}}\")"
                ));
            }
        }
    }
    problems
}

fn mentions_track(query: &str) -> bool {
    let with = |track: &str| render(query, &TemplateVars::placeholders().set("track", track));
    matches!((with("canary"), with("stable")), (Ok(a), Ok(b)) if a != b)
}

/// Why no rollout may start, when the budget's status says it is frozen: the objective with
/// the least budget left and the policy's threshold.
pub fn freeze_reason(budget: &SLOBudget) -> Option<String> {
    let status = budget.status.as_ref().filter(|s| s.frozen)?;
    let name = budget.name_any();
    let lowest = status
        .objectives
        .iter()
        .filter_map(|o| o.budget_remaining.map(|r| (o.name.as_str(), r)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    Some(match lowest {
        Some((objective, remaining)) => format!(
            "SLOBudget {name}: objective {objective} has {} of its error budget left, under spec.policy.freezeBelowRemaining {}",
            percent(remaining),
            percent(budget.spec.policy.freeze_below_remaining)
        ),
        None => format!("SLOBudget {name} is frozen"),
    })
}

fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// Runs each distinct rendered query once, concurrently.
async fn run_all(
    source: &dyn MetricsSource,
    queries: impl IntoIterator<Item = String>,
) -> HashMap<String, QueryResult> {
    let distinct: BTreeSet<String> = queries.into_iter().collect();
    let results = join_all(distinct.iter().map(|query| async move {
        source
            .query_value(query, None)
            .await
            .map_err(|e| e.to_string())
    }))
    .await;
    distinct.into_iter().zip(results).collect()
}

/// An objective's `good` and `total` queries rendered, or why they could not be.
type RenderedPair = Result<(String, String), String>;

/// `good` and `total` of `objective` rendered with `vars`.
fn render_pair(objective: &Objective, vars: &TemplateVars) -> RenderedPair {
    let good = render(&objective.good, vars).map_err(|e| e.to_string())?;
    let total = render(&objective.total, vars).map_err(|e| e.to_string())?;
    Ok((good, total))
}

/// The measurement of a rendered pair; the first error, if a query failed.
fn measurement(
    pair: &RenderedPair,
    results: &HashMap<String, QueryResult>,
) -> Result<WindowMeasurement, String> {
    let (good, total) = pair.as_ref().map_err(Clone::clone)?;
    let value = |query: &String| {
        results
            .get(query)
            .cloned()
            .unwrap_or_else(|| Err("query was not run".to_string()))
    };
    Ok(WindowMeasurement {
        good: value(good)?,
        total: value(total)?,
    })
}

/// Every objective of `spec` over every window of [`slo::query_windows`] for the whole
/// service, and the query errors per objective (the first one of each).
pub async fn measure_service(
    source: &dyn MetricsSource,
    namespace: &str,
    spec: &SLOBudgetSpec,
) -> (Measurements, BTreeMap<String, String>) {
    let windows = slo::query_windows(spec);
    let pairs: Vec<(&Objective, Duration, RenderedPair)> = spec
        .objectives
        .iter()
        .flat_map(|objective| {
            windows.iter().map(move |window| {
                let vars = service_vars(namespace, *window);
                (objective, *window, render_pair(objective, &vars))
            })
        })
        .collect();
    let results = run_all(
        source,
        pairs
            .iter()
            .filter_map(|(_, _, pair)| pair.as_ref().ok())
            .flat_map(|(good, total)| [good.clone(), total.clone()]),
    )
    .await;
    let mut measurements = Measurements::new();
    let mut errors = BTreeMap::new();
    for (objective, window, pair) in &pairs {
        match measurement(pair, &results) {
            Ok(measured) => measurements.record(&objective.name, *window, measured),
            Err(error) => {
                errors
                    .entry(objective.name.clone())
                    .or_insert_with(|| format!("over {window}: {error}"));
            }
        }
    }
    (measurements, errors)
}

/// The canary's figures for every objective, and the query errors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CanaryFigures {
    pub burns: Vec<CanaryBurn>,
    pub spends: Vec<CanarySpend>,
    pub errors: Vec<String>,
}

/// The canary's age rounded up to whole seconds, at least 1 s: the range of its queries.
fn canary_age(started: Option<Timestamp>, now: Timestamp) -> Duration {
    let millis = started.map_or(0, |started| now.duration_since(started).as_millis());
    let seconds = u64::try_from(millis).unwrap_or(0).div_ceil(1000).max(1);
    Duration::from_secs(seconds)
}

/// Measures the canary track: each objective over each burn-rate window (cut to the canary's
/// age, so an earlier canary's errors do not count), its good and total since the rollout
/// started, and the whole service's total over the SLO window (the denominator of the spend).
pub async fn measure_canary(
    source: &dyn MetricsSource,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    spec: &SLOBudgetSpec,
    now: Timestamp,
) -> CanaryFigures {
    let namespace = rollout.namespace().unwrap_or_default();
    let started = rollout.status.as_ref().and_then(|s| s.rollout_started_at);
    let age = canary_age(started, now);
    let canary_vars = |window: Duration| {
        template_vars(rollout, "canary", canary_hash).set("window", window.to_string())
    };
    let pair_windows: BTreeSet<Duration> = spec
        .burn_rate_alerts
        .iter()
        .flat_map(|p| [p.long, p.short])
        .collect();

    struct Rendered<'a> {
        objective: &'a Objective,
        windows: Vec<(Duration, RenderedPair)>,
        since_start: RenderedPair,
        service_total: Result<String, String>,
    }
    let rendered: Vec<Rendered> = spec
        .objectives
        .iter()
        .map(|objective| Rendered {
            objective,
            windows: pair_windows
                .iter()
                .map(|w| (*w, render_pair(objective, &canary_vars((*w).min(age)))))
                .collect(),
            since_start: render_pair(objective, &canary_vars(age)),
            service_total: render(&objective.total, &service_vars(&namespace, spec.window))
                .map_err(|e| e.to_string()),
        })
        .collect();
    let queries = rendered.iter().flat_map(|r| {
        let pairs = r
            .windows
            .iter()
            .map(|(_, pair)| pair)
            .chain([&r.since_start])
            .filter_map(|pair| pair.as_ref().ok())
            .flat_map(|(good, total)| [good.clone(), total.clone()]);
        pairs.chain(r.service_total.clone().ok())
    });
    let results = run_all(source, queries.collect::<Vec<_>>()).await;

    let mut figures = CanaryFigures::default();
    for r in &rendered {
        let name = &r.objective.name;
        let mut errors = BTreeSet::new();
        let mut canary = WindowMeasurements::new();
        for (window, pair) in &r.windows {
            match measurement(pair, &results) {
                Ok(measured) => {
                    canary.insert(*window, measured);
                }
                Err(error) => {
                    errors.insert(error);
                }
            }
        }
        figures
            .burns
            .push(slo::canary_burn(spec, r.objective, &canary));
        let since_start = measurement(&r.since_start, &results);
        let service_total = r
            .service_total
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|q| {
                results
                    .get(q)
                    .cloned()
                    .unwrap_or_else(|| Err("query was not run".to_string()))
            });
        let (bad, total) = match (&since_start, &service_total) {
            (Ok(m), Ok(total)) => (slo::canary_bad_events(m.good, m.total, age), *total),
            _ => (None, None),
        };
        errors.extend(since_start.err());
        errors.extend(service_total.err());
        figures
            .spends
            .push(slo::judge_canary_spend(spec, r.objective, bad, total));
        figures.errors.extend(
            errors
                .into_iter()
                .map(|error| format!("objective {name}: {error}")),
        );
    }
    figures
}

/// Evaluates the budget on the canary of `rollout` (see the module doc).
pub async fn evaluate_for_rollout(
    source: &dyn MetricsSource,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    budget: &SLOBudget,
    now: Timestamp,
) -> GateVerdict {
    let figures = measure_canary(source, rollout, canary_hash, &budget.spec, now).await;
    gate_verdict(&budget.name_any(), budget.status.as_ref(), &figures)
}

/// A gate that could not run at all (e.g. no Prometheus client): the stage holds.
pub fn unavailable(budget: &SLOBudget, error: &str) -> GateVerdict {
    GateVerdict {
        source: "slo",
        effect: GateEffect::Hold,
        reason: format!("SLOBudget {}: {error}", budget.name_any()),
        parity: None,
        slo: Some(verdict(budget.status.as_ref())),
    }
}

/// The budget's figures as the rollout's evaluation shows them: the least budget left over
/// the objectives and the worst state.
pub fn verdict(status: Option<&SLOBudgetStatus>) -> SloVerdict {
    let objectives = status.map(|s| s.objectives.as_slice()).unwrap_or_default();
    let budget_remaining = objectives
        .iter()
        .filter_map(|o| o.budget_remaining)
        .min_by(f64::total_cmp);
    let level = objectives
        .iter()
        .map(|o| o.state)
        .max_by_key(|s| slo::state_rank(*s))
        .unwrap_or(ObjectiveState::Unknown);
    SloVerdict {
        budget_remaining,
        level: format!("{level:?}"),
    }
}

/// What the canary's figures do to the rollout: a Critical pair firing on the canary or a
/// spend above the limit rolls back; failing queries, or no figure at all, hold; else pass.
pub fn gate_verdict(
    name: &str,
    status: Option<&SLOBudgetStatus>,
    figures: &CanaryFigures,
) -> GateVerdict {
    let (effect, reason) = if let Some(reason) = figures.burns.iter().find_map(CanaryBurn::reason) {
        (GateEffect::Rollback, reason)
    } else if let Some(spend) = figures.spends.iter().find(|s| s.exceeded) {
        (GateEffect::Rollback, spend.reason())
    } else if !figures.errors.is_empty() {
        (
            GateEffect::Hold,
            format!("query failed: {}", figures.errors.join("; ")),
        )
    } else if figures.burns.iter().all(|b| b.burn_rates.is_empty())
        && figures.spends.iter().all(|s| s.spend.is_none())
    {
        (
            GateEffect::Hold,
            "no data for the canary track yet".to_string(),
        )
    } else {
        (GateEffect::Pass, within_budget(figures))
    };
    GateVerdict {
        source: "slo",
        effect,
        reason: format!("SLOBudget {name}: {reason}"),
        parity: None,
        slo: Some(verdict(status)),
    }
}

/// E.g. "canary within budget: availability burning 0.4x at most, 0.1 % of its budget spent".
fn within_budget(figures: &CanaryFigures) -> String {
    let parts: Vec<String> = figures
        .burns
        .iter()
        .zip(&figures.spends)
        .map(|(burn, spend)| {
            let rate = burn
                .burn_rates
                .values()
                .copied()
                .max_by(f64::total_cmp)
                .map_or("no burn rate".to_string(), |r| {
                    format!("burning {r:.1}x at most")
                });
            let spent = spend.spend.map_or("spend unknown".to_string(), |s| {
                format!("{} of its budget spent", percent(s))
            });
            format!("{} {rate}, {spent}", burn.objective)
        })
        .collect();
    format!("canary within budget: {}", parts.join("; "))
}

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
    let name = budget.name_any();
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
                crate::api::slo_budget::Severity::Critical => "critical",
                crate::api::slo_budget::Severity::Warning => "warning",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::slo_budget::{ObjectiveStatus, Severity};
    use crate::engine::slo::FiringPair;
    use crate::metrics::{FakeMetrics, QueryError};

    const GOOD: &str =
        r#"sum(avg_over_time(good{namespace="{{namespace}}",track=~"{{track}}"}[{{window}}]))"#;
    const TOTAL: &str =
        r#"sum(avg_over_time(total{namespace="{{namespace}}",track=~"{{track}}"}[{{window}}]))"#;

    fn budget(extra: &str) -> SLOBudget {
        let yaml = format!(
            "apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {{name: checkout-slo, namespace: shop}}
spec:
  window: 2m
  interval: 1s
  objectives:
  - {{name: availability, target: 99, good: '{GOOD}', total: '{TOTAL}'}}
  burnRateAlerts:
  - {{long: 20s, short: 5s, factor: 14.4, severity: Critical}}
{extra}"
        );
        serde_saphyr::from_str(&yaml).expect("test budget parses")
    }

    fn rollout(started: Timestamp) -> CanaryRollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "checkout"},
                "service": {"name": "checkout", "port": 80},
                "trafficRouting": {"replicas": {}},
                "analysis": {"sloBudgetRef": {"name": "checkout-slo"}}
            },
            "status": {"phase": "Progressing", "rolloutStartedAt": started.to_string()}
        }))
        .expect("test rollout parses")
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn query(template: &str, track: &str, window: &str) -> String {
        template
            .replace("{{namespace}}", "shop")
            .replace("{{track}}", track)
            .replace("{{window}}", window)
    }

    /// The canary's answers: `error_ratio` of 10 requests/s over every window used at age 12 s
    /// (the 20 s window cut to 12 s), and 100 requests/s for the whole service.
    fn canary_answers(error_ratio: f64) -> FakeMetrics {
        let metrics = FakeMetrics::new();
        for window in ["12s", "5s"] {
            metrics.set_value(
                query(GOOD, "canary", window),
                Some(10.0 * (1.0 - error_ratio)),
            );
            metrics.set_value(query(TOTAL, "canary", window), Some(10.0));
        }
        metrics.set_value(query(TOTAL, ".*", "2m"), Some(100.0));
        metrics
    }

    #[test]
    fn budget_queries_may_use_only_namespace_window_and_track() {
        let mut spec = budget("").spec;
        assert_eq!(spec_problems(&spec), Vec::<String>::new());
        spec.objectives[0].good = spec.objectives[0]
            .good
            .replace("{{namespace}}", "{{target}}");
        let problems = spec_problems(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.objectives[0].good uses {{target}}"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_rollout_needs_track_in_every_query_of_its_budget() {
        let mut budget = budget("");
        assert_eq!(problems(&budget), Vec::<String>::new());
        budget.spec.objectives[0].total = r#"sum(rate(total[{{window}}]))"#.to_string();
        assert_eq!(
            problems(&budget),
            [
                "SLOBudget checkout-slo: spec.objectives[0].total has no {{track}} placeholder, so the canary's own SLI cannot be measured (select the track with track=~\"{{track}}\")"
            ]
        );
    }

    #[test]
    fn an_invalid_budget_makes_the_rollout_invalid_with_the_budget_named() {
        let mut budget = budget("");
        budget.spec.objectives[0].target = 100.0;
        let problems = problems(&budget);
        assert!(
            problems[0].starts_with("SLOBudget checkout-slo: spec.objectives[0].target 100"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_freeze_reason_names_the_objective_and_the_budget_left() {
        let mut budget = budget("");
        assert_eq!(freeze_reason(&budget), None);
        let objective = |name: &str, remaining: f64| ObjectiveStatus {
            name: name.into(),
            sli: None,
            budget_remaining: Some(remaining),
            burn_rates: BTreeMap::new(),
            state: ObjectiveState::Violated,
        };
        budget.status = Some(SLOBudgetStatus {
            objectives: vec![objective("latency", 0.5), objective("availability", -3.5)],
            frozen: false,
            ..Default::default()
        });
        assert_eq!(freeze_reason(&budget), None, "not frozen: no reason");
        budget.status.as_mut().unwrap().frozen = true;
        assert_eq!(
            freeze_reason(&budget).as_deref(),
            Some(
                "SLOBudget checkout-slo: objective availability has -350.0 % of its error budget left, under spec.policy.freezeBelowRemaining 10.0 %"
            )
        );
        let verdict = verdict(budget.status.as_ref());
        assert_eq!(verdict.budget_remaining, Some(-3.5));
        assert_eq!(verdict.level, "Violated");
    }

    #[tokio::test]
    async fn the_whole_service_is_measured_over_every_window_with_all_tracks() {
        let spec = budget("").spec;
        let metrics = FakeMetrics::new();
        metrics.set_value(query(GOOD, ".*", "2m"), Some(99.0));
        metrics.set_value(query(TOTAL, ".*", "2m"), Some(100.0));
        metrics.set_error(query(GOOD, ".*", "5s"), QueryError::Other("timeout".into()));
        let (measurements, errors) = measure_service(&metrics, "shop", &spec).await;
        let availability = measurements.objective("availability").expect("measured");
        assert_eq!(
            availability.get(&Duration::from_secs(120)),
            Some(&WindowMeasurement::new(99.0, 100.0))
        );
        assert_eq!(
            availability.get(&Duration::from_secs(20)),
            Some(&WindowMeasurement::default()),
            "no data is recorded as such"
        );
        assert_eq!(
            errors.get("availability").map(String::as_str),
            Some("over 5s: Prometheus query failed: timeout")
        );
        let asked = metrics.queries();
        assert_eq!(asked.len(), 6, "good and total over 2m, 20s, 5s: {asked:?}");
    }

    #[tokio::test]
    async fn a_canary_burning_fast_is_rolled_back_naming_the_objective_and_the_rate() {
        let budget = budget("");
        let metrics = canary_answers(0.5);
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        assert!(figures.errors.is_empty(), "{:?}", figures.errors);
        assert_eq!(
            figures.burns[0].burn_rates,
            BTreeMap::from([("20s".to_string(), 50.0), ("5s".to_string(), 50.0)])
        );
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Rollback);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: objective availability burning 50.0x over 20s/5s (critical pair 14.4) on the canary track"
        );
        assert_eq!(gate.slo.map(|s| s.level), Some("Unknown".to_string()));
    }

    #[tokio::test]
    async fn a_canary_spending_more_than_its_share_is_rolled_back() {
        // 1 bad request/s for 12 s against 0.01 x 100/s x 120 s = 120 allowed: 10 %.
        let budget = budget("  policy: {canaryMaxBudgetSpend: 0.05}\n");
        let metrics = canary_answers(0.1);
        metrics.set_value(query(GOOD, "canary", "12s"), Some(9.0));
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let spend = figures.spends[0].spend.expect("a spend");
        assert!((spend - 0.1).abs() < 1e-9, "{spend}");
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Rollback);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: the canary burnt 10.0 % of objective availability's error budget, above spec.policy.canaryMaxBudgetSpend 5.0 %"
        );
    }

    #[tokio::test]
    async fn a_healthy_canary_passes_and_one_without_data_holds() {
        let budget = budget("  policy: {canaryMaxBudgetSpend: 0.5}\n");
        let figures = measure_canary(
            &canary_answers(0.01),
            &rollout(at(0)),
            None,
            &budget.spec,
            at(12),
        )
        .await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Pass, "{}", gate.reason);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: canary within budget: availability burning 1.0x at most, 1.0 % of its budget spent"
        );
        let empty = FakeMetrics::new();
        let figures = measure_canary(&empty, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Hold);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: no data for the canary track yet"
        );
    }

    #[tokio::test]
    async fn failing_canary_queries_hold_the_stage() {
        let budget = budget("");
        let metrics = canary_answers(0.0);
        metrics.set_error(
            query(TOTAL, ".*", "2m"),
            QueryError::Other("timeout".into()),
        );
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Hold);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: query failed: objective availability: Prometheus query failed: timeout"
        );
    }

    #[test]
    fn a_warning_pair_on_the_canary_does_not_roll_back() {
        let figures = CanaryFigures {
            burns: vec![CanaryBurn {
                objective: "availability".into(),
                burn_rates: BTreeMap::from([("1h".to_string(), 4.0)]),
                firing: vec![FiringPair {
                    objective: "availability".into(),
                    long: Duration::from_secs(3600),
                    short: Duration::from_secs(300),
                    factor: 3.0,
                    severity: Severity::Warning,
                    long_burn_rate: 4.0,
                    short_burn_rate: 4.0,
                }],
            }],
            spends: Vec::new(),
            errors: Vec::new(),
        };
        assert_eq!(gate_verdict("b", None, &figures).effect, GateEffect::Pass);
    }

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

    #[test]
    fn the_canary_age_is_rounded_up_to_whole_seconds() {
        let started = at(0);
        let now = started
            .checked_add(jiff::SignedDuration::from_millis(12_300))
            .unwrap();
        assert_eq!(canary_age(Some(started), now), Duration::from_secs(13));
        assert_eq!(canary_age(Some(now), now), Duration::from_secs(1));
        assert_eq!(canary_age(None, now), Duration::from_secs(1));
    }
}
