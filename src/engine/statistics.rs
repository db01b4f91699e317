//! Statistical comparison of a candidate with its baseline, for what a fixed threshold misses.
//! Pure functions on plain numbers; what to do with a p-value or an interval is decided elsewhere.
//!
//! - [`mann_whitney`]: the two-sided Mann-Whitney U (Wilcoxon rank-sum) test. Ties get mid-ranks
//!   and the tie-corrected variance; the p-value is the normal approximation with a continuity
//!   correction of 0.5 (the same as `scipy.stats.mannwhitneyu(..., use_continuity=True,
//!   method='asymptotic')`). No exact p-value for small samples: with fewer than about 8 values
//!   per side the approximation is rough, and the caller should rather hold than decide.
//! - [`hodges_lehmann`]: the Hodges-Lehmann shift (median of all pairwise differences
//!   candidate - baseline) and its distribution-free confidence interval
//!   `[D(C), D(nm + 1 - C)]` from the order statistics `D(1) <= ... <= D(nm)` of the
//!   differences, with `C = floor(nm/2 - z * sqrt(nm(n+m+1)/12) + 0.5)` (the normal
//!   approximation of the rank bound, rounded to the nearest integer, which is the same as a
//!   continuity correction; ties are not corrected for). The order statistics are selected
//!   without forming the nm differences: each pass counts the differences at or below a pivot
//!   in O(n + m) on the two sorted samples, pivots are guessed (difference of the medians,
//!   secant through the nearest passes, interpolation) with bisection as the fallback, and the
//!   passes are shared between the estimate and the two bounds. 10 000 x 10 000 samples take
//!   about 15 passes; any input takes at most 128 per order statistic.
//! - [`two_proportion_test`]: the pooled two-proportion z-test for good/total counts.
//! - [`shift_within_tolerance`] and [`kayenta_class`]: verdicts on the interval.
//!
//! Non-finite values (NaN, ±Inf: "no data" from Prometheus) are left out of every test and
//! counted; a test with an empty side returns `None`. The normal distribution comes from `statrs`
//! (`erfc` and its inverse), accurate to about 1e-10 relative: ample for a p-value.

use std::f64::consts::SQRT_2;

use statrs::function::erf::{erfc, erfc_inv};

/// `P(Z <= x)` for a standard normal `Z`.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / SQRT_2)
}

/// The `p` quantile of the standard normal; none outside (0, 1).
pub fn normal_quantile(p: f64) -> Option<f64> {
    (p > 0.0 && p < 1.0).then(|| -SQRT_2 * erfc_inv(2.0 * p))
}

/// Two-sided p-value of a standard normal statistic, `2 * P(Z >= |z|)`, without the
/// cancellation of `2 * (1 - cdf)`.
fn two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / SQRT_2).min(1.0)
}

/// Finite values, -0.0 made 0.0, sorted ascending; and how many were left out.
fn finite_sorted(values: &[f64]) -> (Vec<f64>, u32) {
    let mut kept: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v + 0.0)
        .collect();
    let dropped = u32::try_from(values.len() - kept.len()).unwrap_or(u32::MAX);
    kept.sort_unstable_by(f64::total_cmp);
    (kept, dropped)
}

/// Result of the two-sided Mann-Whitney U test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankSumTest {
    /// Finite values used per side.
    pub candidate_n: usize,
    pub baseline_n: usize,
    /// U of the candidate: pairs where the candidate is larger, ties counting one half.
    pub u_candidate: f64,
    /// U of the baseline; `u_candidate + u_baseline = n * m`.
    pub u_baseline: f64,
    /// Continuity-corrected normal score, positive when the candidate tends to be larger; 0 when
    /// every value is tied (the variance is 0 and there is no evidence of a difference).
    pub z: f64,
    /// Two-sided p-value from the normal approximation; 1 when every value is tied.
    pub p_value: f64,
}

