//! The sequential form of `ParityPolicy.statistics`: instead of testing each evaluation's
//! window on its own (each look erring with probability `1 - confidence`), every evaluation adds
//! what it newly saw to the evidence, and confidence sequences over all of it decide
//! (`super::sequential`), so looking at every evaluation keeps the error rate over the whole
//! rollout.
//!
//! - **Shift**: the mean active difference `(candidate - baseline) / |baseline|` of the paired
//!   samples, each sample counted once ([`CheckEvidence::through`] remembers the newest one
//!   counted; the windows of successive evaluations overlap). Fails when its confidence sequence
//!   lies wholly beyond `±tolerance`.
//! - **Proportions** (with `good` and `total`): the bad proportions `1 - good/total` of both
//!   tracks, one pair per whole window (the queries cover `spec.window`, so a pair is taken only
//!   once a window has passed since the last). Fails when the candidate's bad proportion is
//!   established above `(1 + tolerance)` times the baseline's.
//! - **Distribution**: the candidate's values against the baseline's, as distributions
//!   ([`super::distribution`]): fails when the candidate is established to lie above or below
//!   the baseline in the stochastic order by more than `tolerance` times the baseline's median,
//!   which a change of shape with the same mean and spread (bimodal, skewed) also shows.
//!
//! The samples of one window are treated as independent: strongly autocorrelated series make
//! the intervals too narrow, as they did the fixed-horizon tests.

use jiff::Timestamp;

use super::distribution;
use super::sequential::{self, ChangeInterval};
use super::statistics::{self, Proportion};
use crate::api::evidence::{CheckEvidence, DistributionEvidence, PairedEvidence};
use crate::api::parity_policy::{SequentialComparison, SequentialStatistics, StatisticsSpec};

/// The evidence names of the comparisons.
pub const SHIFT: &str = "parity:shift";
pub const PROPORTIONS: &str = "parity:proportions";
pub const DISTRIBUTION: &str = "parity:distribution";

/// Samples after which the shift's confidence sequence is tightest: a few evaluations' windows.
const SHIFT_SAMPLES_EXPECTED: f64 = 100.0;
/// Windows after which the proportions' confidence sequence is tightest.
const PROPORTION_WINDOWS_EXPECTED: f64 = 10.0;

/// What a sequential comparison is judged with besides the evaluation's series.
#[derive(Clone, Copy, Debug)]
pub struct SequentialContext<'a> {
    /// The evidence so far; entries not named [`SHIFT`], [`PROPORTIONS`] or [`DISTRIBUTION`]
    /// are ignored.
    pub evidence: &'a [CheckEvidence],
    /// Samples from before this are not counted (they belong to an earlier stage).
    pub since: Option<Timestamp>,
    /// The level of the policy's sequential tests together, split among them.
    pub alpha: f64,
    /// The span the proportions' queries cover.
    pub window: std::time::Duration,
}

impl SequentialContext<'_> {
    fn prior(&self, name: &str) -> CheckEvidence {
        self.evidence
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .unwrap_or_else(|| CheckEvidence {
                name: name.to_string(),
                ..CheckEvidence::default()
            })
    }

    /// The evidence entries of this policy, to carry over unchanged when nothing was measured.
    pub fn carried(&self) -> Vec<CheckEvidence> {
        of_policy(self.evidence)
    }
}

/// The entries of a ParityPolicy's statistics among `evidence`.
pub fn of_policy(evidence: &[CheckEvidence]) -> Vec<CheckEvidence> {
    evidence
        .iter()
        .filter(|e| [SHIFT, PROPORTIONS, DISTRIBUTION].contains(&e.name.as_str()))
        .cloned()
        .collect()
}

/// The comparison after this evaluation, and the evidence to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct SequentialOutcome {
    pub result: SequentialStatistics,
    pub evidence: Vec<CheckEvidence>,
}

/// What one evaluation measured, for the comparison.
#[derive(Clone, Copy, Debug)]
pub struct Measured<'a> {
    /// The paired samples' times (seconds) and active differences (bps), in time order.
    pub timestamps: &'a [f64],
    pub active_bps: &'a [f64],
    /// The two values of each of those samples.
    pub candidate_values: &'a [f64],
    pub baseline_values: &'a [f64],
    /// Good/total of (candidate, baseline) over the window, when queried.
    pub proportions: Option<(Proportion, Proportion)>,
}

pub fn compare(
    settings: &StatisticsSpec,
    measured: &Measured<'_>,
    context: &SequentialContext<'_>,
    now: Timestamp,
) -> SequentialOutcome {
    let with_proportions = settings.good.is_some() && settings.total.is_some();
    let alpha = sequential::split_alpha(context.alpha, 2 + usize::from(with_proportions));
    let tolerance = settings.tolerance;

    let mut shift = context.prior(SHIFT);
    add_shift_samples(&mut shift, measured, context.since);
    let shift_result = comparison_of_mean(&shift.evidence, alpha);
    let mut failed = shift_result
        .as_ref()
        .is_some_and(|c| shift_beyond(c, tolerance));
    let mut distribution = context.prior(DISTRIBUTION);
    add_distribution_samples(&mut distribution, measured, context.since, tolerance);
    let distribution_result = (distribution.distribution.as_ref()).and_then(|d| d.compare(alpha));
    failed |= distribution_result
        .as_ref()
        .is_some_and(distribution::beyond);
    let mut evidence = vec![shift];

    let mut proportions_result = None;
    if with_proportions {
        let mut proportions = context.prior(PROPORTIONS);
        add_proportions(&mut proportions, measured.proportions, context.window, now);
        let compared = comparison_of_change(&proportions.evidence, alpha);
        failed |= compared
            .as_ref()
            .is_some_and(|c| proportions_beyond(c, tolerance));
        proportions_result = compared;
        evidence.push(proportions);
    }
    // Nothing to keep until the edges are fixed.
    if distribution.distribution.is_some() {
        evidence.push(distribution);
    }
    SequentialOutcome {
        result: SequentialStatistics {
            shift: shift_result,
            proportions: proportions_result,
            distribution: distribution_result,
            confidence: 1.0 - alpha,
            tolerance,
            failed,
        },
        evidence,
    }
}

