//! Parity of a candidate series with its baseline: active differences, figures, levels and
//! attribution. Pure: series in, figures and a level out; querying Prometheus, counting
//! evaluations across reconciles and acting on the level belong to the callers.
//!
//! # Conventions
//!
//! - **Series** are what a Prometheus range query returns: `(unix seconds, value)` points. The
//!   candidate and baseline are paired by timestamp; points whose timestamps differ by more than
//!   [`TIMESTAMP_TOLERANCE_SECS`] do not pair and are counted as `unpaired`.
//! - **Active difference** per paired sample: `a_t = (candidate_t - baseline_t) / |baseline_t|`
//!   in basis points (x 10 000). A baseline of 0, NaN or ±Inf, a NaN or ±Inf candidate, or a
//!   quotient that overflows skips the sample and counts it as `skipped`: no division by zero,
//!   no NaN in any figure. An empty baseline is [`ParityError::NoBaseline`].
//! - **Figures** over the window: the mean difference (bias), the tracking error (sample standard
//!   deviation, n-1; none below 2 samples) and the root-mean-square difference
//!   `sqrt(mean(a_t^2))`, which grows with both bias and noise.
//! - **Measure**: `rms` judges the RMS figure, `stddev` the tracking error, `mean` the absolute
//!   mean difference (a canary 60 bps below its baseline breaches like one 60 bps above).
//! - **Annualisation** (`annualize.periodsPerYear = P`): the dispersion figures, tracking error
//!   and RMS, are multiplied by `sqrt(P)`, the usual square-root-of-time scaling of a per-period
//!   standard deviation. The mean is left as it is: `a_t` is a relative difference of levels, not
//!   a return per period, so a steady 60 bps offset is 60 bps whatever the horizon, and `mean x P`
//!   would be meaningless. Thresholds then judge the annualised figure. A P that is not finite
//!   and positive is rejected by [`validate_policy`]; [`figures`] ignores it rather than produce
//!   NaN.
//! - **Levels** are inclusive at each threshold: `value < warning` is Pass,
//!   `warning <= value < critical` Warning, `critical <= value < emergency` Critical,
//!   `value >= emergency` Emergency. Fewer samples than `minSamples`, or no value (e.g. stddev of
//!   one sample), is Insufficient, which holds a rollout.
//! - **Consecutive breaches**: a level at or above Warning counts once breaches (of any level
//!   at or above Warning) have been seen `consecutiveBreaches` evaluations in a row; the counted
//!   level is then the level observed now. Until then the counted level is Pass. Pass resets the
//!   run; Insufficient neither extends nor resets it.
//! - **Attribution** explains the mean difference. Each component's difference is
//!   `(component_candidate_t - component_baseline_t) / |baseline_t|` in bps, relative to the
//!   baseline of the total and averaged over the same samples as the total, so the components
//!   plus the residual add up to the total mean difference. A component sample missing at one of
//!   those timestamps contributes nothing there (its part lands in the residual) and is counted.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::parity_sequential::{self, SequentialContext};
use super::statistics::{Proportion, compare_tracks, two_proportion_test};
use crate::api::evidence::CheckEvidence;
use crate::api::parity_policy::{
    ComponentAttribution, Measure, ParityEvaluation, ParityLevel, ParityPolicySpec,
    ProportionResult, StatisticsMethod, StatisticsResult, StatisticsSpec, Thresholds,
};
use crate::metrics::template::validate_promql;

/// Basis points in one unit.
pub const BPS: f64 = 10_000.0;

/// Two points pair when their timestamps differ by at most this many seconds.
pub const TIMESTAMP_TOLERANCE_SECS: f64 = 1e-6;

/// Prometheus refuses range queries that would return more points than this per series.
pub const MAX_POINTS_PER_QUERY: u64 = 11_000;

