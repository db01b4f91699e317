//! Anytime-valid comparison of the canary with stable for relative checks.
//!
//! Every evaluation adds one pair (canary value, stable value) to the stage's evidence; the
//! check is judged on all pairs of the stage, never on one instant. The judgement is a
//! confidence sequence for the relative change `r` in `mean(canary) = (1 + r) * mean(stable)`:
//! a sequence of intervals that cover the true `r` at every evaluation at once with probability
//! at least `1 - alpha`, so looking after every evaluation costs nothing extra (no peeking
//! problem).
//!
//! The boundary is the Gaussian-mixture asymptotic confidence sequence of Waudby-Smith, Arbour,
//! Sinha, Kennedy and Ramdas ("Time-uniform central limit theory and asymptotic confidence
//! sequences", 2021, Theorem 2.2): after `n` observations of a variable with sample standard
//! deviation `s`, its mean is within `s * width(n)` of the sample mean, with
//! `width(n) = sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * ln(sqrt(n rho^2 + 1) / alpha))` and `rho`
//! tuned to be tightest after `n_opt` observations. Applied, as in Fieller's method, to
//! `d(r) = canary - (1 + r) * stable` for each candidate `r`: the interval is every `r` whose
//! `d(r)` has a mean the sequence does not exclude from 0, which is a quadratic inequality in
//! `1 + r`. Deciding `r > bound` from the interval is then the same as a sequential test of
//! `mean(d(bound)) <= 0`, at level `alpha`.
//!
//! The guarantee is asymptotic (a CLT in time): with few pairs the sample variance is itself
//! uncertain and the plain boundary errs about twice as often as it should. So the boundary is
//! widened by the ratio of the Student t quantile with `n - 1` degrees of freedom to the normal
//! one ([`small_sample_factor`]: 1.8 at 5 pairs, 1.1 at 30, tending to 1), and nothing is
//! decided before [`MIN_PAIRS`] pairs. The property tests in `sequential_tests.rs` measure the
//! false-alarm rate over many looks.

pub use crate::api::canary_rollout::{LogMoments, PairedEvidence};

/// Pairs needed before an interval is given.
pub const MIN_PAIRS: u32 = 5;

impl PairedEvidence {
    pub fn add(&mut self, canary: f64, stable: f64) {
        self.pairs += 1;
        let n = f64::from(self.pairs);
        let dc = welford(&mut self.canary_mean, &mut self.canary_m2, n, canary);
        welford(&mut self.stable_mean, &mut self.stable_m2, n, stable);
        self.co_moment += dc * (stable - self.stable_mean);
        if canary > 0.0 && stable > 0.0 {
            self.logs.add(canary.ln(), stable.ln());
        }
    }

    /// The point estimate of the relative change, `mean(canary) / mean(stable) - 1`.
    pub fn change(&self) -> Option<f64> {
        (self.pairs > 0 && self.stable_mean > 0.0)
            .then(|| self.canary_mean / self.stable_mean - 1.0)
    }
}

impl LogMoments {
    fn add(&mut self, canary: f64, stable: f64) {
        self.pairs += 1;
        let n = f64::from(self.pairs);
        welford(&mut self.canary_mean, &mut self.canary_m2, n, canary);
        welford(&mut self.stable_mean, &mut self.stable_m2, n, stable);
    }
}

/// Welford's update of a running mean and sum of squared deviations with the `n`-th value;
/// returns the value's deviation from the previous mean.
fn welford(mean: &mut f64, m2: &mut f64, n: f64, value: f64) -> f64 {
    let delta = value - *mean;
    *mean += delta / n;
    *m2 += delta * (value - *mean);
    delta
}

/// Where the relative change lies, with confidence `1 - alpha` over the whole stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChangeInterval {
    /// Fewer than [`MIN_PAIRS`] pairs.
    TooFewPairs,
    /// Stable's mean is not distinguishable from 0 (or not positive): no relative change.
    Unbounded,
    /// The change lies in `[lower, upper]`.
    Within { lower: f64, upper: f64 },
}

