//! Notifications as the core decides them: which events a Notification subscribes to, what is
//! wrong with its spec, and its status from what its sinks did. Pure.

use jiff::Timestamp;

use super::rollout::PlannedEvent;
use crate::api::conditions::{Condition, READY, STALLED, set_condition};
use crate::api::notification::{NotificationSpec, NotificationStatus, SinkStatus, Subscription};

/// An event Sluice recorded on one of its objects, as notifications carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// CanaryRollout, ReleasePipeline, ParityPolicy, SLOBudget or DeliveryFreeze.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub warning: bool,
    pub note: String,
    pub time: Timestamp,
}

impl OutgoingEvent {
    /// What makes two events the same for deduplication: the object, the reason, the note.
    pub fn identity(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.kind, self.namespace, self.name, self.reason, self.note
        )
    }
}

/// Whether the subscription takes the event.
pub fn subscribed(subscription: &Subscription, event: &OutgoingEvent) -> bool {
    (!subscription.warnings_only || event.warning)
        && (subscription.kinds.is_empty()
            || subscription.kinds.iter().any(|k| k.as_str() == event.kind))
        && (subscription.reasons.is_empty() || subscription.reasons.contains(&event.reason))
}

/// What is wrong with the spec, each naming the field. A Notification with problems sends
/// nothing.
pub fn problems(spec: &NotificationSpec) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, sink) in spec.sinks.iter().enumerate() {
        let field = format!("spec.sinks[{index}]");
        let kinds = [
            sink.webhook.is_some(),
            sink.slack.is_some(),
            sink.telegram.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            problems.push(format!(
                "{field}: exactly one of webhook, slack and telegram is needed"
            ));
        }
        if spec.sinks[..index].iter().any(|s| s.name == sink.name) {
            problems.push(format!("{field}.name: {:?} is used twice", sink.name));
        }
        if let Some(webhook) = &sink.webhook {
            check_url(&mut problems, &format!("{field}.webhook.url"), &webhook.url);
        }
        if let Some(telegram) = &sink.telegram {
            check_url(
                &mut problems,
                &format!("{field}.telegram.apiUrl"),
                &telegram.api_url,
            );
        }
    }
    problems
}

fn check_url(problems: &mut Vec<String>, field: &str, url: &str) {
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
        _ => problems.push(format!("{field}: {url:?} is not an http(s) URL")),
    }
}

/// What a sink did, as the delivery shell counts it.
pub type SinkFigures = SinkStatus;

pub struct NotificationPlan {
    pub status: NotificationStatus,
    pub events: Vec<PlannedEvent>,
}

/// The status from the spec's problems and the sinks' figures; an event when the spec turns
/// invalid, when a sink starts failing and when it recovers.
pub fn plan(
    spec: &NotificationSpec,
    generation: Option<i64>,
    sinks: Vec<SinkFigures>,
    old: &NotificationStatus,
    now: Timestamp,
) -> NotificationPlan {
    let mut status = old.clone();
    status.observed_generation = generation;
    let mut events = Vec::new();
    let problems = problems(spec);
    let (ready, reason, message) = if !problems.is_empty() {
        let message = format!("invalid spec, nothing is sent: {}", problems.join("; "));
        (false, "InvalidSpec", message)
    } else {
        for sink in &sinks {
            let before = old.sinks.iter().find(|s| s.name == sink.name);
            let failing_before = before.and_then(|s| s.last_error.as_ref());
            match (&sink.last_error, failing_before) {
                (Some(error), None) => events.push(PlannedEvent {
                    warning: true,
                    reason: "DeliveryFailing",
                    note: format!("sink {}: {error}", sink.name),
                }),
                (None, Some(_)) => events.push(PlannedEvent {
                    warning: false,
                    reason: "DeliveryRecovered",
                    note: format!("sink {} delivers again", sink.name),
                }),
                _ => {}
            }
        }
        let failing: Vec<String> = sinks
            .iter()
            .filter_map(|s| Some(format!("{}: {}", s.name, s.last_error.as_ref()?)))
            .collect();
        match failing.is_empty() {
            true => (
                true,
                "Delivering",
                format!("{} sinks delivering", spec.sinks.len()),
            ),
            false => (
                false,
                "DeliveryFailing",
                format!("failing, retried: {}", failing.join("; ")),
            ),
        }
    };
    let stalled_before = old
        .conditions
        .iter()
        .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
    if reason == "InvalidSpec" && !stalled_before {
        events.push(PlannedEvent {
            warning: true,
            reason: "InvalidSpec",
            note: message.clone(),
        });
    }
    status.sinks = sinks;
    for (kind, value) in [(READY, ready), (STALLED, reason == "InvalidSpec")] {
        let mut condition = Condition::new(kind, value, reason, &message, now);
        condition.observed_generation = generation;
        set_condition(&mut status.conditions, condition);
    }
    NotificationPlan { status, events }
}

#[cfg(test)]
#[path = "notification_tests.rs"]
mod tests;
