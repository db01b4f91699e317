//! The operator's own telemetry: /metrics scraped by the real Prometheus, and JSON logs that
//! name the rollout on every line written while reconciling it.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use serde_json::Value;
use sluice::api::canary_rollout::Phase;
use sluice::devenv::exporter::ScrapeTarget;
use sluice::metrics::{MetricsSource, PrometheusSource};
use support::{eventually, unique_suffix};

/// A budget whose Prometheus is a closed port: every evaluation's query fails as unreachable.
const UNREACHABLE_BUDGET: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {name: unreachable}
spec:
  interval: 1s
  prometheus: {address: "http://127.0.0.1:9"}
  objectives:
  - name: availability
    target: 99
    good: sum(rate(http_requests_total{namespace="{{namespace}}", code!~"5.."}[{{window}}]))
    total: sum(rate(http_requests_total{namespace="{{namespace}}"}[{{window}}]))
"#;

#[tokio::test]
async fn metrics_carry_phase_weight_verdicts_outcomes_and_query_figures() {
    let service = Service::deploy_with_operator_args(
        "telemetry",
        &rollout_yaml(GATEWAY, QUICK_STAGES, ""),
        &["--log-format", "json"],
    )
    .await;
    let ns = service.ns.name().to_string();
    let operator = service.operator.as_ref().expect("operator");
    let address = operator.metrics_address().await;
    let id = format!("operator-{}", unique_suffix());
    let _target = ScrapeTarget::register(&service.env.sd_dir, &id, &address).expect("register");
    for probe in ["healthz", "readyz"] {
        let answer = reqwest::get(format!("http://{address}/{probe}"))
            .await
            .unwrap_or_else(|e| panic!("/{probe}: {e}"));
        assert_eq!(answer.status(), 200, "/{probe}");
    }
    service.ns.apply_yaml(UNREACHABLE_BUDGET).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;

    service.set_image("registry.example/checkout:2.0.0").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let prometheus = PrometheusSource::new(&service.env.prometheus_url, Duration::from_secs(5))
        .expect("prometheus client");
    let rollout = format!(r#"namespace="{ns}",name="checkout",sluice_test_exporter="{id}""#);
    let operator_series = format!(r#"sluice_test_exporter="{id}""#);
    for (query, expected) in [
        (
            format!(r#"sluice_rollout_phase{{{rollout},phase="Succeeded"}}"#),
            1.0,
        ),
        (
            format!(r#"sluice_rollout_phase{{{rollout},phase="Progressing"}}"#),
            0.0,
        ),
        (format!("sluice_rollout_canary_weight{{{rollout}}}"), 0.0),
        (format!("sluice_rollout_promotions_total{{{rollout}}}"), 1.0),
        (format!("sluice_leader{{{operator_series}}}"), 1.0),
    ] {
        expect_value(
            &prometheus,
            &query,
            |v| v == expected,
            &format!("{expected}"),
        )
        .await;
    }
    // Every stage needs an evaluation that passed.
    let passes = format!(r#"sluice_rollout_evaluations_total{{{rollout},verdict="Pass"}}"#);
    expect_value(&prometheus, &passes, |v| v >= 4.0, ">= 4").await;
    let reconciles = format!(
        r#"sluice_reconcile_duration_seconds_count{{{operator_series},controller="rollout"}}"#
    );
    expect_value(&prometheus, &reconciles, |v| v >= 5.0, ">= 5").await;
    let queries =
        format!(r#"sum(sluice_prometheus_query_duration_seconds_count{{{operator_series}}})"#);
    expect_value(&prometheus, &queries, |v| v >= 4.0, ">= 4").await;
    let failures = format!(
        r#"sluice_prometheus_query_failures_total{{{operator_series},category="unreachable"}}"#
    );
    expect_value(&prometheus, &failures, |v| v >= 1.0, ">= 1").await;

    // A bad version: rolled back by the analysis, counted with its cause.
    service.set_canary_error_ratio(0.5);
    service.set_image("registry.example/checkout:3.0.0").await;
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(60))
        .await;
    let rollbacks = format!(r#"sluice_rollout_rollbacks_total{{{rollout},reason="analysis"}}"#);
    expect_value(&prometheus, &rollbacks, |v| v == 1.0, "1").await;
    let fails = format!(r#"sluice_rollout_evaluations_total{{{rollout},verdict="Fail"}}"#);
    expect_value(&prometheus, &fails, |v| v >= 2.0, ">= 2 (failureLimit)").await;

    // Every line the rollout's reconciles wrote names it in its span.
    let log = operator.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let in_reconcile: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["controller"] == "rollout")
        .collect();
    assert!(
        in_reconcile.len() >= 5,
        "few lines written while reconciling:\n{log}"
    );
    for line in &in_reconcile {
        assert_eq!(line["span"]["namespace"], ns.as_str(), "{line}");
        assert_eq!(line["span"]["object"], "checkout", "{line}");
    }
    // Each recorded event is logged too, inside the reconcile that decided it.
    let events_logged: Vec<&Value> = lines
        .iter()
        .filter(|line| line["reason"].is_string())
        .collect();
    assert!(events_logged.len() >= 6, "{log}");
    for line in events_logged {
        assert_eq!(line["span"]["namespace"], ns.as_str(), "{line}");
    }
}

/// Waits until Prometheus has scraped a value of `query` that `accept`s.
async fn expect_value(
    prometheus: &PrometheusSource,
    query: &str,
    accept: impl Fn(f64) -> bool,
    expected: &str,
) {
    eventually(
        Duration::from_secs(30),
        &format!("{query} = {expected}"),
        async || match prometheus.query_value(query, None).await {
            Ok(Some(value)) if accept(value) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await
}
