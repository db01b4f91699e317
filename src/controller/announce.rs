//! Events Sluice records, handed to the audit trail and to the Notifications that subscribe.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Context;
use crate::audit::{Draft, ENVIRONMENT_LABEL, RecordKind};
use crate::engine::notification::OutgoingEvent;

/// An event Sluice recorded, as the audit trail and notifications take it.
#[derive(Clone, Copy)]
pub struct Announcement<'a> {
    pub kind: &'a str,
    pub meta: &'a ObjectMeta,
    pub warning: bool,
    pub reason: &'a str,
    pub note: &'a str,
    pub actor: Option<&'a str>,
    pub revision: Option<&'a str>,
}

/// The object's `sluice.dev/environment` label, else its namespace.
pub fn environment_of(meta: &ObjectMeta) -> String {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(ENVIRONMENT_LABEL))
        .cloned()
        .or_else(|| meta.namespace.clone())
        .unwrap_or_default()
}

impl Context {
    /// Hands an event just recorded on an object of `kind` to the audit trail and to the
    /// Notifications of its namespace that subscribe to it; returns at once.
    pub fn notify(&self, kind: &str, meta: &ObjectMeta, warning: bool, reason: &str, note: &str) {
        self.announce(&Announcement {
            kind,
            meta,
            warning,
            reason,
            note,
            actor: None,
            revision: None,
        });
    }

    /// Like [`Context::notify`], with who asked and the revision concerned.
    pub fn announce(&self, event: &Announcement) {
        let Announcement {
            kind,
            meta,
            warning,
            reason,
            note,
            actor,
            revision,
        } = *event;
        self.auditor.record(Draft {
            kind: RecordKind::Event,
            namespace: meta.namespace.clone().unwrap_or_default(),
            object_kind: kind.to_string(),
            object_name: meta.name.clone().unwrap_or_default(),
            environment: environment_of(meta),
            revision: revision.map(str::to_string),
            reason: reason.to_string(),
            warning,
            actor: actor.map(str::to_string),
            message: note.to_string(),
            data: serde_json::Value::Null,
        });
        let notifications = self.caches.notifications.state();
        // A Notification's own events (DeliveryFailing, ...) would feed the sink that fails.
        if notifications.is_empty() || kind == "Notification" {
            return;
        }
        let event = OutgoingEvent {
            kind: kind.to_string(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            reason: reason.to_string(),
            warning,
            note: note.to_string(),
            time: jiff::Timestamp::now(),
        };
        self.notifier
            .offer(notifications.iter().map(|n| n.as_ref()), &event);
    }
}
