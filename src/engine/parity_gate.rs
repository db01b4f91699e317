//! The ParityPolicy gate of a CanaryRollout: whether a policy can gate a rollout, and what the
//! counted level of a parity report does to it through the policy's `actions`. The reason names
//! what decided the level: the threshold with its figure, or the statistical test with its
//! statistic, p-value and interval when `spec.statistics` raised the level above what the
//! thresholds give. Pure: running the queries belongs to `gather::parity`.

use crate::api::canary_rollout::{CanaryRolloutSpec, CanaryRolloutStatus, ParityVerdict};
use crate::api::evidence::CheckEvidence;
use crate::api::parity_policy::{
    DistributionComparison, ParityAction, ParityLevel, ParityPolicy, ParityPolicySpec,
    SequentialStatistics, StatisticsResult,
};
use crate::engine::analysis::{GateEffect, GateSource, GateVerdict, format_confidence};
use crate::engine::distribution;
use crate::engine::parity::{self, LevelSource, ParityReport};
use crate::engine::parity_sequential::{self, SequentialContext, proportions_beyond, shift_beyond};
use crate::engine::sequential;

/// Groups a rollout's evaluation shows, worst first.
pub const WORST_GROUPS: usize = 5;

/// Problems that make a rollout referencing this policy invalid.
pub fn problems(policy: &ParityPolicy) -> Vec<String> {
    let name = super::name_of(&policy.metadata);
    let mut problems: Vec<String> = parity::validate_policy(&policy.spec)
        .into_iter()
        .map(|p| format!("ParityPolicy {name}: {p}"))
        .collect();
    if policy.spec.query.is_none() {
        problems.push(format!(
            "ParityPolicy {name}: a policy referenced by a CanaryRollout needs spec.query with {{{{track}}}}"
        ));
    }
    problems
}

/// `status.consecutiveBreaches` as the rollout last saw it; breaches seen in an earlier rollout
/// do not count against this one.
pub fn previous_breaches(status: &CanaryRolloutStatus) -> u32 {
    status
        .last_evaluation
        .as_ref()
        .filter(|e| {
            status
                .rollout_started_at
                .is_some_and(|start| e.time >= start)
        })
        .and_then(|e| e.parity.as_ref())
        .map_or(0, |p| p.consecutive_breaches)
}

/// What the policy's sequential statistics are judged with at the rollout's current stage:
/// the stage's evidence, samples from the stage's start, and `1 - confidence` spread over the
/// rollout's stages, so that over the whole rollout a false failure stays that unlikely.
pub fn sequential_context<'a>(
    rollout: &CanaryRolloutSpec,
    status: Option<&'a CanaryRolloutStatus>,
    policy: &ParityPolicySpec,
) -> SequentialContext<'a> {
    let confidence = policy.statistics.as_ref().map_or(1.0, |s| s.confidence);
    SequentialContext {
        evidence: status.map_or(&[][..], |s| &s.stage_evidence),
        since: status.and_then(|s| s.stage_started_at),
        alpha: sequential::split_alpha(1.0 - confidence, rollout.stages.len()),
        window: policy.window.as_std(),
    }
}

/// A gate whose queries could not run at all (no Prometheus client): the stage holds, and the
/// policy's entries of `stage_evidence` are kept as they are.
pub fn unavailable(error: &str, stage_evidence: &[CheckEvidence]) -> GateVerdict {
    GateVerdict {
        source: GateSource::Parity,
        effect: GateEffect::Hold,
        reason: format!("parity Insufficient: {error}"),
        parity: None,
        slo: None,
        evidence: parity_sequential::of_policy(stage_evidence),
    }
}

