//! The evaluator against values computed by hand from Prometheus 2.x's definitions.

use std::time::Duration;

use futures::executor::block_on;
use jiff::Timestamp;

use super::*;
use crate::metrics::{MetricsSource, QueryError};

/// Sample times in the tests are seconds after this.
const T0: i64 = 1_700_000_000;

/// A recording from `(series, [(seconds after T0, value)])`, the series written as in PromQL.
fn metrics(series: &[(&str, &[(i64, f64)])]) -> RecordedMetrics {
    let mut text = String::new();
    for (name, samples) in series {
        for (t, v) in *samples {
            text.push_str(&format!("{name} {v} {}\n", T0 + t));
        }
    }
    RecordedMetrics::new(Recording::parse_openmetrics(&text).expect("test recording parses"))
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(T0 + seconds).expect("valid time"))
}

fn value(source: &RecordedMetrics, query: &str, seconds: i64) -> Option<f64> {
    block_on(source.query_value(query, at(seconds)))
        .unwrap_or_else(|e| panic!("{query} at {seconds}: {e}"))
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no data, expected {expected}"));
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: {actual} != {expected}"
    );
}

fn error(source: &RecordedMetrics, query: &str) -> QueryError {
    match block_on(source.query_value(query, at(60))) {
        Ok(v) => panic!("{query}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn instant_selectors_look_back_five_minutes_inclusive() {
    let m = metrics(&[("x", &[(0, 1.0), (60, 2.0)])]);
    assert_eq!(value(&m, "x", -1), None, "before the first sample");
    assert_eq!(value(&m, "x", 0), Some(1.0));
    assert_eq!(value(&m, "x", 59), Some(1.0));
    assert_eq!(value(&m, "x", 60), Some(2.0));
    assert_eq!(
        value(&m, "x", 360),
        Some(2.0),
        "exactly 5 m after the last sample"
    );
    assert_eq!(value(&m, "x", 361), None, "more than 5 m after");
    assert_eq!(value(&m, "x offset 1m", 60), Some(1.0));
    assert_eq!(
        block_on(m.query_value("x", None)),
        Ok(Some(2.0)),
        "no time is the end of the recording"
    );
}

#[test]
fn range_selectors_include_both_ends() {
    let m = metrics(&[("x", &[(0, 1.0), (30, 2.0), (60, 3.0)])]);
    assert_eq!(value(&m, "count_over_time(x[60s])", 60), Some(3.0));
    assert_eq!(value(&m, "count_over_time(x[59s])", 60), Some(2.0));
    assert_eq!(
        value(&m, "count_over_time(x[1m] offset 30s)", 90),
        Some(3.0)
    );
    assert_eq!(value(&m, "count_over_time(x[10s])", 20), None);
    // Times are whole seconds, as PrometheusSource sends them: 60.5 s is asked as 60 s.
    let half_past = Timestamp::from_millisecond((T0 + 60) * 1000 + 500).expect("time");
    assert_eq!(
        block_on(m.query_value("count_over_time(x[60s])", Some(half_past))),
        Ok(Some(3.0))
    );
}

#[test]
fn rate_and_increase_extrapolate_as_prometheus_does() {
    // Every 15 s: 10, 20, 30, 40, 50 at 0..60.
    let m = metrics(&[(
        "c",
        &[(0, 10.0), (15, 20.0), (30, 30.0), (45, 40.0), (60, 50.0)],
    )]);
    // Window [0, 60] holds all five: no extrapolation, 40 over 60 s.
    assert_close(value(&m, "rate(c[1m])", 60), 40.0 / 60.0, "aligned rate");
    // Window [10, 70]: 20..50 over 45 s, 5 s to the start and 10 s to the end are both under
    // 1.1 × 15 s, so the increase is extrapolated to 60 s: 30 × 60 / 45.
    assert_close(
        value(&m, "increase(c[1m])", 70),
        40.0,
        "extrapolated increase",
    );
    assert_close(
        value(&m, "rate(c[1m])", 70),
        40.0 / 60.0,
        "extrapolated rate",
    );
    // Window [30, 90] ends 30 s after the last sample: more than 1.1 × 15 s, so only half an
    // interval (7.5 s) is added at the end: 20 × (30 + 0 + 7.5) / 30.
    assert_close(
        value(&m, "increase(c[1m])", 90),
        25.0,
        "half-interval extrapolation",
    );
    // A single sample in the window gives nothing.
    assert_eq!(value(&m, "rate(c[10s])", 60), None);
}

#[test]
fn increase_does_not_extrapolate_a_counter_below_zero() {
    // 1, 3, 5 at 20, 40, 60: the zero point is 10 s before the first sample, nearer than
    // the 20 s to the window start, so the increase is 4 × (40 + 10) / 40.
    let m = metrics(&[("c", &[(20, 1.0), (40, 3.0), (60, 5.0)])]);
    assert_close(
        value(&m, "increase(c[1m])", 60),
        5.0,
        "zero-clamped increase",
    );
}

#[test]
fn counter_resets_add_the_value_before_the_reset() {
    let m = metrics(&[(
        "c",
        &[(0, 10.0), (15, 20.0), (30, 5.0), (45, 15.0), (60, 25.0)],
    )]);
    // 25 - 10 + 20 (the reset) over the aligned window.
    assert_close(
        value(&m, "increase(c[1m])", 60),
        35.0,
        "increase over a reset",
    );
    // delta is not a counter function: no correction.
    assert_close(value(&m, "delta(c[1m])", 60), 15.0, "delta");
    // irate after a reset takes the last value as the increase.
    assert_close(value(&m, "irate(c[1m])", 60), 10.0 / 15.0, "irate");
    assert_close(value(&m, "idelta(c[1m])", 60), 10.0, "idelta");
    let reset = metrics(&[("c", &[(0, 10.0), (15, 4.0)])]);
    assert_close(
        value(&reset, "irate(c[1m])", 15),
        4.0 / 15.0,
        "irate over a reset",
    );
    assert_close(
        value(&reset, "idelta(c[1m])", 15),
        -6.0,
        "idelta over a reset",
    );
}

#[test]
fn over_time_functions_summarise_the_window() {
    let m = metrics(&[("g", &[(0, 4.0), (15, 1.0), (30, 3.0), (45, 2.0)])]);
    let cases = [
        ("avg_over_time(g[1m])", 2.5),
        ("sum_over_time(g[1m])", 10.0),
        ("min_over_time(g[1m])", 1.0),
        ("max_over_time(g[1m])", 4.0),
        ("count_over_time(g[1m])", 4.0),
        ("last_over_time(g[1m])", 2.0),
        // Sorted 1, 2, 3, 4: rank 0.9 × 3 = 2.7 → 3 + 0.7 × (4 - 3).
        ("quantile_over_time(0.9, g[1m])", 3.7),
        ("quantile_over_time(0.5, g[1m])", 2.5),
    ];
    for (query, expected) in cases {
        assert_close(value(&m, query, 45), expected, query);
    }
}

const HISTOGRAM: &[(&str, &[(i64, f64)])] = &[
    ("h_bucket{le=\"0.1\"}", &[(0, 0.0), (60, 10.0)]),
    ("h_bucket{le=\"0.5\"}", &[(0, 0.0), (60, 30.0)]),
    ("h_bucket{le=\"1\"}", &[(0, 0.0), (60, 40.0)]),
    ("h_bucket{le=\"+Inf\"}", &[(0, 0.0), (60, 40.0)]),
];

#[test]
fn histogram_quantile_interpolates_inside_the_bucket() {
    let m = metrics(HISTOGRAM);
    let query = |q: f64| format!("histogram_quantile({q}, sum by (le) (increase(h_bucket[1m])))");
    // Rank 20 of 40 falls in (0.1, 0.5] holding 20: 0.1 + 0.4 × 10/20.
    assert_close(value(&m, &query(0.5), 60), 0.3, "median");
    // Rank 39.6 falls in (0.5, 1] holding 10: 0.5 + 0.5 × 9.6/10.
    assert_close(value(&m, &query(0.99), 60), 0.98, "p99");
    // Rank 4 in the first bucket interpolates from 0.
    assert_close(value(&m, &query(0.1), 60), 0.04, "p10");
    assert_eq!(value(&m, &query(1.5), 60), Some(f64::INFINITY));
    assert_eq!(value(&m, &query(-1.0), 60), Some(f64::NEG_INFINITY));
}

#[test]
fn histogram_quantile_fixes_non_monotonic_buckets_and_needs_inf() {
    let m = metrics(&[
        ("h_bucket{le=\"0.1\"}", &[(0, 10.0)]),
        ("h_bucket{le=\"0.5\"}", &[(0, 8.0)]),
        ("h_bucket{le=\"1\"}", &[(0, 20.0)]),
        ("h_bucket{le=\"+Inf\"}", &[(0, 20.0)]),
        ("short_bucket{le=\"1\"}", &[(0, 20.0)]),
        ("top_bucket{le=\"1\"}", &[(0, 10.0)]),
        ("top_bucket{le=\"+Inf\"}", &[(0, 20.0)]),
    ]);
    // 0.5's count 8 is raised to 10; rank 10 of 20 is then reached in the first bucket.
    assert_close(
        value(&m, "histogram_quantile(0.5, h_bucket)", 0),
        0.1,
        "monotonic fix",
    );
    assert_eq!(
        value(&m, "histogram_quantile(0.5, short_bucket)", 0),
        None,
        "no +Inf bucket"
    );
    // A quantile in the +Inf bucket is the highest finite bound.
    assert_close(
        value(&m, "histogram_quantile(0.9, top_bucket)", 0),
        1.0,
        "+Inf bucket",
    );
}

const REQUESTS: &[(&str, &[(i64, f64)])] = &[
    (
        "req{track=\"canary\", code=\"200\"}",
        &[(0, 0.0), (60, 90.0)],
    ),
    (
        "req{track=\"canary\", code=\"500\"}",
        &[(0, 0.0), (60, 10.0)],
    ),
    (
        "req{track=\"stable\", code=\"200\"}",
        &[(0, 0.0), (60, 297.0)],
    ),
    (
        "req{track=\"stable\", code=\"500\"}",
        &[(0, 0.0), (60, 3.0)],
    ),
];

#[test]
fn aggregations_group_by_and_without() {
    let m = metrics(REQUESTS);
    let cases = [
        ("sum(increase(req[1m]))", 400.0),
        (
            "sum by (track) (increase(req{code=\"500\", track=\"canary\"}[1m]))",
            10.0,
        ),
        (
            "sum without (code) (increase(req{track=\"stable\"}[1m]))",
            300.0,
        ),
        ("avg(increase(req[1m]))", 100.0),
        ("min(increase(req[1m]))", 3.0),
        ("max(increase(req[1m]))", 297.0),
        ("count(req)", 4.0),
        ("group(req)", 1.0),
        ("quantile(0.5, increase(req[1m]))", 50.0),
        ("stdvar(req{track=\"canary\"})", 1600.0),
        ("stddev(req{track=\"canary\"})", 40.0),
        ("sum(topk(2, req))", 387.0),
        ("sum(bottomk(1, req))", 3.0),
        ("sum(topk(1, req) by (track))", 387.0),
    ];
    for (query, expected) in cases {
        assert_close(value(&m, query, 60), expected, query);
    }
}

#[test]
fn ratios_and_arithmetic_between_vectors_and_scalars() {
    let m = metrics(REQUESTS);
    let error_rate = "sum(rate(req{track=\"canary\", code=~\"5..\"}[1m])) / sum(rate(req{track=\"canary\"}[1m]))";
    assert_close(value(&m, error_rate, 60), 0.1, "error rate");
    let cases = [
        (
            "-sum(increase(req{code=\"500\"}[1m])) / sum(increase(req{code=\"200\"}[1m]))",
            -13.0 / 387.0,
        ),
        ("sum(req) * 2 + 1", 801.0),
        ("1 - sum(req{code=\"500\"}) / sum(req)", 1.0 - 13.0 / 400.0),
        ("2 ^ 3 % 5", 3.0),
        ("(1 + 2) * 3", 9.0),
        ("sum(req) > bool 100", 1.0),
        ("sum(req) < bool 100", 0.0),
        ("10 < bool sum(req)", 1.0),
        ("sum(req) > 100", 400.0),
        ("100 < sum(req)", 400.0),
        ("1 == bool 1", 1.0),
        // One-to-one matching by the remaining labels: canary 500 over stable 500.
        (
            "(sum by (code) (req{track=\"canary\"}) / on (code) sum by (code) (req{track=\"stable\"})) > 1",
            10.0 / 3.0,
        ),
        (
            "sum(req{code=\"500\"} / ignoring (track) group_left sum by (code) (req)) ",
            10.0 / 13.0 + 3.0 / 13.0,
        ),
        (
            "sum(sum by (code) (req) / ignoring (track) group_right req{code=\"200\"})",
            387.0 / 90.0 + 387.0 / 297.0,
        ),
    ];
    for (query, expected) in cases {
        assert_close(value(&m, query, 60), expected, query);
    }
    assert_eq!(
        value(&m, "sum(req) > 1000", 60),
        None,
        "a failed comparison filters"
    );
}

#[test]
fn comparisons_filter_series_and_set_operators_combine_them() {
    let m = metrics(REQUESTS);
    let cases = [
        ("count(req > 50)", 2.0),
        ("count(req > bool 50)", 4.0),
        ("sum(req > bool 50)", 2.0),
        ("count(req{code=\"200\"} and req{track=\"canary\"})", 1.0),
        ("count(req{code=\"200\"} or req{track=\"canary\"})", 3.0),
        ("count(req unless req{track=\"canary\"})", 2.0),
        (
            "count(req and on (code) req{track=\"canary\", code=\"500\"})",
            2.0,
        ),
        (
            "count(req unless ignoring (track) req{track=\"canary\", code=\"500\"})",
            2.0,
        ),
    ];
    for (query, expected) in cases {
        assert_close(value(&m, query, 60), expected, query);
    }
}

#[test]
fn element_functions_as_defined() {
    let m = metrics(&[("v", &[(0, -2.5)]), ("p", &[(0, 2.0)])]);
    let cases = [
        ("abs(v)", 2.5),
        ("ceil(v)", -2.0),
        ("floor(v)", -3.0),
        // Ties round up.
        ("round(v)", -2.0),
        ("round(p * 1.25)", 3.0),
        ("round(v, 2)", -2.0),
        ("round(p * 1.3, 0.5)", 2.5),
        ("clamp(v, -1, 1)", -1.0),
        ("clamp_min(v, 0)", 0.0),
        ("clamp_max(p, 1)", 1.0),
        ("sqrt(p)", std::f64::consts::SQRT_2),
        ("exp(p)", 2.0_f64.exp()),
        ("ln(p)", std::f64::consts::LN_2),
        ("scalar(p) * 3", 6.0),
        ("vector(7)", 7.0),
        ("-v", 2.5),
        ("time()", T0 as f64),
    ];
    for (query, expected) in cases {
        assert_close(value(&m, query, 0), expected, query);
    }
    assert_eq!(
        value(&m, "clamp(v, 1, -1)", 0),
        None,
        "max below min gives nothing"
    );
    assert_eq!(
        value(&m, "scalar({__name__=~\"v|p\"})", 0),
        None,
        "scalar of two elements is NaN"
    );
    // `or` matches on the labels without the name: v and p are the same group.
    assert_eq!(value(&m, "v or p", 0), Some(-2.5));
}

#[test]
fn one_number_none_or_multiple_series_like_prometheus_source() {
    let m = metrics(REQUESTS);
    assert_eq!(
        error(&m, "req"),
        QueryError::MultipleSeries {
            query: "req".to_string(),
            count: 4
        }
    );
    assert_eq!(
        value(&m, "req{track=\"none\"}", 60),
        None,
        "no series is no data"
    );
    assert_eq!(value(&m, "sum(req) / 0 * 0", 60), None, "NaN is no data");
    assert_eq!(
        value(&m, "sum(req) / 0", 60),
        Some(f64::INFINITY),
        "±Inf is a value"
    );
    match error(&m, "req[1m]") {
        QueryError::BadQuery { reason, .. } => assert!(reason.contains("range vector")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn range_queries_give_one_series_per_step_without_nan() {
    let m = metrics(&[("c", &[(0, 0.0), (60, 60.0), (120, 180.0), (180, 180.0)])]);
    let start = at(60).expect("time");
    let end = at(200).expect("time");
    let series = block_on(m.query_range("increase(c[1m])", start, end, Duration::from_secs(60)))
        .expect("range");
    let expected = [(T0 + 60, 60.0), (T0 + 120, 120.0), (T0 + 180, 0.0)];
    assert_eq!(series.len(), 3);
    for ((t, v), (et, ev)) in series.iter().zip(expected) {
        assert_eq!(*t, et as f64);
        assert_close(Some(*v), ev, "range point");
    }
    let scalar = block_on(m.query_range("1", start, end, Duration::from_secs(70))).expect("range");
    assert_eq!(
        scalar,
        vec![
            ((T0 + 60) as f64, 1.0),
            ((T0 + 130) as f64, 1.0),
            ((T0 + 200) as f64, 1.0)
        ]
    );
    let nan = block_on(m.query_range("c / 0 * 0", start, end, Duration::from_secs(60)));
    assert_eq!(nan, Ok(vec![]));
    let two = metrics(REQUESTS);
    let err = block_on(two.query_range("req", start, end, Duration::from_secs(60)));
    assert!(
        matches!(err, Err(QueryError::MultipleSeries { count: 4, .. })),
        "{err:?}"
    );
    let zero = block_on(m.query_range("c", start, end, Duration::ZERO));
    assert!(matches!(zero, Err(QueryError::BadQuery { .. })));
}

#[test]
fn labels_that_collide_after_dropping_the_name_are_an_error() {
    let m = metrics(&[("a", &[(0, 1.0), (30, 2.0)]), ("b", &[(0, 1.0), (30, 2.0)])]);
    match error(&m, "sum(rate({__name__=~\"a|b\"}[1m]))") {
        QueryError::BadQuery { reason, .. } => {
            assert_eq!(
                reason,
                "vector cannot contain metrics with the same labelset"
            )
        }
        other => panic!("{other:?}"),
    }
    // last_over_time keeps the name, so no collision.
    assert_close(
        value(&m, "sum(last_over_time({__name__=~\"a|b\"}[1m]))", 30),
        4.0,
        "last_over_time",
    );
}

#[test]
fn unsupported_constructs_are_named_with_the_way_out() {
    let m = metrics(REQUESTS);
    let cases = [
        ("max_over_time(sum(req)[5m:1m])", "a subquery"),
        ("req @ 1700000000", "the @ modifier"),
        (
            "label_replace(req, \"a\", \"b\", \"c\", \"d\")",
            "the function label_replace()",
        ),
        ("count_values(\"v\", req)", "the aggregation count_values"),
        ("req atan2 req", "the operator atan2"),
    ];
    for (query, construct) in cases {
        let message = m.check_query(query).expect_err(query).to_string();
        assert!(
            message.ends_with(&format!(
                "{construct} is not supported in replay from a file; use --prometheus"
            )),
            "{query}: {message}"
        );
        assert_eq!(
            error(&m, query),
            QueryError::BadQuery {
                query: query.to_string(),
                reason: format!(
                    "{construct} is not supported in replay from a file; use --prometheus"
                )
            }
        );
    }
}

#[test]
fn check_query_names_the_selector_that_matches_nothing() {
    let m = metrics(REQUESTS);
    assert!(
        m.check_query("sum(rate(req{track=\"canary\"}[1m]))")
            .is_ok()
    );
    let message = m
        .check_query("sum(rate(req[1m])) / sum(rate(errors_total{track=\"canary\"}[1m] offset 5m))")
        .expect_err("no such series")
        .to_string();
    assert!(
        message.ends_with("selector errors_total{track=\"canary\"} matches no recorded series"),
        "{message}"
    );
    let message = m
        .check_query("sum(rate(req[1m])")
        .expect_err("bad syntax")
        .to_string();
    assert!(message.contains("does not parse"), "{message}");
}

mod properties {
    use proptest::prelude::*;

    use super::super::eval::math::{bucket_quantile, extrapolated_rate};

    proptest! {
        #[test]
        fn a_steady_counter_rates_at_its_slope_wherever_the_window_falls(
            interval_ms in 1_000i64..60_000,
            scrapes in 2i64..30,
            phase in 0.0..1.0f64,
            slope in 0.0..1e4f64,
        ) {
            // Window [end - range, end] with samples every interval, the first within one
            // interval of the start: rate() is the slope, whatever the phase.
            let range_ms = interval_ms * scrapes;
            let end = 1_700_000_000_000i64;
            let first = end - range_ms + (phase * interval_ms as f64) as i64;
            let times: Vec<i64> = (0..scrapes).map(|k| first + k * interval_ms).filter(|t| *t <= end).collect();
            // Large enough that extrapolating to the start never reaches zero.
            let values: Vec<f64> = times.iter().map(|t| 1e9 + slope * (t - first) as f64 / 1000.0).collect();
            let rate = extrapolated_rate(&times, &values, end - range_ms, end, true, true);
            if times.len() >= 2 {
                let rate = rate.expect("two samples or more");
                prop_assert!((rate - slope).abs() <= 1e-6 * slope.max(1.0), "{rate} vs {slope}");
            }
        }

        #[test]
        fn histogram_quantiles_never_decrease_with_q(
            counts in prop::collection::vec(0.0..1000.0f64, 1..8),
            q1 in 0.0..=1.0f64,
            q2 in 0.0..=1.0f64,
        ) {
            let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let mut buckets: Vec<(f64, f64)> = counts.iter().enumerate().map(|(i, c)| (bounds[i], *c)).collect();
            buckets.push((f64::INFINITY, counts.iter().sum()));
            let (low, high) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let a = bucket_quantile(low, &mut buckets.clone());
            let b = bucket_quantile(high, &mut buckets.clone());
            prop_assert!(a.is_nan() == b.is_nan());
            prop_assert!(a.is_nan() || a <= b + 1e-12, "q {low} → {a}, q {high} → {b}");
        }
    }
}
