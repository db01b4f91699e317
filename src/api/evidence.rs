//! What the sequential tests have gathered: running moments of (canary, stable) pairs, kept in
//! the status of a CanaryRollout (per stage) and of a ParityPolicy (scheduled evaluations).

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One sequential test's evidence: a relative check's at the current stage, or a statistic of a
/// ParityPolicy's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckEvidence {
    pub name: String,
    #[serde(flatten)]
    pub evidence: PairedEvidence,
    /// For evidence taken from series (a ParityPolicy's statistics): the newest sample, or
    /// window, already counted, so that overlapping windows never count a sample twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Timestamp>,
    /// For the comparison of distributions (`engine::distribution`): both tracks' samples
    /// counted between fixed edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionEvidence>,
    /// For a relative check on a ratio of counters: both tracks' counts and the sequential
    /// test on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountEvidence>,
}

/// Running means, variances and covariance of a check's (canary, stable) pairs at one stage,
/// kept by Welford's updates (exact to rounding however long the stage); see
/// `engine::sequential`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairedEvidence {
    /// Evaluations that gave a number for both tracks.
    pub pairs: u32,
    pub canary_mean: f64,
    pub stable_mean: f64,
    /// Sum of squared deviations from the mean, canary.
    pub canary_m2: f64,
    /// Sum of squared deviations from the mean, stable.
    pub stable_m2: f64,
    /// Sum of products of the two tracks' deviations.
    pub co_moment: f64,
    /// The same moments of the values' natural logarithms, over the pairs in which both values
    /// were positive, for the test of the spread (`engine::dispersion`).
    #[serde(default)]
    pub logs: LogMoments,
}

/// Running means and sums of squared deviations of the logarithms of positive pairs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogMoments {
    pub pairs: u32,
    pub canary_mean: f64,
    pub stable_mean: f64,
    pub canary_m2: f64,
    pub stable_m2: f64,
}

/// Both tracks' samples counted between edges fixed when the comparison started: enough to give
/// their empirical distribution functions at every edge (`engine::distribution`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributionEvidence {
    /// Increasing edges; bin `i` holds the values in `(edges[i-1], edges[i]]`, the last bin
    /// those above every edge.
    pub edges: Vec<f64>,
    /// Candidate samples per bin (one more than the edges).
    pub candidate: Vec<u32>,
    /// Baseline samples per bin.
    pub baseline: Vec<u32>,
    /// The tolerated shift between the tracks, in the values' unit.
    pub tolerance: f64,
}

/// A relative check on a ratio of counters: the events and requests both tracks had at the
/// stage, and the sequential test of each bound (`engine::count_test`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountEvidence {
    /// Evaluations whose counts were added.
    pub evaluations: u32,
    pub canary_events: f64,
    pub canary_requests: f64,
    pub stable_events: f64,
    pub stable_requests: f64,
    /// One per bound of the check (maxIncrease, maxDecrease).
    pub bounds: Vec<BoundTest>,
}

/// The log likelihood ratios of the alternatives on each side of one bound on the rate ratio,
/// summed over the stage's evaluations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundTest {
    /// The bound, as canary's rate over stable's (1 + maxIncrease, or 1 - maxDecrease).
    pub ratio: f64,
    /// Alternatives ratio × 2^(k/4), k = 1..16.
    pub above: Vec<f64>,
    /// Alternatives ratio / 2^(k/4), k = 1..16.
    pub below: Vec<f64>,
}
