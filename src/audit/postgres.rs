//! Audit records into PostgreSQL: the schema is migrated on connect (refinery, `migrations/`),
//! each batch is one transaction, and records older than the retention are deleted hourly.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};
use tracing::{info, warn};

use super::record::AuditRecord;

mod embedded {
    refinery::embed_migrations!("migrations");
}

const RETENTION_EVERY: Duration = Duration::from_secs(3600);

const INSERT: &str = "INSERT INTO sluice_audit_records
    (id, recorded_at, kind, namespace, object_kind, object_name, environment, revision, reason, warning, actor, message, data)
    VALUES ($1, $2::text::timestamptz, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (id) DO NOTHING";

pub struct PostgresWriter {
    url: String,
    retention: Option<Duration>,
    client: Option<Client>,
    retention_due: Instant,
}

impl PostgresWriter {
    pub fn new(url: String, retention: Option<Duration>) -> Self {
        Self {
            url,
            retention,
            client: None,
            retention_due: Instant::now(),
        }
    }

    /// Connects and migrates the schema, once per connection.
    async fn connected(&mut self) -> Result<&mut Client, String> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let (mut client, connection) = tokio_postgres::connect(&self.url, NoTls)
                .await
                .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    warn!("PostgreSQL connection ended: {error}");
                }
            });
            let report = embedded::migrations::runner()
                .run_async(&mut client)
                .await
                .map_err(|e| format!("migrating the audit schema: {e}"))?;
            for migration in report.applied_migrations() {
                info!(migration = %migration, "audit schema migrated");
            }
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| "no PostgreSQL connection".to_string())
    }

    pub async fn write(&mut self, batch: &[AuditRecord]) -> Result<(), String> {
        let result = self.insert(batch).await;
        if result.is_err() {
            // A failed connection is opened again on the next try.
            self.client = None;
        }
        result?;
        self.apply_retention().await;
        Ok(())
    }

    async fn insert(&mut self, batch: &[AuditRecord]) -> Result<(), String> {
        let client = self.connected().await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| format!("starting a transaction: {e}"))?;
        let statement = transaction
            .prepare(INSERT)
            .await
            .map_err(|e| format!("preparing the insert: {e}"))?;
        for record in batch {
            let time = record.time.to_string();
            transaction
                .execute(
                    &statement,
                    &[
                        &record.id,
                        &time,
                        &record.kind.as_str(),
                        &record.namespace,
                        &record.object_kind,
                        &record.object_name,
                        &record.environment,
                        &record.revision,
                        &record.reason,
                        &record.warning,
                        &record.actor,
                        &record.message,
                        &record.data,
                    ],
                )
                .await
                .map_err(|e| format!("inserting record {}: {e}", record.id))?;
        }
        transaction
            .commit()
            .await
            .map_err(|e| format!("committing: {e}"))
    }

    async fn apply_retention(&mut self) {
        let Some(retention) = self.retention else {
            return;
        };
        if Instant::now() < self.retention_due {
            return;
        }
        self.retention_due = Instant::now() + RETENTION_EVERY;
        let Ok(client) = self.connected().await else {
            return;
        };
        let seconds = retention.as_secs_f64();
        match client
            .execute(
                "DELETE FROM sluice_audit_records WHERE recorded_at < now() - make_interval(secs => $1)",
                &[&seconds],
            )
            .await
        {
            Ok(0) => {}
            Ok(deleted) => info!(deleted, "audit records older than the retention deleted"),
            Err(error) => warn!("audit retention: {error}"),
        }
    }
}
