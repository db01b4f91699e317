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
//!
//! The samples of one window are treated as independent: strongly autocorrelated series make
//! the intervals too narrow, as they did the fixed-horizon tests.

use jiff::Timestamp;

use super::sequential::{self, ChangeInterval};
use super::statistics::Proportion;
use crate::api::evidence::{CheckEvidence, PairedEvidence};
use crate::api::parity_policy::{SequentialComparison, SequentialStatistics, StatisticsSpec};

/// The evidence names of the two comparisons.
pub const SHIFT: &str = "parity:shift";
pub const PROPORTIONS: &str = "parity:proportions";

/// Samples after which the shift's confidence sequence is tightest: a few evaluations' windows.
const SHIFT_SAMPLES_EXPECTED: f64 = 100.0;
/// Windows after which the proportions' confidence sequence is tightest.
const PROPORTION_WINDOWS_EXPECTED: f64 = 10.0;

/// What a sequential comparison is judged with besides the evaluation's series.
#[derive(Clone, Copy, Debug)]
pub struct SequentialContext<'a> {
    /// The evidence so far; entries not named [`SHIFT`] or [`PROPORTIONS`] are ignored.
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
        .filter(|e| e.name == SHIFT || e.name == PROPORTIONS)
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
    let alpha = sequential::split_alpha(context.alpha, 1 + usize::from(with_proportions));
    let tolerance = settings.tolerance;

    let mut shift = context.prior(SHIFT);
    add_shift_samples(&mut shift, measured, context.since);
    let shift_result = comparison_of_mean(&shift.evidence, alpha);
    let mut failed = shift_result
        .as_ref()
        .is_some_and(|c| shift_beyond(c, tolerance));
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
    SequentialOutcome {
        result: SequentialStatistics {
            shift: shift_result,
            proportions: proportions_result,
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

/// Adds the active differences of the samples newer than those counted (and than `since`).
fn add_shift_samples(shift: &mut CheckEvidence, measured: &Measured<'_>, since: Option<Timestamp>) {
    let seconds = |t: Timestamp| t.as_millisecond() as f64 / 1000.0;
    let after = match (shift.through, since) {
        (Some(through), Some(since)) => Some(seconds(through.max(since))),
        (through, since) => through.or(since).map(seconds),
    };
    let mut newest: Option<f64> = None;
    for (&time, &bps) in measured.timestamps.iter().zip(measured.active_bps) {
        if after.is_some_and(|after| time <= after) {
            continue;
        }
        // The active difference itself is the sample; the stable side of the pair is unused.
        shift.evidence.add(bps / 10_000.0, 0.0);
        newest = Some(newest.map_or(time, |t| t.max(time)));
    }
    if let Some(time) = newest.and_then(|t| Timestamp::from_millisecond((t * 1000.0) as i64).ok()) {
        shift.through = Some(time);
    }
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
