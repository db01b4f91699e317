use super::*;

fn analysis(no_data: NoDataPolicy) -> Analysis {
    Analysis {
        no_data,
        checks: vec![
            Check {
                name: "error-rate".into(),
                query: "q1".into(),
                min: None,
                max: Some(0.01),
                max_increase: None,
                max_decrease: None,
            },
            Check {
                name: "success".into(),
                query: "q2".into(),
                min: Some(0.9),
                max: None,
                max_increase: None,
                max_decrease: None,
            },
        ],
        ..Analysis::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn run(no_data: NoDataPolicy, a: QueryOutcome, b: QueryOutcome) -> Verdict {
    let input = AnalysisInput {
        samples: None,
        checks: vec![a, b],
        baselines: vec![],
        gates: vec![],
        prometheus_start: None,
        counts: vec![],
    };
    judge(&analysis(no_data), &input, &stage(), now())
        .evaluation
        .verdict
}

#[test]
fn verdict_table() {
    use NoDataPolicy as P;
    use Verdict as V;
    let unreachable = || Err::<Option<f64>, String>("connection refused".into());
    let cases: Vec<(NoDataPolicy, QueryOutcome, QueryOutcome, Verdict)> = vec![
        (P::Hold, Ok(Some(0.002)), Ok(Some(0.99)), V::Pass),
        (P::Hold, Ok(Some(0.05)), Ok(Some(0.99)), V::Fail),
        (P::Hold, Ok(Some(0.002)), Ok(Some(0.5)), V::Fail),
        (P::Hold, Ok(Some(0.01)), Ok(Some(0.9)), V::Pass), // bounds are inclusive
        (P::Hold, Ok(None), Ok(Some(0.99)), V::NoData),
        (P::Fail, Ok(None), Ok(Some(0.99)), V::Fail),
        (P::Pass, Ok(None), Ok(Some(0.99)), V::Pass),
        (P::Pass, unreachable(), Ok(Some(0.99)), V::NoData), // an outage never passes
        (P::Fail, unreachable(), Ok(Some(0.99)), V::NoData), // ...nor fails
        (P::Hold, Ok(None), Ok(Some(0.5)), V::Fail),         // a failure outweighs missing data
    ];
    for (i, (policy, a, b, expected)) in cases.into_iter().enumerate() {
        assert_eq!(run(policy, a, b), expected, "case {i}");
    }
}

#[test]
fn failing_check_is_described_with_value_and_bound() {
    let input = AnalysisInput {
        samples: Some(Ok(Some(600.0))),
        checks: vec![Ok(Some(0.052)), Ok(Some(0.99))],
        baselines: vec![],
        gates: vec![],
        prometheus_start: None,
        counts: vec![],
    };
    let judgement = judge(&analysis(NoDataPolicy::Hold), &input, &stage(), now());
    assert_eq!(
        judgement.evaluation.message.as_deref(),
        Some("check error-rate = 0.052 > max 0.01")
    );
    assert_eq!(judgement.evaluation.samples, Some(600.0));
}

const NO_EVIDENCE: &[CheckEvidence] = &[];

fn stage() -> StageContext<'static> {
    StageContext {
        evidence: NO_EVIDENCE,
        alpha: 0.0025,
        expected_evaluations: 10.0,
        shared_failures_hold: true,
        canary_percent: 5,
        shadow: false,
    }
}

/// Judges `evaluations` evaluations of `check` with the same two values, threading the
/// evidence from one to the next as the rollout's status does.
fn judge_repeatedly(
    check: &Check,
    canary: f64,
    stable: QueryOutcome,
    evaluations: u32,
) -> Evaluation {
    let analysis = Analysis {
        checks: vec![check.clone()],
        ..Analysis::default()
    };
    let input = AnalysisInput {
        checks: vec![Ok(Some(canary))],
        baselines: vec![Some(stable)],
        ..Default::default()
    };
    judge_stage(&analysis, &input, evaluations, false).0
}

/// Judges up to `evaluations` evaluations of `input` at one stage (stopping at the first that
/// fails, if `until_failure`), threading the evidence from one to the next as the rollout's
/// status does: the last evaluation and the evidence after it.
fn judge_stage(
    analysis: &Analysis,
    input: &AnalysisInput,
    evaluations: u32,
    until_failure: bool,
) -> (Evaluation, Vec<CheckEvidence>) {
    let mut evidence = Vec::new();
    let mut last = None;
    for _ in 0..evaluations {
        let context = StageContext {
            evidence: &evidence,
            ..stage()
        };
        let judgement = judge(analysis, input, &context, now());
        evidence = judgement.evidence;
        let failed = judgement.evaluation.verdict == Verdict::Fail;
        last = Some(judgement.evaluation);
        if failed && until_failure {
            break;
        }
    }
    (last.expect("at least one evaluation"), evidence)
}

fn latency_check() -> Check {
    Check {
        name: "p99-latency".into(),
        query: "q{{track}}".into(),
        min: None,
        max: None,
        max_increase: Some(0.10),
        max_decrease: None,
    }
}

#[test]
fn relative_checks_compare_the_tracks_over_the_stage() {
    let latency = latency_check();
    let success = Check {
        name: "success".into(),
        max_increase: None,
        max_decrease: Some(0.03),
        ..latency.clone()
    };
    let cases: Vec<(&Check, f64, QueryOutcome, Verdict)> = vec![
        (&latency, 0.115, Ok(Some(0.100)), Verdict::Fail), // 15 % slower
        (&latency, 0.105, Ok(Some(0.100)), Verdict::Pass), // 5 % slower
        (&latency, 0.080, Ok(Some(0.100)), Verdict::Pass), // faster is fine
        (&success, 0.95, Ok(Some(0.99)), Verdict::Fail),   // 4 % lower
        (&success, 0.97, Ok(Some(0.99)), Verdict::Pass),   // 2 % lower
        (&latency, 0.1, Ok(None), Verdict::NoData),        // no stable data holds
        (&latency, 0.1, Err("down".into()), Verdict::NoData),
        (&latency, 0.1, Ok(Some(0.0)), Verdict::NoData), // no relative change against 0
        (&latency, 0.0, Ok(Some(0.0)), Verdict::Pass),
    ];
    for (i, (check, canary, stable, expected)) in cases.into_iter().enumerate() {
        let evaluation = judge_repeatedly(check, canary, stable.clone(), sequential::MIN_PAIRS);
        assert_eq!(
            evaluation.verdict, expected,
            "case {i}: {:?}",
            evaluation.checks
        );
        // Before the evidence is there, nothing is decided either way.
        let early = judge_repeatedly(check, canary, stable, sequential::MIN_PAIRS - 1);
        assert_eq!(
            early.verdict,
            Verdict::NoData,
            "case {i} early: {:?}",
            early.checks
        );
    }
}

#[test]
fn a_relative_failure_names_the_evidence_and_the_sequence() {
    let evaluation = judge_repeatedly(&latency_check(), 0.115, Ok(Some(0.1)), 6);
    let check = &evaluation.checks[0];
    assert_eq!(check.evaluations, Some(6));
    assert_eq!(check.value, Some(0.115));
    assert_eq!(check.baseline, Some(0.1));
    let [lower, upper] = check.change_interval.expect("an interval");
    assert!((lower - 0.15).abs() < 1e-9 && (upper - 0.15).abs() < 1e-9);
    assert_eq!(
        evaluation.message.as_deref(),
        Some(
            "check p99-latency: canary mean 0.115 vs stable 0.1 over 6 evaluations, change +15.0 % \
             (confidence sequence at 99.75 %: +15.0 % to +15.0 %); established beyond maxIncrease +10.0 %"
        )
    );
    let early = judge_repeatedly(&latency_check(), 0.115, Ok(Some(0.1)), 2);
    assert_eq!(
        early.message.as_deref(),
        Some("check p99-latency = 0.115: collecting evidence: 2 of 5 evaluations with both tracks")
    );
}

/// Two versions that behave the same look different at any one instant; on the stage's
/// evidence they are not told apart, and the check never fails.
#[test]
fn noisy_instants_of_equal_tracks_do_not_fail_a_relative_check() {
    let analysis = Analysis {
        checks: vec![Check {
            max_increase: Some(0.15),
            ..latency_check()
        }],
        ..Analysis::default()
    };
    let mut evidence = Vec::new();
    let mut verdicts = Vec::new();
    for i in 0..60 {
        let wobble = |phase: f64| 0.1 * (1.0 + 0.25 * (f64::from(i) * phase).sin());
        let input = AnalysisInput {
            checks: vec![Ok(Some(wobble(1.7)))],
            baselines: vec![Some(Ok(Some(wobble(2.3))))],
            ..Default::default()
        };
        let context = StageContext {
            evidence: &evidence,
            ..stage()
        };
        let judgement = judge(&analysis, &input, &context, now());
        evidence = judgement.evidence;
        verdicts.push(judgement.evaluation.verdict);
    }
    assert!(!verdicts.contains(&Verdict::Fail), "{verdicts:?}");
    assert_eq!(verdicts.last(), Some(&Verdict::Pass), "{verdicts:?}");
}

#[test]
fn a_failure_stable_shares_holds_instead_of_failing() {
    let tracked = Analysis {
        checks: vec![Check {
            query: "errors{track=\"{{track}}\"}".into(),
            ..analysis(NoDataPolicy::Hold).checks[0].clone()
        }],
        ..Analysis::default()
    };
    let canary = Ok(Some(0.3));
    assert!(wants_stable_value(&tracked, &tracked.checks[0], &canary));
    assert!(!wants_stable_value(
        &tracked,
        &tracked.checks[0],
        &Ok(Some(0.001))
    ));
    assert!(!wants_stable_value(
        &analysis(NoDataPolicy::Hold),
        &analysis(NoDataPolicy::Hold).checks[0],
        &canary
    ));
    let with_stable = |stable: f64, hold: bool| {
        let input = AnalysisInput {
            checks: vec![canary.clone()],
            baselines: vec![Some(Ok(Some(stable)))],
            ..Default::default()
        };
        let context = StageContext {
            shared_failures_hold: hold,
            ..stage()
        };
        judge(&tracked, &input, &context, now())
    };
    let shared = with_stable(0.28, true);
    assert!(shared.shared_failure);
    assert_eq!(shared.evaluation.verdict, Verdict::NoData);
    assert_eq!(
        shared.evaluation.message.as_deref(),
        Some("check error-rate = 0.3: shared failure: stable fails too (0.28)")
    );
    // Stable healthy: the canary alone fails.
    let alone = with_stable(0.001, true);
    assert!(!alone.shared_failure);
    assert_eq!(alone.evaluation.verdict, Verdict::Fail);
    // Holding switched off, or held for too long: the failure counts, and says it is shared.
    let counted = with_stable(0.28, false);
    assert!(counted.shared_failure);
    assert_eq!(counted.evaluation.verdict, Verdict::Fail);
}

#[test]
fn gates_hold_or_roll_back() {
    let gate = |effect| GateVerdict {
        source: GateSource::Parity,
        effect,
        reason: "parity Critical: 61.2 bps".into(),
        parity: None,
        slo: None,
        evidence: Vec::new(),
    };
    let input = AnalysisInput {
        samples: None,
        checks: vec![Ok(Some(0.0)), Ok(Some(1.0))],
        baselines: vec![],
        gates: vec![gate(GateEffect::Hold)],
        prometheus_start: None,
        counts: vec![],
    };
    assert_eq!(
        judge(&analysis(NoDataPolicy::Hold), &input, &stage(), now())
            .evaluation
            .verdict,
        Verdict::NoData
    );
    let input = AnalysisInput {
        baselines: vec![],
        gates: vec![gate(GateEffect::Rollback)],
        ..input
    };
    let judgement = judge(&analysis(NoDataPolicy::Hold), &input, &stage(), now());
    assert_eq!(judgement.evaluation.verdict, Verdict::Fail);
    assert_eq!(
        judgement.gate_rollback.map(|g| g.0),
        Some(GateEffect::Rollback)
    );
}

#[test]
fn a_canary_without_users_holds_except_in_a_shadow_stage() {
    let input = AnalysisInput {
        checks: vec![Ok(Some(0.0)), Ok(Some(1.0))],
        gates: vec![GateVerdict {
            source: GateSource::Slo,
            effect: GateEffect::HoldForUserTraffic,
            reason: "SLOBudget checkout-slo: no data for the canary track yet".into(),
            parity: None,
            slo: None,
            evidence: Vec::new(),
        }],
        ..Default::default()
    };
    let weighted = judge(&analysis(NoDataPolicy::Hold), &input, &stage(), now());
    assert_eq!(weighted.evaluation.verdict, Verdict::NoData);
    let shadow = StageContext {
        shadow: true,
        ..stage()
    };
    let shadowed = judge(&analysis(NoDataPolicy::Hold), &input, &shadow, now());
    assert_eq!(
        shadowed.evaluation.verdict,
        Verdict::Pass,
        "the canary serves no user at a shadow stage: no user budget to spend"
    );
}

/// Judges evaluations whose canary and stable values come from `values`, threading the
/// evidence; returns the last evaluation.
fn judge_series(
    check: &Check,
    canary_percent: u32,
    values: impl Iterator<Item = (f64, f64)>,
) -> Evaluation {
    let analysis = Analysis {
        checks: vec![check.clone()],
        ..Analysis::default()
    };
    let mut evidence = Vec::new();
    let mut last = None;
    for (canary, stable) in values {
        let input = AnalysisInput {
            checks: vec![Ok(Some(canary))],
            baselines: vec![Some(Ok(Some(stable)))],
            ..Default::default()
        };
        let context = StageContext {
            evidence: &evidence,
            canary_percent,
            ..stage()
        };
        let judgement = judge(&analysis, &input, &context, now());
        evidence = judgement.evidence;
        last = Some(judgement.evaluation);
    }
    last.expect("at least one evaluation")
}

/// Same mean, but the canary's values swing far more than its share of the traffic explains:
/// the check fails and names the test; the same swing at 1 % of the traffic is explained.
#[test]
fn a_canary_more_erratic_than_its_traffic_explains_fails_on_its_spread() {
    let swings = |amplitude: f64| {
        (0..12).map(move |i| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            (
                0.2 + sign * amplitude,
                0.2 + sign * 0.001 * f64::from(i % 3),
            )
        })
    };
    let erratic = judge_series(&latency_check(), 50, swings(0.05));
    assert_eq!(erratic.verdict, Verdict::Fail, "{:?}", erratic.message);
    let message = erratic.message.expect("a reason");
    assert!(
        message.starts_with("check p99-latency: spread ")
            && message.contains(
                "times stable's (variance of the logarithms) over 12 evaluations, beyond the 4 \
                 times that 50 % of the traffic explains"
            )
            && message.contains("(sequential F test: e-value "),
        "{message}"
    );
    let explained = judge_series(&latency_check(), 1, swings(0.0015));
    assert_ne!(explained.verdict, Verdict::Fail, "{:?}", explained.message);
}