/// Width factor of the confidence sequence after `n` observations (see the module docs).
pub fn width(n: f64, alpha: f64, n_opt: f64) -> f64 {
    let ln_alpha = alpha.ln();
    let rho2 = (-2.0 * ln_alpha + (-2.0 * ln_alpha + 1.0).ln()) / n_opt;
    let grown = n * rho2 + 1.0;
    (2.0 * grown / (n * n * rho2) * (grown.sqrt() / alpha).ln()).sqrt()
}

/// The confidence interval of the relative change after the evidence so far.
pub fn change_interval(evidence: &PairedEvidence, alpha: f64, n_opt: f64) -> ChangeInterval {
    if evidence.pairs < MIN_PAIRS {
        return ChangeInterval::TooFewPairs;
    }
    let n = f64::from(evidence.pairs);
    let (a_mean, b_mean) = (evidence.canary_mean, evidence.stable_mean);
    let constant = evidence.canary_m2 == 0.0 && evidence.stable_m2 == 0.0;
    if constant && a_mean == 0.0 && b_mean == 0.0 {
        // Both tracks at 0 every time (no errors on either side): no change at all.
        return ChangeInterval::Within {
            lower: 0.0,
            upper: 0.0,
        };
    }
    if b_mean <= 0.0 {
        return ChangeInterval::Unbounded;
    }
    // Sample (co)variances, then the variance of the mean scaled into the boundary.
    let (var_c, var_s, cov) = (
        evidence.canary_m2 / (n - 1.0),
        evidence.stable_m2 / (n - 1.0),
        evidence.co_moment / (n - 1.0),
    );
    let f2 = (width(n, alpha, n_opt) * small_sample_factor(n, alpha)).powi(2);
    // (A - qB)^2 <= f^2 (Vc - 2q C + q^2 Vs), with q = 1 + r.
    let a = b_mean * b_mean - f2 * var_s;
    let b = a_mean * b_mean - f2 * cov;
    let c = a_mean * a_mean - f2 * var_c;
    if a <= 0.0 {
        return ChangeInterval::Unbounded;
    }
    let discriminant = (b * b - a * c).max(0.0);
    let root = discriminant.sqrt();
    ChangeInterval::Within {
        lower: (b - root) / a - 1.0,
        upper: (b + root) / a - 1.0,
    }
}

/// The confidence sequence's interval for the mean of the canary values alone (for evidence
/// whose stable side is unused); none before [`MIN_PAIRS`] values.
pub fn mean_interval(evidence: &PairedEvidence, alpha: f64, n_opt: f64) -> Option<[f64; 2]> {
    if evidence.pairs < MIN_PAIRS {
        return None;
    }
    let n = f64::from(evidence.pairs);
    let deviation = (evidence.canary_m2 / (n - 1.0)).max(0.0).sqrt();
    let half = match deviation > 0.0 {
        true => width(n, alpha, n_opt) * small_sample_factor(n, alpha) * deviation,
        false => 0.0,
    };
    Some([evidence.canary_mean - half, evidence.canary_mean + half])
}

/// How much wider a Student t quantile is than the normal one at the same level, for `n`
/// observations: the sample variance of a few observations is itself uncertain, which the CLT
/// behind the confidence sequence ignores. Tends to 1 as `n` grows.
pub fn small_sample_factor(n: f64, alpha: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
    let p = 1.0 - alpha / 2.0;
    let t = StudentsT::new(0.0, 1.0, n - 1.0).map(|d| d.inverse_cdf(p));
    let z = Normal::standard().inverse_cdf(p);
    match t {
        Ok(t) if t.is_finite() && z > 0.0 => t / z,
        _ => f64::INFINITY,
    }
}

/// The per-test level when `alpha` is spread over `tests` sequential tests of one rollout
/// (Bonferroni: the chance that any of them errs stays at most `alpha`).
pub fn split_alpha(alpha: f64, tests: usize) -> f64 {
    alpha / tests.max(1) as f64
}

#[cfg(test)]
#[path = "sequential_tests.rs"]
mod tests;
