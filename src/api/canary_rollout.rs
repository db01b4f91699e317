//! `CanaryRollout`: move traffic to a new pod template of a Deployment stage by stage, judging
//! it against Prometheus at every interval, and promote it or roll it back.
//!
//! The schema rejects what Kubernetes 1.20 can check without CEL (ranges, enums, duration
//! patterns, required fields, non-empty lists); the reconciler checks the rest (increasing
//! weights, referenced objects, PromQL syntax) and reports it as phase `Invalid`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::duration::{Duration, NON_ZERO_DURATION_PATTERN};
pub use super::evidence::{CheckEvidence, LogMoments, PairedEvidence};
use super::parity_policy::{GroupParity, ParityLevel};
pub use super::prometheus::PrometheusRef;
use super::slo_budget::ObjectiveState;

/// Desired behaviour of a canary rollout of one Deployment.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "CanaryRollout",
    doc = "A staged canary rollout of one Deployment, judged against Prometheus at every interval.",
    namespaced,
    status = "CanaryRolloutStatus",
    shortname = "cr",
    shortname = "canary",
    category = "sluice",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Stage","type":"integer","jsonPath":".status.stage"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.lastEvaluation.verdict"}"#,
    printcolumn = r#"{"name":"Canary","type":"string","priority":1,"jsonPath":".status.canaryRevision"}"#,
    printcolumn = r#"{"name":"Stable","type":"string","priority":1,"jsonPath":".status.stableRevision"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutSpec {
    /// The user's Deployment. Its pod template is the candidate; Sluice only ever changes its
    /// replica count, never its template.
    pub target_ref: TargetRef,
    /// The Service that fronts the target. Sluice creates `<name>-stable` and `<name>-canary`
    /// beside it with the same port.
    pub service: ServiceRef,
    /// How traffic is split between stable and canary: exactly one of `gatewayAPI` or `replicas`.
    pub traffic_routing: TrafficRouting,
    /// Traffic stages, in order: shadow stages (`mirror`) first, then weights strictly
    /// increasing. Default: 1, 5, 25, 100.
    #[serde(default = "default_stages")]
    #[schemars(length(min = 1, max = 101))]
    pub stages: Vec<Stage>,
    /// How each stage is judged.
    #[serde(default)]
    pub analysis: Analysis,
    /// A canary whose pods are not all available this long after it was scaled up is rolled back.
    #[serde(default = "default_progress_deadline")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub progress_deadline: Duration,
    /// Hold the rollout where it is: no stage advances, no promotion; rollback on failed analysis
    /// still happens.
    #[serde(default)]
    pub paused: bool,
}

/// The Deployment a rollout manages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Kind of the target. Only Deployment is supported.
    #[serde(default)]
    pub kind: TargetKind,
    /// Name of the Deployment, in the rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TargetKind {
    #[default]
    Deployment,
}

/// The user's Service for the target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the user's Service; the stable and canary Services are named after it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Service port clients use.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Container port the pods listen on. Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
}

/// Exactly one router.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct TrafficRouting {
    /// Weights on the backendRefs of Gateway API HTTPRoutes.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,
    /// No router: the canary weight is approximated by the canary's share of ready replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasRouting>,
}

/// Gateway API routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    /// HTTPRoutes in the rollout's namespace whose backendRefs Sluice weights. A rule that points
    /// at the user's Service gets the stable/canary pair instead, and it back on hand-back.
    #[schemars(length(min = 1), inner(length(min = 1, max = 253)))]
    pub http_routes: Vec<String>,
}

/// Replica-ratio routing (no options yet).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicasRouting {}

/// One traffic stage: a weight, or (shadow stage) a mirror.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Percent of traffic sent to the canary at this stage. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub weight: u32,
    /// Shadow stage: the canary serves no user (weight 0) and receives a copy of this percent
    /// of the stable track's requests, through the Gateway API `RequestMirror` filter; the
    /// responses to the copies are discarded. Needs the gatewayAPI router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub mirror: Option<u32>,
    /// Least time spent at this stage before it may pass. Default: the analysis interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Duration>,
    /// Least number of canary samples (from `analysis.sampleCountQuery`) seen at this stage
    /// before it may pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<u64>,
    /// Longest time the stage may be held for want of evidence (a relative check not yet
    /// established either way, no data, a shared failure); then `analysis.onMaxDuration`
    /// decides. Default: no limit (the stage holds, saying why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
}

