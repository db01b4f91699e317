use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::api::SLOBudget;

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{actual} is not {expected}"
    );
}

fn d(text: &str) -> Duration {
    text.parse().expect("test duration parses")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

const OBJECTIVES: &str = r#"
objectives:
- name: availability
  target: 99.5
  good: 'sum(rate(http_requests_total{code!~"5.."}[{{window}}]))'
  total: 'sum(rate(http_requests_total[{{window}}]))'
"#;

/// A spec with the default window (30d), pairs and policy, plus `extra` YAML.
fn spec(extra: &str) -> SLOBudgetSpec {
    serde_saphyr::from_str(&format!("{OBJECTIVES}{extra}")).expect("test spec parses")
}

fn objective(spec: &SLOBudgetSpec) -> &Objective {
    &spec.objectives[0]
}

/// `availability` measured as `total` requests with the given error ratio over each window.
fn measured(windows: &[(&str, f64)]) -> Measurements {
    windows
        .iter()
        .fold(Measurements::new(), |m, (window, error_ratio)| {
            let total = 1_000_000.0;
            m.with(
                "availability",
                d(window),
                Some(total * (1.0 - error_ratio)),
                Some(total),
            )
        })
}

#[test]
fn alert_thresholds_for_99_5_percent_are_the_workbook_figures() {
    // factor x (1 - 0.995): the error ratios at which each default pair starts to fire.
    let expected = [
        (14.4, 0.072, "7.2"),
        (6.0, 0.03, "3"),
        (3.0, 0.015, "1.5"),
        (1.0, 0.005, "0.5"),
    ];
    let pairs = crate::api::slo_budget::default_burn_rate_alerts();
    for (pair, (factor, ratio, shown)) in pairs.iter().zip(expected) {
        assert_eq!(pair.factor, factor);
        let threshold = alert_threshold(pair.factor, 99.5).unwrap();
        assert_close(threshold, ratio);
        assert_eq!(format!("{}", (threshold * 1e4).round() / 100.0), shown);
    }
}

#[test]
fn each_default_pair_fires_just_above_its_threshold_and_not_below() {
    // 1000 requests per window: the threshold in failed requests is 72 / 30 / 15 / 5.
    let spec = spec("");
    for (pair, bad_at_threshold) in spec.burn_rate_alerts.iter().zip([72.0, 30.0, 15.0, 5.0]) {
        for (bad, fires) in [
            (bad_at_threshold + 1.0, true),
            (bad_at_threshold - 1.0, false),
        ] {
            let burn = burn_rate(sli(Some(1000.0 - bad), Some(1000.0)).unwrap(), 99.5);
            assert_eq!(
                pair_fires(pair, burn, burn),
                fires,
                "pair {}/{} with {bad} bad of 1000",
                pair.long,
                pair.short
            );
        }
    }
}

#[test]
fn a_pair_fires_only_when_both_windows_burn_strictly_faster_than_its_factor() {
    let pair = &spec("").burn_rate_alerts[0]; // 1h/5m, 14.4
    for (long, short, fires) in [
        (Some(16.2), Some(20.0), true),
        (Some(16.2), Some(3.0), false), // burnt, but no longer burning
        (Some(3.0), Some(20.0), false), // a short spike
        (Some(14.4), Some(20.0), false), // exactly at the factor: not above it
        (Some(20.0), Some(14.4), false),
        (Some(16.2), None, false),
        (None, Some(20.0), false),
        (None, None, false),
    ] {
        assert_eq!(pair_fires(pair, long, short), fires, "{long:?} {short:?}");
    }
    // Through the measurement path, with a budget of exactly 0.5: 50 % errors burn at 1.
    let pair = BurnRatePair {
        factor: 1.0,
        ..pair.clone()
    };
    let at = burn_rate(sli(Some(50.0), Some(100.0)).unwrap(), 50.0);
    let above = burn_rate(sli(Some(49.0), Some(100.0)).unwrap(), 50.0);
    assert_eq!(at, Some(1.0));
    assert!(!pair_fires(&pair, at, at));
    assert!(pair_fires(&pair, above, above));
}

#[test]
fn budget_remaining_worked_numbers() {
    for (sli, target, remaining) in [
        (0.997, 99.5, 0.4),  // 0.3 % errors of a 0.5 % budget: 60 % spent
        (1.0, 99.5, 1.0),    // no errors
        (0.995, 99.5, 0.0),  // exactly at target: spent
        (0.99, 99.5, -1.0),  // twice the budget: overspent by one budget
        (0.9995, 99.9, 0.5), // half of a 0.1 % budget
        (0.95, 99.0, -4.0),
        (0.0, 99.0, -99.0),
    ] {
        assert_close(budget_remaining(sli, target).unwrap(), remaining);
    }
}

#[test]
fn budget_remaining_after_a_thirty_day_error_series() {
    // 100 requests per second for 30 days: 27 days at 0.1 % errors and a bad 3 days at 3 %.
    let per_day = 100.0 * 86_400.0;
    let daily_errors: Vec<f64> = (0..30)
        .map(|day| if day < 27 { 0.001 } else { 0.03 })
        .collect();
    let total: f64 = per_day * 30.0;
    let bad: f64 = daily_errors.iter().map(|e| e * per_day).sum();
    // (27 x 0.1 % + 3 x 3 %) / 30 = 0.39 % errors of a 0.5 % budget: 22 % left, at risk.
    let spec = spec("");
    let m = Measurements::new().with("availability", d("30d"), Some(total - bad), Some(total));
    let status = evaluate_objective(&spec, objective(&spec), m.objective("availability")).status;
    assert_close(status.sli.unwrap(), 0.9961);
    assert_close(status.budget_remaining.unwrap(), 0.22);
    assert_close(status.burn_rates["30d"], 0.78);
    assert_eq!(status.state, ObjectiveState::AtRisk);
}

#[test]
fn burn_rate_worked_numbers() {
    for (sli, target, burn) in [
        (0.919, 99.5, 16.2), // 8.1 % errors
        (0.9, 99.5, 20.0),
        (0.995, 99.5, 1.0),
        (1.0, 99.5, 0.0),
        (0.999, 99.9, 1.0),
        (0.9856, 99.9, 14.4),
    ] {
        assert_close(burn_rate(sli, target).unwrap(), burn);
    }
    for target in [0.0, 100.0, -1.0, 101.0, f64::NAN] {
        assert_eq!(burn_rate(0.99, target), None, "target {target}");
        assert_eq!(error_budget(target), None, "target {target}");
    }
}

#[test]
fn no_data_is_none_never_nan_or_infinity() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    for (good, total) in [
        (None, Some(10.0)),
        (Some(10.0), None),
        (None, None),
        (Some(0.0), Some(0.0)), // no traffic at all
        (Some(5.0), Some(0.0)),
        (Some(nan), Some(10.0)),
        (Some(10.0), Some(nan)),
        (Some(inf), Some(10.0)),
        (Some(10.0), Some(inf)),
        (Some(-1.0), Some(10.0)),
        (Some(1.0), Some(-10.0)),
    ] {
        assert_eq!(sli(good, total), None, "good {good:?} total {total:?}");
    }
    // Good a hair above total (scraped apart) is a perfect window, not an SLI above 1.
    assert_eq!(sli(Some(100.2), Some(100.0)), Some(1.0));
    assert_eq!(sli(Some(0.0), Some(10.0)), Some(0.0));
}

