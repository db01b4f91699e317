//! kstatus conditions of a CanaryRollout, derived from its phase and what it waits for.

use jiff::Timestamp;

use crate::api::canary_rollout::{CanaryRolloutStatus, Phase};
use crate::api::conditions::{Condition, READY, RECONCILING, STALLED, set_condition};

/// Why the rollout is where it is, for the Ready/Reconciling/Stalled reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    AtRest,
    Adopting,
    WaitingForCanary,
    Progressing,
    AnalysisHeld,
    Paused,
    Promoting,
    PromotionStuck,
    RolledBack,
    Frozen,
    /// In flight, held at its stage by a DeliveryFreeze (`action: Hold`).
    FreezeHeld,
    /// The candidate waits for its ReleasePipeline.
    Waiting,
    InvalidSpec,
}

impl Situation {
    fn reason(self, phase: Phase) -> &'static str {
        match self {
            Situation::AtRest => match phase {
                Phase::Succeeded => "Succeeded",
                _ => "Idle",
            },
            Situation::Adopting => "Adopting",
            Situation::WaitingForCanary => "WaitingForCanary",
            Situation::Progressing => "Progressing",
            Situation::AnalysisHeld => "AnalysisHeld",
            Situation::Paused => "Paused",
            Situation::Promoting => "Promoting",
            Situation::PromotionStuck => "PromotionStuck",
            Situation::RolledBack => "RolledBack",
            Situation::Frozen | Situation::FreezeHeld => "Frozen",
            Situation::Waiting => "PipelineWaiting",
            Situation::InvalidSpec => "InvalidSpec",
        }
    }
}

/// Sets Ready, Reconciling and Stalled so that kstatus (Flux, `kubectl wait`) reads them right:
/// at rest Ready; in flight Reconciling; needing a person (invalid, rolled back, frozen, stuck)
/// Stalled.
pub fn set_kstatus(
    status: &mut CanaryRolloutStatus,
    situation: Situation,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let phase = status.phase.unwrap_or(Phase::Idle);
    let reason = situation.reason(phase);
    let ready = situation == Situation::AtRest;
    let reconciling = matches!(
        situation,
        Situation::Adopting
            | Situation::WaitingForCanary
            | Situation::Progressing
            | Situation::AnalysisHeld
            | Situation::Promoting
            | Situation::Waiting
            | Situation::FreezeHeld
    );
    let stalled = matches!(
        situation,
        Situation::InvalidSpec
            | Situation::RolledBack
            | Situation::Frozen
            | Situation::PromotionStuck
    );
    let with_generation = |mut c: Condition| {
        c.observed_generation = generation;
        c
    };
    let conditions = &mut status.conditions;
    set_condition(
        conditions,
        with_generation(Condition::new(READY, ready, reason, message, now)),
    );
    set_condition(
        conditions,
        with_generation(Condition::new(
            RECONCILING,
            reconciling,
            reason,
            message,
            now,
        )),
    );
    set_condition(
        conditions,
        with_generation(Condition::new(STALLED, stalled, reason, message, now)),
    );
}
