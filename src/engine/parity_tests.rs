use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::api::parity_policy::ParityPolicySpec;
use crate::engine::statistics::compare_tracks;

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance * expected.abs().max(1.0)
}

#[track_caller]
fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a figure");
    assert!(close(actual, expected, 1e-12), "{actual} is not {expected}");
}

type Points = Vec<(f64, f64)>;

/// A component's name and its candidate and baseline series.
type Parts = Vec<(String, Points, Points)>;

fn series(times: &[f64], values: &[f64]) -> Vec<(f64, f64)> {
    times.iter().copied().zip(values.iter().copied()).collect()
}

fn spec(yaml: &str) -> ParityPolicySpec {
    serde_saphyr::from_str(yaml).expect("test spec parses")
}

const QUERY: &str = "query: 'sum(rate(order_value_total{track=\"{{track}}\"}[1m]))'\n";

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid time")
}

// Reference values: numpy 2.4.6 (scipy 1.17.1 environment), with
//   d = [(c - b) / abs(b) * 1e4 for the usable pairs]
//   d.mean(), d.std(ddof=1), np.sqrt((d**2).mean()), and x np.sqrt(252) for the annualised ones.
const TIMES: [f64; 8] = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0];
const CANDIDATE: [f64; 8] = [100.2, 99.9, 101.0, 100.0, 5.0, f64::INFINITY, 100.6, 100.1];
const BASELINE: [f64; 8] = [100.0, 100.0, 100.5, 0.0, f64::NAN, 100.0, 100.1, 100.3];
const REF_DIFFS: [f64; 5] = [
    20.00000000000028,
    -9.999999999999432,
    49.75124378109452,
    49.95004995004995,
    -19.94017946161544,
];
const REF_MEAN: f64 = 17.952222853905972;
const REF_SD: f64 = 32.62051876410877;
const REF_RMS: f64 = 34.25727515357814;
const REF_SD_252: f64 = 517.8346817264872;
const REF_RMS_252: f64 = 543.8173839064788;

#[test]
fn reference_figures_skip_zero_nan_and_infinite_samples() {
    let mut candidate = series(&TIMES, &CANDIDATE);
    let mut baseline = series(&TIMES, &BASELINE);
    // One point on each side without a partner.
    candidate.push((480.0, 1.0));
    baseline.push((540.0, 1.0));

    let paired = pair_differences(&candidate, &baseline).expect("a baseline");
    assert_eq!(paired.values_bps.len(), 5);
    for (actual, expected) in paired.values_bps.iter().zip(REF_DIFFS) {
        assert!(close(*actual, expected, 1e-12), "{actual} vs {expected}");
    }
    assert_eq!(paired.skipped, 3);
    assert_eq!(paired.unpaired, 2);
    assert_eq!(paired.timestamps, vec![0.0, 60.0, 120.0, 360.0, 420.0]);

    let plain = figures(&paired.values_bps, None);
    assert_eq!(plain.samples, 5);
    assert_close(plain.mean_bps, REF_MEAN);
    assert_close(plain.stddev_bps, REF_SD);
    assert_close(plain.rms_bps, REF_RMS);

    let annual = figures(&paired.values_bps, Some(252.0));
    assert_close(annual.mean_bps, REF_MEAN);
    assert_close(annual.stddev_bps, REF_SD_252);
    assert_close(annual.rms_bps, REF_RMS_252);
}

#[test]
fn negative_baselines_are_measured_against_their_magnitude() {
    // numpy: [(-5 - -4) / 4 * 1e4, (-3 - -3.3) / 3.3 * 1e4] -> mean, std(ddof=1), rms.
    let diffs = active_differences(&[(1.0, -5.0), (2.0, -3.0)], &[(1.0, -4.0), (2.0, -3.3)])
        .expect("a baseline");
    let f = figures(&diffs, None);
    assert_close(Some(diffs[0]), -2500.0);
    assert_close(Some(diffs[1]), 909.0909090909086);
    assert_close(f.mean_bps, -795.4545454545457);
    assert_close(f.stddev_bps, 2410.5912994995933);
    assert_close(f.rms_bps, 1881.01651786896);
}

