//! One audit record: a decision, what it was about, who asked, and its inputs. Pure.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// What kind of decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RecordKind {
    /// An event Sluice recorded on one of its objects: a stage change, a promotion, a rollback,
    /// a freeze, a request handled, a gate's verdict.
    Event,
    /// One evaluation of a rollout's checks, with every input and verdict.
    Evaluation,
    /// A rollout that ended: promoted or rolled back, with when it started and ended.
    Deployment,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "Event",
            Self::Evaluation => "Evaluation",
            Self::Deployment => "Deployment",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Unique: the operator's start and a sequence number.
    pub id: String,
    pub time: Timestamp,
    pub kind: RecordKind,
    pub namespace: String,
    pub object_kind: String,
    pub object_name: String,
    /// The rollout's `sluice.dev/environment` label, else its namespace.
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub reason: String,
    pub warning: bool,
    /// Who asked, for manual requests (`sluice.dev/requested-by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub message: String,
    pub data: Value,
}

/// The label naming a rollout's environment in audit records and reports.
pub const ENVIRONMENT_LABEL: &str = "sluice.dev/environment";