/// Whether the shift's interval lies wholly beyond `±tolerance`.
pub fn shift_beyond(shift: &SequentialComparison, tolerance: f64) -> bool {
    shift
        .interval
        .is_some_and(|[lower, upper]| lower > tolerance || upper < -tolerance)
}

/// Whether the candidate's bad proportion is established above `1 + tolerance` times the
/// baseline's.
pub fn proportions_beyond(proportions: &SequentialComparison, tolerance: f64) -> bool {
    proportions
        .interval
        .is_some_and(|[lower, _]| lower > tolerance)
}

/// The indices of the samples newer than those `evidence` counted (and than `since`).
fn new_samples(
    evidence: &CheckEvidence,
    measured: &Measured<'_>,
    since: Option<Timestamp>,
) -> Vec<usize> {
    let seconds = |t: Timestamp| t.as_millisecond() as f64 / 1000.0;
    let after = match (evidence.through, since) {
        (Some(through), Some(since)) => Some(seconds(through.max(since))),
        (through, since) => through.or(since).map(seconds),
    };
    let times = measured.timestamps.iter().enumerate();
    times
        .filter(|(_, time)| after.is_none_or(|after| **time > after))
        .map(|(i, _)| i)
        .collect()
}

/// Remembers the newest of the samples `counted` as counted.
fn mark_counted(evidence: &mut CheckEvidence, measured: &Measured<'_>, counted: &[usize]) {
    let newest = counted
        .iter()
        .filter_map(|i| measured.timestamps.get(*i).copied())
        .reduce(f64::max);
    if let Some(time) = newest.and_then(|t| Timestamp::from_millisecond((t * 1000.0) as i64).ok()) {
        evidence.through = Some(time);
    }
}

/// Adds the active differences of the samples newer than those counted (and than `since`).
fn add_shift_samples(shift: &mut CheckEvidence, measured: &Measured<'_>, since: Option<Timestamp>) {
    let new = new_samples(shift, measured, since);
    for &bps in new.iter().filter_map(|i| measured.active_bps.get(*i)) {
        // The active difference itself is the sample; the stable side of the pair is unused.
        shift.evidence.add(bps / 10_000.0, 0.0);
    }
    mark_counted(shift, measured, &new);
}

/// Counts both tracks' values of the samples newer than those counted, once the edges are
/// fixed from at least [`distribution::MIN_SAMPLES`] of them (until then nothing is counted).
fn add_distribution_samples(
    evidence: &mut CheckEvidence,
    measured: &Measured<'_>,
    since: Option<Timestamp>,
    tolerance: f64,
) {
    let new = new_samples(evidence, measured, since);
    let values =
        |side: &[f64]| -> Vec<f64> { new.iter().filter_map(|i| side.get(*i).copied()).collect() };
    let candidate = values(measured.candidate_values);
    let baseline = values(measured.baseline_values);
    if evidence.distribution.is_none() {
        let scale = statistics::median(&baseline).unwrap_or(0.0).abs();
        evidence.distribution = DistributionEvidence::start(&baseline, tolerance * scale);
    }
    let Some(distribution) = evidence.distribution.as_mut() else {
        return;
    };
    for (c, b) in candidate.iter().zip(&baseline) {
        distribution.add(*c, *b);
    }
    mark_counted(evidence, measured, &new);
}

/// Adds the tracks' bad proportions once a whole window has passed since the last pair.
fn add_proportions(
    proportions: &mut CheckEvidence,
    measured: Option<(Proportion, Proportion)>,
    window: std::time::Duration,
    now: Timestamp,
) {
    let Some((candidate, baseline)) = measured else {
        return;
    };
    let window_passed = proportions
        .through
        .is_none_or(|last| now.duration_since(last).as_secs_f64() >= window.as_secs_f64());
    if !window_passed || candidate.total <= 0.0 || baseline.total <= 0.0 {
        return;
    }
    let bad = |good: f64, total: f64| (1.0 - good / total).clamp(0.0, 1.0);
    let (c, b) = (
        bad(candidate.good, candidate.total),
        bad(baseline.good, baseline.total),
    );
    if c.is_finite() && b.is_finite() {
        proportions.evidence.add(c, b);
        proportions.through = Some(now);
    }
}

fn comparison_of_mean(evidence: &PairedEvidence, alpha: f64) -> Option<SequentialComparison> {
    (evidence.pairs > 0).then(|| SequentialComparison {
        estimate: evidence.canary_mean,
        interval: sequential::mean_interval(evidence, alpha, SHIFT_SAMPLES_EXPECTED),
        samples: evidence.pairs,
    })
}

fn comparison_of_change(evidence: &PairedEvidence, alpha: f64) -> Option<SequentialComparison> {
    let estimate = evidence.change()?;
    let interval = match sequential::change_interval(evidence, alpha, PROPORTION_WINDOWS_EXPECTED) {
        ChangeInterval::Within { lower, upper } => Some([lower, upper]),
        ChangeInterval::TooFewPairs | ChangeInterval::Unbounded => None,
    };
    Some(SequentialComparison {
        estimate,
        interval,
        samples: evidence.pairs,
    })
}

#[cfg(test)]
#[path = "parity_sequential_tests.rs"]
mod tests;