#[test]
fn timestamps_pair_within_a_microsecond_and_in_any_order() {
    let candidate = [(120.0, 103.0), (60.000_000_5, 102.0), (f64::NAN, 1.0)];
    let baseline = [(60.0, 100.0), (120.0, 100.0), (180.0, 100.0)];
    let paired = pair_differences(&candidate, &baseline).expect("a baseline");
    assert_eq!(paired.values_bps, vec![200.0, 300.0]);
    assert_eq!(paired.unpaired, 2, "the NaN timestamp and t=180");
}

#[test]
fn empty_and_unusable_input() {
    assert_eq!(
        active_differences(&[(0.0, 1.0)], &[]),
        Err(ParityError::NoBaseline)
    );
    assert_eq!(active_differences(&[], &[(0.0, 1.0)]), Ok(vec![]));

    let all_zero = pair_differences(&[(0.0, 1.0), (1.0, 2.0)], &[(0.0, 0.0), (1.0, -0.0)])
        .expect("a baseline");
    assert!(all_zero.values_bps.is_empty());
    assert_eq!(all_zero.skipped, 2);

    let none = figures(&[], None);
    assert_eq!(none, ParityFigures::default());
    assert_eq!(
        level(
            judged_value(&none, Measure::Rms),
            0,
            1,
            &Thresholds::default()
        ),
        ParityLevel::Insufficient
    );

    let nan_only = figures(&[f64::NAN, f64::INFINITY], Some(252.0));
    assert_eq!(nan_only.samples, 0);
    assert_eq!(nan_only.skipped, 2);
    assert_eq!(nan_only.mean_bps, None);
}

#[test]
fn one_sample_has_no_tracking_error() {
    let f = figures(&[-30.0], None);
    assert_eq!(f.samples, 1);
    assert_eq!(f.mean_bps, Some(-30.0));
    assert_eq!(f.stddev_bps, None);
    assert_eq!(f.rms_bps, Some(30.0));
    let t = Thresholds::default();
    assert_eq!(
        level(judged_value(&f, Measure::Stddev), 1, 1, &t),
        ParityLevel::Insufficient
    );
    assert_eq!(
        level(judged_value(&f, Measure::Mean), 1, 1, &t),
        ParityLevel::Warning
    );
    assert_eq!(
        level(judged_value(&f, Measure::Rms), 1, 2, &t),
        ParityLevel::Insufficient
    );
}

#[test]
fn a_steady_offset_breaches_rms_and_mean_but_not_stddev() {
    let f = figures(&[60.0; 30], None);
    let t = Thresholds::default();
    assert_eq!(f.stddev_bps, Some(0.0));
    let judged = |m| level(judged_value(&f, m), f.samples, 20, &t);
    assert_eq!(judged(Measure::Rms), ParityLevel::Critical);
    assert_eq!(judged(Measure::Mean), ParityLevel::Critical);
    assert_eq!(judged(Measure::Stddev), ParityLevel::Pass);

    let below = figures(&[-60.0; 30], None);
    assert_eq!(judged_value(&below, Measure::Mean), Some(60.0));
}

#[test]
fn annualisation_scales_dispersion_only_and_ignores_invalid_periods() {
    let diffs = [10.0, -10.0, 30.0];
    let plain = figures(&diffs, None);
    let daily = figures(&diffs, Some(252.0));
    assert_eq!(daily.mean_bps, plain.mean_bps);
    assert_close(daily.stddev_bps, plain.stddev_bps.unwrap() * 252f64.sqrt());
    assert_close(daily.rms_bps, plain.rms_bps.unwrap() * 252f64.sqrt());
    for invalid in [0.0, -4.0, f64::NAN, f64::INFINITY] {
        assert_eq!(figures(&diffs, Some(invalid)), plain, "periods {invalid}");
    }
}