/// The two-sided Mann-Whitney U test of candidate against baseline (see the module doc).
pub fn mann_whitney(candidate: &[f64], baseline: &[f64]) -> Option<RankSumTest> {
    let (candidate, _) = finite_sorted(candidate);
    let (baseline, _) = finite_sorted(baseline);
    mann_whitney_sorted(&candidate, &baseline)
}

fn mann_whitney_sorted(candidate: &[f64], baseline: &[f64]) -> Option<RankSumTest> {
    let (n, m) = (candidate.len(), baseline.len());
    if n == 0 || m == 0 {
        return None;
    }
    // Walk both sorted samples together, one group of equal values at a time.
    let (mut i, mut j) = (0, 0);
    let mut ranked = 0.0_f64;
    let mut rank_sum = 0.0_f64;
    let mut ties = 0.0_f64;
    while i < n || j < m {
        let value = match (candidate.get(i), baseline.get(j)) {
            (Some(&c), Some(&b)) => c.min(b),
            (Some(&c), None) => c,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let start_i = i;
        while i < n && candidate[i] == value {
            i += 1;
        }
        let start_j = j;
        while j < m && baseline[j] == value {
            j += 1;
        }
        let from_candidate = (i - start_i) as f64;
        let group = from_candidate + (j - start_j) as f64;
        let mid_rank = ranked + (group + 1.0) / 2.0;
        rank_sum += from_candidate * mid_rank;
        ties += group * group * group - group;
        ranked += group;
    }
    let (n_f, m_f) = (n as f64, m as f64);
    let total = n_f + m_f;
    let u_candidate = rank_sum - n_f * (n_f + 1.0) / 2.0;
    let u_baseline = n_f * m_f - u_candidate;
    let mean = n_f * m_f / 2.0;
    let variance = n_f * m_f / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    let (z, p_value) = if variance > 0.0 {
        let distance = u_candidate - mean;
        let corrected = (distance.abs() - 0.5).max(0.0);
        let z = corrected.copysign(distance) / variance.sqrt();
        (z, two_sided_p(z))
    } else {
        (0.0, 1.0)
    };
    Some(RankSumTest {
        candidate_n: n,
        baseline_n: m,
        u_candidate,
        u_baseline,
        z: if z == 0.0 { 0.0 } else { z },
        p_value,
    })
}

/// The Hodges-Lehmann shift of candidate over baseline and its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftEstimate {
    /// Median of all pairwise differences candidate - baseline.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    /// The confidence asked for, e.g. 0.98.
    pub confidence: f64,
    /// False when the samples are too small for the asked confidence: the interval is then the
    /// whole range of the differences and its coverage is less than asked.
    pub coverage_reached: bool,
}

/// Hodges-Lehmann shift and interval (see the module doc); none when a side has no finite value
/// or `confidence` is not in (0, 1).
pub fn hodges_lehmann(
    candidate: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Option<ShiftEstimate> {
    let (candidate, _) = finite_sorted(candidate);
    let (baseline, _) = finite_sorted(baseline);
    hodges_lehmann_sorted(&candidate, &baseline, confidence)
}

fn hodges_lehmann_sorted(
    candidate: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Option<ShiftEstimate> {
    let (n, m) = (candidate.len() as u64, baseline.len() as u64);
    if n == 0 || m == 0 {
        return None;
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0)?;
    let pairs = n * m;

    let mut differences = PairwiseDifferences::new(candidate, baseline);
    // The difference of the medians is close to the median of the differences.
    let hint = sorted_median(candidate)? - sorted_median(baseline)?;
    let lower_middle = differences.kth(pairs.div_ceil(2), Some(hint));
    let estimate = if pairs % 2 == 1 {
        lower_middle
    } else {
        lower_middle / 2.0 + differences.kth(pairs / 2 + 1, None) / 2.0
    };

    let (n_f, m_f) = (n as f64, m as f64);
    let spread = (n_f * m_f * (n_f + m_f + 1.0) / 12.0).sqrt();
    let bound = (n_f * m_f / 2.0 - z * spread + 0.5).floor();
    let coverage_reached = bound >= 1.0;
    let c = if coverage_reached { bound as u64 } else { 1 };
    Some(ShiftEstimate {
        estimate,
        lower: differences.kth(c, None),
        upper: differences.kth(pairs + 1 - c, None),
        confidence,
        coverage_reached,
    })
}

/// What one counting pass at a pivot found about the differences `candidate[i] - baseline[j]`.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// Where the pass counted; none for the two extremes known without a pass.
    pivot: Option<f64>,
    /// Differences at or below the pivot.
    at_or_below: u64,
    /// The largest difference at or below the pivot (-Inf if none).
    highest_below: f64,
    /// The smallest difference above the pivot (+Inf if none).
    lowest_above: f64,
}

/// After this many passes of one selection only bisection is used, which bounds the passes by
/// this plus 64 (the bits of an f64) whatever the data.
const GUESSED_PASSES: u32 = 64;

/// Order statistics of all differences `candidate[i] - baseline[j]` (both sorted ascending,
/// non-empty) without forming them. Every counting pass is kept, so later selections start
/// from the brackets earlier ones found.
struct PairwiseDifferences<'a> {
    candidate: &'a [f64],
    baseline: &'a [f64],
    probes: Vec<Probe>,
}

