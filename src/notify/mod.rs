//! Delivery of notifications: each sink of each Notification gets a bounded buffer and a task
//! that sends its messages in order (`sink`), in the format of its service (`payload`), with
//! credentials read from Secrets (`credentials`). Offering an event never waits: a sink that is
//! slow or down holds up nothing but its own buffer.

pub mod credentials;
pub mod metrics;
pub mod payload;
pub mod sink;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kube::Client;

use crate::api::notification::{Notification, SinkStatus};
use crate::engine::notification::{OutgoingEvent, problems, subscribed};
use credentials::Credentials;
use metrics::NotificationMetrics;
use sink::{SinkConfig, SinkKey, SinkQueue};

/// What every sink's task uses.
pub struct Shared {
    pub http: reqwest::Client,
    pub credentials: Credentials,
    pub metrics: NotificationMetrics,
}

pub struct Notifier {
    shared: Arc<Shared>,
    queues: Mutex<HashMap<SinkKey, Arc<SinkQueue>>>,
    sequence: AtomicU64,
}

impl Notifier {
    pub fn new(client: Client, metrics: NotificationMetrics) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(crate::client::OPERATOR_USER_AGENT)
            .build()
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                http,
                credentials: Credentials::new(client),
                metrics,
            }),
            queues: Mutex::default(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Buffers `event` for every sink of every valid Notification in `notifications` that
    /// subscribes to it. Returns at once.
    pub fn offer<'a>(
        &self,
        notifications: impl IntoIterator<Item = &'a Notification>,
        event: &OutgoingEvent,
    ) {
        for notification in notifications {
            let spec = &notification.spec;
            if notification.metadata.namespace.as_deref() != Some(event.namespace.as_str())
                || !subscribed(&spec.subscribe, event)
                || !problems(spec).is_empty()
            {
                continue;
            }
            let name = notification.metadata.name.clone().unwrap_or_default();
            for sink in &spec.sinks {
                let key = SinkKey {
                    namespace: event.namespace.clone(),
                    notification: name.clone(),
                    sink: sink.name.clone(),
                };
                let config = SinkConfig {
                    sink: sink.clone(),
                    per_minute: spec.rate_limit_per_minute,
                    deduplicate_for: spec.deduplicate_for.as_std(),
                };
                let id = format!(
                    "{}-{}",
                    event.time.as_nanosecond(),
                    self.sequence.fetch_add(1, Ordering::Relaxed)
                );
                self.queue(key, &config)
                    .offer(&self.shared, config, event.clone(), id);
            }
        }
    }

    /// The sink's queue, started on first use.
    fn queue(&self, key: SinkKey, config: &SinkConfig) -> Arc<SinkQueue> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(key.clone())
            .or_insert_with(|| {
                let queue = SinkQueue::new(key, config.clone());
                tokio::spawn(queue.clone().run(self.shared.clone()));
                queue
            })
            .clone()
    }

    /// What each sink of the Notification did, in the spec's order.
    pub fn figures(&self, notification: &Notification) -> Vec<SinkStatus> {
        let namespace = notification.metadata.namespace.clone().unwrap_or_default();
        let name = notification.metadata.name.clone().unwrap_or_default();
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        notification
            .spec
            .sinks
            .iter()
            .map(|sink| {
                let key = SinkKey {
                    namespace: namespace.clone(),
                    notification: name.clone(),
                    sink: sink.name.clone(),
                };
                queues.get(&key).map_or_else(
                    || SinkStatus {
                        name: sink.name.clone(),
                        ..Default::default()
                    },
                    |queue| queue.figures(),
                )
            })
            .collect()
    }
}