#[test]
fn huge_differences_stay_finite() {
    let f = figures(&[1e300, -1e300, 1.7e308], Some(1e6));
    for figure in [f.mean_bps, f.stddev_bps, f.rms_bps] {
        assert!(figure.is_some_and(f64::is_finite), "{f:?}");
    }
    let scaled = figures(&[3e200, 1e200], None);
    assert_close(scaled.mean_bps, 2e200);
    assert_close(scaled.stddev_bps, 2f64.sqrt() * 1e200);
    assert_close(scaled.rms_bps, 5e200_f64.sqrt() * 1e100);
}

#[test]
fn levels_are_inclusive_at_each_threshold() {
    let t = Thresholds::default();
    let cases = [
        (Some(0.0), ParityLevel::Pass),
        (Some(19.999), ParityLevel::Pass),
        (Some(20.0), ParityLevel::Warning),
        (Some(49.999), ParityLevel::Warning),
        (Some(50.0), ParityLevel::Critical),
        (Some(99.999), ParityLevel::Critical),
        (Some(100.0), ParityLevel::Emergency),
        (Some(f64::MAX), ParityLevel::Emergency),
        (Some(f64::NAN), ParityLevel::Insufficient),
        (None, ParityLevel::Insufficient),
    ];
    for (value, expected) in cases {
        assert_eq!(level(value, 20, 20, &t), expected, "value {value:?}");
    }
    assert_eq!(level(Some(500.0), 19, 20, &t), ParityLevel::Insufficient);
}

#[test]
fn consecutive_breaches_count_before_a_level_does() {
    use ParityLevel::*;
    // (observed, previous run, required) -> (counted, new run)
    let cases = [
        (Warning, 0, 2, Pass, 1),
        (Critical, 1, 2, Critical, 2),
        (Emergency, 1, 2, Emergency, 2),
        (Warning, 5, 2, Warning, 6),
        (Critical, 0, 1, Critical, 1),
        (Critical, 0, 0, Critical, 1),
        (Pass, 7, 2, Pass, 0),
        (Insufficient, 1, 2, Insufficient, 1),
        (Insufficient, 0, 2, Insufficient, 0),
        (Warning, u32::MAX, 2, Warning, u32::MAX),
    ];
    for (observed, previous, required, counted, run) in cases {
        assert_eq!(
            counted_level(observed, previous, required),
            (counted, run),
            "{observed:?} after {previous} with {required} required"
        );
    }
}

#[test]
fn a_level_counts_once_seen_the_required_times_in_a_row() {
    use ParityLevel::*;
    let observed = [
        Warning,
        Insufficient,
        Critical,
        Pass,
        Critical,
        Critical,
        Critical,
    ];
    let mut run = 0;
    let mut counted = Vec::new();
    for level in observed {
        let (c, r) = counted_level(level, run, 2);
        counted.push(c);
        run = r;
    }
    assert_eq!(
        counted,
        vec![Pass, Insufficient, Critical, Pass, Pass, Critical, Critical]
    );
}

#[test]
fn attribution_shares_and_residual() {
    let components = vec![("fees".to_string(), 30.0), ("slippage".to_string(), 15.0)];
    let (attributions, residual) = attribute(60.0, &components);
    assert_eq!(residual, 15.0);
    assert_eq!(attributions[0].share, Some(0.5));
    assert_eq!(attributions[1].share, Some(0.25));
    assert_eq!(attributions[1].name, "slippage");

    let (at_zero, residual) = attribute(0.0, &components);
    assert!(at_zero.iter().all(|a| a.share.is_none()));
    assert_eq!(residual, -45.0);

    let (nothing, residual) = attribute(12.0, &[]);
    assert!(nothing.is_empty());
    assert_eq!(residual, 12.0);
}