/// A check that failed for another reason than its bounds says that reason, not "out of
/// bounds"; one that failed its bounds names them.
#[test]
fn a_failure_not_of_the_bounds_names_its_reason() {
    let result = CheckResult {
        name: "errors-vs-stable".into(),
        value: Some(0.5),
        min: None,
        max: Some(1.0),
        baseline: None,
        change: None,
        change_interval: None,
        evaluations: Some(9),
        verdict: Verdict::Fail,
        message: Some("spread 400.0 times stable's".into()),
    };
    assert_eq!(
        describe_check(&result, Some(&latency_check()), 0.01),
        "check errors-vs-stable = 0.5: spread 400.0 times stable's"
    );
    let beyond = CheckResult {
        value: Some(1.5),
        message: None,
        ..result
    };
    assert_eq!(
        describe_check(&beyond, None, 0.01),
        "check errors-vs-stable = 1.5 > max 1"
    );
}

/// A Prometheus that started `ago` seconds before [`now`], with a lookback of `lookback` seconds.
fn prometheus_started(ago: u64, lookback: u64) -> crate::metrics::PrometheusStart {
    crate::metrics::PrometheusStart {
        address: "http://prometheus:9090".into(),
        started: now() - std::time::Duration::from_secs(ago),
        lookback: std::time::Duration::from_secs(lookback),
    }
}

