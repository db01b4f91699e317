//! The recorded-metrics evaluator against the real Prometheus on this machine: the same
//! recording is turned into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`,
//! served by a private Prometheus, and every query shape Sluice renders is asked of both at
//! many times. The answers must agree within 1e-9 relative.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jiff::Timestamp;
use sluice::metrics::{MetricsSource, PrometheusSource, QueryError};
use sluice::simulate::recorded::{Labels, RecordedMetrics, RecordedSeries, Recording};
use support::PrometheusInstance;

const SCRAPE_SECONDS: i64 = 15;
const SCRAPES: i64 = 2 * 3600 / SCRAPE_SECONDS;
const BUCKETS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

/// Deterministic noise in [0, 1).
fn noise(k: i64, seed: i64) -> f64 {
    ((k * 7919 + seed * 104_729) % 1009) as f64 / 1009.0
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("__name__".to_string(), name.to_string());
    labels
}

/// Two hours of 15 s scrapes ending a few minutes ago: counters (one reset, one with missed
/// scrapes, one appearing late), a classic histogram (with a non-monotonic glitch), gauges
/// (one stopping half way, one with NaN samples), some sample times off the whole second.
fn recording(start: i64) -> Recording {
    let time = |k: i64, jitter: bool| {
        let millis = if jitter {
            (k * 37 % 1000) as f64 / 1000.0
        } else {
            0.0
        };
        (start + k * SCRAPE_SECONDS) as f64 + millis
    };
    let mut series = Vec::new();
    for (track, jitter) in [("canary", true), ("stable", false)] {
        for (code, seed) in [("200", 1), ("500", 2)] {
            let mut value = 100.0 * seed as f64;
            let mut samples = Vec::new();
            for k in 0..=SCRAPES {
                value += (10.0 + 40.0 * noise(k, seed)).floor();
                if track == "canary" && code == "500" && k == SCRAPES / 2 {
                    value = 3.0;
                }
                if track == "stable" && code == "200" && k % 23 == 7 {
                    continue;
                }
                samples.push((time(k, jitter), value));
            }
            let labels = labels("http_requests_total", &[("track", track), ("code", code)]);
            series.push(RecordedSeries { labels, samples });
        }
        let mut cumulative = [0.0; BUCKETS.len()];
        let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); BUCKETS.len()];
        for k in 0..=SCRAPES {
            let observations = 20.0 + (30.0 * noise(k, 7)).floor();
            let mut below = 0.0;
            for (b, share) in [0.2, 0.3, 0.25, 0.15, 0.07, 0.03].iter().enumerate() {
                below += (observations * share).round();
                cumulative[b] += below;
            }
            for (b, bucket) in buckets.iter_mut().enumerate() {
                let mut count = cumulative[b];
                if track == "stable" && b == 2 && (300..305).contains(&k) {
                    count = cumulative[1] - 5.0;
                }
                bucket.push((time(k, jitter), count));
            }
        }
        for (b, samples) in buckets.into_iter().enumerate() {
            let labels = labels(
                "latency_seconds_bucket",
                &[("track", track), ("le", BUCKETS[b])],
            );
            series.push(RecordedSeries { labels, samples });
        }
    }
    for (track, seed, stop) in [
        ("canary", 3, SCRAPES),
        ("stable", 4, SCRAPES),
        ("old", 5, 240),
    ] {
        let samples = (0..=stop)
            .map(|k| {
                // A NaN now and then: Prometheus keeps it as a value, min/max skip past it.
                let nan = track == "stable" && k % 50 == 13;
                let value = 20.0 * noise(k, seed) - 5.0 + (k as f64 / 40.0).sin();
                (time(k, false), if nan { f64::NAN } else { value })
            })
            .collect();
        let labels = labels("queue_depth", &[("track", track)]);
        series.push(RecordedSeries { labels, samples });
    }
    let late = (200..=SCRAPES)
        .map(|k| (time(k, true), (k - 200) as f64 * 2.5))
        .collect();
    series.push(RecordedSeries {
        labels: labels("late_total", &[("track", "canary")]),
        samples: late,
    });
    Recording::from_series(series).expect("generated recording is valid")
}

