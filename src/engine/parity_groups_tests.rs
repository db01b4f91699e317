use std::collections::BTreeMap;

use super::*;
use crate::api::parity_policy::{ParityLevel, ParityPolicySpec};
use crate::engine::parity_gate;

const SYMBOLS: [&str; 5] = ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA"];

fn spec(extra: &str) -> ParityPolicySpec {
    serde_saphyr::from_str(&format!(
        "query: 'sum by (symbol) (px{{track=\"{{{{track}}}}\"}})'\nminSamples: 10\nconsecutiveBreaches: 1\ngroups:\n  by: [symbol]\n{extra}"
    ))
    .expect("spec parses")
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

/// Offset of `symbol`'s canary from its baseline at sample `t`, as a fraction.
fn offset(symbol: &str, t: usize) -> f64 {
    match symbol {
        "MSFT" => 0.006,
        // Noise that averages out: ±3 bps.
        _ => 0.0003 * if t.is_multiple_of(2) { 1.0 } else { -1.0 },
    }
}

fn labelled(symbol: &str, points: Vec<(f64, f64)>) -> LabelledSeries {
    LabelledSeries {
        labels: BTreeMap::from([("symbol".to_string(), symbol.to_string())]),
        points,
    }
}

/// 30 samples per symbol: baselines that move, candidates at their offsets.
fn tracks() -> (Vec<LabelledSeries>, Vec<LabelledSeries>) {
    let (mut candidate, mut baseline) = (Vec::new(), Vec::new());
    for (i, symbol) in SYMBOLS.iter().enumerate() {
        let base = |t: usize| 100.0 * (i + 1) as f64 + (t as f64 * 0.37).sin();
        let times = 0..30;
        baseline.push(labelled(
            symbol,
            times.clone().map(|t| (60.0 * t as f64, base(t))).collect(),
        ));
        candidate.push(labelled(
            symbol,
            times
                .map(|t| (60.0 * t as f64, base(t) * (1.0 + offset(symbol, t))))
                .collect(),
        ));
    }
    (candidate, baseline)
}

/// The figures, computed here from the definitions: mean, sample standard deviation, RMS.
fn reference(diffs: &[f64]) -> (f64, f64, f64) {
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let variance = diffs.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / (n - 1.0);
    let rms = (diffs.iter().map(|a| a * a).sum::<f64>() / n).sqrt();
    (mean, variance.sqrt(), rms)
}

/// Each symbol's active differences in bps, from the series as given.
fn differences(candidate: &[LabelledSeries], baseline: &[LabelledSeries]) -> Vec<Vec<f64>> {
    candidate
        .iter()
        .zip(baseline)
        .map(|(c, b)| {
            c.points
                .iter()
                .zip(&b.points)
                .map(|(c, b)| (c.1 - b.1) / b.1.abs() * 10_000.0)
                .collect()
        })
        .collect()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9 * b.abs().max(1.0))
}

#[test]
fn one_symbol_60_bps_off_breaches_and_is_named_while_the_aggregate_passes() {
    let spec = spec("");
    let groups = spec.groups.clone().unwrap();
    let (candidate, baseline) = tracks();
    let diffs = differences(&candidate, &baseline);
    let series = group_series(&groups, candidate, baseline, None).unwrap();
    let report = evaluate_grouped(&spec, &groups, &series, 0, now());

    let grouped = report.grouped.as_ref().unwrap();
    assert_eq!(grouped.groups[0].group, "symbol=MSFT");
    assert_eq!(grouped.groups[0].level, ParityLevel::Critical);
    assert_eq!(grouped.breaching, 1);
    for (symbol, diffs) in SYMBOLS.iter().zip(&diffs) {
        let group = grouped
            .groups
            .iter()
            .find(|g| g.group == format!("symbol={symbol}"))
            .unwrap();
        let (mean, stddev, rms) = reference(diffs);
        assert!(close(group.mean_difference_bps, mean), "{symbol} mean");
        assert!(close(group.tracking_error_bps, stddev), "{symbol} stddev");
        assert!(close(group.rms_difference_bps, rms), "{symbol} rms");
        assert_eq!(group.samples, 30);
        assert!((group.weight - 0.2).abs() < 1e-12);
    }
    // Equal weights: the aggregate's difference is the mean of the five at each sample.
    let aggregate: Vec<f64> = (0..30)
        .map(|t| diffs.iter().map(|d| d[t]).sum::<f64>() / 5.0)
        .collect();
    let (mean, stddev, rms) = reference(&aggregate);
    assert!(close(report.evaluation.mean_difference_bps, mean));
    assert!(close(report.evaluation.tracking_error_bps, stddev));
    assert!(close(report.evaluation.rms_difference_bps, rms));
    assert!((11.0..13.0).contains(&rms), "about 60/5: {rms}");
    assert_eq!(report.evaluation.level, ParityLevel::Critical);
    assert_eq!(report.counted_level, ParityLevel::Critical);

    let gate = parity_gate::gate_verdict(&spec, &report, None);
    assert!(
        gate.reason.starts_with("parity Critical: group symbol=MSFT rms 60.0 bps >= critical 50 bps (5 groups, 1 breaching; aggregate rms 12."),
        "{}",
        gate.reason
    );
    let verdict = gate.parity.unwrap();
    assert_eq!(verdict.worst_groups.len(), 5);
    assert_eq!(verdict.worst_groups[0].group, "symbol=MSFT");
    let summary = report.evaluation.groups.unwrap();
    assert_eq!((summary.count, summary.breaching), (5, 1));
}

