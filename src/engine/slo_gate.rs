//! The SLOBudget gate of a CanaryRollout. Before a rollout starts it reads the budget's status:
//! while `status.frozen` is true no rollout starts (the engine's freeze). At every evaluation of
//! a running rollout it judges the canary's own figures (measured by `gather::slo`): a
//! Critical burn-rate pair firing on the canary, or a canary spend above
//! `policy.canaryMaxBudgetSpend`, rolls back; failing queries, or no figure at all, hold the
//! stage. The figures come from `engine::slo`; the effect is applied by the rollout engine.
//! Pure: no query runs here.
//!
//! Template variables of a budget's queries: `{{namespace}}`, `{{window}}` and `{{track}}`.
//! For the whole service `{{track}}` is [`ALL_TRACKS`] (`.*`), on the canary it is `canary`, so
//! queries select the track with a regex matcher: `track=~"{{track}}"`.

use crate::api::Duration;
use crate::api::canary_rollout::SloVerdict;
use crate::api::slo_budget::{ObjectiveState, SLOBudget, SLOBudgetSpec, SLOBudgetStatus};
use crate::engine::analysis::{GateEffect, GateSource, GateVerdict};
use crate::engine::slo::{self, CanaryBurn, CanarySpend};
use crate::metrics::template::{TemplateError, TemplateVars, render};

/// What `{{track}}` expands to when a budget is evaluated for the whole service: a regex
/// matching every track, for queries written `track=~"{{track}}"`.
pub const ALL_TRACKS: &str = ".*";

/// The template variables an SLOBudget's queries may use.
pub const BUDGET_VARIABLES: [&str; 3] = ["namespace", "window", "track"];

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
            if let Err(TemplateError::MissingValue { name, .. }) = render(query, &vars) {
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
    let name = super::name_of(&budget.metadata);
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
    let name = super::name_of(&budget.metadata);
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

pub(crate) fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// The canary's figures for every objective, and the query errors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CanaryFigures {
    pub burns: Vec<CanaryBurn>,
    pub spends: Vec<CanarySpend>,
    pub errors: Vec<String>,
}

/// A gate that could not run at all (e.g. no Prometheus client): the stage holds.
pub fn unavailable(budget: &SLOBudget, error: &str) -> GateVerdict {
    GateVerdict {
        source: GateSource::Slo,
        effect: GateEffect::Hold,
        reason: format!("SLOBudget {}: {error}", super::name_of(&budget.metadata)),
        parity: None,
        slo: Some(verdict(budget.status.as_ref())),
        evidence: Vec::new(),
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
        level,
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
            GateEffect::HoldForUserTraffic,
            "no data for the canary track yet".to_string(),
        )
    } else {
        (GateEffect::Pass, within_budget(figures))
    };
    GateVerdict {
        source: GateSource::Slo,
        effect,
        reason: format!("SLOBudget {name}: {reason}"),
        parity: None,
        slo: Some(verdict(status)),
        evidence: Vec::new(),
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

#[cfg(test)]
#[path = "slo_gate_tests.rs"]
mod tests;
