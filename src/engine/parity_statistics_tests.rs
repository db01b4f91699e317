//! The statistical comparison inside a parity evaluation: it raises the level when the canary is
//! shown to have shifted beyond the tolerance, even under the thresholds.

use jiff::Timestamp;

use super::*;
use crate::api::parity_policy::{StatisticsMethod, StatisticsSpec};

fn spec(tolerance: f64) -> ParityPolicySpec {
    let mut spec: ParityPolicySpec = serde_saphyr::from_str(
        "query: 'x{track=\"{{track}}\"}'\nminSamples: 20\nconsecutiveBreaches: 1\n",
    )
    .unwrap();
    spec.statistics = Some(StatisticsSpec {
        method: StatisticsMethod::FixedHorizon,
        confidence: 0.98,
        tolerance,
        level: ParityLevel::Critical,
        good: None,
        total: None,
    });
    spec
}

/// A deterministic noise in [-1, 1].
fn noise(i: usize, seed: usize) -> f64 {
    ((i * 7919 + seed * 104_729) % 10_007) as f64 / 5_003.5 - 1.0
}

fn series(shift: f64, seed: usize) -> Vec<(f64, f64)> {
    (0..200)
        .map(|i| (i as f64, 100.0 * (1.0 + shift + 0.0005 * noise(i, seed))))
        .collect()
}

fn evaluate_with(
    spec: &ParityPolicySpec,
    candidate: &[(f64, f64)],
    baseline: &[(f64, f64)],
) -> ParityReport {
    let input = ParityInput {
        candidate,
        baseline,
        components: &[],
        proportions: None,
    };
    evaluate(
        spec,
        &input,
        0,
        Timestamp::from_second(1_700_000_000).unwrap(),
    )
}

#[test]
fn a_small_shift_under_the_thresholds_is_caught_by_the_comparison() {
    let (candidate, baseline) = (series(0.0012, 1), series(0.0, 2));
    let plain = evaluate_with(
        &ParityPolicySpec {
            statistics: None,
            ..spec(0.001)
        },
        &candidate,
        &baseline,
    );
    assert_eq!(
        plain.evaluation.level,
        ParityLevel::Pass,
        "{:?}",
        plain.figures
    );
    let judged = evaluate_with(&spec(0.001), &candidate, &baseline);
    let result = judged
        .evaluation
        .statistics
        .clone()
        .expect("statistics reported");
    assert!(result.failed && !result.within_tolerance, "{result:?}");
    assert!(result.mann_whitney_p < 0.02, "{result:?}");
    assert!(
        result.shift_lower > 0.1 && result.shift_upper < 0.14,
        "{result:?}"
    );
    assert_eq!(judged.evaluation.level, ParityLevel::Critical);
}

#[test]
fn a_shift_within_the_tolerance_does_not_raise_the_level() {
    let (candidate, baseline) = (series(0.0012, 1), series(0.0, 2));
    let judged = evaluate_with(&spec(0.25), &candidate, &baseline);
    let result = judged.evaluation.statistics.expect("statistics reported");
    assert!(!result.failed && result.within_tolerance, "{result:?}");
    assert_eq!(judged.evaluation.level, ParityLevel::Pass);
}

#[test]
fn the_proportions_test_fails_a_canary_with_fewer_good_events() {
    use crate::engine::statistics::Proportion;
    let (candidate, baseline) = (series(0.0, 1), series(0.0, 2));
    let proportions = Some((
        Proportion {
            good: 9_700.0,
            total: 10_000.0,
        },
        Proportion {
            good: 9_950.0,
            total: 10_000.0,
        },
    ));
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &[],
        proportions,
    };
    let judged = evaluate(
        &spec(0.25),
        &input,
        0,
        Timestamp::from_second(1_700_000_000).unwrap(),
    );
    let result = judged.evaluation.statistics.expect("statistics reported");
    let test = result.proportions.expect("proportions reported");
    assert!(
        test.p_value < 1e-6 && test.candidate_rate < test.baseline_rate,
        "{test:?}"
    );
    assert!(result.failed);
    assert_eq!(judged.evaluation.level, ParityLevel::Critical);
}
