//! A sink's bounded buffer of audit records and the task that writes them in order. Records
//! leave the buffer only once the sink has taken them: a sink that is down keeps them, retried
//! with backoff; a full buffer drops its oldest record and counts it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tracing::warn;

use super::destination::Destination;
use super::record::AuditRecord;

/// Records written at most in one go.
const BATCH: usize = 500;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

type Labels = Vec<(String, String)>;

/// The audit families of /metrics.
#[derive(Clone, Default)]
pub struct AuditMetrics {
    pub records: Family<Labels, Counter>,
    pub pending: Family<Labels, Gauge>,
}

impl AuditMetrics {
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "audit_records",
            "Audit records by sink and result: written, dropped (the buffer was full), failed_attempt (retried)",
            self.records.clone(),
        );
        registry.register(
            "audit_pending",
            "Audit records buffered for a sink",
            self.pending.clone(),
        );
    }

    fn count(&self, sink: &str, result: &str, by: u64) {
        let labels = vec![
            ("sink".to_string(), sink.to_string()),
            ("result".to_string(), result.to_string()),
        ];
        self.records.get_or_create(&labels).inc_by(by);
    }

    fn set_pending(&self, sink: &str, records: usize) {
        let labels = vec![("sink".to_string(), sink.to_string())];
        self.pending
            .get_or_create(&labels)
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }
}

pub struct Buffered {
    sink: &'static str,
    capacity: usize,
    records: Mutex<VecDeque<AuditRecord>>,
    wake: tokio::sync::Notify,
    metrics: AuditMetrics,
}

impl Buffered {
    /// Starts the task that writes to `destination`.
    pub fn start(destination: Destination, capacity: usize, metrics: AuditMetrics) -> Arc<Self> {
        let buffered = Arc::new(Self {
            sink: destination.name(),
            capacity: capacity.max(1),
            records: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            metrics,
        });
        tokio::spawn(buffered.clone().run(destination));
        buffered
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<AuditRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Buffers the record; never waits.
    pub fn push(&self, record: AuditRecord) {
        let mut records = self.lock();
        if records.len() >= self.capacity {
            records.pop_front();
            self.metrics.count(self.sink, "dropped", 1);
        }
        records.push_back(record);
        self.metrics.set_pending(self.sink, records.len());
        drop(records);
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>, mut destination: Destination) {
        let mut failures: u32 = 0;
        loop {
            let wake = self.wake.notified();
            let batch: Vec<AuditRecord> = self.lock().iter().take(BATCH).cloned().collect();
            if batch.is_empty() {
                wake.await;
                continue;
            }
            match destination.write(&batch).await {
                Ok(()) => {
                    failures = 0;
                    let mut records = self.lock();
                    // The oldest may have been dropped meanwhile: remove exactly what was written.
                    for written in &batch {
                        if records.front().is_some_and(|r| r.id == written.id) {
                            records.pop_front();
                        }
                    }
                    self.metrics.set_pending(self.sink, records.len());
                    drop(records);
                    self.metrics.count(self.sink, "written", batch.len() as u64);
                }
                Err(error) => {
                    failures += 1;
                    self.metrics.count(self.sink, "failed_attempt", 1);
                    let wait = FIRST_RETRY
                        .saturating_mul(1 << failures.min(8))
                        .min(LAST_RETRY);
                    warn!(sink = self.sink, pending = self.lock().len(), retry_in = ?wait, "audit records not written: {error}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
