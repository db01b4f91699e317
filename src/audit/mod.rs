//! The audit trail: every decision as a structured record, written to the JSON log always
//! (target `sluice::audit`), and, when configured, to PostgreSQL and a CloudEvents webhook
//! through bounded buffers that keep records until the sink takes them (`buffer`).

pub mod buffer;
pub mod destination;
pub mod postgres;
pub mod record;
pub mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use buffer::{AuditMetrics, Buffered};
use destination::Destination;
use postgres::PostgresWriter;
pub use record::{AuditRecord, ENVIRONMENT_LABEL, RecordKind};

/// Where audit records go besides the log.
#[derive(Clone, Debug, Default)]
pub struct AuditConfig {
    /// `postgres://user:password@host:port/database`.
    pub postgres_url: Option<String>,
    /// Records older than this are deleted (hourly); None keeps them.
    pub retention: Option<Duration>,
    pub webhook_url: Option<String>,
    /// Records each sink's buffer holds while the sink is down.
    pub buffer: usize,
}

/// The default of `AuditConfig::buffer`.
pub const DEFAULT_BUFFER: usize = 100_000;

/// A record before it gets its id and time.
#[derive(Clone, Debug)]
pub struct Draft {
    pub kind: RecordKind,
    pub namespace: String,
    pub object_kind: String,
    pub object_name: String,
    pub environment: String,
    pub revision: Option<String>,
    pub reason: String,
    pub warning: bool,
    pub actor: Option<String>,
    pub message: String,
    pub data: Value,
}

pub struct Auditor {
    started: i128,
    sequence: AtomicU64,
    sinks: Vec<Arc<Buffered>>,
}

impl Auditor {
    /// Starts a task per configured sink (so call within a Tokio runtime when any is).
    pub fn new(config: &AuditConfig, metrics: AuditMetrics) -> Self {
        let capacity = if config.buffer == 0 {
            DEFAULT_BUFFER
        } else {
            config.buffer
        };
        let mut sinks = Vec::new();
        if let Some(url) = &config.postgres_url {
            let writer = PostgresWriter::new(url.clone(), config.retention);
            sinks.push(Buffered::start(
                Destination::Postgres(writer),
                capacity,
                metrics.clone(),
            ));
        }
        if let Some(url) = &config.webhook_url {
            let http = reqwest::Client::builder()
                .user_agent(crate::client::OPERATOR_USER_AGENT)
                .build()
                .unwrap_or_default();
            sinks.push(Buffered::start(
                Destination::Webhook {
                    http,
                    url: url.clone(),
                },
                capacity,
                metrics,
            ));
        }
        Self {
            started: Timestamp::now().as_nanosecond(),
            sequence: AtomicU64::new(0),
            sinks,
        }
    }

    /// Logs the record and buffers it for every sink; never waits.
    pub fn record(&self, draft: Draft) {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let record = AuditRecord {
            id: format!("{:x}-{sequence:08}", self.started),
            time: Timestamp::now(),
            kind: draft.kind,
            namespace: draft.namespace,
            object_kind: draft.object_kind,
            object_name: draft.object_name,
            environment: draft.environment,
            revision: draft.revision,
            reason: draft.reason,
            warning: draft.warning,
            actor: draft.actor,
            message: draft.message,
            data: draft.data,
        };
        match serde_json::to_string(&record) {
            Ok(json) => tracing::info!(target: "sluice::audit", record = %json, "audit"),
            Err(error) => {
                tracing::warn!(target: "sluice::audit", "audit record not serialised: {error}")
            }
        }
        for sink in &self.sinks {
            sink.push(record.clone());
        }
    }
}
