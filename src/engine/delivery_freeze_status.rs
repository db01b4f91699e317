//! The status of a DeliveryFreeze: whether it is in force, until when or from when, what it
//! affects, its conditions, and an event whenever it starts, ends or turns invalid. Pure: the
//! shell passes the rollouts it selects, read from the cache.

use std::time::Duration;

use jiff::Timestamp;

use super::delivery_freeze::{FreezeRef, problems, window_state};
use super::rollout::PlannedEvent;
use crate::api::conditions::{Condition, READY, STALLED, set_condition};
use crate::api::delivery_freeze::{AffectedRollout, DeliveryFreezeStatus};

/// True while a DeliveryFreeze is in force.
pub const ACTIVE: &str = "Active";
/// How many affected rollouts the status names; `affectedCount` counts them all.
pub const AFFECTED_LISTED: usize = 50;
/// How often an active freeze refreshes its list of affected rollouts.
const REFRESH_WHILE_ACTIVE: Duration = Duration::from_secs(15);
const REFRESH_INVALID: Duration = Duration::from_secs(300);

pub struct FreezeStatusPlan {
    pub status: DeliveryFreezeStatus,
    pub events: Vec<PlannedEvent>,
    /// When to look again: the next window boundary, or a refresh of the affected list.
    pub requeue_after: Option<Duration>,
}

/// The new status of `freeze`, given the rollouts it selects (any order) and the old status.
pub fn plan(
    freeze: FreezeRef,
    freeze_namespace: &str,
    generation: Option<i64>,
    selected: &[AffectedRollout],
    old: &DeliveryFreezeStatus,
    now: Timestamp,
) -> FreezeStatusPlan {
    let mut status = old.clone();
    status.observed_generation = generation;
    let mut events = Vec::new();
    let problems = problems(freeze, freeze_namespace);
    let was_invalid = old
        .conditions
        .iter()
        .any(|c| c.type_ == STALLED && c.is_true());
    if !problems.is_empty() {
        let message = format!("invalid spec, not in force: {}", problems.join("; "));
        let stalled_before = old
            .conditions
            .iter()
            .find(|c| c.type_ == STALLED)
            .map(|c| c.message.as_str());
        if stalled_before != Some(message.as_str()) {
            events.push(event(true, "InvalidSpec", message.clone()));
        }
        status.active = false;
        status.active_until = None;
        status.next_window_at = None;
        status.affected.clear();
        status.affected_count = 0;
        set_conditions(&mut status, false, "InvalidSpec", &message, generation, now);
        set_condition(
            &mut status.conditions,
            Condition::new(STALLED, true, "InvalidSpec", &message, now),
        );
        return FreezeStatusPlan {
            status,
            events,
            requeue_after: Some(REFRESH_INVALID),
        };
    }
    if was_invalid {
        events.push(event(
            false,
            "SpecValid",
            "the spec is valid again".to_string(),
        ));
    }
    let window = window_state(freeze.spec, now);
    status.active = window.active;
    status.active_until = window.until;
    status.next_window_at = window.next;
    let mut affected: Vec<AffectedRollout> = match window.active {
        true => selected.to_vec(),
        false => Vec::new(),
    };
    affected.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    status.affected_count = u32::try_from(affected.len()).unwrap_or(u32::MAX);
    affected.truncate(AFFECTED_LISTED);
    status.affected = affected;

    let action = freeze.spec.action.as_str();
    let message = match (window.active, window.until, window.next) {
        (true, Some(until), _) => format!(
            "in force ({action}) until {until}, on {} rollouts",
            status.affected_count
        ),
        (true, None, _) => format!(
            "in force ({action}) until deleted, on {} rollouts",
            status.affected_count
        ),
        (false, _, Some(next)) => format!("not in force; the next window opens at {next}"),
        (false, _, None) => "not in force; no window opens again".to_string(),
    };
    if window.active && !old.active {
        events.push(event(true, "FreezeStarted", message.clone()));
    } else if !window.active && old.active {
        events.push(event(false, "FreezeEnded", message.clone()));
    }
    let reason = if window.active {
        "InForce"
    } else {
        "OutsideWindow"
    };
    set_conditions(
        &mut status,
        window.active,
        reason,
        &message,
        generation,
        now,
    );

    let boundary = window.until.or(window.next).map(|at| {
        let wait = at.duration_since(now).as_secs_f64().max(0.0);
        Duration::from_secs_f64(wait) + Duration::from_millis(100)
    });
    let requeue_after = match window.active {
        true => Some(boundary.map_or(REFRESH_WHILE_ACTIVE, |b| b.min(REFRESH_WHILE_ACTIVE))),
        false => boundary,
    };
    FreezeStatusPlan {
        status,
        events,
        requeue_after,
    }
}

