//! `ParityPolicy`: the canary (or a candidate series) must track its baseline.
//!
//! Per sample the active difference is `a_t = (candidate_t - baseline_t) / |baseline_t|` in basis
//! points (x 10 000). Over the window three figures are computed: the mean difference (bias),
//! the tracking error (sample standard deviation of `a_t`, n-1) and the root-mean-square
//! difference `sqrt(mean(a_t^2))`. `measure` picks the one the thresholds judge.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::duration::{Duration, NON_ZERO_DURATION_PATTERN};
use super::evidence::CheckEvidence;
use super::prometheus::PrometheusRef;

/// Parity between a candidate and its baseline, judged in basis points.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ParityPolicy",
    doc = "Canary-versus-baseline parity: tracking error in basis points, levels, attribution.",
    namespaced,
    status = "ParityPolicyStatus",
    shortname = "parity",
    category = "sluice",
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".status.lastEvaluation.level"}"#,
    printcolumn = r#"{"name":"Tracking-bps","type":"number","jsonPath":".status.lastEvaluation.trackingErrorBps"}"#,
    printcolumn = r#"{"name":"Samples","type":"integer","jsonPath":".status.lastEvaluation.samples"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ParityPolicySpec {
    /// One PromQL query evaluated per track; {{track}} expands to "canary" or "stable".
    /// Used when the policy is referenced by a CanaryRollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), regex(pattern = r"\{\{track\}\}"))]
    pub query: Option<String>,
    /// Explicit candidate series, for a standalone (scheduled) policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub candidate: Option<String>,
    /// Explicit baseline series, for a standalone (scheduled) policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub baseline: Option<String>,
    /// The active difference is sampled over this window...
    #[serde(default = "default_window")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub window: Duration,
    /// ...one sample every step.
    #[serde(default = "default_step")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub step: Duration,
    /// Which figure the thresholds judge: rms (default; catches bias and noise), stddev (the
    /// classic tracking error) or mean (bias, judged by its absolute value).
    #[serde(default)]
    pub measure: Measure,
    /// Fewer samples than this give level Insufficient, which holds a rollout.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u32,
    /// Annualise the figures (x sqrt(periodsPerYear)); off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annualize: Option<Annualize>,
    /// Levels in basis points.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// What each level does to a rollout that references this policy.
    #[serde(default)]
    pub actions: Actions,
    /// A level counts once it is seen this many evaluations in a row.
    #[serde(default = "default_consecutive_breaches")]
    #[schemars(range(min = 1))]
    pub consecutive_breaches: u32,
    /// Attribution of the difference; the remainder is reported as residual.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Cron expression (5 fields, UTC) for standalone evaluation, e.g. "0 6,18 * * *".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub schedule: Option<String>,
    /// Prometheus to query for standalone evaluation. Default: the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
    /// A statistical comparison of the candidate and baseline samples, besides the thresholds
    /// (off unless set). Sequential by default: confidence sequences on the mean active
    /// difference and, with `good` and `total`, on the bad proportions, over every evaluation
    /// of a rollout's stage (or every scheduled evaluation since the spec last changed).
    /// `method: FixedHorizon` runs Mann-Whitney U with a Hodges-Lehmann shift and a
    /// two-proportion z-test on each evaluation's window alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<StatisticsSpec>,
    /// Parity per group (per symbol, say): the query keeps these labels and returns one series
    /// per group; each group is judged on its own, and an aggregate of the groups' active
    /// differences too. A breach in any group counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupsSpec>,
}

/// How the query's series are grouped and the groups aggregated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupsSpec {
    /// Labels that tell the groups apart, e.g. [symbol]; every series of the query must carry
    /// them (aggregate with `sum by (symbol) (...)`).
    #[schemars(length(min = 1, max = 8), inner(length(min = 1, max = 63)))]
    pub by: Vec<String>,
    /// PromQL giving each group's weight in the aggregate (one series per group with the `by`
    /// labels, e.g. notional per symbol; the mean over the window is used; {{track}} is
    /// "stable"). Without it every group weighs the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub weight_query: Option<String>,
    /// Most groups judged: a query returning more holds the rollout (level Insufficient) with
    /// a reason naming the count.
    #[serde(default = "default_max_groups")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_groups: u32,
    /// Thresholds of some groups, in place of the policy's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<GroupOverride>,
}

/// Thresholds for the groups whose labels match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupOverride {
    /// Label values a group must have, e.g. {symbol: AAPL}.
    #[schemars(extend("minProperties" = 1))]
    pub group: BTreeMap<String, String>,
    pub thresholds: Thresholds,
}

fn default_max_groups() -> u32 {
    100
}

