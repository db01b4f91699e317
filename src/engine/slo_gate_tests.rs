//! The SLO gate's problems, freeze reason and verdicts.

use std::collections::BTreeMap;

use super::*;
use crate::api::slo_budget::{ObjectiveStatus, Severity};
use crate::engine::slo::FiringPair;
use crate::engine::slo_fixtures::budget;

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
    assert_eq!(verdict.level, ObjectiveState::Violated);
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
