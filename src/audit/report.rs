//! `sluice report`: delivery figures per service and environment over a window, read from the
//! audit trail's views in PostgreSQL (`sluice_deployments`, `sluice_restorations`).
//!
//! - deployment frequency: promotions per day;
//! - success rate: promotions over promotions and rollbacks;
//! - rollback frequency: rollbacks per day, and their causes;
//! - lead time: from a rollout's start (its new template seen) to its promotion;
//! - time to restore: from a rollback to the next promotion of the same service and
//!   environment.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::NoTls;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFigures {
    pub namespace: String,
    pub service: String,
    pub environment: String,
    pub promoted: i64,
    pub rolled_back: i64,
    pub deployments_per_day: f64,
    pub rollbacks_per_day: f64,
    /// None without any promotion or rollback.
    pub success_rate: Option<f64>,
    pub rollback_causes: BTreeMap<String, i64>,
    pub lead_time_p50_seconds: Option<f64>,
    pub lead_time_mean_seconds: Option<f64>,
    pub restored: i64,
    pub not_restored: i64,
    pub time_to_restore_p50_seconds: Option<f64>,
}

const DEPLOYMENTS: &str = "
SELECT namespace, service, environment,
       count(*) FILTER (WHERE result = 'Promoted') AS promoted,
       count(*) FILTER (WHERE result = 'RolledBack') AS rolled_back,
       (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
            FILTER (WHERE result = 'Promoted'))::float8 AS lead_p50,
       (avg(extract(epoch FROM finished_at - started_at)) FILTER (WHERE result = 'Promoted'))::float8 AS lead_mean
  FROM sluice_deployments
 WHERE finished_at >= now() - make_interval(secs => $1)
 GROUP BY namespace, service, environment
 ORDER BY namespace, service, environment";

const CAUSES: &str = "
SELECT namespace, service, environment, coalesce(cause, 'unknown'), count(*)
  FROM sluice_deployments
 WHERE result = 'RolledBack' AND finished_at >= now() - make_interval(secs => $1)
 GROUP BY 1, 2, 3, 4";

const RESTORES: &str = "
SELECT namespace, service, environment,
       count(restored_at) AS restored,
       count(*) - count(restored_at) AS not_restored,
       (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM restored_at - failed_at)))::float8 AS restore_p50
  FROM sluice_restorations
 WHERE failed_at >= now() - make_interval(secs => $1)
 GROUP BY 1, 2, 3";

type Key = (String, String, String);

/// Reads the figures of the last `window` from the database at `url`.
pub async fn read(url: &str, window: Duration) -> Result<Vec<ServiceFigures>, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    let seconds = window.as_secs_f64();
    let days = seconds / 86_400.0;
    let query = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[&seconds])
                .await
                .map_err(|e| format!("querying the audit trail: {e}"))
        }
    };
    let mut figures: BTreeMap<Key, ServiceFigures> = BTreeMap::new();
    for row in query(DEPLOYMENTS).await? {
        let key: Key = (row.get(0), row.get(1), row.get(2));
        let (promoted, rolled_back): (i64, i64) = (row.get(3), row.get(4));
        let judged = promoted + rolled_back;
        figures.insert(
            key.clone(),
            ServiceFigures {
                namespace: key.0,
                service: key.1,
                environment: key.2,
                promoted,
                rolled_back,
                deployments_per_day: promoted as f64 / days,
                rollbacks_per_day: rolled_back as f64 / days,
                success_rate: (judged > 0).then(|| promoted as f64 / judged as f64),
                lead_time_p50_seconds: row.get(5),
                lead_time_mean_seconds: row.get(6),
                ..Default::default()
            },
        );
    }
    for row in query(CAUSES).await? {
        let key: Key = (row.get(0), row.get(1), row.get(2));
        if let Some(service) = figures.get_mut(&key) {
            service.rollback_causes.insert(row.get(3), row.get(4));
        }
    }
    for row in query(RESTORES).await? {
        let key: Key = (row.get(0), row.get(1), row.get(2));
        if let Some(service) = figures.get_mut(&key) {
            service.restored = row.get(3);
            service.not_restored = row.get(4);
            service.time_to_restore_p50_seconds = row.get(5);
        }
    }
    Ok(figures.into_values().collect())
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// The report as text, one block per service and environment.
pub fn render(figures: &[ServiceFigures], window: &str) -> String {
    if figures.is_empty() {
        return format!("no rollout ended in the last {window}\n");
    }
    let mut out = String::new();
    for f in figures {
        let causes: Vec<String> = f
            .rollback_causes
            .iter()
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "{}/{} (environment {}), last {window}:",
            f.namespace, f.service, f.environment
        );
        let _ = writeln!(
            out,
            "  deployments      {} promoted, {} rolled back; {:.2} promotions/day",
            f.promoted, f.rolled_back, f.deployments_per_day
        );
        let _ = writeln!(
            out,
            "  success rate     {}",
            f.success_rate
                .map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0))
        );
        let _ = writeln!(
            out,
            "  rollbacks        {:.2}/day{}",
            f.rollbacks_per_day,
            if causes.is_empty() {
                String::new()
            } else {
                format!("; causes: {}", causes.join(", "))
            }
        );
        let _ = writeln!(
            out,
            "  lead time        p50 {}, mean {}",
            seconds(f.lead_time_p50_seconds),
            seconds(f.lead_time_mean_seconds)
        );
        let _ = writeln!(
            out,
            "  time to restore  p50 {} ({} of {} rollbacks restored)",
            seconds(f.time_to_restore_p50_seconds),
            f.restored,
            f.restored + f.not_restored
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_block_names_every_figure() {
        let figures = ServiceFigures {
            namespace: "shop".into(),
            service: "checkout".into(),
            environment: "production".into(),
            promoted: 2,
            rolled_back: 1,
            deployments_per_day: 2.0 / 30.0,
            rollbacks_per_day: 1.0 / 30.0,
            success_rate: Some(2.0 / 3.0),
            rollback_causes: BTreeMap::from([("analysis".to_string(), 1)]),
            lead_time_p50_seconds: Some(25.0),
            lead_time_mean_seconds: Some(3000.0),
            restored: 1,
            not_restored: 0,
            time_to_restore_p50_seconds: Some(12_000.0),
        };
        assert_eq!(
            render(&[figures], "30d"),
            "shop/checkout (environment production), last 30d:
  deployments      2 promoted, 1 rolled back; 0.07 promotions/day
  success rate     66.7 %
  rollbacks        0.03/day; causes: analysis 1
  lead time        p50 25.0 s, mean 50.0 min
  time to restore  p50 3.3 h (1 of 1 rollbacks restored)
"
        );
        assert_eq!(render(&[], "7d"), "no rollout ended in the last 7d\n");
    }
}
