//! SLOBudget end to end, with the windows scaled down from days and hours to seconds: the
//! standalone evaluation (status, events, metrics), the release freeze, the canary's own burn
//! rate and spend, and the spec problems the schema cannot catch.
//!
//! The test service publishes its traffic as two gauges per track, good and total requests per
//! second (`sluice_test_slo_good` / `sluice_test_slo_total`), so the objectives' queries are
//! `sum(avg_over_time(...{track=~"{{track}}"}[{{window}}]))`: the mean rate over each window.
//! `{{track}}` is `.*` for the whole service and `canary` for the canary's own SLI.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::SLOBudget;
use sluice::api::canary_rollout::Phase;
use sluice::api::conditions::Condition;
use sluice::api::slo_budget::{ObjectiveState, SLOBudgetStatus};
use support::{MetricsExporter, Operator, TestEnv, TestNamespace, eventually, free_port};

const GOOD: &str = "sluice_test_slo_good";
const TOTAL: &str = "sluice_test_slo_total";
const V2: &str = "registry.example/checkout:2.0.0";

/// An SLOBudget `checkout-slo` with one objective, availability at 99 % over the test gauges.
fn budget_yaml(window: &str, pairs: &str, policy: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {{name: checkout-slo}}
spec:
  window: {window}
  interval: 1s
  objectives:
  - name: availability
    target: 99
    good: 'sum(avg_over_time({GOOD}{{namespace="{{{{namespace}}}}",track=~"{{{{track}}}}"}}[{{{{window}}}}]))'
    total: 'sum(avg_over_time({TOTAL}{{namespace="{{{{namespace}}}}",track=~"{{{{track}}}}"}}[{{{{window}}}}]))'
  burnRateAlerts: {pairs}
  policy: {policy}
"#
    )
}

/// `total` requests per second on `track`, a fraction `error_ratio` of them failing.
fn publish(exporter: &MetricsExporter, namespace: &str, track: &str, total: f64, error_ratio: f64) {
    let labels = [("namespace", namespace), ("track", track)];
    exporter.set(GOOD, &labels, total * (1.0 - error_ratio));
    exporter.set(TOTAL, &labels, total);
}

async fn wait_scraped(exporter: &MetricsExporter, namespace: &str, track: &str) {
    let labels = [("namespace", namespace), ("track", track)];
    exporter.wait_until_scraped(GOOD, &labels).await;
    exporter.wait_until_scraped(TOTAL, &labels).await;
}

async fn budget_status(ns: &TestNamespace, name: &str) -> SLOBudgetStatus {
    ns.api::<SLOBudget>()
        .get(name)
        .await
        .expect("read SLOBudget")
        .status
        .unwrap_or_default()
}

fn condition<'a>(status: &'a SLOBudgetStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

async fn wait_frozen(ns: &TestNamespace, frozen: bool, timeout: Duration) -> SLOBudgetStatus {
    let what = format!("SLOBudget frozen = {frozen}");
    eventually(timeout, &what, async || {
        let status = budget_status(ns, "checkout-slo").await;
        if status.frozen == frozen && status.last_evaluation_time.is_some() {
            Ok(status)
        } else {
            Err(condition(&status, "Frozen").map(|c| c.message.clone()))
        }
    })
    .await
}

/// A service whose rollout references `checkout-slo`, with the traffic already published: the
/// rollout is Invalid until the budget exists, then Idle.
async fn with_budget(prefix: &str, stages: &str, budget: &str, stable_errors: f64) -> Service {
    let extra = "    sloBudgetRef: {name: checkout-slo}\n";
    let service = Service::deploy(prefix, &rollout_yaml(GATEWAY, stages, extra)).await;
    let ns = service.ns.name().to_string();
    publish(&service.exporter, &ns, "stable", 100.0, stable_errors);
    publish(&service.exporter, &ns, "canary", 10.0, 0.0);
    let invalid = service
        .wait_phase(Phase::Invalid, Duration::from_secs(30))
        .await;
    let message = invalid.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains(r#"SLOBudget "checkout-slo" not found"#),
        "{message}"
    );
    wait_scraped(&service.exporter, &ns, "stable").await;
    wait_scraped(&service.exporter, &ns, "canary").await;
    service.ns.apply_yaml(budget).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    service
}