/// Above this magnitude the sums of squares could overflow; figures are then computed on values
/// scaled by a power of two (exact, so the result is the same).
const SCALE_ABOVE: f64 = 1e140;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParityError {
    #[error("the baseline series is empty")]
    NoBaseline,
}

impl ParityError {
    /// A static label for operator metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NoBaseline => "no_baseline",
        }
    }
}

/// A series as a Prometheus range query returns it: `(unix seconds, value)`.
pub type Series = [(f64, f64)];

/// The paired samples of a candidate and its baseline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairedDifferences {
    /// Timestamp of each usable sample, ascending.
    pub timestamps: Vec<f64>,
    /// Active difference of each usable sample, bps.
    pub values_bps: Vec<f64>,
    /// The two values of each usable sample; `|baseline|` is the denominator components are
    /// measured against.
    pub candidate_values: Vec<f64>,
    pub baseline_values: Vec<f64>,
    /// Paired samples left out: baseline 0 or not finite, candidate not finite, or overflow.
    pub skipped: u32,
    /// Points of either series without a partner at the same timestamp.
    pub unpaired: u32,
}

/// Pairs the two series by timestamp and computes the active difference of each pair, in bps.
pub fn pair_differences(
    candidate: &Series,
    baseline: &Series,
) -> Result<PairedDifferences, ParityError> {
    if baseline.is_empty() {
        return Err(ParityError::NoBaseline);
    }
    let (candidate, bad_candidate_times) = sorted_by_time(candidate);
    let (baseline, bad_baseline_times) = sorted_by_time(baseline);
    let mut paired = PairedDifferences {
        unpaired: count(bad_candidate_times + bad_baseline_times),
        ..PairedDifferences::default()
    };
    let (mut i, mut j) = (0, 0);
    while i < candidate.len() && j < baseline.len() {
        let (tc, c) = candidate[i];
        let (tb, b) = baseline[j];
        if (tc - tb).abs() <= TIMESTAMP_TOLERANCE_SECS {
            match active_difference(c, b) {
                Some(a) => {
                    paired.timestamps.push(tb);
                    paired.values_bps.push(a);
                    paired.candidate_values.push(c);
                    paired.baseline_values.push(b);
                }
                None => paired.skipped = paired.skipped.saturating_add(1),
            }
            i += 1;
            j += 1;
        } else {
            paired.unpaired = paired.unpaired.saturating_add(1);
            if tc < tb {
                i += 1;
            } else {
                j += 1;
            }
        }
    }
    let left = (candidate.len() - i) + (baseline.len() - j);
    paired.unpaired = paired.unpaired.saturating_add(count(left));
    Ok(paired)
}

/// The active differences in bps of the samples both series share (see the module doc).
pub fn active_differences(candidate: &Series, baseline: &Series) -> Result<Vec<f64>, ParityError> {
    pair_differences(candidate, baseline).map(|paired| paired.values_bps)
}

fn active_difference(candidate: f64, baseline: f64) -> Option<f64> {
    if baseline == 0.0 || !baseline.is_finite() || !candidate.is_finite() {
        return None;
    }
    let a = (candidate - baseline) / baseline.abs() * BPS;
    a.is_finite().then_some(a)
}

