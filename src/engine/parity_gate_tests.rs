//! The gate's reasons: the threshold with its figure, or the statistical test that decided.

use jiff::Timestamp;

use super::*;
use crate::api::parity_policy::{StatisticsMethod, StatisticsSpec};
use crate::engine::parity::{BPS, ParityInput, evaluate};
use crate::engine::statistics::Proportion;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid time")
}

fn spec(yaml: &str) -> ParityPolicySpec {
    serde_saphyr::from_str(yaml).expect("test spec parses")
}

const QUERY: &str = "query: 'sum(rate(order_value_total{track=\"{{track}}\"}[1m]))'\n";

/// 200 samples at 100 x (1 + shift), with a little deterministic noise.
fn noisy(shift: f64, seed: usize) -> Vec<(f64, f64)> {
    (0..200)
        .map(|i| {
            let noise = ((i * 7919 + seed * 104_729) % 10_007) as f64 / 5_003.5 - 1.0;
            (i as f64, 100.0 * (1.0 + shift + 0.0005 * noise))
        })
        .collect()
}

fn statistics(tolerance: f64) -> StatisticsSpec {
    StatisticsSpec {
        method: StatisticsMethod::FixedHorizon,
        confidence: 0.98,
        tolerance,
        level: ParityLevel::Critical,
        good: None,
        total: None,
    }
}

fn report(
    spec: &ParityPolicySpec,
    candidate: &[(f64, f64)],
    baseline: &[(f64, f64)],
    proportions: Option<(Proportion, Proportion)>,
    previous: u32,
) -> ParityReport {
    let input = ParityInput {
        candidate,
        baseline,
        components: &[],
        proportions,
    };
    evaluate(spec, &input, previous, now())
}

#[test]
fn a_threshold_breach_names_the_threshold_and_the_figure() {
    let spec = spec(&format!("{QUERY}consecutiveBreaches: 1\n"));
    let baseline: Vec<(f64, f64)> = (0..30).map(|i| (f64::from(i) * 60.0, 200.0)).collect();
    let candidate: Vec<(f64, f64)> = baseline
        .iter()
        .map(|&(t, v)| (t, v * (1.0 + 60.0 / BPS)))
        .collect();
    let report = report(&spec, &candidate, &baseline, None, 0);
    assert_eq!(report.decided_by, LevelSource::Thresholds);
    let gate = gate_verdict(&spec, &report, None);
    assert_eq!(gate.source, GateSource::Parity);
    assert_eq!(gate.effect, GateEffect::Rollback);
    assert_eq!(
        gate.reason,
        "parity Critical: rms 60.0 bps >= critical 50 bps (1 evaluations in a row; action Rollback)"
    );
    assert_eq!(gate.parity.map(|p| p.level), Some(ParityLevel::Critical));
}

#[test]
fn a_level_raised_by_the_shift_test_names_the_test_its_p_value_and_interval() {
    let mut spec = spec(&format!("{QUERY}consecutiveBreaches: 1\n"));
    spec.statistics = Some(statistics(0.001));
    let report = report(&spec, &noisy(0.0012, 1), &noisy(0.0, 2), None, 0);
    assert_eq!(report.decided_by, LevelSource::Statistics);
    let gate = gate_verdict(&spec, &report, None);
    assert_eq!(gate.effect, GateEffect::Rollback);
    assert_eq!(
        gate.reason,
        "parity Critical: Mann-Whitney U p=4.8e-67 < 0.02, Hodges-Lehmann shift 0.12 [0.113, 0.127] (98 % interval) beyond tolerance ±0.1 (0.1 % of the baseline median 100) (1 evaluations in a row; action Rollback)"
    );
    assert!(!gate.reason.contains(">= critical"), "{}", gate.reason);
}

#[test]
fn a_level_raised_by_the_proportions_test_names_it_with_both_rates() {
    let mut spec = spec(&format!("{QUERY}consecutiveBreaches: 1\n"));
    spec.statistics = Some(statistics(0.25));
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
    let report = report(&spec, &noisy(0.0, 1), &noisy(0.0, 2), proportions, 0);
    assert_eq!(report.decided_by, LevelSource::Statistics);
    let gate = gate_verdict(&spec, &report, None);
    assert_eq!(
        gate.reason,
        "parity Critical: two-proportion z-test p=2.0e-41 < 0.02, z -13.48: candidate good 97.00 % < baseline 99.50 % (1 evaluations in a row; action Rollback)"
    );
}

#[test]
fn a_breach_not_yet_counted_holds_naming_what_decided_it() {
    let mut spec = spec(&format!("{QUERY}consecutiveBreaches: 2\n"));
    spec.statistics = Some(statistics(0.001));
    let report = report(&spec, &noisy(0.0012, 1), &noisy(0.0, 2), None, 0);
    let gate = gate_verdict(&spec, &report, None);
    assert_eq!(gate.effect, GateEffect::Hold);
    assert!(
        gate.reason
            .starts_with("parity Critical seen 1 of 2 evaluations in a row: Mann-Whitney U p="),
        "{}",
        gate.reason
    );
}