async fn event(ns: &TestNamespace, object: &str, reason: &str, type_: &str) -> String {
    let what = format!("{type_} event {reason} on {object}");
    eventually(Duration::from_secs(10), &what, async || {
        ns.events()
            .await
            .into_iter()
            .find(|e| e.object_name == object && e.reason == reason && e.type_ == type_)
            .map(|e| e.message)
            .ok_or("not yet")
    })
    .await
}

#[tokio::test]
async fn a_spent_budget_freezes_new_rollouts_until_it_recovers() {
    // 5 % of the stable track's requests fail: 4.5 % of all, 4.5 times the 1 % budget, spent.
    let budget = budget_yaml(
        "20s",
        "[{long: 10s, short: 2s, factor: 14.4, severity: Critical}]",
        "{freezeBelowRemaining: 0.1}",
    );
    let stages = "[{weight: 1, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = with_budget("slo-freeze", stages, &budget, 0.05).await;
    let ns = service.ns.name().to_string();
    wait_frozen(&service.ns, true, Duration::from_secs(20)).await;

    service.set_image(V2).await;
    service
        .wait_phase(Phase::Frozen, Duration::from_secs(20))
        .await;
    let frozen = service.condition("Frozen").await.expect("Frozen condition");
    assert!(frozen.is_true(), "{frozen:?}");
    assert_eq!(frozen.reason, "BudgetFrozen");
    assert!(
        frozen
            .message
            .starts_with("SLOBudget checkout-slo: objective availability has -")
            && frozen.message.contains(
                "of its error budget left, under spec.policy.freezeBelowRemaining 10.0 %"
            ),
        "{frozen:?}"
    );
    assert_eq!(service.replicas("checkout").await, 0, "no canary runs");
    let note = event(&service.ns, "checkout", "Frozen", "Warning").await;
    assert!(
        note.contains("not started: SLOBudget checkout-slo"),
        "{note}"
    );
    let note = event(&service.ns, "checkout-slo", "BudgetFrozen", "Warning").await;
    assert!(note.contains("objective availability"), "{note}");

    // The errors stop; once they leave the 20 s window the rollout starts by itself.
    publish(&service.exporter, &ns, "stable", 100.0, 0.0);
    wait_frozen(&service.ns, false, Duration::from_secs(40)).await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    assert_eq!(service.image("checkout-stable").await, V2);
    let status = service.status().await;
    assert!(
        status.conditions.iter().all(|c| c.type_ != "Frozen"),
        "{:?}",
        status.conditions
    );
    event(&service.ns, "checkout-slo", "BudgetRecovered", "Normal").await;
}

#[tokio::test]
async fn a_person_overrides_the_freeze_for_one_rollout() {
    let budget = budget_yaml(
        "20s",
        "[{long: 10s, short: 2s, factor: 14.4, severity: Critical}]",
        "{freezeBelowRemaining: 0.1}",
    );
    let stages = "[{weight: 1, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = with_budget("slo-override", stages, &budget, 0.05).await;
    wait_frozen(&service.ns, true, Duration::from_secs(20)).await;
    service.set_image(V2).await;
    service
        .wait_phase(Phase::Frozen, Duration::from_secs(20))
        .await;
    service.annotate("sluice.dev/override-freeze", "1").await;
    // The canary's own traffic is healthy, so the gates let it through although the budget
    // stays frozen.
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    assert_eq!(service.image("checkout-stable").await, V2);
    assert!(budget_status(&service.ns, "checkout-slo").await.frozen);
    // The override was for that rollout only.
    service.set_image("registry.example/checkout:3.0.0").await;
    service
        .wait_phase(Phase::Frozen, Duration::from_secs(20))
        .await;
    assert_eq!(service.replicas("checkout").await, 0);
}

