//! Anytime-valid comparison of two tracks' distributions: a sequential, rank-based test of
//! stochastic order (each direction) and of equality in distribution up to a tolerated shift.
//!
//! A candidate whose values keep the baseline's mean and spread but not its shape (bimodal,
//! skewed) passes the tests of the mean; it shows in the distribution functions. The bound is
//! the time-uniform Dvoretzky-Kiefer-Wolfowitz inequality of Howard and Ramdas ("Sequential
//! estimation of quantiles with applications to A/B-testing and best-arm identification",
//! Bernoulli 2022, Theorem 2): with probability at least `1 - a`, at every sample count `n` at
//! once, `sup_x |F_n(x) - F(x)| <= 0.85 sqrt((ln ln(e n) + 0.8 ln(1612 / a)) / n)`. So, under
//! the hypothesis that the candidate lies within the tolerated shift `t` of the baseline in the
//! stochastic order (`F_b(x - t) <= F_c(x) <= F_b(x + t)` for every `x`), with probability at
//! least `1 - alpha` neither empirical gap `F_b(x - t) - F_c(x)` ("above") nor
//! `F_c(x) - F_b(x + t)` ("below") ever exceeds the sum of both tracks' bands at `alpha / 2`:
//! a gap beyond it establishes that the candidate's values lie above (or below) by more than
//! the tolerance, however often it is looked at. Both gaps depend on the samples only through
//! their ranks among the edges.
//!
//! The samples are counted between edges fixed when the comparison starts (quantiles of the
//! baseline's first samples, and the same shifted by `±t` so the shifted comparisons fall on
//! edges). The band holds at every `x` at once, edges chosen from the data included, and a gap
//! read at the edges never exceeds the exact one, so counting in bins keeps the guarantee and
//! bounds what the status holds. The samples are assumed independent, as in the other tests.

use crate::api::evidence::DistributionEvidence;
use crate::api::parity_policy::DistributionComparison;

/// Baseline samples needed to fix the edges.
pub const MIN_SAMPLES: usize = 20;
/// Quantiles of the baseline's first samples taken as edges (each also shifted by `±t`).
const QUANTILE_EDGES: usize = 31;

/// The time-uniform half-width of the band around an empirical distribution function of `n`
/// samples, at level `alpha` (Howard and Ramdas 2022, Theorem 2); 1 (no information) below one
/// sample.
pub fn band(n: u64, alpha: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let n = n as f64;
    let squared = ((n * std::f64::consts::E).ln().ln() + 0.8 * (1612.0 / alpha).ln()) / n;
    (0.85 * squared.sqrt()).min(1.0)
}

impl DistributionEvidence {
    /// Fixes the edges from the baseline's first samples (at least [`MIN_SAMPLES`] finite
    /// ones), with `tolerance` in the values' unit; counts nothing yet.
    pub fn start(baseline: &[f64], tolerance: f64) -> Option<Self> {
        let mut sorted: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.len() < MIN_SAMPLES || !tolerance.is_finite() || tolerance < 0.0 {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let last = sorted.len() - 1;
        let mut edges = Vec::with_capacity(3 * QUANTILE_EDGES);
        for i in 0..QUANTILE_EDGES {
            let q = sorted[(i * last) / (QUANTILE_EDGES - 1)];
            edges.extend([q - tolerance, q, q + tolerance]);
        }
        edges.retain(|e| e.is_finite());
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let bins = edges.len() + 1;
        Some(Self {
            edges,
            candidate: vec![0; bins],
            baseline: vec![0; bins],
            tolerance,
        })
    }

    /// Counts one sample of each track (a non-finite value is skipped).
    pub fn add(&mut self, candidate: f64, baseline: f64) {
        if candidate.is_finite() && baseline.is_finite() {
            let (c, b) = (self.bin(candidate), self.bin(baseline));
            for (counts, bin) in [(&mut self.candidate, c), (&mut self.baseline, b)] {
                if let Some(count) = counts.get_mut(bin) {
                    *count = count.saturating_add(1);
                }
            }
        }
    }

    /// The bin of `value`: the number of edges below it.
    fn bin(&self, value: f64) -> usize {
        self.edges.partition_point(|e| *e < value)
    }

    /// Samples counted per track.
    pub fn samples(&self) -> u32 {
        self.candidate
            .iter()
            .fold(0u32, |n, c| n.saturating_add(*c))
    }

    /// The comparison now, at level `alpha`; none before any sample is counted or when the
    /// counts are not one per bin.
    pub fn compare(&self, alpha: f64) -> Option<DistributionComparison> {
        let bins = self.edges.len() + 1;
        if self.candidate.len() != bins || self.baseline.len() != bins {
            return None;
        }
        let candidate = cumulative(&self.candidate)?;
        let baseline = cumulative(&self.baseline)?;
        let (mut above, mut below) = (Gap::default(), Gap::default());
        let t = self.tolerance;
        for (i, &x) in self.edges.iter().enumerate() {
            // F_b(x - t) is at least F_b at the last edge at or below x - t.
            let lower = self.edges.partition_point(|e| *e <= x - t);
            if let Some(j) = lower.checked_sub(1) {
                above.raise(baseline[j] - candidate[i], x);
            }
            // F_b(x + t) is at most F_b at the first edge at or above x + t (1 past the last).
            let upper = self.edges.partition_point(|e| *e < x + t);
            let at_most = baseline.get(upper).copied().unwrap_or(1.0);
            below.raise(candidate[i] - at_most, x);
        }
        let samples = self.samples();
        let baseline_samples = self.baseline.iter().fold(0u32, |n, c| n.saturating_add(*c));
        let band =
            band(u64::from(samples), alpha / 2.0) + band(u64::from(baseline_samples), alpha / 2.0);
        let at = match above.gap >= below.gap {
            true => above.at,
            false => below.at,
        };
        Some(DistributionComparison {
            above: above.gap,
            below: below.gap,
            at,
            band,
            tolerance: t,
            samples: samples.min(baseline_samples),
        })
    }
}

/// Whether the comparison establishes a gap beyond the tolerance, either way.
pub fn beyond(comparison: &DistributionComparison) -> bool {
    comparison.above.max(comparison.below) > comparison.band
}

#[derive(Default)]
struct Gap {
    gap: f64,
    at: f64,
}

impl Gap {
    fn raise(&mut self, gap: f64, at: f64) {
        if gap > self.gap {
            (self.gap, self.at) = (gap, at);
        }
    }
}

/// The empirical distribution function at each edge (the bins' running share); none when
/// nothing was counted.
fn cumulative(counts: &[u32]) -> Option<Vec<f64>> {
    let total: f64 = counts.iter().map(|c| f64::from(*c)).sum();
    (total > 0.0).then(|| {
        counts
            .iter()
            .scan(0.0, |running, c| {
                *running += f64::from(*c);
                Some(*running / total)
            })
            .collect()
    })
}

#[cfg(test)]
#[path = "distribution_tests.rs"]
mod tests;