/// The points with a finite timestamp, in time order, and how many had none.
fn sorted_by_time(series: &Series) -> (Vec<(f64, f64)>, usize) {
    let mut points: Vec<(f64, f64)> = series.iter().copied().filter(|p| p.0.is_finite()).collect();
    let dropped = series.len() - points.len();
    // Stable, and linear on the already sorted output of Prometheus.
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    (points, dropped)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The figures of one window, in bps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParityFigures {
    /// Samples the figures were computed from.
    pub samples: u32,
    /// Mean active difference (bias); none without samples. Never annualised.
    pub mean_bps: Option<f64>,
    /// Sample standard deviation (n-1), the tracking error; none below 2 samples.
    pub stddev_bps: Option<f64>,
    /// Root-mean-square active difference; none without samples.
    pub rms_bps: Option<f64>,
    /// Samples left out because they were not usable (see [`PairedDifferences::skipped`]).
    pub skipped: u32,
}

/// Mean, tracking error and RMS of the active differences. Non-finite entries are left out and
/// counted as skipped; `annualize` (periods per year) scales the tracking error and the RMS by
/// its square root and leaves the mean alone (see the module doc).
pub fn figures(diffs: &[f64], annualize: Option<f64>) -> ParityFigures {
    let values: Vec<f64> = diffs.iter().copied().filter(|a| a.is_finite()).collect();
    let skipped = count(diffs.len() - values.len());
    let n = values.len();
    if n == 0 {
        return ParityFigures {
            skipped,
            ..ParityFigures::default()
        };
    }
    let largest = values.iter().fold(0.0_f64, |m, a| m.max(a.abs()));
    let scale = if largest > SCALE_ABOVE {
        // At most 2^1023: the largest power of two that is finite.
        2.0_f64.powi((largest.log2().ceil() as i32).min(1023))
    } else {
        1.0
    };
    let n_f = n as f64;
    let mean = values.iter().map(|a| a / scale).sum::<f64>() / n_f;
    let mean_square = values.iter().map(|a| (a / scale).powi(2)).sum::<f64>() / n_f;
    let stddev = (n >= 2).then(|| {
        let squares: f64 = values.iter().map(|a| (a / scale - mean).powi(2)).sum();
        (squares / (n_f - 1.0)).sqrt()
    });
    let dispersion_factor = annualize
        .filter(|p| p.is_finite() && *p > 0.0)
        .map_or(1.0, f64::sqrt);
    ParityFigures {
        samples: count(n),
        mean_bps: Some(saturate(mean * scale)),
        stddev_bps: stddev.map(|s| saturate(s * scale * dispersion_factor)),
        rms_bps: Some(saturate(mean_square.sqrt() * scale * dispersion_factor)),
        skipped,
    }
}

/// A difference too large for an f64 is an emergency either way; the largest finite number keeps
/// the status a number (JSON has no infinity).
fn saturate(x: f64) -> f64 {
    if x.is_infinite() {
        f64::MAX.copysign(x)
    } else {
        x
    }
}

/// The figure `measure` picks for the thresholds; the mean is judged by its absolute value.
pub fn judged_value(figures: &ParityFigures, measure: Measure) -> Option<f64> {
    match measure {
        Measure::Rms => figures.rms_bps,
        Measure::Stddev => figures.stddev_bps,
        Measure::Mean => figures.mean_bps.map(f64::abs),
    }
}

/// The level of a judged value; each threshold is breached at or above it (see the module doc).
pub fn level(
    value: Option<f64>,
    samples: u32,
    min_samples: u32,
    thresholds: &Thresholds,
) -> ParityLevel {
    let Some(value) = value.filter(|v| !v.is_nan()) else {
        return ParityLevel::Insufficient;
    };
    if samples < min_samples {
        ParityLevel::Insufficient
    } else if value >= thresholds.emergency_bps {
        ParityLevel::Emergency
    } else if value >= thresholds.critical_bps {
        ParityLevel::Critical
    } else if value >= thresholds.warning_bps {
        ParityLevel::Warning
    } else {
        ParityLevel::Pass
    }
}

/// Whether a level is a breach (Warning or above).
pub fn is_breach(level: ParityLevel) -> bool {
    matches!(
        level,
        ParityLevel::Warning | ParityLevel::Critical | ParityLevel::Emergency
    )
}

/// Applies `consecutiveBreaches`: returns the level that counts now and the new run length.
/// A `required` of 0 is taken as 1.
pub fn counted_level(
    observed: ParityLevel,
    previous_consecutive: u32,
    required: u32,
) -> (ParityLevel, u32) {
    match observed {
        ParityLevel::Insufficient => (ParityLevel::Insufficient, previous_consecutive),
        ParityLevel::Pass => (ParityLevel::Pass, 0),
        breach => {
            let run = previous_consecutive.saturating_add(1);
            if run >= required.max(1) {
                (breach, run)
            } else {
                (ParityLevel::Pass, run)
            }
        }
    }
}

/// Each component's share of the total mean difference, and the residual (total minus the sum
/// of the components). The share is none when the total is 0 (or the quotient overflows).
pub fn attribute(
    total_mean_bps: f64,
    components: &[(String, f64)],
) -> (Vec<ComponentAttribution>, f64) {
    let attributions = components
        .iter()
        .map(|(name, difference_bps)| ComponentAttribution {
            name: name.clone(),
            difference_bps: *difference_bps,
            share: (total_mean_bps != 0.0)
                .then(|| difference_bps / total_mean_bps)
                .filter(|s| s.is_finite()),
        })
        .collect();
    let explained: f64 = components.iter().map(|(_, d)| d).sum();
    (attributions, total_mean_bps - explained)
}

/// A component's mean difference over the samples of the total.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComponentDifference {
    /// Mean of `(component_candidate_t - component_baseline_t) / |baseline_t|`, bps.
    pub difference_bps: f64,
    /// Samples of the total at which the component had no usable pair (counted as 0 there).
    pub missing: u32,
}