impl<'a> PairwiseDifferences<'a> {
    fn new(candidate: &'a [f64], baseline: &'a [f64]) -> Self {
        let (n, m) = (candidate.len(), baseline.len());
        // The extremes, as probes: nothing lies below the smallest, everything at or below the
        // largest.
        let lowest = candidate[0] - baseline[m - 1];
        let highest = candidate[n - 1] - baseline[0];
        let probes = vec![
            Probe {
                pivot: None,
                at_or_below: 0,
                highest_below: f64::NEG_INFINITY,
                lowest_above: lowest,
            },
            Probe {
                pivot: None,
                at_or_below: n as u64 * m as u64,
                highest_below: highest,
                lowest_above: f64::INFINITY,
            },
        ];
        Self {
            candidate,
            baseline,
            probes,
        }
    }

    /// Counts in O(n + m): for a fixed candidate value the differences fall as the baseline
    /// value rises, so those at or below the pivot are a suffix of the baseline, whose start
    /// only moves right as the candidate value rises. The differences are computed exactly as
    /// they would be one by one, so the count agrees with sorting all nm of them.
    fn probe(&mut self, pivot: f64) -> Probe {
        let baseline = self.baseline;
        let m = baseline.len();
        let mut start = 0;
        let mut probe = Probe {
            pivot: Some(pivot),
            at_or_below: 0,
            highest_below: f64::NEG_INFINITY,
            lowest_above: f64::INFINITY,
        };
        for &c in self.candidate {
            while start < m && c - baseline[start] > pivot {
                start += 1;
            }
            probe.at_or_below += (m - start) as u64;
            if start < m && c - baseline[start] > probe.highest_below {
                probe.highest_below = c - baseline[start];
            }
            if start > 0 && c - baseline[start - 1] < probe.lowest_above {
                probe.lowest_above = c - baseline[start - 1];
            }
        }
        self.probes.push(probe);
        probe
    }

