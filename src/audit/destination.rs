//! Where a buffer writes: PostgreSQL or a CloudEvents webhook.

use std::time::Duration;

use serde_json::json;

use super::postgres::PostgresWriter;
use super::record::AuditRecord;

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Destination {
    Postgres(PostgresWriter),
    Webhook { http: reqwest::Client, url: String },
}

impl Destination {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Webhook { .. } => "webhook",
        }
    }

    pub async fn write(&mut self, batch: &[AuditRecord]) -> Result<(), String> {
        match self {
            Self::Postgres(writer) => writer.write(batch).await,
            Self::Webhook { http, url } => {
                // One CloudEvent per record, in order; a failure retries from the first one
                // not accepted (the receiver drops repeated ids).
                for record in batch {
                    let response = http
                        .post(url.as_str())
                        .header("content-type", "application/cloudevents+json")
                        .timeout(WEBHOOK_TIMEOUT)
                        .body(cloud_event(record).to_string())
                        .send()
                        .await
                        .map_err(|e| format!("sending: {}", e.without_url()))?;
                    if !response.status().is_success() {
                        return Err(format!("HTTP {} from the audit webhook", response.status()));
                    }
                }
                Ok(())
            }
        }
    }
}

/// An audit record as a CloudEvent 1.0 (structured mode).
pub fn cloud_event(record: &AuditRecord) -> serde_json::Value {
    json!({
        "specversion": "1.0",
        "id": record.id,
        "source": format!("/apis/sluice.dev/v1alpha1/namespaces/{}/{}s/{}", record.namespace, record.object_kind.to_lowercase(), record.object_name),
        "type": format!("dev.sluice.audit.{}", record.kind.as_str()),
        "subject": record.object_name,
        "time": record.time.to_string(),
        "datacontenttype": "application/json",
        "data": record,
    })
}
