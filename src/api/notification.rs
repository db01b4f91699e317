//! `Notification`: sends the events Sluice records on the objects of its namespace (rollouts,
//! pipelines, parity policies, SLO budgets, freezes) to webhooks, Slack and Telegram.

use jiff::Timestamp;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::duration::{DURATION_PATTERN, Duration};

/// A subscription to Sluice's events in this namespace, and where to send them.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Notification",
    doc = "Sends Sluice's events on the objects of this namespace to webhooks, Slack and Telegram.",
    plural = "notifications",
    namespaced,
    status = "NotificationStatus",
    shortname = "notify",
    category = "sluice",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSpec {
    /// Which events. Default: every event of every kind.
    #[serde(default)]
    pub subscribe: Subscription,
    /// Where to send them; each event goes to every sink.
    #[schemars(length(min = 1, max = 10))]
    pub sinks: Vec<Sink>,
    /// At most this many messages per minute to each sink; more wait in the sink's buffer.
    #[serde(default = "default_rate_limit")]
    #[schemars(range(min = 1, max = 600))]
    pub rate_limit_per_minute: u32,
    /// The same event (object, reason and message) is sent once within this long.
    #[serde(default = "default_deduplicate_for")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub deduplicate_for: Duration,
}

/// Filters; an empty list lets everything through.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Kinds whose events are sent: CanaryRollout, ReleasePipeline, ParityPolicy, SLOBudget,
    /// DeliveryFreeze.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<SourceKind>,
    /// Event reasons sent, e.g. RolledBack, Promoted, Frozen, FreezeStarted, BudgetFrozen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Only Warning events.
    #[serde(default)]
    pub warnings_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceKind {
    CanaryRollout,
    ReleasePipeline,
    ParityPolicy,
    SLOBudget,
    DeliveryFreeze,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CanaryRollout => "CanaryRollout",
            Self::ReleasePipeline => "ReleasePipeline",
            Self::ParityPolicy => "ParityPolicy",
            Self::SLOBudget => "SLOBudget",
            Self::DeliveryFreeze => "DeliveryFreeze",
        }
    }
}

/// One destination: exactly one of webhook, slack and telegram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sink {
    /// Name shown in status and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramSink>,
}

/// A generic webhook: each event POSTed as a CloudEvent 1.0 (structured JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSink {
    /// http(s) URL.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Key of an HMAC-SHA256 signature of the body, sent as
    /// `X-Sluice-Signature-256: sha256=<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SecretKeyRef>,
}

/// A Slack incoming webhook; its URL is a credential, so it comes from a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackSink {
    pub webhook_url: SecretKeyRef,
}

/// A Telegram bot's `sendMessage` to one chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelegramSink {
    pub bot_token: SecretKeyRef,
    /// The chat: a numeric id ("-1001234567890") or "@channelname".
    #[schemars(length(min = 1))]
    pub chat_id: String,
    /// The Bot API's address. Default: https://api.telegram.org.
    #[serde(default = "default_telegram_api")]
    pub api_url: String,
}

/// A key of a Secret in the Notification's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_rate_limit() -> u32 {
    20
}

fn default_deduplicate_for() -> Duration {
    Duration::from_secs(600)
}

pub fn default_telegram_api() -> String {
    "https://api.telegram.org".to_string()
}

/// What the sinks did, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One sink's deliveries since the operator started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    pub name: String,
    /// Messages the sink accepted.
    #[serde(default)]
    pub delivered: u64,
    /// Attempts that failed (each retried, unless the sink rejected the message for good).
    #[serde(default)]
    pub failed_attempts: u64,
    /// Messages the sink refused for good (a 4xx other than 408 and 429).
    #[serde(default)]
    pub rejected: u64,
    /// Messages dropped because the sink's buffer was full.
    #[serde(default)]
    pub dropped: u64,
    /// Messages waiting in the buffer.
    #[serde(default)]
    pub pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<Timestamp>,
    /// The last failure, while the sink keeps failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