#[test]
fn components_are_measured_against_the_baseline_of_the_total() {
    let times = [0.0, 60.0, 120.0];
    let total = pair_differences(
        &series(&times, &[101.0, 102.0, 100.5]),
        &series(&times, &[100.0, 100.0, 50.0]),
    )
    .expect("a baseline");
    // fees: +0.5 of value at each sample, missing at t=120 on the candidate side.
    let fees = component_difference(
        &total,
        &series(&times[..2], &[1.5, 1.5]),
        &series(&times, &[1.0, 1.0, 1.0]),
    )
    .expect("samples");
    // (0.5/100 + 0.5/100 + missing) / 3 samples * 1e4
    assert!(close(fees.difference_bps, 100.0 / 3.0, 1e-12));
    assert_eq!(fees.missing, 1);

    let empty = PairedDifferences::default();
    assert_eq!(component_difference(&empty, &[], &[]), None);
}

fn evaluate_offset(offset_bps: f64, spec: &ParityPolicySpec, previous: u32) -> ParityReport {
    let times: Vec<f64> = (0..30).map(|i| f64::from(i) * 60.0).collect();
    let baseline: Vec<(f64, f64)> = times.iter().map(|&t| (t, 200.0)).collect();
    let candidate: Vec<(f64, f64)> = times
        .iter()
        .map(|&t| (t, 200.0 * (1.0 + offset_bps / BPS)))
        .collect();
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &[],
        proportions: None,
    };
    evaluate(spec, &input, previous, now())
}

#[test]
fn sixty_bps_off_is_critical_once_seen_twice() {
    let spec = spec(QUERY);
    let first = evaluate_offset(60.0, &spec, 0);
    assert_eq!(first.evaluation.level, ParityLevel::Critical);
    assert_eq!(first.counted_level, ParityLevel::Pass);
    assert_eq!(first.consecutive_breaches, 1);
    assert_close(first.evaluation.rms_difference_bps, 60.0);
    assert_close(first.evaluation.mean_difference_bps, 60.0);
    assert_eq!(first.evaluation.samples, 30);
    assert_eq!(first.evaluation.time, now());

    let second = evaluate_offset(60.0, &spec, first.consecutive_breaches);
    assert_eq!(second.counted_level, ParityLevel::Critical);
    assert_eq!(second.consecutive_breaches, 2);

    let thirty = evaluate_offset(30.0, &spec, 1);
    assert_eq!(thirty.counted_level, ParityLevel::Warning);
    let back = evaluate_offset(10.0, &spec, 3);
    assert_eq!(back.counted_level, ParityLevel::Pass);
    assert_eq!(back.consecutive_breaches, 0);
    let emergency = evaluate_offset(150.0, &spec, 1);
    assert_eq!(emergency.counted_level, ParityLevel::Emergency);
}

#[test]
fn evaluation_without_a_baseline_is_insufficient_and_says_why() {
    let spec = spec(QUERY);
    let report = evaluate(
        &spec,
        &ParityInput {
            candidate: &[(0.0, 1.0)],
            baseline: &[],
            components: &[],
            proportions: None,
        },
        1,
        now(),
    );
    assert_eq!(report.evaluation.level, ParityLevel::Insufficient);
    assert_eq!(report.counted_level, ParityLevel::Insufficient);
    assert_eq!(report.consecutive_breaches, 1);
    assert_eq!(report.error, Some(ParityError::NoBaseline));
    assert_eq!(
        report.data_problem().as_deref(),
        Some("the baseline series is empty")
    );
}

#[test]
fn evaluation_reports_skipped_samples_and_attribution() {
    let spec = spec(&format!("{QUERY}minSamples: 2\n"));
    let times = [0.0, 60.0, 120.0];
    let candidate = series(&times, &[100.6, 100.8, 5.0]);
    let baseline = series(&times, &[100.0, 100.0, 0.0]);
    let fees_c = series(&times, &[10.4, 10.4, 1.0]);
    let fees_b = series(&times, &[10.0, 10.0, 1.0]);
    let components = [ComponentSeries {
        name: "fees",
        candidate: &fees_c,
        baseline: &fees_b,
    }];
    let report = evaluate(
        &spec,
        &ParityInput {
            candidate: &candidate,
            baseline: &baseline,
            components: &components,
            proportions: None,
        },
        0,
        now(),
    );
    let e = &report.evaluation;
    assert_eq!(e.samples, 2);
    assert_eq!(report.figures.skipped, 1);
    assert_close(e.mean_difference_bps, 70.0);
    assert_eq!(e.components.len(), 1);
    assert!(close(e.components[0].difference_bps, 40.0, 1e-12));
    assert!(close(
        e.components[0].share.expect("share"),
        40.0 / 70.0,
        1e-12
    ));
    assert_close(e.residual_bps, 30.0);
    assert_eq!(
        report.data_problem().as_deref(),
        Some("1 of 3 paired samples skipped (baseline 0 or not finite, or candidate not finite)")
    );
}

