//! What a rollout waits for before it moves on, or why it holds, for `status` (pure).

use jiff::{SignedDuration, Timestamp};

use super::format::{age, age_since, or_dash};
use crate::api::CanaryRollout;
use crate::api::canary_rollout::{CanaryRolloutStatus, Phase, Verdict};
use crate::api::conditions::{FROZEN, STALLED, WAITING, find_condition};
use crate::api::parity_policy::ParityLevel;
use crate::engine::rollout::{FROZEN_BY_BUDGET, FROZEN_BY_ROLLBACK, next_evaluation_at};

/// A titled list of reasons; empty at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// "Waiting for" while a rollout moves, "Why it holds" when it has stopped.
    pub title: &'static str,
    pub reasons: Vec<String>,
}

/// Why the rollout holds, or what it waits for before it moves on, at `now`.
pub fn holding(rollout: &CanaryRollout, now: Timestamp) -> Holding {
    let empty = CanaryRolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    let title = match status.phase {
        Some(Phase::Frozen | Phase::RolledBack | Phase::Invalid) => "Why it holds",
        _ => "Waiting for",
    };
    Holding {
        title,
        reasons: reasons(rollout, status, now),
    }
}

fn reasons(rollout: &CanaryRollout, status: &CanaryRolloutStatus, now: Timestamp) -> Vec<String> {
    let spec = &rollout.spec;
    let name = rollout.metadata.name.as_deref().unwrap_or("NAME");
    let mut reasons = vec![];
    match status.phase {
        Some(Phase::Progressing | Phase::Paused) => {
            if spec.paused {
                reasons.push(format!(
                    "spec.paused is true: no stage advances until `kubectl sluice resume {name}`"
                ));
            }
            let Some(started) = status.stage_started_at else {
                let since = status.rollout_started_at.map_or(String::new(), |t| {
                    format!(", scaled up {} ago", age_since(Some(t), now))
                });
                reasons.push(format!(
                    "the canary's pods to become available (progressDeadline {}{since})",
                    spec.progress_deadline
                ));
                return reasons;
            };
            stage_gates(rollout, status, started, now, &mut reasons);
        }
        Some(Phase::Promoting) => reasons.push(format!(
            "the stable Deployment to run revision {} with all its pods available",
            or_dash(status.canary_revision.clone())
        )),
        Some(Phase::Frozen) => reasons.extend(frozen_reasons(status, name)),
        Some(Phase::Waiting) => {
            if let Some(waiting) = find_condition(&status.conditions, WAITING) {
                reasons.push(format!("its ReleasePipeline: {}", waiting.message));
            }
        }
        Some(Phase::RolledBack) => reasons.push(format!(
            "revision {} stays on the target until a new template or `kubectl sluice retry {name}`",
            or_dash(status.canary_revision.clone())
        )),
        Some(Phase::Invalid) => {
            if let Some(stalled) = find_condition(&status.conditions, STALLED) {
                reasons.push(format!("{}: {}", stalled.reason, stalled.message));
            }
            reasons.push("fix the spec or create what it refers to".to_string());
        }
        Some(Phase::Idle | Phase::Succeeded) | None => {}
    }
    reasons
}

/// The gates of a started stage: pause, samples, data, parity, the next evaluation, failures.
fn stage_gates(
    rollout: &CanaryRollout,
    status: &CanaryRolloutStatus,
    started: Timestamp,
    now: Timestamp,
    out: &mut Vec<String>,
) {
    let spec = &rollout.spec;
    let analysis = &spec.analysis;
    let stage = status.stage.and_then(|i| spec.stages.get(i as usize));
    if let Some(stage) = stage {
        let pause = stage.pause.unwrap_or(analysis.interval);
        let spent = now.duration_since(started);
        let pause_left = SignedDuration::try_from(pause.as_std())
            .unwrap_or(SignedDuration::MAX)
            .checked_sub(spent)
            .unwrap_or(SignedDuration::ZERO);
        if pause_left.is_positive() {
            out.push(format!("the pause: {} left of {pause}", age(pause_left)));
        }
        if let Some(min) = stage.min_samples {
            let seen = status.stage_samples.unwrap_or(0.0);
            if seen < min as f64 {
                out.push(format!("samples: {seen:.0} of {min} counted at this stage"));
            }
        }
    }
    if let Some(evaluation) = &status.last_evaluation {
        if evaluation.time >= started && evaluation.verdict == Verdict::NoData {
            out.push(format!(
                "data: the last evaluation had none ({}); analysis.noData is {:?}",
                evaluation.message.as_deref().unwrap_or("no message"),
                analysis.no_data
            ));
        }
        if let Some(parity) = evaluation
            .parity
            .as_ref()
            .filter(|p| p.level != ParityLevel::Pass)
        {
            out.push(format!("parity: the level is {}", parity.level));
        }
    }
    if let Some(at) = next_evaluation_at(spec, status) {
        let due = at.duration_since(now);
        let when = if due.is_positive() {
            format!("due in {}", age(due))
        } else {
            format!("due now ({} overdue)", age(due.abs()))
        };
        out.push(format!(
            "next evaluation: {when} (every {})",
            analysis.interval
        ));
    }
    out.push(format!(
        "failed evaluations: {} in a row of failureLimit {}",
        status.failed_evaluations, analysis.failure_limit
    ));
}

fn frozen_reasons(status: &CanaryRolloutStatus, name: &str) -> Vec<String> {
    let Some(frozen) = find_condition(&status.conditions, FROZEN).filter(|c| c.is_true()) else {
        return vec!["frozen (no Frozen condition recorded)".to_string()];
    };
    let remedy = match frozen.reason.as_str() {
        FROZEN_BY_ROLLBACK => format!("only a person clears it: `kubectl sluice unfreeze {name}`"),
        FROZEN_BY_BUDGET => format!(
            "it lifts by itself when the budget recovers; `kubectl sluice unfreeze {name}` overrides it for one rollout"
        ),
        _ => format!("`kubectl sluice unfreeze {name}` may clear it"),
    };
    vec![format!("{}: {}", frozen.reason, frozen.message), remedy]
}
