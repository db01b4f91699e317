//! Anytime-valid comparison of the tracks' event rates from counts, for a relative check on a
//! ratio of counters (errors per request).
//!
//! At each evaluation the canary had `e_c` events in `n_c` requests and stable `e_s` in `n_s`.
//! With events arising at rates `λ_c` and `λ_s` per request (Poisson), the canary's share of
//! the evaluation's events, given their total, is Binomial(`e_c + e_s`, `p(θ)`) with
//! `p(θ) = θ n_c / (θ n_c + n_s)` and `θ = λ_c / λ_s`: the exposures enter through `p`, and an
//! incident that raises both tracks' rates alike leaves the split as it was. Lindon, Sanden and
//! Shirikian ("Rapid regression detection in software deployments through sequential testing",
//! KDD 2022) condition the same way.
//!
//! A bound `θ0` (1 + maxIncrease, or 1 − maxDecrease) is tested in each direction by a mixture
//! of likelihood ratios over a grid of alternatives on its side, `θ0 · r^k` for `k = 1..K`,
//! with equal weights. For `θ1 > θ0` the likelihood ratio of `θ1` against `θ0` is a
//! nonnegative supermartingale under every `θ ≤ θ0` (the binomial family has a monotone
//! likelihood ratio in `p`, and `p` rises with `θ`), and so is the mixture: by Ville's
//! inequality it ever reaches `1/α` with probability at most `α`, however often it is looked
//! at. "Above the bound" is established when the mixture above reaches `1/α`; "within" when the
//! mixture below does. Counts from `increase()` need not be whole numbers: the likelihood is
//! then used as a quasi-likelihood. Counts more dispersed than Poisson within a track (bursts
//! on one track only) make the test err more often than `α`.

use super::analysis::format_value;
use crate::api::canary_rollout::{Check, Verdict};
pub use crate::api::evidence::{BoundTest, CountEvidence};

/// Ratio between neighbouring alternatives: 2^(1/4), about 19 %.
pub const GRID_RATIO: f64 = 1.189_207_115_002_721;
/// Alternatives on each side of a bound: up to 2^4 = 16 times (or 1/16 of) it.
pub const GRID_POINTS: usize = 16;

/// One evaluation's counts of a track: events (errors) among requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackCounts {
    pub events: f64,
    pub requests: f64,
}

/// One evaluation's counts of both tracks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    pub canary: TrackCounts,
    pub stable: TrackCounts,
}

impl CountEvidence {
    /// Evidence for the rate ratios `bounds`, with nothing counted yet.
    pub fn new(bounds: &[f64]) -> Self {
        CountEvidence {
            bounds: bounds
                .iter()
                .map(|&ratio| BoundTest {
                    ratio,
                    above: vec![0.0; GRID_POINTS],
                    below: vec![0.0; GRID_POINTS],
                })
                .collect(),
            ..CountEvidence::default()
        }
    }

    /// Whether this evidence tests exactly `bounds` (a changed spec starts afresh).
    pub fn tests(&self, bounds: &[f64]) -> bool {
        self.bounds.len() == bounds.len()
            && self.bounds.iter().zip(bounds).all(|(t, b)| t.ratio == *b)
    }

    /// Adds one evaluation. Counts that cannot be used (negative, not finite, no requests on a
    /// track) add nothing and return false.
    pub fn add(&mut self, counts: &Counts) -> bool {
        let Counts { canary, stable } = *counts;
        let usable = [
            canary.events,
            canary.requests,
            stable.events,
            stable.requests,
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
            && canary.requests > 0.0
            && stable.requests > 0.0;
        if !usable {
            return false;
        }
        self.evaluations += 1;
        self.canary_events += canary.events;
        self.canary_requests += canary.requests;
        self.stable_events += stable.events;
        self.stable_requests += stable.requests;
        let log_likelihood = |theta: f64| {
            let p = theta * canary.requests / (theta * canary.requests + stable.requests);
            xlogy(canary.events, p) + xlogy(stable.events, 1.0 - p)
        };
        for test in &mut self.bounds {
            let at_bound = log_likelihood(test.ratio);
            for k in 0..GRID_POINTS {
                let step = GRID_RATIO.powi(k as i32 + 1);
                test.above[k] += log_likelihood(test.ratio * step) - at_bound;
                test.below[k] += log_likelihood(test.ratio / step) - at_bound;
            }
        }
        true
    }

    /// The canary's rate over stable's, from everything counted at the stage.
    pub fn rate_ratio(&self) -> Option<f64> {
        let canary = self.canary_events / self.canary_requests;
        let stable = self.stable_events / self.stable_requests;
        let ratio = canary / stable;
        ratio.is_finite().then_some(ratio)
    }
}

/// `x ln y`, with 0 ln 0 = 0.
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x * y.ln() }
}

/// The two e-values of one bound: how strongly the counts say the rate ratio is above it, and
/// how strongly they say it is below.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundEValues {
    pub ratio: f64,
    pub above: f64,
    pub below: f64,
}

impl BoundTest {
    pub fn e_values(&self) -> BoundEValues {
        BoundEValues {
            ratio: self.ratio,
            above: mean_of_exp(&self.above),
            below: mean_of_exp(&self.below),
        }
    }
}