/// The mean difference of one component relative to the baseline of the total, over the
/// samples of `total`; none when the total has no samples.
pub fn component_difference(
    total: &PairedDifferences,
    candidate: &Series,
    baseline: &Series,
) -> Option<ComponentDifference> {
    if total.timestamps.is_empty() {
        return None;
    }
    let candidate = values_at(&total.timestamps, candidate);
    let baseline = values_at(&total.timestamps, baseline);
    let mut sum = 0.0;
    let mut missing = 0u32;
    for ((c, b), denominator) in candidate.iter().zip(&baseline).zip(&total.baseline_values) {
        let part = match (c, b) {
            (Some(c), Some(b)) => Some((c - b) / denominator.abs() * BPS).filter(|p| p.is_finite()),
            _ => None,
        };
        match part {
            Some(part) => sum += part,
            None => missing = missing.saturating_add(1),
        }
    }
    Some(ComponentDifference {
        difference_bps: saturate(sum / total.timestamps.len() as f64),
        missing,
    })
}

/// The finite value of `series` at each of `timestamps` (ascending), if it has one.
fn values_at(timestamps: &[f64], series: &Series) -> Vec<Option<f64>> {
    let (points, _) = sorted_by_time(series);
    let mut out = Vec::with_capacity(timestamps.len());
    let mut j = 0;
    for &t in timestamps {
        while j < points.len() && points[j].0 < t - TIMESTAMP_TOLERANCE_SECS {
            j += 1;
        }
        let value = points
            .get(j)
            .filter(|p| (p.0 - t).abs() <= TIMESTAMP_TOLERANCE_SECS)
            .map(|p| p.1)
            .filter(|v| v.is_finite());
        out.push(value);
    }
    out
}

/// The query results of one parity evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ParityInput<'a> {
    pub candidate: &'a Series,
    pub baseline: &'a Series,
    /// In the order of `spec.components`.
    pub components: &'a [ComponentSeries<'a>],
    /// Good/total of (candidate, baseline), for the proportions test of `spec.statistics`.
    pub proportions: Option<(Proportion, Proportion)>,
}

/// One component's series on both tracks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComponentSeries<'a> {
    pub name: &'a str,
    pub candidate: &'a Series,
    pub baseline: &'a Series,
}

/// What set an evaluation's level. The comparison only ever raises the level the thresholds
/// give, so `Statistics` means the thresholds alone gave less.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LevelSource {
    #[default]
    Thresholds,
    /// `spec.statistics` failed and raised the level to its `level`.
    Statistics,
}

