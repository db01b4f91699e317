//! The audit trail on a real cluster and a real PostgreSQL: a promotion asked for by a person, a
//! rollback while the database is down, and a restoring release. The database ends up holding
//! every decision in order, and `sluice report` prints the figures the rollout's history gives.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::canary_rollout::{HistoryEntry, Phase, RolloutResult};
use support::{PostgresInstance, eventually};

const V2: &str = "registry.example/checkout:2.0.0";
const V3: &str = "registry.example/checkout:3.0.0";
const V4: &str = "registry.example/checkout:4.0.0";
const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// (kind, reason, message, actor) of every record, in the order written.
async fn records(db: &PostgresInstance) -> Vec<(String, String, String, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT kind, reason, message, actor FROM sluice_audit_records ORDER BY seq",
            &[],
        )
        .await
        .expect("query the audit records")
        .into_iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Promotes the canary now, as `alice` would with `kubectl sluice promote`.
async fn promote_as_alice(service: &Service) {
    let output = service
        .ns
        .kubectl(&[
            "annotate",
            "canaryrollout",
            "checkout",
            "--overwrite",
            &format!("sluice.dev/promote={}", jiff::Timestamp::now()),
            "sluice.dev/requested-by=alice@production",
        ])
        .await;
    assert!(output.status.success(), "{output:?}");
}

async fn release_promoted_by_alice(service: &Service, image: &str) -> HistoryEntry {
    service.set_image(image).await;
    service.wait_canary_weight(5).await;
    promote_as_alice(service).await;
    let rollout = service
        .wait_phase(Phase::Succeeded, Duration::from_secs(30))
        .await;
    let entry = rollout
        .status
        .expect("status")
        .history
        .last()
        .cloned()
        .expect("history");
    assert_eq!(entry.result, RolloutResult::Promoted);
    entry
}

fn seconds(entry: &HistoryEntry) -> f64 {
    entry
        .finished_at
        .duration_since(entry.started_at)
        .as_secs_f64()
}

