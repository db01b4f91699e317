use std::time::Duration;

use super::*;
use crate::api::parity_policy::{ParityLevel, StatisticsMethod};
use crate::noise::Noise;

fn settings(tolerance: f64, proportions: bool) -> StatisticsSpec {
    StatisticsSpec {
        method: StatisticsMethod::Sequential,
        confidence: 0.99,
        tolerance,
        level: ParityLevel::Critical,
        good: proportions.then(|| "good".to_string()),
        total: proportions.then(|| "total".to_string()),
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + second).expect("a valid time")
}

fn seconds(second: i64) -> f64 {
    at(second).as_second() as f64
}

fn context(evidence: &[CheckEvidence], since: Option<Timestamp>) -> SequentialContext<'_> {
    SequentialContext {
        evidence,
        since,
        alpha: 0.01,
        window: Duration::from_secs(60),
    }
}

/// One evaluation's samples: a point every 10 s from `from` to `to` (seconds), each with the
/// active difference `bps`.
fn samples(from: i64, to: i64, mut bps: impl FnMut(i64) -> f64) -> (Vec<f64>, Vec<f64>) {
    (from..=to)
        .step_by(10)
        .map(|s| (seconds(s), bps(s)))
        .unzip()
}

fn measured<'a>(times: &'a [f64], bps: &'a [f64]) -> Measured<'a> {
    Measured {
        timestamps: times,
        active_bps: bps,
        candidate_values: &[],
        baseline_values: &[],
        proportions: None,
    }
}

#[test]
fn each_sample_counts_once_across_overlapping_windows_and_none_before_the_stage() {
    let spec = settings(0.01, false);
    let (times, bps) = samples(0, 90, |_| 5.0);
    let first = compare(&spec, &measured(&times, &bps), &context(&[], None), at(90));
    assert_eq!(first.evidence[0].name, SHIFT);
    assert_eq!(first.evidence[0].evidence.pairs, 10);
    assert_eq!(first.evidence[0].through, Some(at(90)));
    // The next window overlaps the first by 60 s: only the 3 newer samples count.
    let (times, bps) = samples(30, 120, |_| 5.0);
    let second = compare(
        &spec,
        &measured(&times, &bps),
        &context(&first.evidence, None),
        at(120),
    );
    assert_eq!(second.evidence[0].evidence.pairs, 13);
    assert_eq!(second.evidence[0].through, Some(at(120)));
    // A new stage started at 100 s: its evidence starts empty and counts no sample before.
    let third = compare(
        &spec,
        &measured(&times, &bps),
        &context(&[], Some(at(100))),
        at(120),
    );
    assert_eq!(third.evidence[0].evidence.pairs, 2);
    let shift = third.result.shift.expect("a shift");
    assert!((shift.estimate - 5.0 / 10_000.0).abs() < 1e-15);
}

/// The interval of eight active differences against Python: mean ± width × (t / z quantile
/// ratio) × sample deviation, with `statistics.stdev`, `scipy.stats.t.ppf` and
/// `scipy.stats.norm.ppf` (scipy 1.17.1), alpha 0.005, tightest after 100 samples.
#[test]
fn the_mean_interval_matches_an_independent_computation() {
    let values = [0.031, 0.027, 0.035, 0.029, 0.033, 0.030, 0.026, 0.034];
    let mut evidence = PairedEvidence::default();
    for value in values {
        evidence.add(value, 0.0);
    }
    let [lower, upper] = sequential::mean_interval(&evidence, 0.005, 100.0).expect("8 values");
    assert!((lower - 0.02286589865892906).abs() < 1e-9, "{lower}");
    assert!((upper - 0.03838410134107094).abs() < 1e-9, "{upper}");
}

#[test]
fn a_shift_beyond_tolerance_is_established_one_within_is_not() {
    let run = |mean_bps: f64| {
        let mut noise = Noise::new(7);
        let mut evidence = Vec::new();
        let mut last = None;
        for evaluation in 0..10 {
            let end = 60 * (evaluation + 1);
            let (times, bps) = samples(end - 50, end, |_| mean_bps + 20.0 * noise.normal());
            let outcome = compare(
                &settings(0.01, false),
                &measured(&times, &bps),
                &context(&evidence, None),
                at(end),
            );
            evidence = outcome.evidence;
            last = Some(outcome.result);
        }
        last.expect("ten evaluations")
    };
    let beyond = run(200.0);
    assert!(beyond.failed, "{beyond:?}");
    let [lower, _] = beyond
        .shift
        .as_ref()
        .and_then(|s| s.interval)
        .expect("an interval");
    assert!(lower > 0.01, "{beyond:?}");
    assert!(
        (beyond.confidence - 0.995).abs() < 1e-12,
        "the shift and the distribution share alpha"
    );
    let within = run(50.0);
    assert!(!within.failed, "{within:?}");
}

