//! DeliveryFreezes as the rollouts see them: which freezes select a rollout, whether one is in
//! force now (its windows read in their time zones), and what it makes the rollout do. Pure:
//! the operator and `simulate` decide alike from the specs and a clock.

use std::collections::BTreeMap;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::core::{Selector, SelectorExt};

use crate::api::delivery_freeze::{DeliveryFreezeSpec, FreezeAction, FreezeWindow};

/// A freeze in force on one rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreezeInForce {
    /// `namespace/name` of the DeliveryFreeze.
    pub freeze: String,
    pub action: FreezeAction,
    /// The sentence the rollout shows: who froze it, why, and until when.
    pub reason: String,
}

/// Where a freeze's windows stand at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowState {
    pub active: bool,
    /// When the open window closes; None while closed or with no windows (in force until
    /// deleted).
    pub until: Option<Timestamp>,
    /// When the next window opens, while closed.
    pub next: Option<Timestamp>,
}

/// A freeze as read from the cache: its place and its spec.
#[derive(Clone, Copy, Debug)]
pub struct FreezeRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a DeliveryFreezeSpec,
}

/// What is wrong with a freeze, each naming the field. A freeze with problems is not in force:
/// bad input never blocks a rollout (its Stalled condition and event say why).
pub fn problems(freeze: FreezeRef, freeze_namespace: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if freeze.spec.all_namespaces && freeze.namespace != freeze_namespace {
        problems.push(format!(
            "spec.allNamespaces is honoured only for a DeliveryFreeze in the operator's freeze namespace {freeze_namespace:?}, not in {:?}",
            freeze.namespace
        ));
    }
    if let Some(selector) = &freeze.spec.selector
        && let Err(error) = Selector::try_from(selector.to_label_selector())
    {
        problems.push(format!("spec.selector: {error}"));
    }
    for (index, window) in freeze.spec.windows.iter().enumerate() {
        if let Err(error) = parse_window(window) {
            problems.push(format!("spec.windows[{index}]: {error}"));
        }
    }
    problems
}

fn parse_window(window: &FreezeWindow) -> Result<(Cron, TimeZone), String> {
    let cron = super::schedule::parse(&window.schedule)?;
    let zone = match window.time_zone.as_deref() {
        None | Some("UTC") => TimeZone::UTC,
        Some(name) => TimeZone::get(name).map_err(|e| format!("timeZone {name:?}: {e}"))?,
    };
    if window.duration.is_zero() {
        return Err("duration must be more than zero".to_string());
    }
    Ok((cron, zone))
}

/// Whether a window of the freeze is open at `now`, until when, or when the next opens. A freeze
/// without windows is open from its creation until it is deleted. Call only on a freeze without
/// [`problems`].
pub fn window_state(spec: &DeliveryFreezeSpec, now: Timestamp) -> WindowState {
    if spec.windows.is_empty() {
        return WindowState {
            active: true,
            until: None,
            next: None,
        };
    }
    let mut until: Option<Timestamp> = None;
    let mut next: Option<Timestamp> = None;
    for window in &spec.windows {
        let Ok((cron, zone)) = parse_window(window) else {
            continue;
        };
        let here = now.to_zoned(zone);
        let length = window.duration.as_std();
        if let Ok(opened) = cron.find_previous_occurrence(&here, true)
            && let Ok(closes) = opened.timestamp().checked_add(length)
            && closes > now
        {
            until = Some(until.map_or(closes, |u| u.max(closes)));
        }
        if let Ok(opens) = cron.find_next_occurrence(&here, false) {
            let opens = opens.timestamp();
            next = Some(next.map_or(opens, |n| n.min(opens)));
        }
    }
    WindowState {
        active: until.is_some(),
        until,
        next: if until.is_some() { None } else { next },
    }
}

/// Whether the freeze selects a rollout in `namespace` with `labels`.
pub fn selects(
    freeze: FreezeRef,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    freeze_namespace: &str,
) -> bool {
    let fleet = freeze.spec.all_namespaces && freeze.namespace == freeze_namespace;
    if !fleet && freeze.namespace != namespace {
        return false;
    }
    match &freeze.spec.selector {
        None => true,
        Some(selector) => {
            Selector::try_from(selector.to_label_selector()).is_ok_and(|s| s.matches(labels))
        }
    }
}

/// The freeze in force on a rollout now, if any: a Rollback before a Hold, then the first by
/// namespace and name, so every reconcile picks the same one.
pub fn in_force<'a>(
    freezes: impl IntoIterator<Item = FreezeRef<'a>>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    freeze_namespace: &str,
    now: Timestamp,
) -> Option<FreezeInForce> {
    let mut found: Vec<(FreezeRef, WindowState)> = freezes
        .into_iter()
        .filter(|f| selects(*f, namespace, labels, freeze_namespace))
        .filter(|f| problems(*f, freeze_namespace).is_empty())
        .map(|f| (f, window_state(f.spec, now)))
        .filter(|(_, state)| state.active)
        .collect();
    found.sort_by_key(|(f, _)| (f.spec.action != FreezeAction::Rollback, f.namespace, f.name));
    let (freeze, state) = found.into_iter().next()?;
    let why = match freeze.spec.reason.as_deref().unwrap_or_default().trim() {
        "" => String::new(),
        reason => format!(": {reason}"),
    };
    let until = state
        .until
        .map(|t| format!(" until {}", t.round(jiff::Unit::Second).unwrap_or(t)))
        .unwrap_or_default();
    Some(FreezeInForce {
        freeze: format!("{}/{}", freeze.namespace, freeze.name),
        action: freeze.spec.action,
        reason: format!(
            "DeliveryFreeze {}/{} ({}){until}{why}",
            freeze.namespace,
            freeze.name,
            freeze.spec.action.as_str()
        ),
    })
}

#[cfg(test)]
#[path = "delivery_freeze_tests.rs"]
mod tests;