/// Ready (the spec is valid: the freeze does what it says), Stalled (it is not) and Active.
fn set_conditions(
    status: &mut DeliveryFreezeStatus,
    active: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let valid = reason != "InvalidSpec";
    for (kind, value) in [(READY, valid), (STALLED, !valid), (ACTIVE, active)] {
        let mut condition = Condition::new(kind, value, reason, message, now);
        condition.observed_generation = generation;
        set_condition(&mut status.conditions, condition);
    }
}

fn event(warning: bool, reason: &'static str, note: String) -> PlannedEvent {
    PlannedEvent {
        warning,
        reason,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::delivery_freeze::DeliveryFreezeSpec;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn rollout(name: &str) -> AffectedRollout {
        AffectedRollout {
            namespace: "team".into(),
            name: name.into(),
            phase: "Progressing".into(),
        }
    }

    #[test]
    fn a_window_starts_and_ends_with_events_and_the_affected_list() {
        let spec: DeliveryFreezeSpec =
            serde_saphyr::from_str("windows: [{schedule: '0 9 * * *', duration: 1h}]\n").unwrap();
        let freeze = FreezeRef {
            namespace: "team",
            name: "morning",
            spec: &spec,
        };
        let selected = [rollout("b"), rollout("a")];
        let before = plan(
            freeze,
            "sluice-system",
            Some(1),
            &selected,
            &DeliveryFreezeStatus::default(),
            at("2026-12-03T08:59:00Z"),
        );
        assert!(!before.status.active);
        assert_eq!(
            before.status.next_window_at,
            Some(at("2026-12-03T09:00:00Z"))
        );
        assert!(before.events.is_empty());
        assert_eq!(before.requeue_after, Some(Duration::from_millis(60_100)));

        let during = plan(
            freeze,
            "sluice-system",
            Some(1),
            &selected,
            &before.status,
            at("2026-12-03T09:00:00Z"),
        );
        assert!(during.status.active);
        assert_eq!(during.status.affected_count, 2);
        assert_eq!(during.status.affected[0].name, "a");
        assert_eq!(during.events[0].reason, "FreezeStarted");
        assert_eq!(during.requeue_after, Some(REFRESH_WHILE_ACTIVE));

        let after = plan(
            freeze,
            "sluice-system",
            Some(1),
            &selected,
            &during.status,
            at("2026-12-03T10:00:00Z"),
        );
        assert!(!after.status.active);
        assert!(after.status.affected.is_empty());
        assert_eq!(after.events[0].reason, "FreezeEnded");
    }

    #[test]
    fn an_invalid_freeze_is_stalled_once_and_in_force_nowhere() {
        let spec: DeliveryFreezeSpec =
            serde_saphyr::from_str("windows: [{schedule: 'at noon', duration: 1h}]\n").unwrap();
        let freeze = FreezeRef {
            namespace: "team",
            name: "bad",
            spec: &spec,
        };
        let now = at("2026-12-03T12:00:00Z");
        let first = plan(
            freeze,
            "sluice-system",
            Some(1),
            &[rollout("a")],
            &DeliveryFreezeStatus::default(),
            now,
        );
        assert!(!first.status.active);
        assert_eq!(first.events.len(), 1);
        assert!(
            first.events[0].note.contains("spec.windows[0]"),
            "{}",
            first.events[0].note
        );
        let stalled = first
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == STALLED)
            .unwrap();
        assert!(stalled.is_true());
        let again = plan(
            freeze,
            "sluice-system",
            Some(1),
            &[rollout("a")],
            &first.status,
            now,
        );
        assert!(again.events.is_empty());
    }
}
