//! The chart's alerts and dashboard: the PrometheusRule passes promtool and its unit test
//! (tests/chart_alerts.yaml), and every alert and dashboard query parses and names only metrics
//! the operator exports.

mod helm;
mod support;

use helm::{documents, find, render, run_ok};
use serde_json::Value;
use support::{scratch_dir, unique_suffix};

/// The alerts render to rules promtool accepts, and fire (or stay quiet) on recorded scenarios:
/// tests/chart_alerts.yaml is a promtool unit test over the rendered rules.
#[test]
fn alerts_pass_promtool_and_fire_on_their_scenarios() {
    let rendered = render(
        "sluice",
        "sluice-system",
        &["prometheusRule.enabled=true"],
        &["templates/prometheusrule.yaml"],
    );
    let rule = documents(&rendered).remove(0);
    let dir = scratch_dir().join(format!("chart-alerts-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let rules = dir.join("sluice-rules.json");
    std::fs::write(&rules, rule["spec"].to_string()).expect("write rules");
    let tests = dir.join("alerts-test.yaml");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chart_alerts.yaml"),
        &tests,
    )
    .expect("copy the promtool test");
    let checked = run_ok(
        "promtool",
        &["check", "rules", rules.to_str().unwrap()],
        None,
    );
    assert!(checked.contains("SUCCESS: 12 rules found"), "{checked}");
    run_ok(
        "promtool",
        &["test", "rules", tests.to_str().unwrap()],
        None,
    );
}

/// The metric families the operator exports (src/controller/metrics.rs, delivery_metrics.rs,
/// src/notify/metrics.rs, src/audit/buffer.rs), as the alerts and the
/// dashboard may name them; histograms add `_bucket`, `_count` and `_sum`.
const OPERATOR_METRICS: &[&str] = &[
    "sluice_rollout_phase",
    "sluice_rollout_stage",
    "sluice_rollout_canary_weight",
    "sluice_rollout_evaluations_total",
    "sluice_rollout_promotions_total",
    "sluice_rollout_rollbacks_total",
    "sluice_reconcile_duration_seconds",
    "sluice_reconcile_errors_total",
    "sluice_prometheus_query_duration_seconds",
    "sluice_prometheus_query_failures_total",
    "sluice_leader",
    "sluice_parity_tracking_error_bps",
    "sluice_parity_mean_difference_bps",
    "sluice_parity_rms_difference_bps",
    "sluice_parity_residual_bps",
    "sluice_parity_component_difference_bps",
    "sluice_parity_level",
    "sluice_parity_evaluations_total",
    "sluice_parity_groups",
    "sluice_parity_worst_group_rms_bps",
    "sluice_slo_budget_remaining",
    "sluice_slo_burn_rate",
    "sluice_slo_objective_state",
    "sluice_slo_compliance_score",
    "sluice_slo_frozen",
    "sluice_deployments_total",
    "sluice_deployment_lead_time_seconds",
    "sluice_time_to_restore_seconds",
    "sluice_change_failure_ratio",
    "sluice_notification_messages_total",
    "sluice_notification_pending",
    "sluice_audit_records_total",
    "sluice_audit_pending",
];

/// Every query of the alerts and the dashboard parses and names only metrics the operator
/// exports.
#[test]
fn alerts_and_dashboard_query_only_metrics_the_operator_exports() {
    let rendered = render(
        "sluice",
        "sluice-system",
        &["prometheusRule.enabled=true", "dashboard.enabled=true"],
        &["templates/prometheusrule.yaml", "templates/dashboard.yaml"],
    );
    let objects = documents(&rendered);
    let mut queries: Vec<String> = Vec::new();
    let rule = find(&objects, "PrometheusRule", None);
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for alert in group["rules"].as_array().expect("rules") {
            queries.push(alert["expr"].as_str().expect("expr").to_string());
        }
    }
    let config_map = find(&objects, "ConfigMap", None);
    let dashboard: Value = serde_json::from_str(
        config_map["data"]["sluice.json"]
            .as_str()
            .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            queries.push(expr.replace("$namespace", ".*"));
        }
    }
    assert!(queries.len() > 20, "{queries:?}");
    for query in &queries {
        promql_parser::parser::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        for name in metric_names(query) {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                OPERATOR_METRICS.contains(&name.as_str()) || OPERATOR_METRICS.contains(&family),
                "{name} (in {query}) is not a metric of the operator"
            );
        }
    }
}

/// The `sluice_*` names in a query.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("sluice_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}