impl BoundTest {
    /// The rate ratios the counts exclude, each at level `alpha`, among the grid
    /// `ratio · 2^(j/4)`, j = -16..=16: those below the first end and above the second. An end
    /// is None when the test excludes no grid point on that side. Each grid point is tested as
    /// the bound is, by a mixture over the alternatives on its side that the grid holds (those
    /// beyond it weigh 0, which keeps the mixture an e-process), so the ends move in steps of
    /// about 19 %.
    pub fn excluded(&self, alpha: f64) -> (Option<f64>, Option<f64>) {
        let points = GRID_POINTS as i32;
        // Log likelihood at grid point j, relative to the bound's.
        let at = |j: i32| match j {
            0 => 0.0,
            j if j > 0 => self.above[(j - 1) as usize],
            j => self.below[(-j - 1) as usize],
        };
        let log_e = |j: i32, direction: i32| {
            let logs: Vec<f64> = (1..=points)
                .map(|step| j + direction * step)
                .filter(|i| i.abs() <= points)
                .map(|i| at(i) - at(j))
                .collect();
            mean_of_exp(&logs).ln() + (logs.len() as f64 / f64::from(points)).ln()
        };
        let threshold = (1.0 / alpha).ln();
        let point = |j: i32| self.ratio * GRID_RATIO.powi(j);
        let lower = (-points..=points)
            .filter(|&j| log_e(j, 1) >= threshold)
            .map(point)
            .reduce(f64::max);
        let upper = (-points..=points)
            .filter(|&j| log_e(j, -1) >= threshold)
            .map(point)
            .reduce(f64::min);
        (lower, upper)
    }
}

/// `mean(exp(x))`, computed without overflow.
fn mean_of_exp(logs: &[f64]) -> f64 {
    let largest = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !largest.is_finite() {
        return if largest > 0.0 { f64::INFINITY } else { 0.0 };
    }
    let sum: f64 = logs.iter().map(|l| (l - largest).exp()).sum();
    (largest + (sum / logs.len() as f64).ln()).exp()
}

/// The rate ratios a check bounds, in the order its evidence keeps them: 1 + maxIncrease, then
/// 1 - maxDecrease (a bound of 0 or less bounds nothing).
pub fn bounds(check: &Check) -> Vec<f64> {
    let increase = check.max_increase.map(|limit| 1.0 + limit);
    let decrease = check.max_decrease.map(|limit| 1.0 - limit);
    [increase, decrease]
        .into_iter()
        .flatten()
        .filter(|ratio| *ratio > 0.0 && ratio.is_finite())
        .collect()
}

/// What the counts say about a relative check, and why in a sentence with the deciding figures.
pub fn judge(check: &Check, evidence: &CountEvidence, alpha: f64) -> (Verdict, String) {
    let threshold = 1.0 / alpha;
    let (mut beyond, mut unsettled) = (Vec::new(), Vec::new());
    let kinds = [
        check.max_increase.map(|_| true),
        check.max_decrease.map(|_| false),
    ];
    for (test, increase) in evidence.bounds.iter().zip(kinds.into_iter().flatten()) {
        let e = test.e_values();
        let ratio = format_value(test.ratio);
        let (e_beyond, e_within, beyond_side, within_side) = match increase {
            true => (e.above, e.below, "above", "at most"),
            false => (e.below, e.above, "below", "at least"),
        };
        if e_beyond >= threshold {
            beyond.push(format!(
                "{beyond_side} {ratio} times stable's established (e-value {} >= 1/alpha {})",
                format_large(e_beyond),
                format_large(threshold)
            ));
        } else if e_within < threshold {
            unsettled.push(format!(
                "{within_side} {ratio} times stable's not yet established (e-value {} of 1/alpha {})",
                format_large(e_within),
                format_large(threshold)
            ));
        }
    }
    let (verdict, reasons) = match (beyond.is_empty(), unsettled.is_empty()) {
        (false, _) => (Verdict::Fail, beyond),
        (true, false) => (Verdict::NoData, unsettled),
        (true, true) => (Verdict::Pass, Vec::new()),
    };
    let rate = |events: f64, requests: f64| {
        format!(
            "{} ({} of {})",
            format_value(events / requests),
            format_value(events),
            format_value(requests)
        )
    };
    let mut ratio = evidence.rate_ratio().map_or("no ratio".to_string(), |r| {
        format!("{} times stable's", format_value(r))
    });
    if let Some(test) = evidence.bounds.first() {
        let ends = match test.excluded(alpha) {
            (Some(lower), Some(upper)) => Some(format!(
                "below {} and above {}",
                format_value(lower),
                format_value(upper)
            )),
            (Some(lower), None) => Some(format!("below {}", format_value(lower))),
            (None, Some(upper)) => Some(format!("above {}", format_value(upper))),
            (None, None) => None,
        };
        if let Some(ends) = ends {
            ratio.push_str(&format!(" (ratios {ends} excluded)"));
        }
    }
    let message = format!(
        "canary {} against stable {} over {} evaluations, {ratio}: {} (sequential binomial test \
         on the counts)",
        rate(evidence.canary_events, evidence.canary_requests),
        rate(evidence.stable_events, evidence.stable_requests),
        evidence.evaluations,
        reasons.join("; ")
    );
    (verdict, message)
}

/// 0.0312 -> "0.0312", 1234.5 -> "1235", 2.5e7 -> "2.50e7".
fn format_large(value: f64) -> String {
    if value < 1.0 {
        format_value(value)
    } else if value < 1e6 {
        format!("{value:.0}")
    } else {
        format!("{value:.2e}")
    }
}

#[cfg(test)]
#[path = "count_test_tests.rs"]
mod tests;
