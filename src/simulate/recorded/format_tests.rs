//! Reading and writing recordings: both formats, and every error a file can cause.

use std::path::PathBuf;

use super::*;

const OPENMETRICS: &str = r#"# HELP http_requests Requests served.
# TYPE http_requests counter
http_requests_total{app="checkout",code="200"} 10 1700000000
http_requests_total{app="checkout",code="200"} 25.5 1700000060 # {trace_id="abc"} 1 1700000059
http_requests_total{app="checkout",code="500"} 1 1700000000
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 3 1700000000
latency_seconds_bucket{le="+Inf"} 4 1700000000
latency_seconds_sum 0.5 1700000000
latency_seconds_count 4 1700000000
# TYPE odd gauge
odd{path="a \"quoted\" \\ back\nslash"} NaN 1700000000.5
# EOF
"#;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_of(result: Result<Recording, RecordingError>) -> String {
    match result {
        Ok(recording) => panic!("expected an error, got {} series", recording.series_count()),
        Err(e) => e.to_string(),
    }
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-recorded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[test]
fn openmetrics_gives_series_with_labels_and_timestamped_samples() {
    let recording = Recording::parse_openmetrics(OPENMETRICS).expect("parses");
    assert_eq!(recording.series_count(), 7);
    let ok = &recording.series()[0];
    assert_eq!(
        ok.labels,
        labels(&[
            ("__name__", "http_requests_total"),
            ("app", "checkout"),
            ("code", "200")
        ])
    );
    assert_eq!(
        ok.samples,
        vec![(1_700_000_000.0, 10.0), (1_700_000_060.0, 25.5)]
    );
    let bucket = &recording.series()[3];
    assert_eq!(bucket.labels.get("le").map(String::as_str), Some("+Inf"));
    let odd = &recording.series()[6];
    assert_eq!(
        odd.labels.get("path").map(String::as_str),
        Some("a \"quoted\" \\ back\nslash")
    );
    assert!(odd.samples[0].1.is_nan());
    assert_eq!(odd.samples[0].0, 1_700_000_000.5);
    let (first, last) = recording.span().expect("span");
    assert_eq!(first.as_second(), 1_700_000_000);
    assert_eq!(last.as_second(), 1_700_000_060);
}

#[test]
fn openmetrics_written_reads_back_the_same_recording() {
    let recording = Recording::parse_openmetrics(OPENMETRICS).expect("parses");
    let text = recording.to_openmetrics();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE http_requests counter\n"));
    assert!(text.contains("# TYPE latency_seconds histogram\n"));
    assert!(text.contains("latency_seconds_bucket{le=\"+Inf\"} 4.0 1700000000\n"));
    let again = Recording::parse_openmetrics(&text).expect("reads back");
    assert_eq!(again.series_count(), recording.series_count());
    for series in recording.series() {
        let twin = again
            .series()
            .iter()
            .find(|s| s.labels == series.labels)
            .expect("same series");
        let mut pairs = series.samples.iter().zip(&twin.samples);
        assert!(pairs.clone().all(|(a, b)| a.0 == b.0));
        assert!(pairs.all(|(a, b)| a.1 == b.1 || (a.1.is_nan() && b.1.is_nan())));
    }
}