/// How a stage is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Time between two evaluations.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub interval: Duration,
    /// The rollout is rolled back when this many evaluations in a row have failed (1 = the first).
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 1))]
    pub failure_limit: u32,
    /// What an empty or NaN query result means: Hold (wait, never promote), Fail, or Pass.
    #[serde(default)]
    pub no_data: NoDataPolicy,
    /// Prometheus to query. Default: the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
    /// PromQL giving the number of canary samples (requests) in the last interval; drives the
    /// stages' `minSamples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub sample_count_query: Option<String>,
    /// Checks evaluated on every interval.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// ParityPolicy (same namespace) judging canary against baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity_policy_ref: Option<LocalRef>,
    /// SLOBudget (same namespace) gating the rollout on the error budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_budget_ref: Option<LocalRef>,
    /// Confidence of the relative checks' judgement over the whole rollout: the chance that a
    /// canary within every maxIncrease/maxDecrease is rolled back by them, however many
    /// evaluations the rollout takes, is at most 1 - confidence (spread over the stages and
    /// bounds). The same confidence stands behind a relative check's pass.
    #[serde(default = "default_confidence")]
    #[schemars(range(min = 0.5, max = 0.999999))]
    pub confidence: f64,
    /// What a stage does when it reaches its `maxDuration` still held.
    #[serde(default)]
    pub on_max_duration: MaxDurationAction,
    /// A check whose query has {{track}} is also run on the stable track when the canary fails
    /// it; when stable fails too (an incident both share), the evaluation holds instead of
    /// counting toward failureLimit.
    #[serde(default)]
    pub shared_failures: SharedFailures,
}

/// What a stage held until its `maxDuration` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MaxDurationAction {
    /// Roll back: what was not established for the canary counts against it.
    #[default]
    Rollback,
    /// Pass the stage, provided no check established anything against the canary (a failing
    /// evaluation still counts toward failureLimit as usual).
    Promote,
}

/// How checks failing on both tracks are treated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedFailures {
    /// Hold, rather than fail, while stable fails the same check. Default true.
    #[serde(default = "default_true")]
    pub hold: bool,
    /// Longest a shared failure may hold; after it the failures count again. Default 10m.
    #[serde(default = "default_shared_hold")]
    pub max_hold: Duration,
}

impl Default for SharedFailures {
    fn default() -> Self {
        Self {
            hold: true,
            max_hold: default_shared_hold(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_shared_hold() -> Duration {
    Duration::from_secs(600)
}

fn default_confidence() -> f64 {
    0.99
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            failure_limit: default_failure_limit(),
            no_data: NoDataPolicy::default(),
            prometheus: None,
            sample_count_query: None,
            checks: Vec::new(),
            parity_policy_ref: None,
            slo_budget_ref: None,
            confidence: default_confidence(),
            on_max_duration: MaxDurationAction::default(),
            shared_failures: SharedFailures::default(),
        }
    }
}

/// What an empty or NaN query result means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NoDataPolicy {
    /// Hold the stage: neither pass nor fail; never promote without data.
    #[default]
    Hold,
    /// Count the evaluation as failed.
    Fail,
    /// Count the check as passed.
    Pass,
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalRef {
    /// Object name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A PromQL check with fixed bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Name shown in status and events.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// PromQL returning one number. Templates: {{namespace}}, {{target}}, {{service}},
    /// {{interval}}, {{track}}, {{canaryRevision}}, {{stableRevision}}.
    #[schemars(length(min = 1))]
    pub query: String,
    /// The check fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The check fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Relative to stable: the query (with {{track}}) is also evaluated on the stable track, and
    /// the check fails when the canary's value is higher than stable's by more than this
    /// fraction (0.10 = 10 %), e.g. for latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_increase: Option<f64>,
    /// Relative to stable: fails when the canary's value is lower than stable's by more than
    /// this fraction (0.03 = 3 %), e.g. for a success or accuracy rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub max_decrease: Option<f64>,
}

impl Stage {
    /// Whether the stage is a shadow stage: the canary only sees copies of requests.
    pub fn is_shadow(&self) -> bool {
        self.mirror.is_some()
    }

    /// The canary's share of the requests both tracks handle, in percent: its weight, or for a
    /// shadow stage copying `m` % of stable's requests, `100·m / (100 + m)`.
    pub fn canary_share_percent(&self) -> u32 {
        match self.mirror {
            Some(mirror) if self.weight == 0 => {
                let mirror = mirror.min(100);
                (100 * mirror + (100 + mirror) / 2) / (100 + mirror)
            }
            _ => self.weight,
        }
    }

    /// "25%", or "shadow 100%" for a shadow stage.
    pub fn describe(&self) -> String {
        match self.mirror {
            Some(mirror) => format!("shadow {mirror}%"),
            None => format!("{}%", self.weight),
        }
    }
}

impl Check {
    /// Whether the check compares the canary with the stable track.
    pub fn is_relative(&self) -> bool {
        self.max_increase.is_some() || self.max_decrease.is_some()
    }
}

fn default_stages() -> Vec<Stage> {
    [1, 5, 25, 100]
        .into_iter()
        .map(|weight| Stage {
            weight,
            mirror: None,
            pause: None,
            min_samples: None,
            max_duration: None,
        })
        .collect()
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_failure_limit() -> u32 {
    2
}

fn default_progress_deadline() -> Duration {
    Duration::from_secs(600)
}

/// Observed state, written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutStatus {
    /// The metadata.generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the rollout is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Index into spec.stages of the current stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// Percent of traffic the canary receives now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<u32>,
    /// Percent of the stable track's requests copied to the canary now (a shadow stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_mirror: Option<u32>,
    /// Hash of the pod template running on the stable Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The stable revision before the current one. Its template is kept in the
    /// ControllerRevision `<rollout>-<revision>`, so a promotion a ReleasePipeline revokes can be
    /// undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable_revision: Option<String>,
    /// Hash of the target's pod template under analysis (or last analysed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// When the current stage started (its weight was set); absent while the canary's pods are
    /// not yet available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Timestamp>,
    /// When the rollout of canaryRevision started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Timestamp>,
    /// Canary samples counted at the current stage (sum of sampleCountQuery over its evaluations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_samples: Option<f64>,
    /// Failed evaluations in a row.
    #[serde(default)]
    pub failed_evaluations: u32,
    /// The latest evaluation and its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<Evaluation>,
    /// A sentence on what is happening and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Ready, Reconciling, Stalled (kstatus) and Promoted.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last 10 rollouts, newest last.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Values of the request annotations (sluice.dev/promote, abort, retry, unfreeze) already
    /// acted on, so a request stays in Git without being repeated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handled_requests: BTreeMap<String, String>,
    /// Replicas each track runs at full size, taken from the target when it was adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// The phase to resume when an Invalid spec is fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_phase: Option<Phase>,
    /// What the relative checks have gathered at the current stage: one entry per check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_evidence: Vec<CheckEvidence>,
    /// Since when the canary's failures have been shared by stable, while they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_failure_since: Option<Timestamp>,
}

impl CanaryRolloutStatus {
    /// The canary's traffic now: "5%", or "shadow 50%" while it gets a copy of stable's
    /// requests; None before any rollout set a weight.
    pub fn canary_traffic(&self) -> Option<String> {
        match (self.canary_mirror, self.canary_weight) {
            (Some(mirror), _) => Some(format!("shadow {mirror}%")),
            (None, weight) => weight.map(|w| format!("{w}%")),
        }
    }
}

/// Where a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Adopted; no candidate differs from stable.
    Idle,
    /// A candidate is being analysed stage by stage.
    Progressing,
    /// `spec.paused` holds the rollout.
    Paused,
    /// Analysis passed; the stable Deployment is taking the candidate template.
    Promoting,
    /// The last candidate was promoted.
    Succeeded,
    /// The last candidate was rolled back; its template stays on the target.
    RolledBack,
    /// No rollout may start (error budget or parity emergency).
    Frozen,
    /// The candidate waits for its ReleasePipeline: the release has not cleared the
    /// environment before (see the Waiting condition).
    Waiting,
    /// The spec or what it refers to is wrong; see the Stalled condition.
    Invalid,
}

/// Outcome of one evaluation or check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not enough data to judge; the stage holds.
    NoData,
}

