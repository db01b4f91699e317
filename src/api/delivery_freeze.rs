//! `DeliveryFreeze`: stops the line. While it is in force, the CanaryRollouts it selects start no
//! rollout; in-flight ones hold (`action: Hold`) or roll back at once (`action: Rollback`, the
//! kill switch).

use jiff::Timestamp;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::duration::{Duration, NON_ZERO_DURATION_PATTERN};

/// A freeze of the rollouts it selects, now or in recurring windows.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "DeliveryFreeze",
    doc = "Freezes the CanaryRollouts it selects: no rollout starts, in-flight ones hold or roll back.",
    plural = "deliveryfreezes",
    namespaced,
    status = "DeliveryFreezeStatus",
    shortname = "freeze",
    category = "sluice",
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Active","type":"boolean","jsonPath":".status.active"}"#,
    printcolumn = r#"{"name":"Affected","type":"integer","jsonPath":".status.affectedCount"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFreezeSpec {
    /// Hold: no rollout starts and in-flight ones stay at their stage. Rollback: no rollout
    /// starts and every in-flight canary rolls back (the kill switch).
    #[serde(default)]
    pub action: FreezeAction,
    /// Why, for people: shown in the rollouts' status, events and notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// Every namespace the operator watches instead of this one. Honoured only for a
    /// DeliveryFreeze in the operator's freeze namespace (`--freeze-namespace`).
    #[serde(default)]
    pub all_namespaces: bool,
    /// Only the CanaryRollouts with these labels. Default: all in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<RolloutSelector>,
    /// When the freeze is in force: during any of these windows. None: from now until the
    /// DeliveryFreeze is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<FreezeWindow>,
}

/// A recurring window: it opens at every time the schedule fires and lasts `duration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreezeWindow {
    /// Cron expression (minute hour day-of-month month day-of-week, or with seconds first),
    /// e.g. "0 18 * * FRI" for Fridays at 18:00.
    #[schemars(length(min = 1))]
    pub schedule: String,
    /// How long each window lasts, e.g. "62h".
    #[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]
    pub duration: Duration,
    /// IANA time zone the schedule is read in, e.g. "Europe/London". Default: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A Kubernetes label selector on CanaryRollouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// `key operator values`, as in any Kubernetes label selector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SelectorRequirement {
    #[schemars(length(min = 1))]
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl RolloutSelector {
    pub fn to_label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.match_labels.clone()),
            match_expressions: Some(
                self.match_expressions
                    .iter()
                    .map(|r| LabelSelectorRequirement {
                        key: r.key.clone(),
                        operator: r.operator.clone(),
                        values: (!r.values.is_empty()).then(|| r.values.clone()),
                    })
                    .collect(),
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FreezeAction {
    #[default]
    Hold,
    Rollback,
}

impl FreezeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "Hold",
            Self::Rollback => "Rollback",
        }
    }
}

/// What the freeze does now, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFreezeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// True while the freeze is in force.
    #[serde(default)]
    pub active: bool,
    /// When the current window closes (None while inactive, or with no windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<Timestamp>,
    /// When the next window opens, while inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window_at: Option<Timestamp>,
    /// How many rollouts it affects now.
    #[serde(default)]
    pub affected_count: u32,
    /// The rollouts it affects now (the first 50 by namespace and name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<AffectedRollout>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A rollout the freeze affects, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AffectedRollout {
    pub namespace: String,
    pub name: String,
    /// The rollout's phase as the freeze found it (Frozen, Progressing, RolledBack, ...).
    pub phase: String,
}