#[test]
fn query_windows_are_the_slo_window_and_every_pair_window_deduplicated() {
    let windows: Vec<String> = query_windows(&spec(""))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(windows, ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]);

    let custom = spec(
        "window: 1d\nburnRateAlerts:\n- {long: 1h, short: 5m, factor: 14.4, severity: Critical}\n\
         - {long: 1d, short: 1h, factor: 1, severity: Warning}\n",
    );
    assert_eq!(query_windows(&custom), [d("5m"), d("1h"), d("1d")]);
}

#[test]
fn objective_state_rules_and_precedence() {
    use ObjectiveState::*;
    // (budget remaining, a Critical pair fires, a Warning pair fires) -> state
    for (remaining, critical, warning, state) in [
        (Some(1.0), false, false, Meeting),
        (Some(0.25), false, false, Meeting), // 25 % left is not under 25 %
        (Some(0.2499), false, false, AtRisk),
        (Some(0.9), false, true, AtRisk),
        (Some(0.9), true, false, Violated), // fast burn with budget left
        (Some(0.9), true, true, Violated),  // Violated outranks AtRisk
        (Some(0.1), true, false, Violated),
        (Some(0.0), false, false, Violated), // exactly spent
        (Some(-0.5), false, true, Violated),
        (Some(0.0), true, false, Critical), // spent and still burning fast
        (Some(-2.0), true, true, Critical),
        (None, false, false, Unknown),
        (None, false, true, AtRisk), // a firing pair is a fact without the SLO window
        (None, true, false, Violated), // but Critical needs the budget to be known spent
        (None, true, true, Violated),
    ] {
        assert_eq!(
            objective_state(remaining, critical, warning),
            state,
            "remaining {remaining:?} critical {critical} warning {warning}"
        );
    }
}