#[test]
fn proportions_take_one_pair_per_window_and_fail_on_more_bad_events() {
    let spec = settings(0.25, true);
    let (times, bps) = samples(0, 50, |_| 0.0);
    let counts = |candidate_bad: f64| {
        Some((
            Proportion {
                good: 1000.0 - candidate_bad,
                total: 1000.0,
            },
            Proportion {
                good: 990.0,
                total: 1000.0,
            },
        ))
    };
    let mut evidence: Vec<CheckEvidence> = Vec::new();
    let mut last = None;
    for (second, bad) in [
        (60, 50.0),
        (90, 52.0),
        (120, 47.0),
        (180, 55.0),
        (240, 45.0),
        (300, 49.0),
    ] {
        let outcome = compare(
            &spec,
            &Measured {
                proportions: counts(bad),
                ..measured(&times, &bps)
            },
            &context(&evidence, None),
            at(second),
        );
        evidence = outcome.evidence;
        last = Some(outcome.result);
    }
    let proportions = &evidence[1];
    assert_eq!(proportions.name, PROPORTIONS);
    assert_eq!(
        proportions.evidence.pairs, 5,
        "the window at 90 s overlapped the one at 60 s"
    );
    let result = last.expect("evaluations");
    assert!(
        (result.confidence - (1.0 - 0.01 / 3.0)).abs() < 1e-12,
        "three tests share alpha"
    );
    let compared = result.proportions.clone().expect("proportions compared");
    assert!((compared.estimate - 3.92).abs() < 1e-9, "{compared:?}");
    assert!(result.failed, "{result:?}");
}

/// Active differences whose true mean sits exactly on the tolerance, 20 samples per evaluation,
/// a look after each of 40 evaluations: the shift is established beyond tolerance in at most
/// alpha of 2 000 rollouts.
#[test]
fn looking_at_every_evaluation_keeps_false_failures_below_alpha() {
    let mut noise = Noise::new(21);
    let spec = settings(0.01, false);
    let rollouts = 2000;
    let failed = (0..rollouts)
        .filter(|_| {
            let mut evidence = Vec::new();
            (0..40).any(|evaluation| {
                let end = 200 * (evaluation + 1);
                let (times, bps) = samples(end - 190, end, |_| 100.0 + 30.0 * noise.normal());
                let outcome = compare(
                    &spec,
                    &measured(&times, &bps),
                    &context(&evidence, None),
                    at(end),
                );
                evidence = outcome.evidence;
                outcome.result.failed
            })
        })
        .count();
    assert!(failed <= 20, "false failures {failed} of {rollouts}");
}

/// The distribution's evidence: edges fixed once 20 baseline samples have come, each sample
/// counted once across overlapping windows, and a bimodal candidate with the baseline's mean
/// and spread failing while the shift passes.
#[test]
fn a_bimodal_candidate_fails_the_distribution_and_not_the_shift() {
    let spec = settings(0.001, false);
    let mut noise = Noise::new(17);
    let mut evidence: Vec<CheckEvidence> = Vec::new();
    let mut last = None;
    for evaluation in 0..60 {
        // Windows of 100 samples a second apart, overlapping the previous one by half.
        let from = evaluation * 50;
        let times: Vec<f64> = (from..from + 100).map(seconds).collect();
        let baseline: Vec<f64> = times.iter().map(|_| 100.0 + noise.normal()).collect();
        let candidate: Vec<f64> = times
            .iter()
            .map(|_| {
                // Modes at ±0.99 with deviation 0.14: mean 100, variance 1.0.
                let side = if noise.uniform() < 0.5 { -0.99 } else { 0.99 };
                100.0 + side + 0.14 * noise.normal()
            })
            .collect();
        let bps: Vec<f64> = (candidate.iter().zip(&baseline))
            .map(|(c, b)| (c - b) / b * 10_000.0)
            .collect();
        let outcome = compare(
            &spec,
            &Measured {
                candidate_values: &candidate,
                baseline_values: &baseline,
                ..measured(&times, &bps)
            },
            &context(&evidence, None),
            at(from + 99),
        );
        evidence = outcome.evidence;
        last = Some(outcome.result);
    }
    let result = last.expect("evaluated");
    let distribution = result.distribution.expect("a distribution comparison");
    assert_eq!(
        distribution.samples,
        50 * 59 + 100,
        "each sample counted once"
    );
    assert!(
        (distribution.tolerance - 0.1).abs() < 0.01,
        "{distribution:?}"
    );
    assert!(
        crate::engine::distribution::beyond(&distribution),
        "{distribution:?}"
    );
    let shift = result.shift.expect("a shift");
    assert!(!shift_beyond(&shift, 0.001), "{shift:?}");
    assert!(result.failed);
    let names: Vec<&str> = evidence.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [SHIFT, DISTRIBUTION]);
}