/// One evaluation of the analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// When it ran.
    pub time: Timestamp,
    /// Overall verdict.
    pub verdict: Verdict,
    /// Canary samples counted at this stage, when `sampleCountQuery` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<f64>,
    /// Each check with its value.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// The ParityPolicy's verdict, when one is referenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<ParityVerdict>,
    /// The SLOBudget's verdict, when one is referenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloVerdict>,
    /// Why the verdict is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A check's value and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    /// The observed value; absent when the query returned no data. For a relative check, the
    /// canary's mean over the stage's evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The stable track's value: for a relative check its mean over the stage's evaluations,
    /// for a shared failure its current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// For a relative check: the estimated change, mean(canary) / mean(stable) - 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<f64>,
    /// For a relative check: the change's confidence interval, valid at every evaluation of the
    /// stage at once (a confidence sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_interval: Option<[f64; 2]>,
    /// For a relative check: the evaluations of the stage that gave both tracks a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations: Option<u32>,
    pub verdict: Verdict,
    /// Why, when it did not pass (query error, no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Parity figures carried into a rollout's evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParityVerdict {
    /// The figure the thresholds judge (the policy's `measure`, rms by default), in basis points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_error_bps: Option<f64>,
    /// Mean active difference (bias), in basis points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_difference_bps: Option<f64>,
    /// Samples the figures were computed from.
    #[serde(default)]
    pub samples: u32,
    /// The level that counts (after consecutiveBreaches).
    pub level: ParityLevel,
    /// Evaluations in a row at Warning or above.
    #[serde(default)]
    pub consecutive_breaches: u32,
    /// With the policy's `groups`: the worst groups (at most 5), worst first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worst_groups: Vec<GroupParity>,
}

/// SLO figures carried into a rollout's evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloVerdict {
    /// Lowest budget remaining over the objectives, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<f64>,
    /// The worst state over the objectives.
    pub level: ObjectiveState,
}

/// One finished rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Pod-template hash of the candidate.
    pub revision: String,
    pub result: RolloutResult,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// Why it ended this way.
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutResult {
    Promoted,
    RolledBack,
}