#[test]
fn thresholds_must_be_finite_non_negative_and_increasing() {
    let t = |w, c, e| Thresholds {
        warning_bps: w,
        critical_bps: c,
        emergency_bps: e,
    };
    assert_eq!(validate_thresholds(&Thresholds::default()), Ok(()));
    assert_eq!(validate_thresholds(&t(0.0, 1.0, 2.0)), Ok(()));
    let cases = [
        (
            t(-1.0, 50.0, 100.0),
            "warningBps -1 must be a finite number >= 0",
        ),
        (t(20.0, 20.0, 100.0), "must increase strictly"),
        (t(60.0, 50.0, 100.0), "must increase strictly"),
        (
            t(20.0, 50.0, f64::INFINITY),
            "emergencyBps inf must be a finite",
        ),
        (t(f64::NAN, 50.0, 100.0), "warningBps NaN must be a finite"),
    ];
    for (thresholds, expected) in cases {
        let problem = validate_thresholds(&thresholds).expect_err("invalid");
        assert!(problem.contains(expected), "{problem:?} lacks {expected:?}");
    }
}

#[test]
fn default_policy_is_valid() {
    assert_eq!(validate_policy(&spec(QUERY)), Vec::<String>::new());
    let standalone = "candidate: 'sum(a)'\nbaseline: 'sum(b)'\nschedule: '0 6 * * *'\n";
    assert_eq!(validate_policy(&spec(standalone)), Vec::<String>::new());
}

#[test]
fn policy_problems_name_the_field() {
    let cases = [
        (
            format!("{QUERY}window: 30s\nstep: 1m"),
            "spec.window 30s is shorter than spec.step 1m",
        ),
        (
            format!("{QUERY}window: 0s"),
            "spec.window must be longer than 0s",
        ),
        (
            format!("{QUERY}step: 0s"),
            "spec.step must be longer than 0s",
        ),
        (
            format!("{QUERY}window: 30d\nstep: 1m"),
            "Prometheus returns at most 11000",
        ),
        (
            format!("{QUERY}window: 10m\nstep: 1m\nminSamples: 20"),
            "spec.minSamples 20 can never be reached",
        ),
        (
            format!("{QUERY}thresholds: {{warningBps: 50, criticalBps: 20, emergencyBps: 100}}"),
            "spec.thresholds must increase strictly",
        ),
        (
            format!("{QUERY}thresholds: {{warningBps: -5}}"),
            "spec.thresholds.warningBps -5",
        ),
        (
            "window: 30m".to_string(),
            "spec must set query, or both candidate and baseline",
        ),
        (
            "candidate: 'sum(a)'".to_string(),
            "spec.candidate and spec.baseline must be set together",
        ),
        (
            "query: 'sum(a)'".to_string(),
            "spec.query has no {{track}} placeholder",
        ),
        ("query: ''".to_string(), "spec.query must not be empty"),
        (
            format!("{QUERY}statistics: {{good: 'sum(ok{{track=\"{{{{track}}}}\"}})'}}"),
            "spec.statistics.good and spec.statistics.total must be set together",
        ),
        (
            format!(
                "{QUERY}statistics: {{good: 'sum(ok)', total: 'sum(all{{track=\"{{{{track}}}}\"}})'}}"
            ),
            "spec.statistics.good has no {{track}} placeholder",
        ),
        (
            format!(
                "{QUERY}statistics: {{good: 'sum(ok{{track=\"{{{{track}}}}\"}}', total: 'sum(all{{track=\"{{{{track}}}}\"}})'}}"
            ),
            "spec.statistics.good: PromQL does not parse",
        ),
        (
            "query: 'sum(rate(x{track=\"{{track}}\"}[5m])'".to_string(),
            "spec.query: PromQL does not parse",
        ),
        (
            format!(
                "{QUERY}components: [{{name: fees, query: 'sum(f{{track=\"{{{{track}}}}\"}})'}}, {{name: fees, query: 'sum(g{{track=\"{{{{track}}}}\"}})'}}]"
            ),
            "spec.components[1].name \"fees\" is used twice",
        ),
        (
            format!("{QUERY}components: [{{name: fees, query: 'sum(f)'}}]"),
            "spec.components[0].query (fees) has no {{track}} placeholder",
        ),
        (
            format!("{QUERY}annualize: {{periodsPerYear: 0}}"),
            "spec.annualize.periodsPerYear 0",
        ),
        (
            format!("{QUERY}consecutiveBreaches: 0"),
            "spec.consecutiveBreaches must be at least 1",
        ),
    ];
    for (yaml, expected) in cases {
        let problems = validate_policy(&spec(&yaml));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{yaml}\n{problems:?} lacks {expected:?}"
        );
    }
}