/// Everything one evaluation found.
#[derive(Clone, Debug, PartialEq)]
pub struct ParityReport {
    /// For the status. Its `level` is the level observed now, before `consecutiveBreaches`.
    pub evaluation: ParityEvaluation,
    pub figures: ParityFigures,
    /// Points of either series without a partner at the same timestamp.
    pub unpaired: u32,
    /// The level that counts for actions, after `consecutiveBreaches`.
    pub counted_level: ParityLevel,
    /// The new value of `status.consecutiveBreaches`.
    pub consecutive_breaches: u32,
    /// What set the observed level: the thresholds, or the statistical comparison raising it.
    pub decided_by: LevelSource,
    /// Components with samples missing at timestamps of the total: (name, missing).
    pub component_gaps: Vec<(String, u32)>,
    /// Why there is no figure at all.
    pub error: Option<ParityError>,
    /// The sequential statistics' evidence after this evaluation (empty without them).
    pub evidence: Vec<CheckEvidence>,
    /// With `spec.groups`: every group and the figure that set the level.
    pub grouped: Option<super::parity_groups::GroupedOutcome>,
}

impl ParityReport {
    /// A sentence about unusable data, for a condition or an event; none when all data was used.
    pub fn data_problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.to_string());
        }
        let mut parts = Vec::new();
        if self.figures.skipped > 0 {
            parts.push(format!(
                "{} of {} paired samples skipped (baseline 0 or not finite, or candidate not finite)",
                self.figures.skipped,
                u64::from(self.figures.skipped) + u64::from(self.figures.samples)
            ));
        }
        if self.unpaired > 0 {
            parts.push(format!(
                "{} points without a partner at the same timestamp",
                self.unpaired
            ));
        }
        for (name, missing) in &self.component_gaps {
            parts.push(format!("component {name} lacks {missing} samples"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Evaluates a policy on one set of query results. `previous_consecutive` is
/// `status.consecutiveBreaches`. Assumes a spec that passed [`validate_policy`]; on any input it
/// neither panics nor produces NaN.
pub fn evaluate(
    spec: &ParityPolicySpec,
    input: &ParityInput<'_>,
    previous_consecutive: u32,
    now: Timestamp,
) -> ParityReport {
    evaluate_with(spec, input, previous_consecutive, None, now)
}

/// [`evaluate`], with the evidence the sequential statistics have gathered so far; without it
/// a policy whose statistics are sequential runs none.
pub fn evaluate_with(
    spec: &ParityPolicySpec,
    input: &ParityInput<'_>,
    previous_consecutive: u32,
    sequential: Option<&SequentialContext<'_>>,
    now: Timestamp,
) -> ParityReport {
    let carried = || {
        sequential
            .map(SequentialContext::carried)
            .unwrap_or_default()
    };
    let paired = match pair_differences(input.candidate, input.baseline) {
        Ok(paired) => paired,
        Err(error) => {
            let (counted_level, consecutive_breaches) = counted_level(
                ParityLevel::Insufficient,
                previous_consecutive,
                spec.consecutive_breaches,
            );
            return ParityReport {
                evaluation: ParityEvaluation {
                    time: now,
                    tracking_error_bps: None,
                    mean_difference_bps: None,
                    rms_difference_bps: None,
                    samples: 0,
                    level: ParityLevel::Insufficient,
                    components: Vec::new(),
                    residual_bps: None,
                    statistics: None,
                    sequential: None,
                    groups: None,
                },
                figures: ParityFigures::default(),
                unpaired: count(input.candidate.len()),
                counted_level,
                consecutive_breaches,
                decided_by: LevelSource::Thresholds,
                component_gaps: Vec::new(),
                error: Some(error),
                evidence: carried(),
                grouped: None,
            };
        }
    };

    let mut figures = figures(
        &paired.values_bps,
        spec.annualize.as_ref().map(|a| a.periods_per_year),
    );
    figures.skipped = figures.skipped.saturating_add(paired.skipped);
    let mut observed = level(
        judged_value(&figures, spec.measure),
        figures.samples,
        spec.min_samples,
        &spec.thresholds,
    );
    let (mut statistics, mut sequential_result, mut evidence) = (None, None, carried());
    match (&spec.statistics, sequential) {
        (Some(settings), _) if settings.method == StatisticsMethod::FixedHorizon => {
            statistics = compare(settings, input);
        }
        (Some(settings), Some(context)) => {
            let measured = parity_sequential::Measured {
                timestamps: &paired.timestamps,
                active_bps: &paired.values_bps,
                candidate_values: &paired.candidate_values,
                baseline_values: &paired.baseline_values,
                proportions: input.proportions,
            };
            let outcome = parity_sequential::compare(settings, &measured, context, now);
            (sequential_result, evidence) = (Some(outcome.result), outcome.evidence);
        }
        _ => {}
    }
    let failed = statistics.as_ref().is_some_and(|s| s.failed)
        || sequential_result.as_ref().is_some_and(|s| s.failed);
    let mut decided_by = LevelSource::Thresholds;
    if let Some(settings) = &spec.statistics
        && failed
        && observed != ParityLevel::Insufficient
        && severity(settings.level) > severity(observed)
    {
        observed = settings.level;
        decided_by = LevelSource::Statistics;
    }
    let (counted, consecutive_breaches) =
        counted_level(observed, previous_consecutive, spec.consecutive_breaches);

    let mut differences = Vec::new();
    let mut component_gaps = Vec::new();
    for component in input.components {
        if let Some(difference) =
            component_difference(&paired, component.candidate, component.baseline)
        {
            differences.push((component.name.to_string(), difference.difference_bps));
            if difference.missing > 0 {
                component_gaps.push((component.name.to_string(), difference.missing));
            }
        }
    }
    let (components, residual_bps) = match figures.mean_bps {
        Some(mean) if !differences.is_empty() => {
            let (components, residual) = attribute(mean, &differences);
            (components, Some(saturate(residual)))
        }
        _ => (Vec::new(), None),
    };

    ParityReport {
        evaluation: ParityEvaluation {
            time: now,
            tracking_error_bps: figures.stddev_bps,
            mean_difference_bps: figures.mean_bps,
            rms_difference_bps: figures.rms_bps,
            samples: figures.samples,
            level: observed,
            components,
            residual_bps,
            statistics,
            sequential: sequential_result,
            groups: None,
        },
        figures,
        unpaired: paired.unpaired,
        counted_level: counted,
        consecutive_breaches,
        decided_by,
        component_gaps,
        error: None,
        evidence,
        grouped: None,
    }
}

/// Rank of a level for escalation (Insufficient ranks lowest: it is not a verdict).
pub fn severity(level: ParityLevel) -> u8 {
    match level {
        ParityLevel::Insufficient => 0,
        ParityLevel::Pass => 1,
        ParityLevel::Warning => 2,
        ParityLevel::Critical => 3,
        ParityLevel::Emergency => 4,
    }
}

/// The statistical comparison of the candidate's and baseline's sample values: it fails when
/// Mann-Whitney is significant and the Hodges-Lehmann interval lies wholly beyond the tolerance,
/// or when the candidate's good proportion is significantly lower than the baseline's.
fn compare(settings: &StatisticsSpec, input: &ParityInput<'_>) -> Option<StatisticsResult> {
    let values = |series: &Series| series.iter().map(|p| p.1).collect::<Vec<f64>>();
    let comparison = compare_tracks(
        &values(input.candidate),
        &values(input.baseline),
        settings.confidence,
        settings.tolerance,
    )?;
    let proportions = input
        .proportions
        .and_then(|(candidate, baseline)| two_proportion_test(candidate, baseline));
    let mut result = StatisticsResult {
        mann_whitney_p: comparison.rank_sum.p_value,
        shift: comparison.shift.estimate,
        shift_lower: comparison.shift.lower,
        shift_upper: comparison.shift.upper,
        confidence: settings.confidence,
        baseline_median: comparison.baseline_median,
        within_tolerance: comparison.within_tolerance,
        proportions: proportions.map(|t| ProportionResult {
            candidate_rate: t.candidate_rate,
            baseline_rate: t.baseline_rate,
            z: t.z,
            p_value: t.p_value,
        }),
        failed: false,
    };
    result.failed = shift_failed(&result) || proportions_failed(&result);
    Some(result)
}

/// Whether Mann-Whitney is significant with the Hodges-Lehmann interval wholly beyond the
/// tolerance.
pub fn shift_failed(result: &StatisticsResult) -> bool {
    result.mann_whitney_p < 1.0 - result.confidence && !result.within_tolerance
}

/// Whether the candidate's good proportion is significantly lower than the baseline's.
pub fn proportions_failed(result: &StatisticsResult) -> bool {
    result
        .proportions
        .as_ref()
        .is_some_and(|t| t.p_value < 1.0 - result.confidence && t.candidate_rate < t.baseline_rate)
}

/// Thresholds must be finite, non-negative and strictly increasing.
pub fn validate_thresholds(t: &Thresholds) -> Result<(), String> {
    let mut problems = Vec::new();
    for (field, value) in [
        ("warningBps", t.warning_bps),
        ("criticalBps", t.critical_bps),
        ("emergencyBps", t.emergency_bps),
    ] {
        if !value.is_finite() || value < 0.0 {
            problems.push(format!(
                "spec.thresholds.{field} {value} must be a finite number >= 0"
            ));
        }
    }
    if !(t.warning_bps < t.critical_bps && t.critical_bps < t.emergency_bps) {
        problems.push(format!(
            "spec.thresholds must increase strictly: warningBps {} < criticalBps {} < emergencyBps {}",
            t.warning_bps, t.critical_bps, t.emergency_bps
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Checks a cron expression, returning why it is not one. Cron parsing lives with the scheduler;
/// it plugs in here through [`validate_policy_with_schedule`].
pub type ScheduleCheck<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// Checks of a ParityPolicy spec that the CRD schema cannot express on Kubernetes 1.20 (no CEL),
/// except the cron syntax of `schedule` (see [`validate_policy_with_schedule`]). Each problem is
/// a sentence naming the field; any problem makes the policy invalid.
pub fn validate_policy(spec: &ParityPolicySpec) -> Vec<String> {
    validate_policy_with_schedule(spec, &|_| Ok(()))
}

/// Problems of `spec.statistics`' proportion queries: set together, valid PromQL, per track.
fn statistics_problems(statistics: &StatisticsSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if statistics.good.is_some() != statistics.total.is_some() {
        problems.push(
            "spec.statistics.good and spec.statistics.total must be set together".to_string(),
        );
    }
    for (field, query) in [("good", &statistics.good), ("total", &statistics.total)] {
        let Some(query) = query.as_deref() else {
            continue;
        };
        if let Err(error) = validate_promql(query) {
            problems.push(format!("spec.statistics.{field}: {error}"));
        } else if !query.contains("{{track}}") {
            problems.push(format!(
                "spec.statistics.{field} has no {{{{track}}}} placeholder, so both tracks would count the same events"
            ));
        }
    }
    problems
}

/// [`validate_policy`] plus `check_schedule` on `spec.schedule` when it is set.
pub fn validate_policy_with_schedule(
    spec: &ParityPolicySpec,
    check_schedule: ScheduleCheck<'_>,
) -> Vec<String> {
    let mut problems = Vec::new();

    let has = |q: &Option<String>| q.as_deref().is_some_and(|q| !q.trim().is_empty());
    for (field, query) in [
        ("query", &spec.query),
        ("candidate", &spec.candidate),
        ("baseline", &spec.baseline),
    ] {
        match query.as_deref() {
            Some(q) if q.trim().is_empty() => {
                problems.push(format!("spec.{field} must not be empty"));
            }
            Some(q) => {
                if let Err(error) = validate_promql(q) {
                    problems.push(format!("spec.{field}: {error}"));
                }
            }
            None => {}
        }
    }
    if has(&spec.candidate) != has(&spec.baseline) {
        problems.push("spec.candidate and spec.baseline must be set together".to_string());
    }
    let explicit = has(&spec.candidate) && has(&spec.baseline);
    if !(has(&spec.query) || explicit) {
        problems.push("spec must set query, or both candidate and baseline".to_string());
    }
    if let Some(query) = spec.query.as_deref()
        && !query.trim().is_empty()
        && !query.contains("{{track}}")
    {
        problems.push(
            "spec.query has no {{track}} placeholder, so the canary and stable tracks would run the same query"
                .to_string(),
        );
    }
    if let Some(statistics) = &spec.statistics {
        problems.extend(statistics_problems(statistics));
    }

    if spec.window.is_zero() {
        problems.push("spec.window must be longer than 0s".to_string());
    }
    if spec.step.is_zero() {
        problems.push("spec.step must be longer than 0s".to_string());
    }
    if !spec.window.is_zero() && !spec.step.is_zero() {
        let window = spec.window.as_std().as_millis();
        let step = spec.step.as_std().as_millis().max(1);
        if window < step {
            problems.push(format!(
                "spec.window {} is shorter than spec.step {}",
                spec.window, spec.step
            ));
        }
        let points = (window / step + 1) as u64;
        if points > MAX_POINTS_PER_QUERY {
            problems.push(format!(
                "spec.window {} at spec.step {} asks for {points} points; Prometheus returns at most {MAX_POINTS_PER_QUERY}",
                spec.window, spec.step
            ));
        } else if u64::from(spec.min_samples) > points {
            problems.push(format!(
                "spec.minSamples {} can never be reached: spec.window {} at spec.step {} gives at most {points} samples",
                spec.min_samples, spec.window, spec.step
            ));
        }
    }
    if spec.min_samples == 0 {
        problems.push("spec.minSamples must be at least 1".to_string());
    }
    if spec.consecutive_breaches == 0 {
        problems.push("spec.consecutiveBreaches must be at least 1".to_string());
    }
    if let Err(problem) = validate_thresholds(&spec.thresholds) {
        problems.push(problem);
    }
    if let Some(annualize) = &spec.annualize {
        let p = annualize.periods_per_year;
        if !p.is_finite() || p <= 0.0 {
            problems.push(format!(
                "spec.annualize.periodsPerYear {p} must be a finite number above 0"
            ));
        }
    }

    let mut names = BTreeSet::new();
    for (i, component) in spec.components.iter().enumerate() {
        if component.name.trim().is_empty() {
            problems.push(format!("spec.components[{i}].name must not be empty"));
        } else if !names.insert(component.name.as_str()) {
            problems.push(format!(
                "spec.components[{i}].name {:?} is used twice",
                component.name
            ));
        }
        if !component.query.contains("{{track}}") {
            problems.push(format!(
                "spec.components[{i}].query ({}) has no {{{{track}}}} placeholder",
                component.name
            ));
        }
        if let Err(error) = validate_promql(&component.query) {
            problems.push(format!(
                "spec.components[{i}].query ({}): {error}",
                component.name
            ));
        }
    }

    if let Some(groups) = &spec.groups {
        problems.extend(super::parity_groups::problems(spec, groups));
    }
    if let Some(schedule) = spec.schedule.as_deref()
        && let Err(error) = check_schedule(schedule)
    {
        problems.push(format!("spec.schedule {schedule:?}: {error}"));
    }
    problems
}

#[cfg(test)]
#[path = "parity_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "parity_statistics_tests.rs"]
mod statistics_tests;