/// What the counted level does to the rollout.
pub fn gate_verdict(
    spec: &ParityPolicySpec,
    report: &ParityReport,
    query_error: Option<String>,
) -> GateVerdict {
    let figures = &report.figures;
    let judged = parity::judged_value(figures, spec.measure);
    let observed = report.evaluation.level;
    let counted = report.counted_level;
    let grouped = report.grouped.as_ref();
    let verdict = ParityVerdict {
        tracking_error_bps: judged,
        mean_difference_bps: figures.mean_bps,
        samples: figures.samples,
        level: counted,
        consecutive_breaches: report.consecutive_breaches,
        worst_groups: grouped
            .map(|g| g.groups.iter().take(WORST_GROUPS).cloned().collect())
            .unwrap_or_default(),
    };
    let measure = spec.measure.as_str();
    let figure_of = |value: Option<f64>| {
        value.map_or("no figure".to_string(), |v| format!("{measure} {v:.1} bps"))
    };
    // With groups: the figure that set the level, and the groups and aggregate after it.
    let (figure, groups_note, t) = match grouped {
        Some(grouped) => {
            let deciding = &grouped.deciding;
            let mut note = format!(
                " ({} groups, {} breaching",
                grouped.groups.len(),
                grouped.breaching
            );
            if deciding.label != "aggregate" {
                note.push_str(&format!("; aggregate {}", figure_of(judged)));
            }
            note.push(')');
            let figure = format!("{} {}", deciding.label, figure_of(deciding.value));
            (figure, note, &deciding.thresholds)
        }
        None => (figure_of(judged), String::new(), &spec.thresholds),
    };
    let failed_test = statistics_reason(spec, report);
    let (effect, reason) = match counted {
        ParityLevel::Pass if parity::is_breach(observed) => (
            GateEffect::Hold,
            format!(
                "parity {observed} seen {} of {} evaluations in a row: {}",
                report.consecutive_breaches,
                spec.consecutive_breaches,
                failed_test.as_deref().unwrap_or(&figure)
            ),
        ),
        ParityLevel::Pass => (
            GateEffect::Pass,
            format!("parity Pass: {figure}{groups_note}"),
        ),
        ParityLevel::Insufficient => {
            let why = query_error
                .or_else(|| report.data_problem())
                .unwrap_or_else(|| {
                    format!(
                        "{} samples < minSamples {}",
                        figures.samples, spec.min_samples
                    )
                });
            (GateEffect::Hold, format!("parity Insufficient: {why}"))
        }
        level @ (ParityLevel::Warning | ParityLevel::Critical | ParityLevel::Emergency) => {
            let (action, threshold) = match level {
                ParityLevel::Warning => (spec.actions.warning, t.warning_bps),
                ParityLevel::Critical => (spec.actions.critical, t.critical_bps),
                _ => (spec.actions.emergency, t.emergency_bps),
            };
            let effect = match action {
                ParityAction::Ignore => GateEffect::Pass,
                ParityAction::Hold => GateEffect::Hold,
                ParityAction::Rollback => GateEffect::Rollback,
                ParityAction::RollbackAndFreeze => GateEffect::RollbackAndFreeze,
            };
            let decided = failed_test.unwrap_or_else(|| {
                format!(
                    "{figure} >= {} {threshold} bps{groups_note}",
                    level.as_str().to_lowercase()
                )
            });
            let reason = format!(
                "parity {level}: {decided} ({} evaluations in a row; action {action:?})",
                report.consecutive_breaches
            );
            (effect, reason)
        }
    };
    GateVerdict {
        source: GateSource::Parity,
        effect,
        reason,
        parity: Some(verdict),
        slo: None,
        evidence: report.evidence.clone(),
    }
}

/// The failed tests with their figures, when the comparison set the level; none when the
/// thresholds did.
fn statistics_reason(spec: &ParityPolicySpec, report: &ParityReport) -> Option<String> {
    if report.decided_by != LevelSource::Statistics {
        return None;
    }
    if let Some(sequential) = &report.evaluation.sequential {
        let tests = failed_sequential_tests(sequential);
        return (!tests.is_empty()).then(|| tests.join("; "));
    }
    let result = report.evaluation.statistics.as_ref()?;
    let tolerance = spec.statistics.as_ref().map_or(0.0, |s| s.tolerance);
    let tests = failed_tests(result, tolerance);
    (!tests.is_empty()).then(|| tests.join("; "))
}