#[tokio::test]
async fn a_canary_burning_the_budget_fast_at_5_percent_is_rolled_back() {
    // canaryMaxBudgetSpend 1: only the burn rate can stop this canary.
    let budget = budget_yaml(
        "2m",
        "[{long: 20s, short: 5s, factor: 14.4, severity: Critical}]",
        "{canaryMaxBudgetSpend: 1}",
    );
    let stages = "[{weight: 1, pause: 3s}, {weight: 5, pause: 30s}, {weight: 100, pause: 2s}]";
    let service = with_budget("slo-burn", stages, &budget, 0.0).await;
    let ns = service.ns.name().to_string();
    service.set_image(V2).await;
    eventually(Duration::from_secs(30), "stage 1 at 5 %", async || {
        service.canary_weight_on_route().await == Some(5)
    })
    .await;
    // Half of the canary's requests fail: 50 times the budget's rate, over 14.4 on both windows
    // once enough of the 20 s window has seen it.
    publish(&service.exporter, &ns, "canary", 10.0, 0.5);
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(30))
        .await;
    assert_eq!(service.canary_weight_on_route().await, Some(0));
    let note = event(&service.ns, "checkout", "RolledBack", "Warning").await;
    assert!(
        note.contains("SLOBudget checkout-slo: objective availability burning ")
            && note.contains("x over 20s/5s (critical pair 14.4) on the canary track"),
        "{note}"
    );
    let rate: f64 = note
        .split("availability burning ")
        .nth(1)
        .and_then(|rest| rest.split('x').next())
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no burn rate in {note}"));
    assert!(rate > 14.4 && rate <= 50.0, "{note}");
    let evaluation = rollout
        .status
        .and_then(|s| s.last_evaluation)
        .expect("lastEvaluation");
    let slo = evaluation.slo.expect("slo verdict in lastEvaluation");
    assert!(slo.budget_remaining.is_some(), "{slo:?}");
}

#[tokio::test]
async fn a_canary_spending_more_than_its_share_of_the_budget_is_rolled_back() {
    // 1 failing request/s on the canary burns 10x, under the pair's 14.4, but the budget allows
    // 1 % x 110/s x 120 s = 132 failures over the window: 5 % of it is gone in about 7 s.
    let budget = budget_yaml(
        "2m",
        "[{long: 20s, short: 5s, factor: 14.4, severity: Critical}]",
        "{canaryMaxBudgetSpend: 0.05}",
    );
    let stages = "[{weight: 1, pause: 40s}, {weight: 100, pause: 2s}]";
    let service = with_budget("slo-spend", stages, &budget, 0.0).await;
    let ns = service.ns.name().to_string();
    service.set_image(V2).await;
    service
        .wait_phase(Phase::Progressing, Duration::from_secs(20))
        .await;
    // Only now: failing canary traffic before the start would have frozen the budget.
    publish(&service.exporter, &ns, "canary", 10.0, 0.1);
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(30))
        .await;
    let note = event(&service.ns, "checkout", "RolledBack", "Warning").await;
    assert!(
        note.contains("SLOBudget checkout-slo: the canary burnt ")
            && note.contains(
                "of objective availability's error budget, above spec.policy.canaryMaxBudgetSpend 5.0 %"
            ),
        "{note}"
    );
}

