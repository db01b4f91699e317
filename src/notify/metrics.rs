//! The notification families of /metrics: deliveries by result and buffered messages, per sink.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::sink::SinkKey;

type Labels = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct NotificationMetrics {
    messages: Family<Labels, Counter>,
    pending: Family<Labels, Gauge>,
}

fn labels(key: &SinkKey) -> Labels {
    vec![
        ("namespace".to_string(), key.namespace.clone()),
        ("notification".to_string(), key.notification.clone()),
        ("sink".to_string(), key.sink.clone()),
    ]
}

impl NotificationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "notification_messages",
            "Notification messages by result: delivered, failed_attempt (retried), rejected, dropped (buffer full), duplicate",
            self.messages.clone(),
        );
        registry.register(
            "notification_pending",
            "Notification messages buffered for a sink",
            self.pending.clone(),
        );
    }

    pub fn count(&self, key: &SinkKey, result: &str) {
        let mut labels = labels(key);
        labels.push(("result".to_string(), result.to_string()));
        self.messages.get_or_create(&labels).inc();
    }

    pub fn pending(&self, key: &SinkKey, messages: usize) {
        self.pending
            .get_or_create(&labels(key))
            .set(i64::try_from(messages).unwrap_or(i64::MAX));
    }
}
