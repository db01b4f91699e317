//! `watch`: which changes are worth a line, and when the rollout has settled (pure).

use jiff::Timestamp;

use super::format::or_dash;
use super::table::stage_position;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::{Phase, Verdict};
use crate::engine::requests::{ABORT, OVERRIDE_FREEZE, PROMOTE, RETRY, UNFREEZE};

/// What a watch line reports; a new line is printed whenever it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: Option<Phase>,
    pub stage: Option<String>,
    /// "5%", or "shadow 50%".
    pub weight: Option<String>,
    pub verdict: Option<Verdict>,
}

impl Progress {
    pub fn of(rollout: &CanaryRollout) -> Self {
        let status = rollout.status.as_ref();
        Self {
            phase: status.and_then(|s| s.phase),
            stage: stage_position(rollout),
            weight: status.and_then(|s| s.canary_traffic()),
            verdict: status
                .and_then(|s| s.last_evaluation.as_ref())
                .map(|e| e.verdict),
        }
    }

    /// "11:06:40  Progressing  stage 2/4  weight 5%  verdict Pass  stage 1 (5%) started ..."
    pub fn line(&self, time: Timestamp, message: Option<&str>) -> String {
        let mut line = format!(
            "{}  {:<11}  stage {:<5}  weight {:<4}  verdict {:<6}",
            time.strftime("%H:%M:%S"),
            or_dash(self.phase.map(|p| format!("{p:?}"))),
            or_dash(self.stage.clone()),
            or_dash(self.weight.clone()),
            or_dash(self.verdict.map(|v| format!("{v:?}"))),
        );
        if let Some(message) = message {
            line.push_str("  ");
            line.push_str(message);
        }
        line
    }
}

/// How a watch ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The candidate was promoted (exit 0).
    Succeeded,
    /// Nothing to roll out: the target runs the stable template (exit 0).
    NothingPending,
    /// RolledBack, Frozen or Invalid (exit 1).
    Stopped(Phase),
}

impl Settled {
    pub fn success(self) -> bool {
        !matches!(self, Settled::Stopped(_))
    }
}

/// Whether the rollout has settled. `target_revision` is the pod-template revision of the
/// target Deployment when the watch started: a Succeeded or RolledBack status that is about an
/// older template is not the end, the operator has yet to start the new one. Neither is a status
/// that has not seen the latest spec or a request still to be handled.
pub fn settled(rollout: &CanaryRollout, target_revision: Option<&str>) -> Option<Settled> {
    let status = rollout.status.as_ref()?;
    let generation = rollout.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    let annotations = &rollout.metadata.annotations;
    let request_pending = [PROMOTE, ABORT, RETRY, UNFREEZE, OVERRIDE_FREEZE]
        .into_iter()
        .any(|key| {
            let asked = annotations.as_ref().and_then(|a| a.get(key));
            asked.is_some() && asked != status.handled_requests.get(key)
        });
    if request_pending {
        return None;
    }
    let about_target = target_revision.is_none_or(|target| {
        status.canary_revision.as_deref() == Some(target)
            || status.stable_revision.as_deref() == Some(target)
    });
    match status.phase? {
        Phase::Frozen => Some(Settled::Stopped(Phase::Frozen)),
        Phase::Invalid => Some(Settled::Stopped(Phase::Invalid)),
        _ if !about_target => None,
        Phase::Succeeded => Some(Settled::Succeeded),
        Phase::RolledBack => Some(Settled::Stopped(Phase::RolledBack)),
        Phase::Idle => Some(Settled::NothingPending),
        Phase::Progressing | Phase::Paused | Phase::Promoting | Phase::Waiting => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::fixtures::{NOW, rollout};

    fn in_phase(phase: Phase) -> CanaryRollout {
        let mut rollout = rollout();
        let status = rollout.status.as_mut().unwrap();
        status.phase = Some(phase);
        status.stable_revision = status.canary_revision.clone();
        rollout
    }

    #[test]
    fn a_line_names_phase_stage_weight_and_verdict() {
        let line = Progress::of(&rollout()).line(NOW, Some("stage 1 (5%) started"));
        assert_eq!(
            line,
            "11:06:40  Progressing  stage 2/4    weight 5%    verdict Pass    stage 1 (5%) started"
        );
    }

    #[test]
    fn a_new_evaluation_with_the_same_verdict_is_no_change() {
        let before = rollout();
        let mut after = before.clone();
        let status = after.status.as_mut().unwrap();
        status.last_evaluation.as_mut().unwrap().time = NOW;
        status.message = Some("other words".into());
        assert_eq!(Progress::of(&before), Progress::of(&after));
        after.status.as_mut().unwrap().canary_weight = Some(25);
        assert_ne!(Progress::of(&before), Progress::of(&after));
    }

    #[test]
    fn settled_phases_end_the_watch_with_their_outcome() {
        let target = Some("7f9c6d5a01");
        let cases = [
            (Phase::Succeeded, Some(Settled::Succeeded)),
            (Phase::RolledBack, Some(Settled::Stopped(Phase::RolledBack))),
            (Phase::Frozen, Some(Settled::Stopped(Phase::Frozen))),
            (Phase::Invalid, Some(Settled::Stopped(Phase::Invalid))),
            (Phase::Idle, Some(Settled::NothingPending)),
            (Phase::Progressing, None),
            (Phase::Paused, None),
            (Phase::Promoting, None),
        ];
        for (phase, expected) in cases {
            assert_eq!(settled(&in_phase(phase), target), expected, "{phase:?}");
        }
        assert!(Settled::Succeeded.success() && Settled::NothingPending.success());
        assert!(!Settled::Stopped(Phase::RolledBack).success());
    }

    #[test]
    fn a_status_about_an_older_template_is_not_settled() {
        let succeeded = in_phase(Phase::Succeeded);
        assert_eq!(settled(&succeeded, Some("a-new-one")), None);
        assert_eq!(settled(&succeeded, None), Some(Settled::Succeeded));
        let frozen = in_phase(Phase::Frozen);
        assert_eq!(
            settled(&frozen, Some("a-new-one")),
            Some(Settled::Stopped(Phase::Frozen)),
            "a frozen rollout waits for a person, not for the operator"
        );
    }

    #[test]
    fn an_unseen_spec_or_an_unhandled_request_is_not_settled() {
        let mut newer_spec = in_phase(Phase::Succeeded);
        newer_spec.metadata.generation = Some(3);
        newer_spec.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(settled(&newer_spec, None), None);

        let mut retried = in_phase(Phase::RolledBack);
        retried.metadata.annotations = Some([(RETRY.to_string(), "t2".to_string())].into());
        let status = retried.status.as_mut().unwrap();
        status
            .handled_requests
            .insert(RETRY.to_string(), "t1".to_string());
        assert_eq!(settled(&retried, None), None);
        let status = retried.status.as_mut().unwrap();
        status
            .handled_requests
            .insert(RETRY.to_string(), "t2".to_string());
        assert_eq!(
            settled(&retried, None),
            Some(Settled::Stopped(Phase::RolledBack))
        );
    }
}