#[test]
fn answers_of_a_prometheus_younger_than_its_lookback_hold_instead_of_passing() {
    let judged = |canary_errors: f64, start| {
        let input = AnalysisInput {
            checks: vec![Ok(Some(canary_errors)), Ok(Some(0.99))],
            prometheus_start: Some(start),
            ..Default::default()
        };
        judge(&analysis(NoDataPolicy::Hold), &input, &stage(), now())
    };

    let young = judged(0.002, prometheus_started(40, 300));
    assert_eq!(young.evaluation.verdict, Verdict::NoData);
    assert!(
        !young.measured_without_failure,
        "a held pass ends no failure streak"
    );
    let message = young.evaluation.message.unwrap_or_default();
    for part in [
        "Prometheus at http://prometheus:9090 started 40s ago",
        "until 2023-11-14T22:17:40Z",
        "query.lookback-delta 5m",
    ] {
        assert!(message.contains(part), "{part:?} in {message:?}");
    }

    let failing = judged(0.05, prometheus_started(40, 300));
    assert_eq!(
        failing.evaluation.verdict,
        Verdict::Fail,
        "a failure still counts"
    );
    let message = failing.evaluation.message.unwrap_or_default();
    assert!(
        !message.contains("lookback"),
        "only what decided: {message:?}"
    );

    let settled = judged(0.002, prometheus_started(300, 300));
    assert_eq!(settled.evaluation.verdict, Verdict::Pass);
    assert!(settled.measured_without_failure);
}