    /// The k-th smallest difference, `1 <= k <= n * m`, starting with a pass at `hint` when it
    /// falls inside the bracket.
    ///
    /// Invariant: `low` is the (low_count + 1)-th difference and `high` the high_count-th, with
    /// `low_count < k <= high_count`, so the answer lies in `[low, high]`. Each pass takes a
    /// pivot in `[low, high)` and moves one end strictly inwards to an actual difference. Pivots
    /// are guessed (the hint, a secant through the last two passes, interpolation across the
    /// bracket); guesses that stop closing in on k give way to bisection of the bracket.
    fn kth(&mut self, k: u64, mut hint: Option<f64>) -> f64 {
        let (mut low, mut low_count) = (f64::NEG_INFINITY, 0);
        let (mut high, mut high_count) = (f64::INFINITY, u64::MAX);
        for probe in &self.probes {
            if probe.at_or_below < k && probe.at_or_below >= low_count {
                (low, low_count) = (probe.lowest_above, probe.at_or_below);
            }
            if probe.at_or_below >= k && probe.at_or_below <= high_count {
                (high, high_count) = (probe.highest_below, probe.at_or_below);
            }
        }
        // The two passes nearest to k, for a secant through the ranks around it; at first those
        // of earlier selections.
        let mut nearest: Vec<(f64, u64)> = self
            .probes
            .iter()
            .filter_map(|p| p.pivot.map(|v| (v, p.at_or_below)))
            .collect();
        nearest.sort_by_key(|&(_, count)| std::cmp::Reverse(count.abs_diff(k)));
        let mut last = nearest.pop();
        let mut before_last = nearest.pop();
        let mut slow_passes = 0;
        let mut passes = 0;
        loop {
            if low_count + 1 == k || low == high {
                return low;
            }
            if high_count == k {
                return high;
            }
            let (low_key, high_key) = (order_key(low), order_key(high));
            let inside = |v: f64| {
                let key = order_key(v);
                v.is_finite() && key >= low_key && key < high_key
            };
            // Aim between the k-th and the (k+1)-th difference, so that a hit counts exactly k.
            let target = k as f64 + 0.5;
            let secant = match (before_last, last) {
                (Some((v0, c0)), Some((v1, c1))) if c0 != c1 => {
                    Some(v1 + (target - c1 as f64) * (v1 - v0) / (c1 as f64 - c0 as f64))
                }
                _ => None,
            };
            // The rank of `low` is low_count + 1 and that of `high` is high_count.
            let across = low
                + (target - (low_count + 1) as f64) / (high_count - low_count - 1) as f64
                    * (high - low);
            let bisection = from_order_key(low_key + (high_key - low_key) / 2);
            let pivot = [hint.take(), secant, Some(across)]
                .into_iter()
                .flatten()
                .find(|&v| slow_passes < 2 && passes < GUESSED_PASSES && inside(v))
                .unwrap_or(bisection);
            let probe = self.probe(pivot);
            passes += 1;
            if probe.at_or_below >= k {
                (high, high_count) = (probe.highest_below, probe.at_or_below);
            } else {
                (low, low_count) = (probe.lowest_above, probe.at_or_below);
            }
            // Guesses that keep failing to halve the distance to k give way to one bisection.
            let distance = probe.at_or_below.abs_diff(k);
            let progress = last.is_none_or(|(_, c)| distance <= c.abs_diff(k) / 2);
            slow_passes = if slow_passes >= 2 || progress {
                0
            } else {
                slow_passes + 1
            };
            before_last = last;
            last = Some((pivot, probe.at_or_below));
        }
    }
}

/// Maps f64 to u64 preserving order (for bisection over the representable numbers).
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

/// The median of the finite values; none without any.
pub fn median(values: &[f64]) -> Option<f64> {
    let (sorted, _) = finite_sorted(values);
    sorted_median(&sorted)
}

fn sorted_median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(sorted[n / 2 - 1] / 2.0 + sorted[n / 2] / 2.0),
    }
}

/// Where a shift lies relative to a tolerance band `[-band, band]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftClass {
    /// The whole interval lies below `-band`.
    Low,
    /// The interval reaches into the band.
    Pass,
    /// The whole interval lies above `band`.
    High,
}

fn classify(interval: (f64, f64), band: f64) -> ShiftClass {
    let band = band.abs();
    if interval.0 > band {
        ShiftClass::High
    } else if interval.1 < -band {
        ShiftClass::Low
    } else {
        ShiftClass::Pass
    }
}

/// Whether the shift may be within `tolerance` (a fraction, e.g. 0.25) of the baseline median:
/// false only when the whole interval lies beyond `tolerance * |baseline_median|` on one side,
/// i.e. the candidate is shown, at the interval's confidence, to have moved by more than that.
/// With a baseline median of 0 the band is empty and any interval excluding 0 fails.
pub fn shift_within_tolerance(interval: (f64, f64), baseline_median: f64, tolerance: f64) -> bool {
    classify(interval, tolerance * baseline_median) == ShiftClass::Pass
}