#[test]
fn the_schedule_check_plugs_in() {
    let with_schedule = spec(&format!("{QUERY}schedule: 'every day'"));
    assert!(validate_policy(&with_schedule).is_empty());
    let problems =
        validate_policy_with_schedule(&with_schedule, &|_| Err("not 5 fields".to_string()));
    assert_eq!(
        problems,
        vec!["spec.schedule \"every day\": not 5 fields".to_string()]
    );
}

#[test]
fn ten_thousand_samples_per_track_with_five_components() {
    let n = 10_000;
    let wave = |i: usize, f: f64| ((i as f64) * f).sin();
    let baseline = track((0..n).map(|i| 1000.0 + 5.0 * wave(i, 0.01)), 15.0);
    let candidate = track(
        (0..n).map(|i| baseline[i].1 * 1.002 + 0.5 * wave(i, 0.37)),
        15.0,
    );
    let parts: Parts = (0..5)
        .map(|k| {
            let c = track(
                (0..n).map(|i| 10.0 + 0.1 * f64::from(k) * wave(i, 0.05)),
                15.0,
            );
            (format!("part{k}"), c, track((0..n).map(|_| 10.0), 15.0))
        })
        .collect();
    let report = report_with(&spec(QUERY), &candidate, &baseline, &parts);
    assert_eq!(report.evaluation.samples, 10_000);
    assert_eq!(report.evaluation.components.len(), 5);
    let rms = report.evaluation.rms_difference_bps.expect("rms");
    assert!((15.0..30.0).contains(&rms), "rms {rms}");

    let c: Vec<f64> = candidate.iter().map(|p| p.1).collect();
    let b: Vec<f64> = baseline.iter().map(|p| p.1).collect();
    let comparison = compare_tracks(&c, &b, 0.98, 0.25).expect("samples");
    assert!(comparison.rank_sum.p_value < 1e-6);
    assert!(comparison.shift.lower > 0.0 && comparison.shift.upper < 4.0);
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![1e-3..1e3_f64, -1e3..-1e-3_f64]
}

/// Points every `step` seconds from 0.
fn track(values: impl IntoIterator<Item = f64>, step: f64) -> Points {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as f64 * step, v))
        .collect()
}

fn report_with(
    spec: &ParityPolicySpec,
    candidate: &Series,
    baseline: &Series,
    parts: &Parts,
) -> ParityReport {
    let components: Vec<ComponentSeries<'_>> = parts
        .iter()
        .map(|(name, c, b)| ComponentSeries {
            name,
            candidate: c,
            baseline: b,
        })
        .collect();
    let input = ParityInput {
        candidate,
        baseline,
        components: &components,
        proportions: None,
    };
    evaluate(spec, &input, 0, now())
}

