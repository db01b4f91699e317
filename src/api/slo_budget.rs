//! `SLOBudget`: service-level objectives over a window, their error budgets and burn rates,
//! used to freeze releases and to abort canaries that burn the budget too fast.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::duration::{Duration, NON_ZERO_DURATION_PATTERN};
use super::prometheus::PrometheusRef;

/// Error budgets for a service.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "SLOBudget",
    doc = "Service-level objectives with error budgets and multi-window burn rates that gate rollouts.",
    plural = "slobudgets",
    namespaced,
    status = "SLOBudgetStatus",
    shortname = "slo",
    category = "sluice",
    printcolumn = r#"{"name":"Compliance","type":"number","jsonPath":".status.complianceScore"}"#,
    printcolumn = r#"{"name":"Frozen","type":"boolean","jsonPath":".status.frozen"}"#,
    printcolumn = r#"{"name":"Window","type":"string","jsonPath":".spec.window"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SLOBudgetSpec {
    /// The SLO window the budget is computed over.
    #[serde(default = "default_window")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub window: Duration,
    /// Time between two evaluations.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub interval: Duration,
    /// The objectives.
    #[schemars(length(min = 1))]
    pub objectives: Vec<Objective>,
    /// Multi-window burn-rate pairs; a pair fires when both windows burn faster than
    /// factor x (1 - target). Default: the SRE-workbook pairs.
    #[serde(default = "default_burn_rate_alerts")]
    pub burn_rate_alerts: Vec<BurnRatePair>,
    /// How the budget gates rollouts.
    #[serde(default)]
    pub policy: BudgetPolicy,
    /// Prometheus to query. Default: the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
}

/// One objective: good / total over the window must stay at or above target percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Objective {
    /// Name shown in status, events and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Target in percent, strictly between 0 and 100 (e.g. 99.5).
    #[schemars(
        range(min = 0, max = 100),
        extend("exclusiveMinimum" = true, "exclusiveMaximum" = true)
    )]
    pub target: f64,
    /// PromQL for good events per second; {{window}} is replaced by each evaluated window and
    /// {{track}} by the track for canary-scoped evaluation.
    #[schemars(length(min = 1))]
    pub good: String,
    /// PromQL for all events per second, same templates.
    #[schemars(length(min = 1))]
    pub total: String,
}

/// A multi-window burn-rate alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BurnRatePair {
    /// Long window.
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub long: Duration,
    /// Short window; must be shorter than long.
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub short: Duration,
    /// Burn-rate factor.
    #[schemars(range(min = 0), extend("exclusiveMinimum" = true))]
    pub factor: f64,
    /// Critical or Warning.
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Severity {
    Warning,
    Critical,
}

/// How the budget gates rollouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPolicy {
    /// No new rollout starts while less than this fraction of the budget is left.
    #[serde(default = "default_freeze_below")]
    #[schemars(range(min = 0, max = 1))]
    pub freeze_below_remaining: f64,
    /// A canary that burns more than this fraction of the budget is rolled back.
    #[serde(default = "default_canary_max_spend")]
    #[schemars(range(min = 0, max = 1))]
    pub canary_max_budget_spend: f64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            freeze_below_remaining: default_freeze_below(),
            canary_max_budget_spend: default_canary_max_spend(),
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_freeze_below() -> f64 {
    0.10
}
fn default_canary_max_spend() -> f64 {
    0.05
}

/// The SRE workbook's multi-window, multi-burn-rate pairs.
pub fn default_burn_rate_alerts() -> Vec<BurnRatePair> {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let minutes = |m: u64| Duration::from_secs(m * 60);
    vec![
        BurnRatePair {
            long: hours(1),
            short: minutes(5),
            factor: 14.4,
            severity: Severity::Critical,
        },
        BurnRatePair {
            long: hours(6),
            short: minutes(30),
            factor: 6.0,
            severity: Severity::Critical,
        },
        BurnRatePair {
            long: hours(24),
            short: hours(2),
            factor: 3.0,
            severity: Severity::Warning,
        },
        BurnRatePair {
            long: hours(72),
            short: hours(6),
            factor: 1.0,
            severity: Severity::Warning,
        },
    ]
}

/// Observed state, written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SLOBudgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the objectives were last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation_time: Option<Timestamp>,
    /// Per objective.
    #[serde(default)]
    pub objectives: Vec<ObjectiveStatus>,
    /// 0-100 over the objectives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_score: Option<f64>,
    /// True while new rollouts are held by this budget.
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One objective's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveStatus {
    pub name: String,
    /// good / total over the window, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sli: Option<f64>,
    /// Fraction of the error budget left, may be negative once overspent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<f64>,
    /// Burn rate per window, keyed by the window ("1h", "5m", ...).
    #[serde(default)]
    pub burn_rates: BTreeMap<String, f64>,
    pub state: ObjectiveState,
}

/// Meeting, AtRisk, Violated or Critical (see the docs for the exact rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ObjectiveState {
    Meeting,
    AtRisk,
    Violated,
    Critical,
    /// No data to judge.
    Unknown,
}

impl ObjectiveState {
    /// The name as status and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meeting => "Meeting",
            Self::AtRisk => "AtRisk",
            Self::Violated => "Violated",
            Self::Critical => "Critical",
            Self::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ObjectiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