const CANARY: &str = "track=\"canary\"";

fn queries() -> Vec<String> {
    let requests = |matchers: &str| format!("http_requests_total{{{matchers}}}");
    vec![
        // Selectors, offsets, the lookback.
        requests(&format!("{CANARY}, code=\"200\"")),
        format!("{} offset 2m", requests("track=\"stable\", code=\"200\"")),
        "queue_depth{track=\"old\"}".to_string(),
        "queue_depth{track=~\"o.*\"} offset 5m".to_string(),
        "late_total".to_string(),
        // Rates and increases, as checks and SLOs render them.
        format!(
            "sum(rate({}[1m])) / sum(rate({}[1m]))",
            requests(&format!("{CANARY}, code=~\"5..\"")),
            requests(CANARY)
        ),
        format!("sum(increase({}[5m]))", requests("track=\"stable\"")),
        format!("sum(increase({}[30s]))", requests(CANARY)),
        format!("sum(increase({}[2m]))", requests("code=\"500\"")),
        format!(
            "-sum(rate({}[5m])) / sum(rate({}[5m]))",
            requests("code=\"500\""),
            requests("")
        ),
        format!("sum(rate({}[1m] offset 3m))", requests(&format!("{CANARY}, code=\"500\""))),
        "rate(late_total[10m])".to_string(),
        format!("sum(irate({}[1m]))", requests("code!=\"500\"")),
        format!("sum(irate({}[45s]))", requests("code!~\"2..\"")),
        "sum(delta(queue_depth[3m]))".to_string(),
        "sum(idelta(queue_depth[2m]))".to_string(),
        "rate(http_requests_total[1m])".to_string(),
        // Histograms.
        "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket{track=\"canary\"}[1m])))".to_string(),
        "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))".to_string(),
        "histogram_quantile(0.9, sum by (le, track) (increase(latency_seconds_bucket{track=\"stable\"}[2m])))".to_string(),
        "histogram_quantile(0.9, latency_seconds_bucket{track=\"stable\"})".to_string(),
        "histogram_quantile(0.2, latency_seconds_bucket{track=\"canary\"})".to_string(),
        // Over time.
        "avg_over_time(queue_depth{track=\"canary\"}[5m])".to_string(),
        "sum_over_time(queue_depth{track=\"canary\"}[3m])".to_string(),
        "min_over_time(queue_depth{track=\"stable\"}[10m])".to_string(),
        "max_over_time(queue_depth{track=\"stable\"}[10m])".to_string(),
        "count_over_time(http_requests_total{track=\"stable\", code=\"200\"}[4m])".to_string(),
        "last_over_time(queue_depth{track=\"old\"}[10m])".to_string(),
        "quantile_over_time(0.75, queue_depth{track=\"canary\"}[15m])".to_string(),
        // Element functions.
        "abs(queue_depth{track=\"canary\"})".to_string(),
        "ceil(queue_depth{track=\"canary\"})".to_string(),
        "floor(queue_depth{track=\"stable\"})".to_string(),
        "round(queue_depth{track=\"canary\"}, 0.5)".to_string(),
        "round(queue_depth{track=\"stable\"})".to_string(),
        "clamp(queue_depth{track=\"canary\"}, -1, 3)".to_string(),
        "clamp_min(queue_depth{track=\"canary\"}, 0)".to_string(),
        "clamp_max(queue_depth{track=\"stable\"}, 2)".to_string(),
        "sqrt(abs(queue_depth{track=\"canary\"}))".to_string(),
        "exp(queue_depth{track=\"canary\"} / 10)".to_string(),
        "ln(abs(queue_depth{track=\"stable\"}) + 1)".to_string(),
        "scalar(queue_depth{track=\"canary\"}) * 2".to_string(),
        "vector(3) + scalar(sum(queue_depth))".to_string(),
        // Aggregations.
        "avg(queue_depth)".to_string(),
        "min(queue_depth)".to_string(),
        "max by (track) (queue_depth{track!=\"old\", track!=\"stable\"})".to_string(),
        "count(http_requests_total)".to_string(),
        "stddev(queue_depth)".to_string(),
        "stdvar(rate(http_requests_total[1m]))".to_string(),
        "quantile(0.3, rate(http_requests_total[2m]))".to_string(),
        "sum(topk(2, rate(http_requests_total[1m])))".to_string(),
        "sum(bottomk(1, queue_depth))".to_string(),
        "group(queue_depth)".to_string(),
        "sum without (code) (rate(http_requests_total{track=\"canary\"}[1m]))".to_string(),
        "sum by (track) (rate(http_requests_total{code=\"500\", track=\"stable\"}[1m]))".to_string(),
        // Arithmetic, comparisons, matching.
        "sum(http_requests_total) % 97 + 2 ^ 3".to_string(),
        "sum(rate(http_requests_total[1m])) > bool 5".to_string(),
        "sum(rate(http_requests_total[1m])) > 5".to_string(),
        "3 < sum(rate(http_requests_total{code=\"500\"}[1m]))".to_string(),
        "count(queue_depth > 2)".to_string(),
        "count(queue_depth <= bool 2)".to_string(),
        "sum(sum by (code) (rate(http_requests_total{track=\"canary\"}[1m])) / on (code) sum by (code) (rate(http_requests_total{track=\"stable\"}[1m])))".to_string(),
        "sum(rate(http_requests_total{code=\"500\"}[1m]) / ignoring (track) group_left sum by (code) (rate(http_requests_total[1m])))".to_string(),
        "sum(sum by (code) (rate(http_requests_total[1m])) / ignoring (track) group_right rate(http_requests_total{code=\"200\"}[1m]))".to_string(),
        "sum(queue_depth{track=\"canary\"} - ignoring (track) queue_depth{track=\"stable\"})".to_string(),
        "count(queue_depth and queue_depth > 0)".to_string(),
        "count(queue_depth{track=\"old\"} or queue_depth{track=\"canary\"})".to_string(),
        "count(queue_depth unless on (track) queue_depth{track=\"stable\"})".to_string(),
    ]
}