/// A baseline level, five component moves and a move no component explains.
type Row = (f64, Vec<f64>, f64);

fn row() -> impl Strategy<Value = Row> {
    (
        1.0..1e4_f64,
        prop::collection::vec(-5.0..5.0_f64, 5),
        -5.0..5.0_f64,
    )
}

proptest! {
    #[test]
    fn identical_series_are_zero_bps_and_pass(values in prop::collection::vec(value(), 1..200)) {
        let s = track(values.iter().copied(), 60.0);
        let spec = spec(&format!("{QUERY}minSamples: 1\nmeasure: stddev\n"));
        let input = ParityInput { candidate: &s, baseline: &s, components: &[], proportions: None };
        let report = evaluate(&spec, &input, 3, now());
        prop_assert_eq!(report.evaluation.mean_difference_bps, Some(0.0));
        prop_assert_eq!(report.evaluation.rms_difference_bps, Some(0.0));
        if values.len() >= 2 {
            prop_assert_eq!(report.evaluation.tracking_error_bps, Some(0.0));
            prop_assert_eq!(report.evaluation.level, ParityLevel::Pass);
            prop_assert_eq!(report.consecutive_breaches, 0);
        }
    }

    #[test]
    fn scaling_both_series_leaves_the_figures(
        pairs in prop::collection::vec((value(), -0.05..0.05_f64), 2..200),
        factor in prop_oneof![1e-6..1e-3_f64, 1e-3..1e3, 1e3..1e9],
    ) {
        let baseline = track(pairs.iter().map(|p| p.0), 1.0);
        let candidate = track(pairs.iter().map(|p| p.0 * (1.0 + p.1)), 1.0);
        let scale = |s: &Series| -> Points { s.iter().map(|&(t, v)| (t, v * factor)).collect() };
        let original = figures(&active_differences(&candidate, &baseline).unwrap(), None);
        let scaled =
            figures(&active_differences(&scale(&candidate), &scale(&baseline)).unwrap(), None);
        prop_assert_eq!(original.samples, scaled.samples);
        for (a, b) in [
            (original.mean_bps, scaled.mean_bps),
            (original.stddev_bps, scaled.stddev_bps),
            (original.rms_bps, scaled.rms_bps),
        ] {
            let (a, b) = (a.unwrap(), b.unwrap());
            // Rounding of (c - b) / |b| is relative to the larger terms, ~1e-16 of 500 bps.
            prop_assert!((a - b).abs() <= 1e-9, "{} vs {}", a, b);
        }
    }

    #[test]
    fn components_plus_residual_equal_the_total(
        rows in prop::collection::vec(row(), 1..100),
        explained in any::<bool>(),
    ) {
        let baseline = track(rows.iter().map(|r| r.0), 30.0);
        // The candidate moves by the sum of the component moves, plus a move of its own unless
        // the components explain everything.
        let own = |r: &Row| if explained { 0.0 } else { r.2 };
        let candidate = track(rows.iter().map(|r| r.0 + r.1.iter().sum::<f64>() + own(r)), 30.0);
        let parts: Parts = (0..5)
            .map(|k| {
                let c = track(rows.iter().map(|r| 50.0 + r.1[k]), 30.0);
                let b = track(rows.iter().map(|_| 50.0), 30.0);
                (format!("c{k}"), c, b)
            })
            .collect();
        let spec = spec(&format!("{QUERY}minSamples: 1\n"));
        let e = report_with(&spec, &candidate, &baseline, &parts).evaluation;
        let total = e.mean_difference_bps.unwrap();
        let sum: f64 = e.components.iter().map(|c| c.difference_bps).sum();
        let residual = e.residual_bps.unwrap();
        prop_assert!((sum + residual - total).abs() <= 1e-9, "{} + {} vs {}", sum, residual, total);
        if explained {
            prop_assert!(residual.abs() <= 1e-9 * total.abs().max(1.0), "residual {}", residual);
        }
    }
}