#[test]
fn weights_and_overrides() {
    let spec = spec(
        "  weightQuery: 'sum by (symbol) (notional)'\n  overrides:\n  - group: {symbol: MSFT}\n    thresholds: {warningBps: 40, criticalBps: 80, emergencyBps: 150}\n",
    );
    let groups = spec.groups.clone().unwrap();
    let (candidate, baseline) = tracks();
    let diffs = differences(&candidate, &baseline);
    // Notional 1, 2, 3, 4, 10 (mean of two samples each).
    let notional = [1.0, 2.0, 3.0, 4.0, 10.0];
    let weights = SYMBOLS
        .iter()
        .zip(notional)
        .map(|(symbol, w)| labelled(symbol, vec![(0.0, w - 0.5), (60.0, w + 0.5)]))
        .collect();
    let series = group_series(&groups, candidate, baseline, Some(weights)).unwrap();
    let report = evaluate_grouped(&spec, &groups, &series, 0, now());
    let grouped = report.grouped.as_ref().unwrap();
    let msft = grouped
        .groups
        .iter()
        .find(|g| g.group == "symbol=MSFT")
        .unwrap();
    assert_eq!(
        msft.level,
        ParityLevel::Warning,
        "its own thresholds: 60 < 80"
    );
    assert!((msft.weight - 4.0 / 20.0).abs() < 1e-12);
    let aggregate: Vec<f64> = (0..30)
        .map(|t| {
            diffs
                .iter()
                .zip(notional)
                .map(|(d, w)| w * d[t])
                .sum::<f64>()
                / 20.0
        })
        .collect();
    let (_, _, rms) = reference(&aggregate);
    assert!(close(report.evaluation.rms_difference_bps, rms));
    assert_eq!(grouped.deciding.label, "group symbol=MSFT");
    assert_eq!(report.evaluation.level, ParityLevel::Warning);
}

#[test]
fn a_thin_group_does_not_hold_but_a_thin_aggregate_does() {
    let spec = spec("");
    let groups = spec.groups.clone().unwrap();
    let (mut candidate, mut baseline) = tracks();
    candidate[0].points.truncate(3);
    baseline[0].points.truncate(3);
    let series = group_series(&groups, candidate.clone(), baseline.clone(), None).unwrap();
    let report = evaluate_grouped(&spec, &groups, &series, 0, now());
    let aapl = report
        .grouped
        .as_ref()
        .unwrap()
        .groups
        .iter()
        .find(|g| g.group == "symbol=AAPL")
        .cloned()
        .unwrap();
    assert_eq!(aapl.level, ParityLevel::Insufficient);
    assert_eq!(
        report.evaluation.level,
        ParityLevel::Critical,
        "MSFT still counts"
    );

    for series in candidate.iter_mut().chain(baseline.iter_mut()) {
        series.points.truncate(5);
    }
    let series = group_series(&groups, candidate, baseline, None).unwrap();
    let report = evaluate_grouped(&spec, &groups, &series, 0, now());
    assert_eq!(
        report.evaluation.level,
        ParityLevel::Insufficient,
        "5 samples < minSamples 10 everywhere: the aggregate holds"
    );
}

#[test]
fn series_that_cannot_be_grouped_are_refused_with_the_field() {
    let groups = spec("  maxGroups: 4\n").groups.unwrap();
    let (candidate, baseline) = tracks();
    let error = group_series(&groups, candidate.clone(), baseline.clone(), None).unwrap_err();
    assert_eq!(
        error,
        "the query returned 5 groups, more than spec.groups.maxGroups 4"
    );

    let groups = spec("").groups.unwrap();
    let mut unlabelled = candidate.clone();
    unlabelled[2].labels = BTreeMap::from([("instance".to_string(), "a".to_string())]);
    let error = group_series(&groups, unlabelled, baseline.clone(), None).unwrap_err();
    assert_eq!(
        error,
        "a series of the query has no label \"symbol\" named in spec.groups.by (its labels: instance=a)"
    );

    let mut twice = candidate;
    twice[1].labels = twice[0].labels.clone();
    let error = group_series(&groups, twice, baseline, None).unwrap_err();
    assert!(
        error.starts_with("two series of the canary query fall in group symbol=AAPL"),
        "{error}"
    );
}

#[test]
fn spec_problems_name_the_field() {
    let cases = [
        (
            "  overrides:\n  - group: {venue: X}\n    thresholds: {warningBps: 1, criticalBps: 2, emergencyBps: 3}\n",
            "spec.groups.overrides[0].group names label \"venue\", which is not in spec.groups.by",
        ),
        (
            "  overrides:\n  - group: {symbol: X}\n    thresholds: {warningBps: 3, criticalBps: 2, emergencyBps: 1}\n",
            "spec.groups.overrides[0]: thresholds must increase strictly",
        ),
        ("  weightQuery: 'sum(('\n", "spec.groups.weightQuery"),
        (
            "  maxGroups: 0\n",
            "spec.groups.maxGroups 0 must be from 1 to 1000",
        ),
    ];
    for (extra, expected) in cases {
        let policy = spec(extra);
        let problems = crate::engine::parity::validate_policy(&policy);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{extra}: {problems:?}"
        );
    }
    let mut with_components = spec("");
    with_components.components =
        vec![serde_saphyr::from_str("{name: fees, query: 'x{t=\"{{track}}\"}'}").unwrap()];
    let problems = crate::engine::parity::validate_policy(&with_components);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("spec.components cannot be combined with spec.groups")),
        "{problems:?}"
    );
}