#[tokio::test]
async fn a_budget_reports_its_objectives_in_status_events_and_metrics() {
    let env = TestEnv::get().await;
    let ns = env.namespace("slo-status").await;
    let exporter = MetricsExporter::start(&env, ns.name()).await;
    // availability: 0.5 % failing against a 1 % budget; latency: 1 % slow against 0.1 %.
    for (objective, good) in [("availability", 99.5), ("latency", 99.0)] {
        let labels = [("namespace", ns.name()), ("objective", objective)];
        exporter.set(GOOD, &labels, good);
        exporter.set(TOTAL, &labels, 100.0);
        exporter.wait_until_scraped(GOOD, &labels).await;
    }
    let address = format!("127.0.0.1:{}", free_port());
    let _operator = Operator::start(&env, ns.name(), &["--metrics-addr", &address]);
    let query = |metric: &str, objective: &str| {
        format!(
            r#"sum(avg_over_time({metric}{{namespace="{{{{namespace}}}}",objective="{objective}",track=~"{{{{track}}}}"}}[{{{{window}}}}]))"#
        )
    };
    ns.apply_yaml(&format!(
        "apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {{name: web-slo}}
spec:
  window: 2m
  interval: 1s
  objectives:
  - {{name: availability, target: 99, good: '{}', total: '{}'}}
  - {{name: latency, target: 99.9, good: '{}', total: '{}'}}
  burnRateAlerts: [{{long: 20s, short: 5s, factor: 14.4, severity: Critical}}]
",
        query(GOOD, "availability"),
        query(TOTAL, "availability"),
        query(GOOD, "latency"),
        query(TOTAL, "latency"),
    ))
    .await;

    let status = eventually(Duration::from_secs(20), "an evaluation", async || {
        let status = budget_status(&ns, "web-slo").await;
        match status.objectives.as_slice() {
            [a, l] if a.budget_remaining.is_some() && l.budget_remaining.is_some() => Ok(status),
            _ => Err(status.conditions),
        }
    })
    .await;
    let [availability, latency] = status.objectives.as_slice() else {
        panic!("{status:?}")
    };
    let close =
        |actual: Option<f64>, expected: f64| actual.is_some_and(|a| (a - expected).abs() < 1e-6);
    assert!(close(availability.sli, 0.995), "{availability:?}");
    assert!(
        close(availability.budget_remaining, 0.5),
        "{availability:?}"
    );
    assert_eq!(availability.state, ObjectiveState::Meeting);
    assert_eq!(
        availability.burn_rates.keys().collect::<Vec<_>>(),
        ["20s", "2m", "5s"]
    );
    assert!(close(latency.budget_remaining, -9.0), "{latency:?}");
    assert_eq!(latency.state, ObjectiveState::Violated);
    assert!(close(status.compliance_score, 25.0), "{status:?}");
    assert!(status.frozen);
    let ready = condition(&status, "Ready").expect("Ready");
    assert!(ready.is_true() && ready.reason == "Evaluated", "{ready:?}");
    assert!(ready.message.starts_with("compliance 25.0; "), "{ready:?}");

    let note = event(&ns, "web-slo", "ObjectiveStateChanged", "Warning").await;
    assert!(
        note.starts_with("objective latency Violated: -900.0 %"),
        "{note}"
    );
    let note = event(&ns, "web-slo", "ObjectiveStateChanged", "Normal").await;
    assert!(
        note.starts_with("objective availability Meeting: 50.0 %"),
        "{note}"
    );
    event(&ns, "web-slo", "BudgetFrozen", "Warning").await;

    let page = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let series = |name: &str, labels: &str| {
        format!(
            r#"{name}{{namespace="{}",slo="web-slo"{labels}}}"#,
            ns.name()
        )
    };
    let value = |series: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(&format!("{series} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in\n{page}"))
    };
    let remaining = value(&series(
        "sluice_slo_budget_remaining",
        r#",objective="availability""#,
    ));
    assert!((remaining - 0.5).abs() < 1e-6, "{remaining}");
    let burn = value(&series(
        "sluice_slo_burn_rate",
        r#",objective="latency",window="5s""#,
    ));
    assert!((burn - 10.0).abs() < 1e-6, "{burn}");
    assert_eq!(
        value(&series(
            "sluice_slo_objective_state",
            r#",objective="latency",state="Violated""#
        )),
        1.0
    );
    assert!((value(&series("sluice_slo_compliance_score", "")) - 25.0).abs() < 1e-6);
    assert_eq!(value(&series("sluice_slo_frozen", "")), 1.0);
}

/// An SLOBudget named `name` over `spec_body` (the lines under `spec:`).
fn named_budget(name: &str, spec_body: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: SLOBudget\nmetadata: {{name: {name}}}\nspec:\n{spec_body}"
    )
}

const QUERIES: &str = "good: 'sum(rate(ok[{{window}}]))', total: 'sum(rate(all[{{window}}]))'";

