//! The audit records a rollout reconcile adds beside its events: the evaluation it ran, with
//! every input and verdict, and the deployment that ended, with its result and cause.

use kube::ResourceExt;
use serde_json::json;

use super::{Context, environment_of};
use crate::api::CanaryRollout;
use crate::api::canary_rollout::CanaryRolloutStatus;
use crate::audit::{Draft, RecordKind};
use crate::engine::Plan;
use crate::engine::requests::REQUESTED_BY;

/// Who asked, when this reconcile took a request (`sluice.dev/requested-by`, which
/// `kubectl sluice` sets beside each request; "unknown" when another tool set the request).
pub fn requested_by(
    rollout: &CanaryRollout,
    old: &CanaryRolloutStatus,
    plan: &Plan,
) -> Option<String> {
    if old.handled_requests == plan.status.handled_requests {
        return None;
    }
    Some(
        rollout
            .annotations()
            .get(REQUESTED_BY)
            .cloned()
            .unwrap_or_else(|| "unknown".to_string()),
    )
}

/// Records the evaluation this reconcile ran, and the deployment it ended, if any.
pub fn record(
    ctx: &Context,
    rollout: &CanaryRollout,
    old: &CanaryRolloutStatus,
    plan: &Plan,
    evaluated: bool,
) {
    let status = &plan.status;
    let draft = |kind: RecordKind, reason: String, warning: bool, message: String, data| Draft {
        kind,
        namespace: rollout.namespace().unwrap_or_default(),
        object_kind: "CanaryRollout".to_string(),
        object_name: rollout.name_any(),
        environment: environment_of(&rollout.metadata),
        revision: status.canary_revision.clone(),
        reason,
        warning,
        actor: None,
        message,
        data,
    };
    if evaluated && let Some(evaluation) = &status.last_evaluation {
        let verdict = format!("{:?}", evaluation.verdict);
        ctx.auditor.record(draft(
            RecordKind::Evaluation,
            verdict.clone(),
            verdict == "Fail",
            evaluation.message.clone().unwrap_or_default(),
            json!({
                "evaluation": evaluation,
                "stage": status.stage,
                "canaryWeight": status.canary_weight,
                "failedEvaluations": status.failed_evaluations,
                "stageEvidence": status.stage_evidence,
            }),
        ));
    }
    let ended = status
        .history
        .last()
        .filter(|entry| old.history.last() != Some(*entry));
    if let Some(entry) = ended {
        let result = format!("{:?}", entry.result);
        let mut record = draft(
            RecordKind::Deployment,
            result.clone(),
            result != "Promoted",
            entry.reason.clone(),
            json!({
                "result": result,
                "startedAt": entry.started_at,
                "finishedAt": entry.finished_at,
                "cause": plan.rollback_cause.map(|c| c.as_str()),
            }),
        );
        record.revision = Some(entry.revision.clone());
        ctx.auditor.record(record);
    }
}