/// Settings of the statistical comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticsSpec {
    /// Sequential (anytime-valid over a rollout) or FixedHorizon (each evaluation on its own).
    #[serde(default)]
    pub method: StatisticsMethod,
    /// Confidence of the shift's interval (Kayenta's judge uses 0.98); the tests are significant
    /// below p = 1 - confidence. Sequential: `1 - confidence` bounds the chance of a false
    /// failure over the whole rollout (every stage, every evaluation).
    #[serde(default = "default_confidence")]
    #[schemars(range(min = 0.5, max = 0.9999))]
    pub confidence: f64,
    /// Tolerated shift, as a fraction of the baseline's median (Kayenta uses 0.25): the
    /// comparison fails when the whole interval lies beyond it. Sequential: the tolerated mean
    /// active difference (0.25 = 2 500 bps), and the tolerated relative increase of the bad
    /// proportion.
    #[serde(default = "default_tolerance")]
    #[schemars(range(min = 0))]
    pub tolerance: f64,
    /// The level a failed comparison raises the evaluation to (at least).
    #[serde(default = "default_statistics_level")]
    pub level: ParityLevel,
    /// Good events per track ({{track}}), for a two-proportion test with `total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub good: Option<String>,
    /// All events per track ({{track}}), for a two-proportion test with `good`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub total: Option<String>,
}

/// How the statistical comparison looks at the evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StatisticsMethod {
    /// Confidence sequences over all evaluations: looking at every evaluation keeps the
    /// false-failure rate at `1 - confidence` over the whole rollout.
    #[default]
    Sequential,
    /// Mann-Whitney U, Hodges-Lehmann and a two-proportion z-test on each evaluation's window:
    /// each look errs with probability `1 - confidence`, so a long rollout's chance of a false
    /// failure grows with its evaluations.
    FixedHorizon,
}

fn default_confidence() -> f64 {
    0.98
}
fn default_tolerance() -> f64 {
    0.25
}
fn default_statistics_level() -> ParityLevel {
    ParityLevel::Critical
}

/// Which figure the thresholds judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    #[default]
    Rms,
    Stddev,
    Mean,
}

impl Measure {
    /// The name as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rms => "rms",
            Self::Stddev => "stddev",
            Self::Mean => "mean",
        }
    }
}

/// Annualisation of the figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Annualize {
    /// Periods per year, e.g. 252 for daily returns.
    #[schemars(range(min = 1))]
    pub periods_per_year: f64,
}

/// Thresholds in basis points; warning < critical < emergency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    #[serde(default = "default_warning")]
    #[schemars(range(min = 0))]
    pub warning_bps: f64,
    #[serde(default = "default_critical")]
    #[schemars(range(min = 0))]
    pub critical_bps: f64,
    #[serde(default = "default_emergency")]
    #[schemars(range(min = 0))]
    pub emergency_bps: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning_bps: default_warning(),
            critical_bps: default_critical(),
            emergency_bps: default_emergency(),
        }
    }
}

/// What a level does to a rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Actions {
    #[serde(default = "default_warning_action")]
    pub warning: ParityAction,
    #[serde(default = "default_critical_action")]
    pub critical: ParityAction,
    #[serde(default = "default_emergency_action")]
    pub emergency: ParityAction,
}

impl Default for Actions {
    fn default() -> Self {
        Self {
            warning: default_warning_action(),
            critical: default_critical_action(),
            emergency: default_emergency_action(),
        }
    }
}

/// Effect of a parity level on a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ParityAction {
    /// Report only.
    Ignore,
    /// Hold the stage while the level lasts.
    Hold,
    /// Roll the canary back.
    Rollback,
    /// Roll back and freeze the CanaryRollout until a person clears it.
    RollbackAndFreeze,
}

/// A component of the difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Component {
    /// Name shown in status and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// PromQL with {{track}}: this component's contribution per track, in the same unit as the
    /// policy's query.
    #[schemars(length(min = 1), regex(pattern = r"\{\{track\}\}"))]
    pub query: String,
}

fn default_window() -> Duration {
    Duration::from_secs(1800)
}
fn default_step() -> Duration {
    Duration::from_secs(60)
}
fn default_min_samples() -> u32 {
    20
}
fn default_consecutive_breaches() -> u32 {
    2
}
fn default_warning() -> f64 {
    20.0
}
fn default_critical() -> f64 {
    50.0
}
fn default_emergency() -> f64 {
    100.0
}
fn default_warning_action() -> ParityAction {
    ParityAction::Hold
}
fn default_critical_action() -> ParityAction {
    ParityAction::Rollback
}
fn default_emergency_action() -> ParityAction {
    ParityAction::RollbackAndFreeze
}

/// Observed state, written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParityPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<ParityEvaluation>,
    /// Evaluations in a row at or above warning.
    #[serde(default)]
    pub consecutive_breaches: u32,
    /// The last 30 evaluations, newest last.
    #[serde(default)]
    pub history: Vec<ParityEvaluation>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the sequential statistics of scheduled evaluations have gathered since the spec
    /// last changed (generation `observedGeneration`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statistics_evidence: Vec<CheckEvidence>,
}

