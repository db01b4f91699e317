//! Whether the canary's values vary more than its share of the traffic explains: a canary whose
//! metric keeps its mean but turns erratic passes a test on means, so relative checks that
//! bound an increase also test the spread of the stage's evaluations.
//!
//! The spread is that of the values' logarithms: relative, as the checks' bounds are, and for
//! the skewed values latencies are (a quantile estimated from a few requests) close to normal
//! where the values themselves are heavy-tailed. The test runs only while every value of both
//! tracks at the stage is positive (an error ratio of 0 ends it for the stage).
//!
//! What "more than explained" means: a value computed from a window's requests (a ratio, a mean,
//! a quantile) varies about as the inverse of their number, and at `w` % of the traffic the
//! canary serves `(100 - w) / w` times fewer requests than stable. Under the null hypothesis the
//! canary's variance is at most [`TOLERANCE`] times `max(1, (100 - w) / w)` times stable's; the
//! floor of 1 keeps metrics whose noise does not shrink with traffic from being judged against
//! a stricter bound than equality.
//!
//! The test is the sequential probability ratio test of the variance ratio of two normal
//! samples built on the invariant F statistic (Cox 1952; Hall, Wijsman and Ghosh 1965): the
//! likelihood ratio of `F = s_canary^2 / s_stable^2` under a larger ratio against the null's is a
//! martingale under the null, as the evaluations add up. A uniform mixture over a grid of
//! alternatives keeps it one, so by Ville's inequality the chance that it ever reaches `1/alpha`
//! is at most `alpha`, however often it is looked at. For a smaller true ratio the chance is
//! smaller still (F scales with the ratio on every path). The normal model is an assumption:
//! heavy-tailed values make the test less reliable, which the decision-quality corpus measures.

use super::sequential::MIN_PAIRS;
use crate::api::canary_rollout::PairedEvidence;

/// How many times the variance explained by the traffic share the canary's may reach before it
/// counts as erratic: its standard deviation doubled.
pub const TOLERANCE: f64 = 4.0;

/// Alternatives mixed, as multiples of the null's ratio.
const ALTERNATIVES: [f64; 5] = [2.0, 4.0, 8.0, 16.0, 64.0];

/// The variance ratio (canary over stable) the traffic share alone explains.
pub fn explained_ratio(canary_percent: u32) -> f64 {
    let w = f64::from(canary_percent.clamp(1, 100));
    ((100.0 - w) / w).max(1.0)
}

/// The evidence against "the canary's logarithms vary at most `null_ratio` times as much as
/// stable's".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DispersionTest {
    /// The sample variance of the canary's logarithms over stable's.
    pub ratio: f64,
    /// The null's bound on that ratio.
    pub null_ratio: f64,
    /// Natural log of the mixture likelihood ratio (the e-value); rejects at `ln(1/alpha)`.
    pub log_e_value: f64,
}

impl DispersionTest {
    pub fn rejects(&self, alpha: f64) -> bool {
        self.log_e_value >= -alpha.ln()
    }
}

/// The test on the logarithms of the stage's evidence; none before [`MIN_PAIRS`] pairs, once a
/// value was not positive, or while either track has not varied at all (a constant track says
/// nothing about its spread).
pub fn test(evidence: &PairedEvidence, null_ratio: f64) -> Option<DispersionTest> {
    let logs = &evidence.logs;
    if logs.pairs < MIN_PAIRS
        || logs.pairs != evidence.pairs
        || logs.canary_m2 <= 0.0
        || logs.stable_m2 <= 0.0
    {
        return None;
    }
    let ratio = logs.canary_m2 / logs.stable_m2;
    let log_e_value = log_mixture_ratio(ratio, f64::from(logs.pairs - 1), null_ratio);
    log_e_value.is_finite().then_some(DispersionTest {
        ratio,
        null_ratio,
        log_e_value,
    })
}

/// `ln` of the mean over [`ALTERNATIVES`] of `f(x; k * null) / f(x; null)`, where `f(x; l)` is the
/// density of `l` times an F(d, d) variable: `(1/k)^(d/2) * ((1 + x/null) / (1 + x/(k null)))^d`.
pub fn log_mixture_ratio(x: f64, d: f64, null_ratio: f64) -> f64 {
    let terms: Vec<f64> = ALTERNATIVES
        .iter()
        .map(|k| {
            -d / 2.0 * k.ln() + d * ((x / null_ratio).ln_1p() - (x / (k * null_ratio)).ln_1p())
        })
        .collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    max + (sum / ALTERNATIVES.len() as f64).ln()
}

#[cfg(test)]
#[path = "dispersion_tests.rs"]
mod tests;