#[test]
fn answers_of_a_prometheus_younger_than_its_lookback_add_no_evidence() {
    let analysis = Analysis {
        checks: vec![latency_check()],
        ..Analysis::default()
    };
    let input = |start| AnalysisInput {
        checks: vec![Ok(Some(0.105))],
        baselines: vec![Some(Ok(Some(0.100)))],
        prometheus_start: Some(start),
        ..Default::default()
    };
    let mut evidence = Vec::new();
    for _ in 0..sequential::MIN_PAIRS {
        let context = StageContext {
            evidence: &evidence,
            ..stage()
        };
        let judgement = judge(
            &analysis,
            &input(prometheus_started(10, 60)),
            &context,
            now(),
        );
        assert_eq!(judgement.evaluation.verdict, Verdict::NoData);
        evidence = judgement.evidence;
    }
    assert!(evidence.is_empty(), "{evidence:?}");
    let context = StageContext {
        evidence: &evidence,
        ..stage()
    };
    let judgement = judge(
        &analysis,
        &input(prometheus_started(60, 60)),
        &context,
        now(),
    );
    assert_eq!(judgement.evidence.len(), 1, "{:?}", judgement.evidence);
}

/// A relative check on a ratio of counters with its counts: judged on the counts, the
/// evidence kept from one evaluation to the next, the reason naming the test and its e-value.
#[test]
fn a_ratio_of_counters_is_judged_on_its_counts() {
    let errors = Check {
        name: "errors".into(),
        query: "sum(rate(errors{track=\"{{track}}\"}[1m])) / sum(rate(requests{track=\"{{track}}\"}[1m]))".into(),
        min: None,
        max: None,
        max_increase: Some(1.0),
        max_decrease: None,
    };
    let analysis = Analysis {
        checks: vec![errors],
        ..Analysis::default()
    };
    let run = |canary_errors: f64, evaluations: u32| {
        let counts = Counts {
            canary: count_test::TrackCounts {
                events: canary_errors,
                requests: 100.0,
            },
            stable: count_test::TrackCounts {
                events: 19.0,
                requests: 1900.0,
            },
        };
        let input = AnalysisInput {
            checks: vec![Ok(Some(canary_errors / 100.0))],
            baselines: vec![Some(Ok(Some(0.01)))],
            counts: vec![Some(Ok(counts))],
            ..Default::default()
        };
        judge_stage(&analysis, &input, evaluations, true)
    };

    // Five times stable's error rate, against a bound of twice.
    let (failed, evidence) = run(5.0, 10);
    assert_eq!(failed.verdict, Verdict::Fail, "{failed:?}");
    let counts = evidence[0].counts.as_ref().expect("the counts are kept");
    assert_eq!(
        counts.evaluations,
        failed.checks[0].evaluations.unwrap_or(0)
    );
    assert!(counts.evaluations < 10, "decided as soon as established");
    let reason = failed.message.unwrap_or_default();
    for part in [
        "check errors = 0.05",
        "5 times stable's (ratios below 2 and above",
        "above 2 times stable's established (e-value",
        "sequential binomial test on the counts",
    ] {
        assert!(reason.contains(part), "{part:?} in {reason:?}");
    }
    assert_eq!(failed.checks[0].baseline, Some(0.01));

    // Stable's rate: held at first, then established within the bound.
    let (early, _) = run(1.0, 1);
    assert_eq!(early.verdict, Verdict::NoData, "{early:?}");
    assert!(
        early
            .message
            .unwrap_or_default()
            .contains("not yet established"),
        "held for evidence"
    );
    let (passed, _) = run(1.0, 40);
    assert_eq!(passed.verdict, Verdict::Pass, "{passed:?}");
}