#[test]
fn each_state_from_measurements() {
    use ObjectiveState::*;
    let spec = spec("");
    // Error ratios per window; SLO window 30d, pairs 1h/5m 14.4 C, 6h/30m 6 C, 1d/2h 3 W, 3d/6h 1 W.
    let quiet = [
        ("5m", 0.0),
        ("30m", 0.0),
        ("1h", 0.0),
        ("2h", 0.0),
        ("6h", 0.0),
        ("1d", 0.0),
        ("3d", 0.0),
    ];
    let with = |slo: f64, burst: &[(&'static str, f64)]| {
        let mut windows: Vec<(&str, f64)> = quiet.to_vec();
        windows.push(("30d", slo));
        for (w, e) in burst {
            windows.retain(|(x, _)| x != w);
            windows.push((w, *e));
        }
        measured(&windows)
    };
    let fast = [("1h", 0.081), ("5m", 0.1)];
    let slow = [("1d", 0.02), ("2h", 0.02)];
    for (name, m, state, firing) in [
        ("healthy", with(0.001, &[]), Meeting, vec![]),
        ("low budget", with(0.004, &[]), AtRisk, vec![]),
        ("slow burn", with(0.001, &slow), AtRisk, vec!["1d/2h"]),
        (
            "fast burn with budget",
            with(0.001, &fast),
            Violated,
            vec!["1h/5m"],
        ),
        ("spent, calm now", with(0.006, &[]), Violated, vec![]),
        (
            "spent and burning",
            with(0.006, &fast),
            Critical,
            vec!["1h/5m"],
        ),
        (
            "burnt an hour ago",
            with(0.006, &[("1h", 0.081)]),
            Violated,
            vec![],
        ),
        ("no data", Measurements::new(), Unknown, vec![]),
    ] {
        let report = evaluate(&spec, &m, now());
        assert_eq!(report.objectives[0].state, state, "{name}");
        let pairs: Vec<String> = report
            .firing
            .iter()
            .map(|p| format!("{}/{}", p.long, p.short))
            .collect();
        assert_eq!(pairs, firing, "{name}");
    }
}

#[test]
fn a_firing_pair_reads_as_an_event() {
    let spec = spec("");
    let report = evaluate(
        &spec,
        &measured(&[("30d", 0.001), ("1h", 0.081), ("5m", 0.1)]),
        now(),
    );
    assert_eq!(report.firing.len(), 1);
    let pair = &report.firing[0];
    assert_close(pair.long_burn_rate, 16.2);
    assert_close(pair.short_burn_rate, 20.0);
    assert_eq!(
        pair.to_string(),
        "objective availability burning 16.2x over 1h/5m (critical pair 14.4)"
    );
    assert_eq!(report.critical_firing().count(), 1);
    assert_eq!(report.worst_state(), ObjectiveState::Violated);
}

#[test]
fn status_reports_burn_rates_by_window_for_windows_with_data() {
    let spec = spec("");
    let m = measured(&[("30d", 0.003), ("1h", 0.01), ("5m", 0.0)]).with(
        "availability",
        d("6h"),
        Some(0.0),
        Some(0.0), // no traffic: no figure
    );
    let report = evaluate(&spec, &m, now());
    let status = &report.objectives[0];
    assert_eq!(
        status
            .burn_rates
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["1h", "30d", "5m"]
    );
    assert_close(status.burn_rates["1h"], 2.0);
    assert_close(status.burn_rates["30d"], 0.6);
    assert_eq!(status.burn_rates["5m"], 0.0);
    assert_close(status.sli.unwrap(), 0.997);
    assert_close(status.budget_remaining.unwrap(), 0.4);
    assert_eq!(status.state, ObjectiveState::Meeting);
    assert_eq!(report.time, now());
}

#[test]
fn zero_totals_everywhere_are_unknown_and_not_frozen() {
    let spec = spec("");
    let m = query_windows(&spec)
        .into_iter()
        .fold(Measurements::new(), |m, w| {
            m.with("availability", w, Some(0.0), Some(0.0))
        });
    let report = evaluate(&spec, &m, now());
    let status = &report.objectives[0];
    assert_eq!(status.sli, None);
    assert_eq!(status.budget_remaining, None);
    assert!(status.burn_rates.is_empty());
    assert_eq!(status.state, ObjectiveState::Unknown);
    assert_eq!(report.compliance_score, None);
    assert!(!report.frozen);
    assert_eq!(
        report.freeze_reason,
        "not frozen: no objective has data over the SLO window, so every one is Unknown"
    );
    assert_eq!(report.worst_state(), ObjectiveState::Unknown);
}

#[test]
fn compliance_score_is_the_mean_clamped_budget_left() {
    for (remaining, score) in [
        (vec![Some(1.0), Some(1.0)], Some(100.0)),
        (vec![Some(0.4), Some(0.8)], Some(60.0)),
        (vec![Some(-3.0), Some(0.5)], Some(25.0)), // overspent counts as 0, not -300
        (vec![Some(0.4), None], Some(40.0)),       // objectives without data are left out
        (vec![None, None], None),
        (vec![], None),
    ] {
        assert_eq!(
            compliance_score(remaining.iter().copied()).map(|s| (s * 1e9).round() / 1e9),
            score,
            "{remaining:?}"
        );
    }
}

fn status(name: &str, remaining: Option<f64>) -> ObjectiveStatus {
    ObjectiveStatus {
        name: name.to_string(),
        sli: None,
        budget_remaining: remaining,
        burn_rates: BTreeMap::new(),
        state: ObjectiveState::Unknown,
    }
}

#[test]
fn freeze_when_the_lowest_budget_is_under_the_threshold() {
    let policy = BudgetPolicy::default(); // freeze below 10 %
    for (objectives, frozen) in [
        (vec![status("a", Some(0.5)), status("b", Some(0.04))], true),
        (vec![status("a", Some(0.5)), status("b", Some(0.10))], false), // at 10 %: not under
        (vec![status("a", Some(-0.2))], true),
        (vec![status("a", Some(0.5)), status("b", None)], false),
        (vec![status("a", None)], false),
    ] {
        assert_eq!(
            freeze(&objectives, &policy).frozen,
            frozen,
            "{objectives:?}"
        );
    }
    let zero = BudgetPolicy {
        freeze_below_remaining: 0.0,
        ..BudgetPolicy::default()
    };
    assert!(!freeze(&[status("a", Some(0.0))], &zero).frozen);
    assert!(freeze(&[status("a", Some(-0.01))], &zero).frozen);

    let objectives = [status("availability", Some(0.04)), status("latency", None)];
    assert_eq!(
        freeze(&objectives, &policy).reason,
        "frozen: objective availability has 4.0 % of its error budget left, under spec.policy.freezeBelowRemaining 10.0 %; no data for objective latency"
    );
    assert_eq!(
        freeze(&[status("latency", Some(0.6))], &policy).reason,
        "not frozen: the lowest error budget left is 60.0 % (objective latency), not under spec.policy.freezeBelowRemaining 10.0 %"
    );
}

#[test]
fn report_over_two_objectives() {
    let spec: SLOBudgetSpec = serde_saphyr::from_str(
        r#"
objectives:
- name: availability
  target: 99.5
  good: 'sum(rate(ok[{{window}}]))'
  total: 'sum(rate(all[{{window}}]))'
- name: latency
  target: 99
  good: 'sum(rate(fast[{{window}}]))'
  total: 'sum(rate(all[{{window}}]))'
policy: {freezeBelowRemaining: 0.5}
"#,
    )
    .unwrap();
    let m = Measurements::new()
        .with("availability", d("30d"), Some(997.0), Some(1000.0)) // 40 % left
        .with("latency", d("30d"), Some(992.0), Some(1000.0)); // 0.8 % of 1 %: 20 % left
    let report = evaluate(&spec, &m, now());
    let states: Vec<_> = report.objectives.iter().map(|o| o.state).collect();
    assert_eq!(states, [ObjectiveState::Meeting, ObjectiveState::AtRisk]);
    assert_close(report.compliance_score.unwrap(), 30.0);
    let (name, lowest) = report.lowest_budget_remaining().unwrap();
    assert_eq!(name, "latency");
    assert_close(lowest, 0.2);
    assert!(report.frozen);
    assert_eq!(report.worst_state(), ObjectiveState::AtRisk);
}

#[test]
fn canary_spend_worked_numbers() {
    // 99.5 % over 30 days at 100 requests per second allows 0.005 x 100 x 2 592 000 = 1 296 000
    // failed requests; the canary's 64 800 are 5 %, its 77 760 are 6 %.
    let spec = spec("");
    for (bad, spend, exceeded) in [
        (0.0, 0.0, false),
        (64_800.0, 0.05, false), // at the limit: not above it
        (77_760.0, 0.06, true),
        (1_296_000.0, 1.0, true),
    ] {
        let judged = judge_canary_spend(&spec, objective(&spec), Some(bad), Some(100.0));
        assert_close(judged.spend.unwrap(), spend);
        assert_eq!(judged.exceeded, exceeded, "{bad} bad events");
    }
    let judged = judge_canary_spend(&spec, objective(&spec), Some(77_760.0), Some(100.0));
    assert_eq!(
        judged.reason(),
        "the canary burnt 6.0 % of objective availability's error budget, above spec.policy.canaryMaxBudgetSpend 5.0 %"
    );
    for (bad, rate) in [
        (None, Some(100.0)),
        (Some(10.0), None),
        (Some(10.0), Some(0.0)),
        (Some(f64::NAN), Some(100.0)),
        (Some(-1.0), Some(100.0)),
    ] {
        let judged = judge_canary_spend(&spec, objective(&spec), bad, rate);
        assert_eq!(judged.spend, None);
        assert!(!judged.exceeded);
    }
}

#[test]
fn canary_bad_events_from_the_canary_track_rates() {
    // 1 request per second on the canary, 5 % failing, for 2 hours: 360 failed requests.
    assert_close(
        canary_bad_events(Some(0.95), Some(1.0), d("2h")).unwrap(),
        360.0,
    );
    assert_eq!(canary_bad_events(Some(1.01), Some(1.0), d("2h")), Some(0.0));
    assert_eq!(canary_bad_events(None, Some(1.0), d("2h")), None);
    assert_eq!(canary_bad_events(Some(f64::NAN), Some(1.0), d("2h")), None);
}

#[test]
fn a_canary_is_judged_on_its_own_errors_not_diluted_by_stable() {
    // 1 % of traffic on a canary failing 10 % of its requests; stable is clean. Over the whole
    // service the error ratio is 0.1 %, a burn of 0.2: nothing fires. On the canary track the
    // burn is 20 and the fast-burn pair fires.
    let spec = spec("");
    let service = measured(&[("30d", 0.0), ("1h", 0.001), ("5m", 0.001)]);
    assert!(evaluate(&spec, &service, now()).firing.is_empty());

    let canary: WindowMeasurements = [(d("1h"), 0.1), (d("5m"), 0.1), (d("6h"), 0.1)]
        .into_iter()
        .map(|(w, e)| (w, WindowMeasurement::new(100.0 * (1.0 - e), 100.0)))
        .collect();
    let burn = canary_burn(&spec, objective(&spec), &canary);
    assert_close(burn.burn_rates["1h"], 20.0);
    assert_eq!(burn.firing.len(), 1, "6h/30m has no 30m figure");
    assert_eq!(
        burn.reason().unwrap(),
        "objective availability burning 20.0x over 1h/5m (critical pair 14.4) on the canary track"
    );

    let calm: WindowMeasurements = [(d("1h"), WindowMeasurement::new(100.0, 100.0))].into();
    assert!(
        canary_burn(&spec, objective(&spec), &calm)
            .critical()
            .is_none()
    );
}

#[test]
fn the_shipped_example_is_valid() {
    let example: SLOBudget =
        serde_saphyr::from_str(include_str!("../../examples/checkout/slobudget.yaml")).unwrap();
    assert_eq!(validate_budget(&example.spec), Vec::<String>::new());
    assert!(validate_budget(&spec("")).is_empty());
}

#[test]
fn validation_names_each_field() {
    let good = r#"'sum(rate(ok[{{window}}]))'"#;
    let total = r#"'sum(rate(all[{{window}}]))'"#;
    let objective = |name: &str, target: &str, good: &str, total: &str| {
        format!("- {{name: {name}, target: {target}, good: {good}, total: {total}}}\n")
    };
    let case = |objectives: String, extra: &str| -> Vec<String> {
        let spec: SLOBudgetSpec =
            serde_saphyr::from_str(&format!("objectives:\n{objectives}{extra}")).unwrap();
        validate_budget(&spec)
    };
    let valid = objective("availability", "99.5", good, total);
    let pairs = |pair: &str| format!("burnRateAlerts:\n- {pair}\n");

    for (objectives, extra, problems) in [
        (
            objective("a", "100", good, total),
            String::new(),
            vec!["spec.objectives[0].target 100 must be between 0 and 100 (exclusive)"],
        ),
        (
            objective("a", "0", good, total),
            String::new(),
            vec!["spec.objectives[0].target 0 must be between 0 and 100 (exclusive)"],
        ),
        (
            objective("a", "120", good, total),
            String::new(),
            vec!["spec.objectives[0].target 120 must be between 0 and 100 (exclusive)"],
        ),
        (
            objective("a", "99", "''", "' '"),
            String::new(),
            vec![
                "spec.objectives[0].good must not be empty",
                "spec.objectives[0].total must not be empty",
            ],
        ),
        (
            objective("a", "99", "'sum(rate(ok[5m]))'", total),
            String::new(),
            vec![
                "spec.objectives[0].good has no {{window}} placeholder, so the SLO window and every burn-rate window would measure the same range",
            ],
        ),
        (
            format!("{valid}{valid}"),
            String::new(),
            vec!["spec.objectives[1].name \"availability\" is used by an earlier objective"],
        ),
        (
            valid.clone(),
            pairs("{long: 5m, short: 1h, factor: 14.4, severity: Critical}"),
            vec![
                "spec.burnRateAlerts[0].short 1h must be shorter than spec.burnRateAlerts[0].long 5m",
            ],
        ),
        (
            valid.clone(),
            pairs("{long: 1h, short: 1h, factor: 14.4, severity: Critical}"),
            vec![
                "spec.burnRateAlerts[0].short 1h must be shorter than spec.burnRateAlerts[0].long 1h",
            ],
        ),
        (
            valid.clone(),
            format!(
                "window: 1d\n{}",
                pairs("{long: 3d, short: 6h, factor: 1, severity: Warning}")
            ),
            vec!["spec.burnRateAlerts[0].long 3d is longer than spec.window 1d"],
        ),
        (
            valid.clone(),
            format!(
                "window: 1h\n{}",
                pairs("{long: 3d, short: 2h, factor: 1, severity: Warning}")
            ),
            vec![
                "spec.burnRateAlerts[0].long 3d is longer than spec.window 1h",
                "spec.burnRateAlerts[0].short 2h is longer than spec.window 1h",
            ],
        ),
        (
            valid.clone(),
            pairs("{long: 1h, short: 5m, factor: 0, severity: Critical}"),
            vec!["spec.burnRateAlerts[0].factor 0 must be above 0"],
        ),
        (
            valid.clone(),
            pairs("{long: 1h, short: 5m, factor: -2, severity: Critical}"),
            vec!["spec.burnRateAlerts[0].factor -2 must be above 0"],
        ),
        (
            valid.clone(),
            "policy: {freezeBelowRemaining: 1.5, canaryMaxBudgetSpend: -0.1}\n".to_string(),
            vec![
                "spec.policy.freezeBelowRemaining 1.5 must be between 0 and 1",
                "spec.policy.canaryMaxBudgetSpend -0.1 must be between 0 and 1",
            ],
        ),
        (
            valid.clone(),
            "policy: {freezeBelowRemaining: 0, canaryMaxBudgetSpend: 1}\n".to_string(),
            vec![],
        ),
        (
            valid.clone(),
            "window: 0s\ninterval: 0s\nburnRateAlerts: []\n".to_string(),
            vec![
                "spec.window must be longer than 0s",
                "spec.interval must be longer than 0s",
            ],
        ),
    ] {
        assert_eq!(
            case(objectives.clone(), &extra),
            problems,
            "{objectives}{extra}"
        );
    }

    let spaced = objective("a", "99", r#"'sum(rate(ok[{{ window }}]))'"#, total);
    assert!(case(spaced, "").is_empty());
    let unparsable = case(
        objective("a", "99", "'sum(rate(ok[{{window}}])'", total),
        "",
    );
    assert_eq!(unparsable.len(), 1);
    assert!(unparsable[0].starts_with("spec.objectives[0].good: PromQL does not parse"));
}

fn ratio() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..=1.0f64,
        1 => Just(0.0),
        1 => Just(1.0),
    ]
}