/// Kayenta's Mann-Whitney classification: the band is `tolerance * |estimate|` around 0 (a
/// fraction of the Hodges-Lehmann estimate itself, not of the baseline), so a shift is High or
/// Low when its interval clears that band. Kayenta's judge uses a 98 % interval and 0.25.
pub fn kayenta_class(shift: &ShiftEstimate, tolerance: f64) -> ShiftClass {
    classify((shift.lower, shift.upper), tolerance * shift.estimate)
}

/// The rank test, the shift and the tolerance verdict on one pair of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackComparison {
    pub rank_sum: RankSumTest,
    pub shift: ShiftEstimate,
    pub baseline_median: f64,
    /// [`shift_within_tolerance`] of the interval against the baseline median.
    pub within_tolerance: bool,
    /// Non-finite values left out, both sides together.
    pub dropped: u32,
}

/// Mann-Whitney, Hodges-Lehmann at `confidence` and the tolerance verdict, sorting each side
/// once; none when a side has no finite value or `confidence` is not in (0, 1).
pub fn compare_tracks(
    candidate: &[f64],
    baseline: &[f64],
    confidence: f64,
    tolerance: f64,
) -> Option<TrackComparison> {
    let (candidate, dropped_candidate) = finite_sorted(candidate);
    let (baseline, dropped_baseline) = finite_sorted(baseline);
    let rank_sum = mann_whitney_sorted(&candidate, &baseline)?;
    let shift = hodges_lehmann_sorted(&candidate, &baseline, confidence)?;
    let baseline_median = sorted_median(&baseline)?;
    Some(TrackComparison {
        rank_sum,
        shift,
        baseline_median,
        within_tolerance: shift_within_tolerance(
            (shift.lower, shift.upper),
            baseline_median,
            tolerance,
        ),
        dropped: dropped_candidate.saturating_add(dropped_baseline),
    })
}

/// Good events out of a total, as counted over a window (e.g. `increase()` of two counters;
/// fractional counts are accepted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proportion {
    pub good: f64,
    pub total: f64,
}

/// Result of the two-proportion z-test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProportionTest {
    pub candidate_rate: f64,
    pub baseline_rate: f64,
    /// `candidate_rate - baseline_rate`; negative when the candidate has fewer good events.
    pub difference: f64,
    /// Pooled z score of the difference; 0 when both tracks are all good (or all bad).
    pub z: f64,
    /// Two-sided p-value; 1 when both tracks are all good (or all bad).
    pub p_value: f64,
}

/// Pooled two-proportion z-test (no continuity correction; as statsmodels'
/// `proportions_ztest`). None when a total is not above 0, or a count is not finite, negative,
/// or good exceeds total.
pub fn two_proportion_test(candidate: Proportion, baseline: Proportion) -> Option<ProportionTest> {
    let valid = |p: &Proportion| {
        p.good.is_finite()
            && p.total.is_finite()
            && p.total > 0.0
            && p.good >= 0.0
            && p.good <= p.total
    };
    if !valid(&candidate) || !valid(&baseline) {
        return None;
    }
    let candidate_rate = candidate.good / candidate.total;
    let baseline_rate = baseline.good / baseline.total;
    let difference = candidate_rate - baseline_rate;
    let pooled = (candidate.good + baseline.good) / (candidate.total + baseline.total);
    let variance = pooled * (1.0 - pooled) * (1.0 / candidate.total + 1.0 / baseline.total);
    let (z, p_value) = if variance > 0.0 {
        let z = difference / variance.sqrt();
        (z, two_sided_p(z))
    } else {
        (0.0, 1.0)
    };
    Some(ProportionTest {
        candidate_rate,
        baseline_rate,
        difference,
        z,
        p_value,
    })
}

#[cfg(test)]
#[path = "statistics_tests.rs"]
mod tests;
