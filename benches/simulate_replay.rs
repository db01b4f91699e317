//! Cost of replaying 30 days of 1-minute samples for 5 series: a rollout judged every minute
//! whose stage pauses span the whole recording (~43 200 evaluations of a ratio check and a
//! sample count through the PromQL evaluator, the analysis and the engine). Prints the time to
//! parse the recording and the time of the replay, median of 3 runs. Target: replay < 1 s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sluice::simulate::recorded::{RecordedMetrics, RecordedSeries, Recording};
use sluice::simulate::{RawDocuments, replay};

const DAYS: u32 = 30;
const START: i64 = 1_767_225_600;
const RUNS: usize = 3;

fn series(track: &str, code: &str, per_minute: f64) -> RecordedSeries {
    let labels = BTreeMap::from([
        ("__name__".to_string(), "http_requests_total".to_string()),
        ("track".to_string(), track.to_string()),
        ("code".to_string(), code.to_string()),
    ]);
    let minutes = i64::from(DAYS) * 24 * 60;
    let samples = (0..=minutes)
        .map(|m| ((START + m * 60) as f64, (m as f64 * per_minute).floor()))
        .collect();
    RecordedSeries { labels, samples }
}

fn recording() -> Recording {
    Recording::from_series(vec![
        series("canary", "200", 600.0),
        series("canary", "500", 0.6),
        series("stable", "200", 6000.0),
        series("stable", "500", 6.0),
        series("all", "200", 6600.0),
    ])
    .expect("a valid recording")
}

fn documents() -> sluice::simulate::Documents {
    let rollout = serde_json::json!({
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "checkout"},
            "service": {"name": "checkout", "port": 80},
            "trafficRouting": {"gatewayAPI": {"httpRoutes": ["checkout"]}},
            "stages": [
                {"weight": 1, "pause": "10d"},
                {"weight": 10, "pause": "10d"},
                {"weight": 100, "pause": "10d"}
            ],
            "analysis": {
                "interval": "1m",
                "sampleCountQuery": "sum(increase(http_requests_total{track=\"canary\"}[{{interval}}]))",
                "checks": [{
                    "name": "error-rate",
                    "query": "sum(rate(http_requests_total{track=\"canary\",code=~\"5..\"}[5m])) / sum(rate(http_requests_total{track=\"canary\"}[5m]))",
                    "max": 0.01
                }]
            }
        }
    });
    RawDocuments::from_documents(vec![("CanaryRollout".into(), rollout)])
        .expect("one rollout")
        .typed()
        .expect("a valid rollout")
}

fn main() {
    let text = recording().to_openmetrics();
    let started = Instant::now();
    let parsed = Recording::parse_openmetrics(&text).expect("parses");
    let parse_time = started.elapsed();
    let (start, end) = parsed.span().expect("a span");
    let documents = documents();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut times: Vec<Duration> = Vec::new();
    let mut evaluations = 0;
    let mut outcome = String::new();
    for _ in 0..RUNS {
        let source = Arc::new(RecordedMetrics::new(parsed.clone()));
        let started = Instant::now();
        let result = runtime.block_on(replay(&documents, source, start, end));
        times.push(started.elapsed());
        evaluations = result.evaluations;
        outcome = format!("{:?} at {}", result.outcome.result, result.outcome.at);
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "{} series x {} samples ({DAYS} days at 1 m): parse {:.3} s, replay {:.3} s median of {RUNS} (slowest {:.3} s), {evaluations} evaluations, {outcome}",
        parsed.series_count(),
        parsed.series()[0].samples.len(),
        parse_time.as_secs_f64(),
        median.as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
    );
    let start_ok = Timestamp::from_second(START).is_ok_and(|s| s == start);
    assert!(start_ok, "the recording starts where it was written");
    if median > Duration::from_secs(1) {
        println!("slower than the 1 s target");
    }
}