#[tokio::test]
async fn every_decision_lands_in_postgres_in_order_through_a_database_restart() {
    let db = PostgresInstance::start().await;
    let url = db.url();
    let service = Service::deploy_with_operator_args(
        "audit",
        &rollout_yaml(GATEWAY, LONG_STAGES, ""),
        &["--audit-database-url", &url, "--audit-retention", "365d"],
    )
    .await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;

    // A promotion a person asked for.
    let promoted = release_promoted_by_alice(&service, V2).await;

    // A rollback decided while the database is down.
    db.stop_server().await;
    service.set_canary_error_ratio(0.5);
    service.set_image(V3).await;
    let rolled_back = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(40))
        .await;
    let failed = rolled_back
        .status
        .expect("status")
        .history
        .last()
        .cloned()
        .expect("history");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = service.operator_metrics().await;
    assert!(
        metrics.contains("sluice_audit_records_total{sink=\"postgres\",result=\"failed_attempt\"}"),
        "{metrics}"
    );
    db.start_server().await;

    // A release that restores the service.
    service.set_canary_error_ratio(0.001);
    let restored = release_promoted_by_alice(&service, V4).await;

    // Every event of the rollout is a record, in the order the events were recorded. The
    // operator records an event after the objects it follows, and the sink stores it a moment
    // later: wait until every event the API lists is stored too.
    let (stored, events) = eventually(
        Duration::from_secs(60),
        "every decision stored",
        async || {
            let stored = records(&db).await;
            let deployments = stored.iter().filter(|r| r.0 == "Deployment").count();
            let events: Vec<(String, String)> = service
                .ns
                .events()
                .await
                .into_iter()
                .filter(|e| e.object_kind == "CanaryRollout")
                .map(|e| (e.reason, e.message))
                .collect();
            let missing: Vec<&(String, String)> = events
                .iter()
                .filter(|(reason, note)| {
                    !stored.iter().any(|r| {
                        r.0 == "Event"
                            && &r.1 == reason
                            && r.2.starts_with(note.trim_end_matches('…'))
                    })
                })
                .collect();
            if deployments == 3 && missing.is_empty() {
                Ok((stored, events))
            } else {
                Err(format!(
                    "{deployments} deployment records; events not stored: {missing:?}"
                ))
            }
        },
    )
    .await;
    let stored_events: Vec<(String, String)> = stored
        .iter()
        .filter(|r| r.0 == "Event")
        .map(|r| (r.1.clone(), r.2.clone()))
        .collect();
    assert!(events.len() >= 10, "{events:?}");
    let lifecycle: Vec<&str> = stored_events
        .iter()
        .map(|(reason, _)| reason.as_str())
        .filter(|r| {
            [
                "RolloutStarted",
                "PromoteRequested",
                "Promoted",
                "RolledBack",
            ]
            .contains(r)
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            "RolloutStarted",
            "PromoteRequested",
            "Promoted",
            "RolloutStarted",
            "RolledBack",
            "RolloutStarted",
            "PromoteRequested",
            "Promoted"
        ]
    );
    let deployments: Vec<&(String, String, String, Option<String>)> =
        stored.iter().filter(|r| r.0 == "Deployment").collect();
    let results: Vec<&str> = deployments.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(results, ["Promoted", "RolledBack", "Promoted"]);
    let asked: Vec<&Option<String>> = stored
        .iter()
        .filter(|r| r.1 == "PromoteRequested")
        .map(|r| &r.3)
        .collect();
    assert_eq!(asked.len(), 2);
    assert!(
        asked
            .iter()
            .all(|a| a.as_deref() == Some("alice@production")),
        "{asked:?}"
    );
    let evaluations = stored.iter().filter(|r| r.0 == "Evaluation").count();
    let failing = stored
        .iter()
        .filter(|r| r.0 == "Evaluation" && r.1 == "Fail")
        .count();
    assert!(
        evaluations >= 4 && failing >= 2,
        "{evaluations} evaluations, {failing} failing"
    );
    let metrics = service.operator_metrics().await;
    assert!(
        !metrics.contains("sluice_audit_records_total{sink=\"postgres\",result=\"dropped\"}"),
        "{metrics}"
    );
    // The same figures on /metrics.
    let labels = format!("namespace=\"{0}\",environment=\"{0}\"", service.ns.name());
    for line in [
        format!("sluice_deployments_total{{{labels},result=\"Promoted\"}} 2"),
        format!("sluice_deployments_total{{{labels},result=\"RolledBack\"}} 1"),
        format!("sluice_deployment_lead_time_seconds_count{{{labels}}} 2"),
        format!("sluice_time_to_restore_seconds_count{{{labels}}} 1"),
        format!("sluice_change_failure_ratio{{{labels}}} 0.3333333333333333"),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }

    // The log has every record too, the deployments included.
    let log = service.operator_log();
    let logged = log.lines().filter(|l| l.contains("sluice::audit")).count();
    assert!(
        logged >= stored.len(),
        "{logged} audit lines for {} records",
        stored.len()
    );
    assert!(
        log.contains(r#"\"kind\":\"Deployment\""#) || log.contains(r#""kind":"Deployment""#),
        "{log}"
    );

    // Retention: a record older than a year goes at the next start.
    db.client()
        .await
        .execute(
            "INSERT INTO sluice_audit_records (id, recorded_at, kind, namespace, object_kind, object_name, environment, reason, warning, message)
             VALUES ('old', now() - interval '400 days', 'Event', 'x', 'CanaryRollout', 'x', 'x', 'Old', false, 'old')",
            &[],
        )
        .await
        .expect("insert an old record");
    service.set_image(V2).await;
    let mut service = service;
    service.operator().restart().await;
    eventually(
        Duration::from_secs(60),
        "the old record deleted",
        async || {
            let left = db
                .client()
                .await
                .query("SELECT 1 FROM sluice_audit_records WHERE id = 'old'", &[])
                .await
                .expect("query");
            left.is_empty()
        },
    )
    .await;

    // The report gives the history's figures.
    let output = tokio::process::Command::new(SLUICE)
        .args(["report", "--database-url", &url, "--since", "1h"])
        .output()
        .await
        .expect("run sluice report");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = service.ns.name();
    for line in [
        format!("{name}/checkout (environment {name}), last 1h:"),
        "  deployments      2 promoted, 1 rolled back; 48.00 promotions/day".to_string(),
        "  success rate     66.7 %".to_string(),
        "  rollbacks        24.00/day; causes: analysis 1".to_string(),
        "(1 of 1 rollbacks restored)".to_string(),
    ] {
        assert!(report.contains(&line), "{line:?} not in\n{report}");
    }
    // The durations, against the rollout's own history (the database keeps microseconds).
    let output = tokio::process::Command::new(SLUICE)
        .args(["report", "--database-url", &url, "--since", "1h", "--json"])
        .output()
        .await
        .expect("run sluice report --json");
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let service_figures = &figures[0];
    let close = |field: &str, expected: f64| {
        let value = service_figures[field].as_f64().unwrap_or(f64::NAN);
        assert!(
            (value - expected).abs() < 0.001,
            "{field}: {value} against {expected}"
        );
    };
    let median_lead = (seconds(&promoted) + seconds(&restored)) / 2.0;
    close("leadTimeP50Seconds", median_lead);
    close("leadTimeMeanSeconds", median_lead);
    close(
        "timeToRestoreP50Seconds",
        restored
            .finished_at
            .duration_since(failed.finished_at)
            .as_secs_f64(),
    );
}