/// Equal, or within 1e-9 of the larger magnitude; the same "no data"; the same error shape.
fn agree(
    recorded: &Result<Option<f64>, QueryError>,
    prometheus: &Result<Option<f64>, QueryError>,
) -> bool {
    match (recorded, prometheus) {
        (Ok(Some(a)), Ok(Some(b))) => close(*a, *b),
        (Ok(None), Ok(None)) => true,
        (
            Err(QueryError::MultipleSeries { count: a, .. }),
            Err(QueryError::MultipleSeries { count: b, .. }),
        ) => a == b,
        _ => false,
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn create_blocks(recording: &Recording, dir: &Path) {
    let file = dir.join("recording.om");
    std::fs::write(&file, recording.to_openmetrics()).expect("write the OpenMetrics file");
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(dir.join("data"))
        .output()
        .expect("run promtool (installed by hack/testenv)");
    assert!(
        output.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Fixture {
    _prometheus: PrometheusInstance,
    prometheus: PrometheusSource,
    recorded: RecordedMetrics,
    start: i64,
}

async fn fixture() -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let end = Timestamp::now().as_second() / 60 * 60 - 300;
    let start = end - SCRAPES * SCRAPE_SECONDS;
    let recording = recording(start);
    let dir = PrometheusInstance::new_dir();
    create_blocks(&recording, &dir);
    let instance = PrometheusInstance::start_on_data(dir).await;
    let prometheus =
        PrometheusSource::new(&instance.url(), Duration::from_secs(10)).expect("source");
    Fixture {
        _prometheus: instance,
        prometheus,
        recorded: RecordedMetrics::new(recording),
        start,
    }
}

#[tokio::test]
async fn every_query_shape_agrees_with_prometheus_at_many_times() {
    let f = fixture().await;
    // From before the first sample to past the end: odd steps hit sample times, window edges
    // and the lookback's end at varied offsets. Every second around the start (counters near
    // zero) and around a missed scrape (the extrapolation threshold).
    let missed_scrape = f.start + (7 + 23 * 10) * SCRAPE_SECONDS;
    let times: Vec<i64> = (0..70)
        .map(|i| f.start - 30 + i * 113)
        .chain((-10..70).map(|s| f.start + s))
        .chain((-20..100).map(|s| missed_scrape + s))
        .chain([f.start + 240 * 15 + 300, f.start + 240 * 15 + 301])
        .collect();
    let (mut mismatches, mut vacuous) = (Vec::new(), Vec::new());
    let (mut compared, mut numbers) = (0, 0);
    for query in queries() {
        f.recorded
            .check_query(&query)
            .unwrap_or_else(|e| panic!("check_query({query}): {e}"));
        let mut query_numbers = 0;
        for &t in &times {
            let at = Some(Timestamp::from_second(t).expect("time"));
            let recorded = f.recorded.query_value(&query, at).await;
            let prometheus = f.prometheus.query_value(&query, at).await;
            compared += 1;
            if matches!(recorded, Ok(Some(_))) {
                query_numbers += 1;
            }
            if !agree(&recorded, &prometheus) {
                mismatches.push(format!(
                    "{query} at start{:+}s: recorded {recorded:?}, prometheus {prometheus:?}",
                    t - f.start
                ));
            }
        }
        let expects_numbers = !query.starts_with("rate(http_requests_total[");
        if expects_numbers && query_numbers <= 5 {
            vacuous.push(format!("{query}: {query_numbers} numbers"));
        }
        numbers += query_numbers;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} answers differ:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(25)].join("\n")
    );
    assert!(
        vacuous.is_empty(),
        "queries that almost never give a number prove little:\n{}",
        vacuous.join("\n")
    );
    println!("{compared} answers agree, {numbers} of them numbers");
}

#[tokio::test]
async fn range_queries_agree_with_prometheus() {
    let f = fixture().await;
    let start = Timestamp::from_second(f.start + 7).expect("time");
    let end = Timestamp::from_second(f.start + SCRAPES * SCRAPE_SECONDS + 400).expect("time");
    let queries = [
        "sum(rate(http_requests_total{track=\"canary\", code=\"500\"}[1m])) / sum(rate(http_requests_total{track=\"canary\"}[1m]))",
        "histogram_quantile(0.99, sum by (le) (rate(latency_seconds_bucket[1m])))",
        "queue_depth{track=\"old\"}",
        "sum(increase(late_total[5m]))",
        "rate(http_requests_total[1m])",
        "1 - sum(rate(http_requests_total{code=\"500\"}[5m])) / sum(rate(http_requests_total[5m]))",
    ];
    for query in queries {
        for step in [Duration::from_secs(60), Duration::from_secs(37)] {
            let recorded = f.recorded.query_range(query, start, end, step).await;
            let prometheus = f.prometheus.query_range(query, start, end, step).await;
            match (&recorded, &prometheus) {
                (Ok(a), Ok(b)) => {
                    assert!(!a.is_empty(), "{query}: no points");
                    assert_eq!(a.len(), b.len(), "{query} every {step:?}: point counts");
                    for (p, q) in a.iter().zip(b) {
                        assert!(
                            p.0 == q.0 && close(p.1, q.1),
                            "{query} every {step:?}: {p:?} vs {q:?}"
                        );
                    }
                }
                (
                    Err(QueryError::MultipleSeries { count: a, .. }),
                    Err(QueryError::MultipleSeries { count: b, .. }),
                ) => assert_eq!(a, b, "{query}"),
                _ => panic!("{query}: recorded {recorded:?}, prometheus {prometheus:?}"),
            }
        }
    }
}
