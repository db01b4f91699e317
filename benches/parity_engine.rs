//! Cost of one parity evaluation on 10 000 samples per track: active differences, the three
//! figures, attribution over 5 components, and the statistical comparison (Mann-Whitney U with
//! the Hodges-Lehmann interval). Prints the median and the slowest of 30 runs. Target: < 5 ms.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use sluice::api::parity_policy::{ParityLevel, ParityPolicySpec, StatisticsMethod, StatisticsSpec};
use sluice::engine::parity::{ComponentSeries, ParityInput, evaluate};

type Series = Vec<(f64, f64)>;

const SAMPLES: usize = 10_000;
const COMPONENTS: usize = 5;
const RUNS: usize = 30;

fn noise(i: usize, seed: usize) -> f64 {
    ((i * 7919 + seed * 104_729) % 10_007) as f64 / 5_003.5 - 1.0
}

fn series(level: f64, spread: f64, seed: usize) -> Series {
    (0..SAMPLES)
        .map(|i| (i as f64 * 60.0, level * (1.0 + spread * noise(i, seed))))
        .collect()
}

fn main() {
    let mut spec: ParityPolicySpec =
        serde_saphyr::from_str("query: 'x{track=\"{{track}}\"}'\nminSamples: 20\n").expect("spec");
    spec.statistics = Some(StatisticsSpec {
        method: StatisticsMethod::FixedHorizon,
        confidence: 0.98,
        tolerance: 0.25,
        level: ParityLevel::Critical,
        good: None,
        total: None,
    });
    let candidate = series(100.3, 0.001, 1);
    let baseline = series(100.0, 0.001, 2);
    let parts: Vec<(String, Series, Series)> = (0..COMPONENTS)
        .map(|c| {
            (
                format!("component-{c}"),
                series(10.0 + c as f64, 0.002, 10 + c),
                series(10.0, 0.002, 20 + c),
            )
        })
        .collect();
    let components: Vec<ComponentSeries> = parts
        .iter()
        .map(|(name, c, b)| ComponentSeries {
            name,
            candidate: c,
            baseline: b,
        })
        .collect();
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &components,
        proportions: None,
    };
    let now = Timestamp::from_second(1_700_000_000).expect("time");

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut level = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = evaluate(&spec, &input, 0, now);
        times.push(started.elapsed());
        level = Some(report.evaluation.level);
        assert!(report.evaluation.statistics.is_some(), "the comparison ran");
        assert_eq!(report.evaluation.components.len(), COMPONENTS);
    }
    times.sort();
    println!(
        "parity evaluation, {SAMPLES} samples per track, {COMPONENTS} components, Mann-Whitney + Hodges-Lehmann ({RUNS} runs):"
    );
    println!("  median {:.2} ms", times[RUNS / 2].as_secs_f64() * 1e3);
    println!("  max    {:.2} ms", times[RUNS - 1].as_secs_f64() * 1e3);
    println!("  (level of the sample data: {level:?})");
}
