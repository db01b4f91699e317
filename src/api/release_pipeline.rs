//! `ReleasePipeline`: the environments a release goes through (staging, then production, ...),
//! each with its CanaryRollout, the soak a release must complete there before the next
//! environment may take it, the gates verified during the soak and the risk budget.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::canary_rollout::Check;
use super::conditions::Condition;
use super::duration::{Duration, NON_ZERO_DURATION_PATTERN};

/// Ordered environments and how a release moves between them.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ReleasePipeline",
    doc = "The environments a release goes through, with soak times, continuous verification, gates and risk budgets.",
    plural = "releasepipelines",
    namespaced,
    status = "ReleasePipelineStatus",
    shortname = "rp",
    category = "sluice",
    printcolumn = r#"{"name":"Release","type":"string","jsonPath":".status.releases[0].name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePipelineSpec {
    /// What makes a release: the images of these containers of each environment's target.
    pub release: ReleaseIdentity,
    /// The environments, in the order a release goes through them.
    #[schemars(length(min = 1, max = 10))]
    pub environments: Vec<Environment>,
}

/// The containers whose images identify a release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseIdentity {
    /// Container names of the targets' pod templates; the release is their images.
    #[schemars(length(min = 1, max = 20), inner(length(min = 1, max = 63)))]
    pub containers: Vec<String>,
}

/// One environment of the pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Name shown in status, events and metrics (e.g. staging, production).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The CanaryRollout that delivers a release in this environment.
    pub rollout_ref: RolloutRef,
    /// Another cluster the rollout lives in, reached with the kubeconfig in a Secret of the
    /// pipeline's namespace (as Argo CD's cluster secrets). A Sluice operator runs there too and
    /// acts on the rollout; this one reads it, pushes images and writes the pipeline's verdict
    /// on it (`sluice.dev/pipeline-gate`). Default: this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// How a release gets here from the environment before (ignored for the first one):
    /// `GitOps` (someone changes this environment's target; its rollout waits until the
    /// release is verified upstream) or `Push` (Sluice sets the target's images itself once
    /// the release is verified upstream).
    #[serde(default)]
    pub promotion: Promotion,
    /// The least time a release must run promoted here, with its gates passing at the end,
    /// before the next environment may take it. 0: none.
    #[serde(default)]
    pub soak: Duration,
    /// What keeps being judged while the release soaks here, and after, until a newer release
    /// replaces it.
    #[serde(default)]
    pub verification: Verification,
    /// What must hold before the next environment may take the release.
    #[serde(default)]
    pub gates: Gates,
    /// How much risk the release may take here; exceeding any part rolls it back.
    #[serde(default)]
    pub risk_budget: RiskBudget,
    /// What happens here to a release revoked after it was promoted here: `Keep` it (the
    /// environments after never take it), or `Rollback` the stable Deployment to the revision
    /// before it.
    #[serde(default)]
    pub on_revoke: OnRevoke,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnRevoke {
    #[default]
    Keep,
    Rollback,
}

/// A CanaryRollout by namespace and name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default: the pipeline's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// A cluster, by the Secret holding its kubeconfig.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in the pipeline's namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding a kubeconfig. Default: `kubeconfig`.
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Promotion {
    #[default]
    GitOps,
    Push,
}

/// Continuous verification of a promoted release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Time between two verifications.
    #[serde(default = "default_verification_interval")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub interval: Duration,
    /// Absolute checks (min and/or max) on the environment; templates as a rollout's checks,
    /// with {{track}} = stable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The release is revoked when this many verifications in a row failed a check.
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 1))]
    pub failure_limit: u32,
}

impl Default for Verification {
    fn default() -> Self {
        Self {
            interval: default_verification_interval(),
            checks: Vec::new(),
            failure_limit: default_failure_limit(),
        }
    }
}

fn default_verification_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_failure_limit() -> u32 {
    2
}

/// Gates between this environment and the next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gates {
    /// SLOBudgets (in the rollout's namespace) whose objectives must all be Meeting; the
    /// rollout's own `sloBudgetRef` is always included. A Critical objective revokes the
    /// release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 253)))]
    pub slo_budgets: Vec<String>,
    /// ParityPolicies (in the rollout's namespace) whose latest evaluation since the release's
    /// promotion must pass: scheduled policies comparing the environment with its reference.
    /// Critical or Emergency revokes; Warning, Insufficient or no evaluation yet holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 253)))]
    pub parity_policies: Vec<String>,
    /// The least volume (requests, trades, ...) the release must have served here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_volume: Option<MinVolume>,
    /// No unresolved incident: no active, unsilenced alert matching these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<IncidentGate>,
}