#[test]
fn json_is_read_from_the_whole_response_its_data_or_the_result_array() {
    let result = r#"[{"metric": {"__name__": "up", "job": "a"}, "values": [[1700000000, "1"], [1700000015.5, "+Inf"]]},
                     {"metric": {"__name__": "up", "job": "b"}, "values": [[1700000000, "NaN"]]}]"#;
    let data = format!(r#"{{"resultType": "matrix", "result": {result}}}"#);
    let response = format!(r#"{{"status": "success", "data": {data}}}"#);
    for text in [result.to_string(), data, response] {
        let recording = Recording::parse_json(&text).expect("parses");
        assert_eq!(recording.series_count(), 2);
        let a = &recording.series()[0];
        assert_eq!(a.labels, labels(&[("__name__", "up"), ("job", "a")]));
        assert_eq!(
            a.samples,
            vec![(1_700_000_000.0, 1.0), (1_700_000_015.5, f64::INFINITY)]
        );
        assert!(recording.series()[1].samples[0].1.is_nan());
    }
}

#[test]
fn load_chooses_the_format_by_extension_then_by_content() {
    let json = r#"{"data": {"result": [{"metric": {"__name__": "x"}, "values": [[1, "2"]]}]}}"#;
    for (name, contents) in [
        ("a.om", OPENMETRICS),
        ("a.prom", OPENMETRICS),
        ("a.json", json),
        ("metrics-export", OPENMETRICS),
        ("response.out", json),
    ] {
        let path = temp_file(name, contents);
        let recording = Recording::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(recording.series_count() > 0, "{name}");
    }
}

#[test]
fn unknown_format_says_what_was_expected_and_names_the_file() {
    let path = temp_file("data.csv", "time,value\n1,2\n");
    let message = error_of(Recording::load(&path));
    assert!(
        message.starts_with(&format!("{}: unknown format", path.display())),
        "{message}"
    );
    assert!(
        message.contains("OpenMetrics") && message.contains("query_range"),
        "{message}"
    );
}

#[test]
fn a_rollout_given_as_metrics_is_an_unknown_format_not_a_syntax_error() {
    let rollout = "# the checkout rollout\napiVersion: sluice.dev/v1alpha1\nkind: CanaryRollout\n";
    for name in ["rollout.yaml", "rollout"] {
        let path = temp_file(name, rollout);
        let message = error_of(Recording::load(&path));
        assert!(message.contains("unknown format"), "{name}: {message}");
    }
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let message = error_of(Recording::load(std::path::Path::new("/nonexistent/m.om")));
    assert!(
        message.starts_with("cannot read recorded metrics from /nonexistent/m.om"),
        "{message}"
    );
}

#[test]
fn empty_files_are_refused_in_both_formats() {
    for (name, contents) in [
        ("empty.om", ""),
        ("only-eof.om", "# TYPE x counter\n# EOF\n"),
        ("empty.json", "  \n"),
        (
            "no-series.json",
            r#"{"status": "success", "data": {"resultType": "matrix", "result": []}}"#,
        ),
        ("empty-file", ""),
    ] {
        let path = temp_file(name, contents);
        let message = error_of(Recording::load(&path));
        assert!(
            message.contains("the recording is empty"),
            "{name}: {message}"
        );
    }
}

#[test]
fn unparsable_lines_are_reported_with_their_number() {
    let cases = [
        (
            "x 1 1700000000\ny{a=\"b\" 2 1700000000\n",
            "line 2: unterminated label set",
        ),
        (
            "x 1 1700000000\nx abc 1700000060\n",
            "line 2: value \"abc\" is not a number",
        ),
        ("x 1\n", "line 1: sample of x has no timestamp"),
        (
            "x 1 1700000000000\n",
            "line 1: timestamp 1700000000000 looks like milliseconds",
        ),
        ("x{a=\"1\",a=\"2\"} 1 1\n", "line 1: label a appears twice"),
        (
            "x{1a=\"1\"} 1 1\n",
            "line 1: \"1a\" is not a valid label name",
        ),
        (
            "x{a=1} 1 1\n",
            "line 1: the value of label a must be in double quotes",
        ),
        (
            "# TYPE x countr\n",
            "line 1: unknown metric type \"countr\"",
        ),
        (
            "x 1 1\n# EOF\nx 2 2\n",
            "line 3: content after `# EOF` (line 2)",
        ),
        (
            "x 1 1 extra\n",
            "line 1: unexpected \"extra\" after the timestamp",
        ),
    ];
    for (text, expected) in cases {
        let message = error_of(Recording::parse_openmetrics(text));
        assert!(message.starts_with(expected), "{text:?}: {message}");
    }
}

#[test]
fn json_errors_point_at_the_line_or_the_entry() {
    let cases = [
        ("{\n\"data\": [\n", "line 3: invalid JSON"),
        (
            r#"{"status": "error", "error": "bad"}"#,
            "the saved Prometheus response is an error (error): bad",
        ),
        (
            r#"{"data": {"resultType": "scalar", "result": [1, "2"]}}"#,
            "resultType is \"scalar\"",
        ),
        (
            r#"[{"metric": {"a": 1}, "values": []}]"#,
            "result[0].metric: label a is not a string",
        ),
        (
            r#"[{"metric": {}, "values": [[1, "x"]]}]"#,
            "result[0].values[0]: value \"x\" is not a number",
        ),
        (r#"[{"metric": {}}]"#, "result[0]: has no \"values\" array"),
        (
            r#"[{"metric": {}, "values": [[1700000000000, "1"]]}]"#,
            "result[0].values[0]: timestamp 1700000000000 looks like milliseconds",
        ),
        (r#"{"something": "else"}"#, "unknown format"),
    ];
    for (text, expected) in cases {
        let message = error_of(Recording::parse_json(text));
        assert!(message.starts_with(expected), "{text}: {message}");
    }
}

#[test]
fn samples_out_of_order_name_the_file_line_and_series() {
    let text = "http_requests_total{app=\"checkout\"} 1 1700000120\n\
                http_requests_total{app=\"checkout\"} 2 1700000060\n";
    let path = temp_file("metrics.om", text);
    let message = error_of(Recording::load(&path));
    assert_eq!(
        message,
        format!(
            "{} line 2: timestamp 1700000060 is not after 1700000120 for \
             http_requests_total{{app=\"checkout\"}}: samples of a series must be in time order",
            path.display()
        )
    );
}

#[test]
fn duplicate_timestamps_are_refused_even_across_formats() {
    let text = "x{a=\"1\"} 1 1700000000\nx{a=\"2\"} 1 1700000000\nx{a=\"1\"} 2 1700000000\n";
    let message = error_of(Recording::parse_openmetrics(text));
    assert_eq!(
        message,
        "line 3: duplicate timestamp 1700000000 for x{a=\"1\"}"
    );
    let json = r#"[{"metric": {"__name__": "x"}, "values": [[1, "1"], [1, "2"]]}]"#;
    let message = error_of(Recording::parse_json(json));
    assert_eq!(
        message,
        "result[0].values[1]: duplicate timestamp 1 for x{}"
    );
}

#[test]
fn a_hole_longer_than_the_lookback_is_a_gap_with_its_times() {
    // 300 s apart is still within the lookback; 301 s is not.
    let fine = "x 1 1700000000\nx 2 1700000300\n";
    assert!(Recording::parse_openmetrics(fine).is_ok());
    let text = "x 1 1700000000\nx 2 1700000300\nx 3 1700000601\n";
    let message = error_of(Recording::parse_openmetrics(text));
    assert_eq!(
        message,
        "line 3: gap in x{}: no sample from 1700000300 (2023-11-14T22:18:20Z) to \
         1700000601 (2023-11-14T22:23:21Z), 301 s, longer than the 300 s lookback; \
         record without holes or split the recording"
    );
}

#[test]
fn series_built_in_code_are_checked_like_a_file() {
    let series = |samples: Vec<(f64, f64)>| RecordedSeries {
        labels: labels(&[("__name__", "x")]),
        samples,
    };
    let ok = Recording::from_series(vec![series(vec![(0.0, 1.0), (60.0, 2.0)])]).expect("valid");
    assert_eq!(ok.series_count(), 1);
    let message = error_of(Recording::from_series(vec![series(vec![
        (60.0, 1.0),
        (0.0, 2.0),
    ])]));
    assert!(
        message.starts_with("series[0]: timestamp 0 is not after 60"),
        "{message}"
    );
    let message = error_of(Recording::from_series(vec![]));
    assert!(message.contains("empty"), "{message}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            -1e6..1e6f64,
        ]
    }

    proptest! {
        #[test]
        fn openmetrics_round_trips_any_label_value_and_sample(
            label in "(?s).{0,12}",
            values in prop::collection::vec(value(), 1..20),
            start_ms in 0i64..4_000_000_000_000,
        ) {
            let samples: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| ((start_ms + i as i64 * 1_500) as f64 / 1000.0, *v))
                .collect();
            let series = RecordedSeries {
                labels: labels(&[("__name__", "x_total"), ("path", &label)]),
                samples,
            };
            let recording = Recording::from_series(vec![series.clone()]).expect("valid");
            let again = Recording::parse_openmetrics(&recording.to_openmetrics()).expect("reads back");
            let back = &again.series()[0];
            prop_assert_eq!(&back.labels, &series.labels);
            for (a, b) in series.samples.iter().zip(&back.samples) {
                prop_assert_eq!(a.0, b.0);
                prop_assert!(a.1 == b.1 || (a.1.is_nan() && b.1.is_nan()), "{} vs {}", a.1, b.1);
            }
        }
    }
}