#[tokio::test]
async fn budgets_the_schema_accepts_but_sluice_cannot_judge_are_stalled_with_an_event() {
    let env = TestEnv::get().await;
    let ns = env.namespace("slo-invalid").await;
    let _operator = Operator::start(&env, ns.name(), &[]);
    let pair = |long: &str, short: &str| {
        format!(
            "  burnRateAlerts: [{{long: {long}, short: {short}, factor: 14.4, severity: Critical}}]\n"
        )
    };
    let cases = [
        (
            "short-longer",
            format!(
                "  window: 1h\n  objectives: [{{name: a, target: 99, {QUERIES}}}]\n{}",
                pair("1m", "10m")
            ),
            "spec.burnRateAlerts[0].short 10m must be shorter than spec.burnRateAlerts[0].long 1m",
        ),
        (
            "window-longer",
            format!(
                "  window: 1h\n  objectives: [{{name: a, target: 99, {QUERIES}}}]\n{}",
                pair("2h", "5m")
            ),
            "spec.burnRateAlerts[0].long 2h is longer than spec.window 1h",
        ),
        (
            "blank-queries",
            format!(
                "  window: 1h\n  objectives: [{{name: a, target: 99, good: ' ', total: ' '}}]\n{}",
                pair("10m", "1m")
            ),
            "spec.objectives[0].good must not be empty; spec.objectives[0].total must not be empty",
        ),
        (
            "default-pairs",
            format!("  window: 1h\n  objectives: [{{name: a, target: 99, {QUERIES}}}]\n"),
            "spec.burnRateAlerts[2].long 1d is longer than spec.window 1h",
        ),
    ];
    for (name, body, _) in &cases {
        ns.apply_yaml(&named_budget(name, body)).await;
    }
    // An objective without its queries does not get past the apiserver.
    let output = ns
        .kubectl_with_input(
            &["apply", "-f", "-"],
            Some(&named_budget(
                "no-queries",
                "  objectives: [{name: a, target: 99}]\n",
            )),
        )
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // kubectl's own validation against the published schema, or the apiserver's.
    assert!(
        stderr.contains(r#"missing required field "good""#)
            || stderr.contains("spec.objectives.good: Required value"),
        "{stderr}"
    );

    for (name, _, problem) in &cases {
        let what = format!("Stalled InvalidSpec on {name}");
        let stalled = eventually(Duration::from_secs(20), &what, async || {
            let status = budget_status(&ns, name).await;
            condition(&status, "Stalled")
                .filter(|c| c.is_true() && c.reason == "InvalidSpec")
                .cloned()
                .ok_or(status.conditions)
        })
        .await;
        assert!(
            stalled.message.starts_with("invalid spec: ") && stalled.message.contains(problem),
            "{name}: {stalled:?}"
        );
        let note = event(&ns, name, "InvalidSpec", "Warning").await;
        assert!(note.contains(problem), "{name}: {note}");
        let status = budget_status(&ns, name).await;
        assert!(!status.frozen && status.objectives.is_empty(), "{status:?}");
    }
}

#[tokio::test]
async fn a_rollout_referencing_an_invalid_budget_is_invalid_until_it_is_fixed() {
    let extra = "    sloBudgetRef: {name: checkout-slo}\n";
    let stages = "[{weight: 1, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = Service::deploy("slo-ref-invalid", &rollout_yaml(GATEWAY, stages, extra)).await;
    let pairs = "[{long: 20s, short: 5s, factor: 14.4, severity: Critical}]";
    // A target of 0 or 100 no longer gets past the schema: a burn-rate window longer than the
    // budget's window is invalid only to the validator.
    let invalid = budget_yaml("2m", pairs, "{}").replace("long: 20s", "long: 3m");
    service.ns.apply_yaml(&invalid).await;
    let problem =
        "SLOBudget checkout-slo: spec.burnRateAlerts[0].long 3m is longer than spec.window 2m";
    eventually(
        Duration::from_secs(30),
        "the rollout Invalid over the budget",
        async || {
            let status = service.status().await;
            let message = status.message.clone().unwrap_or_default();
            if status.phase == Some(Phase::Invalid) && message.contains(problem) {
                Ok(())
            } else {
                Err((status.phase, message))
            }
        },
    )
    .await;
    // Queries that cannot be scoped to the canary do not gate a rollout either.
    let unscoped = budget_yaml("2m", pairs, "{}").replace(r#",track=~"{{track}}""#, "");
    service.ns.apply_yaml(&unscoped).await;
    eventually(
        Duration::from_secs(30),
        "the rollout Invalid over the unscoped queries",
        async || {
            let message = service.status().await.message.unwrap_or_default();
            if message.contains("spec.objectives[0].good has no {{track}} placeholder") {
                Ok(())
            } else {
                Err(message)
            }
        },
    )
    .await;
    service.ns.apply_yaml(&budget_yaml("2m", pairs, "{}")).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
}