/// A volume the release must reach in an environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinVolume {
    /// PromQL returning the volume; {{window}} is the time since the release entered the
    /// environment (e.g. `sum(increase(trades_total{namespace="{{namespace}}"}[{{window}}]))`).
    #[schemars(length(min = 1))]
    pub query: String,
    #[schemars(range(min = 0))]
    pub min: f64,
}

/// Alerts that hold a promotion while they are active and not silenced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentGate {
    /// Alertmanager base URL (API v2). Without it, or when it cannot be reached, the
    /// Prometheus `ALERTS{alertstate="firing"}` series is read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub alertmanager: Option<String>,
    /// Label matchers an alert must all satisfy: `name=value`, `name!=value`, `name=~regex`,
    /// `name!~regex`.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub matchers: Vec<String>,
}

/// The risk a release may take in an environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskBudget {
    /// The largest share of traffic (percent) the canary may get before promotion: every stage
    /// of the environment's rollout must stay at or below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_canary_weight: Option<u32>,
    /// The largest share (0-1) of any SLO error budget (of the gates' SLOBudgets) the release
    /// may burn here, from its start in the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub max_error_budget_spend: Option<f64>,
    /// The largest cumulative shortfall of a business metric against stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<ShortfallBudget>,
}

/// A budget on a business metric's cumulative shortfall (revenue, PnL, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShortfallBudget {
    /// PromQL returning the cumulative shortfall since the release entered the environment, in
    /// the query's unit; {{window}} is that time. See the docs for a per-trade example.
    #[schemars(length(min = 1))]
    pub query: String,
    /// The release is rolled back once the shortfall exceeds this.
    #[schemars(range(min = 0))]
    pub max: f64,
    /// The unit, for messages (e.g. USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Observed state, written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePipelineStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The releases seen, newest first (at most 10).
    #[serde(default)]
    pub releases: Vec<ReleaseStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One release across the environments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// Short name from the images, e.g. `checkout:2.1`.
    pub name: String,
    /// Image per release container.
    pub images: BTreeMap<String, String>,
    pub first_seen: Timestamp,
    /// Per environment the release has reached or waits for, in pipeline order.
    #[serde(default)]
    pub environments: Vec<EnvironmentRelease>,
}

/// A release in one environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentRelease {
    pub name: String,
    pub phase: ReleasePhase,
    /// When the phase began.
    pub since: Timestamp,
    /// The rollout's revision (pod-template hash) of the release here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the release entered the environment (its canary started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it was promoted here: the soak counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Timestamp>,
    /// Soak done, e.g. "3d 2h of 7d".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    /// The risk spent so far.
    #[serde(default)]
    pub risk_spent: RiskSpent,
    /// Verifications in a row that failed a check.
    #[serde(default)]
    pub failed_verifications: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<Timestamp>,
    /// What kept the gates closed at the last verification (an alert, a volume short, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
    /// In words: why it waits, what holds it, or how it ended.
    pub message: String,
}

/// Risk spent by a release in an environment, against its budget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskSpent {
    /// The highest canary weight (percent) reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<u32>,
    /// Share of the error budget burnt since the release entered (largest over objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_budget: Option<f64>,
    /// Error budget remaining (smallest over objectives) when the release entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_budget_at_start: Option<f64>,
    /// The business metric's cumulative shortfall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<f64>,
}

/// Where a release stands in one environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReleasePhase {
    /// Not started here: waits for the environment before it.
    Waiting,
    /// Its canary runs here.
    Progressing,
    /// Promoted here; the soak runs or its gates hold.
    Soaking,
    /// Soaked with every gate passing: the next environment may take it.
    Verified,
    /// Promoted here, with nothing more to prove (no soak).
    Promoted,
    /// A verification, gate or budget failed here or upstream: no environment after takes it.
    Revoked,
    /// Its canary was rolled back here.
    RolledBack,
    /// Another release took its place here, or upstream, before it was cleared: it is no longer
    /// verified and no environment after takes it, unless it comes back.
    Superseded,
}

impl ReleasePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "Waiting",
            Self::Progressing => "Progressing",
            Self::Soaking => "Soaking",
            Self::Verified => "Verified",
            Self::Promoted => "Promoted",
            Self::Revoked => "Revoked",
            Self::RolledBack => "RolledBack",
            Self::Superseded => "Superseded",
        }
    }

    /// Whether the next environment may take the release.
    pub fn releases_downstream(self) -> bool {
        matches!(self, Self::Verified | Self::Promoted)
    }
}

impl std::fmt::Display for ReleasePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