#[test]
fn a_failed_comparison_under_a_higher_threshold_level_leaves_the_threshold_named() {
    // 120 bps is Emergency by the thresholds: the comparison (Critical) raises nothing.
    let mut spec = spec(&format!("{QUERY}consecutiveBreaches: 1\n"));
    spec.statistics = Some(statistics(0.001));
    let report = report(&spec, &noisy(0.012, 1), &noisy(0.0, 2), None, 0);
    assert_eq!(report.evaluation.level, ParityLevel::Emergency);
    assert_eq!(report.decided_by, LevelSource::Thresholds);
    let gate = gate_verdict(&spec, &report, None);
    assert!(
        gate.reason.contains(">= emergency 100 bps"),
        "{}",
        gate.reason
    );
}

#[test]
fn breaches_of_an_earlier_rollout_do_not_count() {
    let status: CanaryRolloutStatus = serde_json::from_value(serde_json::json!({
        "rolloutStartedAt": "2023-11-14T22:13:20Z",
        "lastEvaluation": {
            "time": "2023-11-14T22:13:30Z", "verdict": "Pass",
            "parity": {"samples": 30, "level": "Pass", "consecutiveBreaches": 1}
        }
    }))
    .expect("status parses");
    assert_eq!(previous_breaches(&status), 1);
    let mut earlier = status.clone();
    earlier.rollout_started_at = Some("2023-11-14T22:14:00Z".parse().unwrap());
    assert_eq!(previous_breaches(&earlier), 0);
}

/// Sequential statistics in a rollout: the stage's evidence goes into the gate (for the
/// status), and a shift established beyond tolerance raises the level and is named with its
/// confidence sequence; without the rollout's context a sequential policy runs no test.
#[test]
fn a_level_raised_by_the_sequential_shift_names_its_confidence_sequence() {
    let mut spec = spec(&format!("{QUERY}consecutiveBreaches: 1\n"));
    spec.statistics = Some(StatisticsSpec {
        method: StatisticsMethod::Sequential,
        ..statistics(0.001)
    });
    let rollout: crate::api::canary_rollout::CanaryRolloutSpec = serde_saphyr::from_str(
        "targetRef: {name: checkout}\nservice: {name: checkout, port: 80}\ntrafficRouting: {replicas: {}}\n",
    )
    .expect("rollout spec");
    let status = CanaryRolloutStatus::default();
    let context = sequential_context(&rollout, Some(&status), &spec);
    assert!(
        (context.alpha - 0.02 / 4.0).abs() < 1e-12,
        "four default stages"
    );
    let input = ParityInput {
        candidate: &noisy(0.0012, 1),
        baseline: &noisy(0.0, 2),
        components: &[],
        proportions: None,
    };
    let report = parity::evaluate_with(&spec, &input, 0, Some(&context), now());
    assert_eq!(report.decided_by, LevelSource::Statistics);
    assert_eq!(report.evaluation.statistics, None, "no fixed-horizon test");
    let gate = gate_verdict(&spec, &report, None);
    assert_eq!(gate.evidence.len(), 2, "the shift's and the distribution's");
    assert_eq!(gate.evidence[0].evidence.pairs, 200);
    assert_eq!(gate.evidence[1].name, parity_sequential::DISTRIBUTION);
    assert_eq!(
        gate.reason,
        "parity Critical: mean active difference +12.0 bps over 200 samples (confidence sequence at 99.75 %: +10.6 to +13.4 bps) beyond tolerance ±10.0 bps (1 evaluations in a row; action Rollback)"
    );
    let without_context = evaluate(&spec, &input, 0, now());
    assert_eq!(without_context.decided_by, LevelSource::Thresholds);
    assert_eq!(without_context.evaluation.sequential, None);
}

/// A gap between the distributions beyond the band is named with the side, the gap, where it is
/// reached, the samples and the band.
#[test]
fn a_failed_distribution_comparison_names_its_side_and_band() {
    let result = SequentialStatistics {
        shift: None,
        proportions: None,
        distribution: Some(DistributionComparison {
            above: 0.05,
            below: 0.412,
            at: 100.05,
            band: 0.271,
            tolerance: 0.1,
            samples: 1200,
        }),
        confidence: 0.9975,
        tolerance: 0.001,
        failed: true,
    };
    assert_eq!(
        failed_sequential_tests(&result),
        [
            "candidate's values below the baseline's by more than the tolerance ±0.1 in \
          distribution: F_candidate(x) - F_baseline(x + 0.1) = 0.412 at x = 100.05 over 1200 samples \
          per track, beyond the time-uniform band 0.271 (sequential Kolmogorov-Smirnov at 99.75 %)"
        ]
    );
    let within = SequentialStatistics {
        distribution: result
            .distribution
            .clone()
            .map(|d| DistributionComparison { below: 0.2, ..d }),
        ..result
    };
    assert!(failed_sequential_tests(&within).is_empty());
}
