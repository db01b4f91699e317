//! Cost of replaying from a file: 30 days of 1-minute samples for 5 series (4 request counters,
//! 1 gauge), a rollout evaluated every minute (43 200 evaluations) asking the queries Sluice
//! renders (error-rate check, sample count, parity ratio difference, SLO burn ratio, gauge
//! average). Also: loading the recording, and the parity window as a range query. Prints the
//! median and the slowest of 3 runs. Target: the whole replay's queries < 1 s.

use std::time::{Duration, Instant};

use futures::executor::block_on;
use jiff::Timestamp;
use sluice::metrics::MetricsSource;
use sluice::simulate::recorded::{Labels, RecordedMetrics, RecordedSeries, Recording};

const MINUTES: i64 = 30 * 24 * 60;
const START: i64 = 1_699_999_980;
const RUNS: usize = 3;

const QUERIES: [&str; 5] = [
    r#"sum(rate(http_requests_total{track="canary", code=~"5.."}[1m])) / sum(rate(http_requests_total{track="canary"}[1m]))"#,
    r#"sum(increase(http_requests_total{track="canary"}[1m]))"#,
    r#"sum(rate(http_requests_total{track="canary", code="200"}[1m])) / sum(rate(http_requests_total{track="canary"}[1m])) - sum(rate(http_requests_total{track="stable", code="200"}[1m])) / sum(rate(http_requests_total{track="stable"}[1m]))"#,
    r#"1 - sum(rate(http_requests_total{code!~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
    r#"avg_over_time(queue_depth{track="canary"}[5m])"#,
];

fn noise(i: i64, seed: i64) -> f64 {
    ((i * 7919 + seed * 104_729) % 10_007) as f64 / 10_007.0
}

fn recording() -> Recording {
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut series = Vec::new();
    for (seed, (track, code)) in [
        ("canary", "200"),
        ("canary", "500"),
        ("stable", "200"),
        ("stable", "500"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut value = 0.0;
        let samples = (0..=MINUTES)
            .map(|m| {
                value += (600.0 * noise(m, seed as i64)).floor();
                ((START + 60 * m) as f64, value)
            })
            .collect();
        let labels = labels(&[
            ("__name__", "http_requests_total"),
            ("track", track),
            ("code", code),
        ]);
        series.push(RecordedSeries { labels, samples });
    }
    let samples = (0..=MINUTES)
        .map(|m| ((START + 60 * m) as f64, 10.0 * noise(m, 9)))
        .collect();
    let labels = labels(&[("__name__", "queue_depth"), ("track", "canary")]);
    series.push(RecordedSeries { labels, samples });
    Recording::from_series(series).expect("valid recording")
}

fn timed<T>(what: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = what();
    (result, started.elapsed())
}

fn median_and_max(mut runs: Vec<Duration>) -> (Duration, Duration) {
    runs.sort();
    (runs[runs.len() / 2], runs[runs.len() - 1])
}

fn main() {
    let (recording, built) = timed(recording);
    let text = recording.to_openmetrics();
    let (parsed, parsed_in) = timed(|| Recording::parse_openmetrics(&text).expect("parses"));
    assert_eq!(parsed.series_count(), 5);
    let (source, indexed_in) = timed(|| RecordedMetrics::new(parsed));
    println!(
        "recording: 5 series x {} samples; built in {built:.1?}, OpenMetrics {:.1} MB parsed in {parsed_in:.1?}, indexed in {indexed_in:.1?}",
        MINUTES + 1,
        text.len() as f64 / 1e6
    );
    for query in QUERIES {
        source.check_query(query).expect("query is supported");
    }

    let mut replays = Vec::new();
    let mut answered = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        answered = 0;
        for minute in 1..=MINUTES {
            let at = Timestamp::from_second(START + 60 * minute).expect("time");
            for query in QUERIES {
                if let Ok(Some(_)) = block_on(source.query_value(query, Some(at))) {
                    answered += 1;
                }
            }
        }
        replays.push(started.elapsed());
    }
    let (median, max) = median_and_max(replays);
    let evaluations = MINUTES as u32;
    println!(
        "replay: {evaluations} evaluations x {} queries ({answered} numbers): median {median:.1?}, max {max:.1?} \
         ({:.2} us per evaluation, {:.2} us per query); target < 1 s",
        QUERIES.len(),
        median.as_secs_f64() * 1e6 / evaluations as f64,
        median.as_secs_f64() * 1e6 / (evaluations as f64 * QUERIES.len() as f64),
    );

    // The parity policy's window: 31 points (30 m every 1 m) per track at each evaluation.
    let parity = r#"sum(rate(http_requests_total{track="canary", code="200"}[1m])) / sum(rate(http_requests_total{track="canary"}[1m]))"#;
    let mut windows = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for minute in (31..=MINUTES).step_by(60) {
            let end = Timestamp::from_second(START + 60 * minute).expect("time");
            let start = Timestamp::from_second(START + 60 * (minute - 30)).expect("time");
            let points = block_on(source.query_range(parity, start, end, Duration::from_secs(60)))
                .expect("range");
            assert_eq!(points.len(), 31);
        }
        windows.push(started.elapsed());
    }
    let (median, max) = median_and_max(windows);
    let count = (31..=MINUTES).step_by(60).count() as f64;
    println!(
        "parity window (range query, 31 points): {:.1} us each (median of {RUNS} runs of {count} windows; max run {max:.1?})",
        median.as_secs_f64() * 1e6 / count
    );
}