/// Parity level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ParityLevel {
    Pass,
    Warning,
    Critical,
    Emergency,
    /// Fewer samples than minSamples.
    Insufficient,
}

impl ParityLevel {
    /// The name as status and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "Pass",
            Self::Warning => "Warning",
            Self::Critical => "Critical",
            Self::Emergency => "Emergency",
            Self::Insufficient => "Insufficient",
        }
    }
}

impl std::fmt::Display for ParityLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parity evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParityEvaluation {
    pub time: Timestamp,
    /// Sample standard deviation (n-1) of the active difference, bps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_error_bps: Option<f64>,
    /// Mean active difference (bias), bps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_difference_bps: Option<f64>,
    /// Root-mean-square active difference, bps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rms_difference_bps: Option<f64>,
    /// Samples used.
    pub samples: u32,
    pub level: ParityLevel,
    /// Attribution of the mean difference.
    #[serde(default)]
    pub components: Vec<ComponentAttribution>,
    /// Mean difference not explained by the components, bps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_bps: Option<f64>,
    /// The fixed-horizon statistical comparison, when `spec.statistics` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<StatisticsResult>,
    /// The sequential statistical comparison, when `spec.statistics` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialStatistics>,
    /// With `spec.groups`: the figures above are the aggregate's; these are the groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupsSummary>,
}

/// The groups of one evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupsSummary {
    /// Groups judged.
    pub count: u32,
    /// Groups at Warning or above.
    pub breaching: u32,
    /// The worst groups, worst first (at most 10): by level, then by the judged figure.
    #[serde(default)]
    pub worst: Vec<GroupParity>,
}

/// One group's parity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupParity {
    /// The group's labels, "symbol=AAPL".
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_error_bps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_difference_bps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rms_difference_bps: Option<f64>,
    pub samples: u32,
    pub level: ParityLevel,
    /// Its share of the aggregate (0-1).
    pub weight: f64,
}

/// Outcome of the sequential comparison over the evidence so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialStatistics {
    /// The mean active difference, as a fraction (x 10 000 for bps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<SequentialComparison>,
    /// The relative change of the bad proportion (1 - good/total), candidate over baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportions: Option<SequentialComparison>,
    /// The candidate's values against the baseline's, as distributions (stochastic order and
    /// equality up to the tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionComparison>,
    /// Confidence of each interval (the policy's, spread over stages and tests).
    pub confidence: f64,
    pub tolerance: f64,
    /// Whether an interval lies wholly beyond the tolerance.
    pub failed: bool,
}

/// One sequential comparison: its estimate, interval and evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialComparison {
    pub estimate: f64,
    /// The confidence sequence's interval now; none while the evidence is too thin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// Paired samples (shift) or windows (proportions) counted.
    pub samples: u32,
}

/// The sequential comparison of the tracks' distributions: how far the candidate's empirical
/// distribution function lies beyond the baseline's shifted by the tolerance, each way, against
/// the time-uniform band both samples' sizes allow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributionComparison {
    /// Largest `F_baseline(x - tolerance) - F_candidate(x)`: the candidate's values lie above.
    pub above: f64,
    /// Largest `F_candidate(x) - F_baseline(x + tolerance)`: the candidate's values lie below.
    pub below: f64,
    /// The value `x` at which the larger of the two is reached.
    pub at: f64,
    /// The sum of both tracks' time-uniform bands: a gap beyond it is established.
    pub band: f64,
    /// The tolerated shift, in the values' unit (the policy's tolerance times the baseline's
    /// median when the comparison started).
    pub tolerance: f64,
    /// Samples counted per track.
    pub samples: u32,
}

/// Outcome of the statistical comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticsResult {
    /// Two-sided Mann-Whitney p-value (normal approximation, continuity-corrected).
    pub mann_whitney_p: f64,
    /// Hodges-Lehmann shift (candidate - baseline), in the query's unit.
    pub shift: f64,
    /// The shift's confidence interval.
    pub shift_lower: f64,
    pub shift_upper: f64,
    pub confidence: f64,
    /// Median of the baseline samples.
    pub baseline_median: f64,
    /// False when the whole interval lies beyond tolerance x |baseline median|.
    pub within_tolerance: bool,
    /// Two-proportion test on good/total, when configured and data was there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportions: Option<ProportionResult>,
    /// Whether the comparison raised the level.
    pub failed: bool,
}

/// Good/total proportions of both tracks and the z-test between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProportionResult {
    pub candidate_rate: f64,
    pub baseline_rate: f64,
    pub z: f64,
    pub p_value: f64,
}

/// One component's share of the difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentAttribution {
    pub name: String,
    pub difference_bps: f64,
    /// Fraction of the total mean difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}