fn raw() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (0.0..1e9f64).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(0.0)),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
        1 => Just(Some(-1.0)),
    ]
}

fn target() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(99.5),
        Just(99.9),
        Just(99.0),
        Just(90.0),
        0.001..99.999f64
    ]
}

proptest! {
    #[test]
    fn no_errors_burn_nothing(total in 1e-6..1e12f64, target in target()) {
        let sli = sli(Some(total), Some(total)).unwrap();
        prop_assert_eq!(burn_rate(sli, target), Some(0.0));
        prop_assert_eq!(budget_remaining(sli, target), Some(1.0));
    }

    #[test]
    fn remaining_is_at_most_one_and_falls_as_errors_grow(
        a in ratio(), b in ratio(), target in target()
    ) {
        let (ra, rb) = (budget_remaining(a, target).unwrap(), budget_remaining(b, target).unwrap());
        prop_assert!(ra <= 1.0 && rb <= 1.0);
        if a <= b {
            prop_assert!(ra <= rb);
        }
    }

    #[test]
    fn score_is_within_0_and_100(remaining in prop::collection::vec(
        prop_oneof![Just(None), (-1e6..1e6f64).prop_map(Some), Just(Some(f64::INFINITY))], 0..10)
    ) {
        if let Some(score) = compliance_score(remaining) {
            prop_assert!((0.0..=100.0).contains(&score));
        }
    }

    #[test]
    fn output_is_always_finite(
        windows in prop::collection::vec((raw(), raw()), 8),
        target in target(),
    ) {
        let mut spec = spec("");
        spec.objectives[0].target = target;
        let m = query_windows(&spec).into_iter().zip(windows).fold(
            Measurements::new(),
            |m, (w, (good, total))| m.with("availability", w, good, total),
        );
        let report = evaluate(&spec, &m, now());
        let status = &report.objectives[0];
        for figure in status.sli.iter().chain(&status.budget_remaining).chain(status.burn_rates.values()) {
            prop_assert!(figure.is_finite());
        }
        if let Some(remaining) = status.budget_remaining {
            prop_assert!(remaining <= 1.0);
        }
        if let Some(score) = report.compliance_score {
            prop_assert!((0.0..=100.0).contains(&score));
        }
        for pair in &report.firing {
            prop_assert!(pair.burn_rate() > pair.factor);
        }
        prop_assert_eq!(status.state == ObjectiveState::Unknown, status.budget_remaining.is_none() && report.firing.is_empty());
    }
}