/// E.g. "mean active difference +412.0 bps over 240 samples (confidence sequence at 99.5 %:
/// +380.1 to +443.9 bps) beyond tolerance ±250.0 bps".
fn failed_sequential_tests(result: &SequentialStatistics) -> Vec<String> {
    let confidence = format_confidence(result.confidence);
    let tolerance = result.tolerance;
    let mut tests = Vec::new();
    if let Some(shift) = result.shift.as_ref().filter(|s| shift_beyond(s, tolerance))
        && let Some([lower, upper]) = shift.interval
    {
        let bps = |x: f64| format!("{:+.1}", x * parity::BPS);
        tests.push(format!(
            "mean active difference {} bps over {} samples (confidence sequence at {confidence}: \
             {} to {} bps) beyond tolerance ±{:.1} bps",
            bps(shift.estimate),
            shift.samples,
            bps(lower),
            bps(upper),
            tolerance * parity::BPS
        ));
    }
    if let Some(proportions) =
        (result.proportions.as_ref()).filter(|p| proportions_beyond(p, tolerance))
        && let Some([lower, upper]) = proportions.interval
    {
        let percent = |x: f64| format!("{:+.1} %", x * 100.0);
        tests.push(format!(
            "bad proportion {} relative to baseline over {} windows (confidence sequence at \
             {confidence}: {} to {}) beyond tolerance +{:.1} %",
            percent(proportions.estimate),
            proportions.samples,
            percent(lower),
            percent(upper),
            tolerance * 100.0
        ));
    }
    if let Some(distribution) = (result.distribution.as_ref()).filter(|d| distribution::beyond(d)) {
        tests.push(describe_distribution(distribution, &confidence));
    }
    tests
}

/// E.g. "candidate's values above the baseline's by more than the tolerance ±0.5 in
/// distribution: F_baseline(x - 0.5) - F_candidate(x) = 0.31 at x = 101.2 over 1500 samples per
/// track, beyond the time-uniform band 0.22 (sequential Kolmogorov-Smirnov at 99.5 %)".
fn describe_distribution(distribution: &DistributionComparison, confidence: &str) -> String {
    let t = significant(distribution.tolerance);
    let (side, gap) = match distribution.above >= distribution.below {
        true => ("above", format!("F_baseline(x - {t}) - F_candidate(x)")),
        false => ("below", format!("F_candidate(x) - F_baseline(x + {t})")),
    };
    format!(
        "candidate's values {side} the baseline's by more than the tolerance ±{t} in \
         distribution: {gap} = {:.3} at x = {} over {} samples per track, beyond the \
         time-uniform band {:.3} (sequential Kolmogorov-Smirnov at {confidence})",
        distribution.above.max(distribution.below),
        at_resolution(distribution.at, distribution.tolerance),
        distribution.samples,
        distribution.band,
    )
}

/// `x` with a decimal more than the tolerance has (3 significant digits without one).
fn at_resolution(x: f64, tolerance: f64) -> String {
    if tolerance <= 0.0 || !tolerance.is_finite() || !x.is_finite() {
        return significant(x);
    }
    let decimals =
        usize::try_from((1 - tolerance.log10().floor() as i32).clamp(0, 12)).unwrap_or(0);
    trimmed(format!("{x:.decimals$}"))
}

/// Each test of the comparison that failed, with its figures.
fn failed_tests(result: &StatisticsResult, tolerance: f64) -> Vec<String> {
    let alpha = 1.0 - result.confidence;
    let mut tests = Vec::new();
    if parity::shift_failed(result) {
        let band = tolerance * result.baseline_median.abs();
        tests.push(format!(
            "Mann-Whitney U p={} < {}, Hodges-Lehmann shift {} [{}, {}] ({} % interval) beyond tolerance ±{} ({} % of the baseline median {})",
            probability(result.mann_whitney_p),
            probability(alpha),
            significant(result.shift),
            significant(result.shift_lower),
            significant(result.shift_upper),
            significant(result.confidence * 100.0),
            significant(band),
            significant(tolerance * 100.0),
            significant(result.baseline_median),
        ));
    }
    if let Some(test) = result
        .proportions
        .as_ref()
        .filter(|_| parity::proportions_failed(result))
    {
        tests.push(format!(
            "two-proportion z-test p={} < {}, z {:.2}: candidate good {:.2} % < baseline {:.2} %",
            probability(test.p_value),
            probability(alpha),
            test.z,
            test.candidate_rate * 100.0,
            test.baseline_rate * 100.0,
        ));
    }
    tests
}

/// A p-value or significance level: 4 decimals, scientific notation below 0.0001.
fn probability(p: f64) -> String {
    if p != 0.0 && p.abs() < 1e-4 {
        format!("{p:.1e}")
    } else {
        trimmed(format!("{p:.4}"))
    }
}

/// `x` with 3 significant digits (all the integer digits), trailing zeros dropped: the shift is
/// in the query's unit, whose scale the gate does not know.
fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = usize::try_from((2 - magnitude).clamp(0, 12)).unwrap_or(0);
    trimmed(format!("{x:.decimals$}"))
}

fn trimmed(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
#[path = "parity_gate_tests.rs"]
mod tests;
