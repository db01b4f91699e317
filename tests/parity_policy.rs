//! A standalone ParityPolicy on a schedule (the daily parity job), with no rollout involved:
//! evaluations land in its status, in events and on the operator's /metrics.

mod support;

use std::time::Duration;

use sluice::api::parity_policy::{ParityLevel, ParityPolicy};
use support::{MetricsExporter, Operator, TestEnv, eventually, free_port};

const NAV: &str = "sluice_test_nav";

fn policy(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: ParityPolicy
metadata: {{name: {name}}}
spec:
  candidate: 'max(sluice_test_nav{{namespace="{{{{namespace}}}}",series="fund"}})'
  baseline: 'max(sluice_test_nav{{namespace="{{{{namespace}}}}",series="index"}})'
  window: 20s
  step: 1s
  minSamples: 5
  schedule: "* * * * *"
{extra}"#
    )
}

async fn policy_status(ns: &support::TestNamespace, name: &str) -> sluice::api::ParityPolicyStatus {
    ns.api::<ParityPolicy>()
        .get(name)
        .await
        .expect("read ParityPolicy")
        .status
        .unwrap_or_default()
}

#[tokio::test]
async fn a_scheduled_policy_writes_evaluations_to_status_events_and_metrics() {
    let env = TestEnv::get().await;
    let ns = env.namespace("parity-scheduled").await;
    let exporter = MetricsExporter::start(&env, ns.name()).await;
    exporter.set(NAV, &[("namespace", ns.name()), ("series", "index")], 100.0);
    exporter.set(NAV, &[("namespace", ns.name()), ("series", "fund")], 100.3);
    exporter
        .wait_until_scraped(NAV, &[("namespace", ns.name()), ("series", "fund")])
        .await;
    // The schedule's first run can come a second after the policy: the window must already
    // hold minSamples (5) points of both series by then.
    for series in ["fund", "index"] {
        exporter
            .wait_until_recorded(NAV, &[("namespace", ns.name()), ("series", series)], 8)
            .await;
    }
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _operator = Operator::start(&env, ns.name(), &["--metrics-addr", &address]);
    ns.apply_yaml(&policy("fund-vs-index", "")).await;

    let evaluation = eventually(
        Duration::from_secs(90),
        "a scheduled evaluation",
        async || {
            policy_status(&ns, "fund-vs-index")
                .await
                .last_evaluation
                .ok_or("none yet")
        },
    )
    .await;
    assert_eq!(evaluation.level, ParityLevel::Warning, "{evaluation:?}");
    let rms = evaluation.rms_difference_bps.expect("rms");
    assert!((rms - 30.0).abs() < 0.5, "{evaluation:?}");
    assert!(evaluation.samples >= 5);
    let status = policy_status(&ns, "fund-vs-index").await;
    assert_eq!(status.history.len(), 1);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(
        ready.is_true() && ready.message.contains("rms 30.0 bps"),
        "{ready:?}"
    );

    // The event follows the status write that carries the same evaluation.
    eventually(
        Duration::from_secs(10),
        "a ParityLevelChanged event",
        async || {
            let events = ns.events().await;
            events
                .iter()
                .any(|e| e.reason == "ParityLevelChanged" && e.object_name == "fund-vs-index")
                .then_some(())
                .ok_or(format!("{events:?}"))
        },
    )
    .await;

    let page = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let series = format!(
        r#"sluice_parity_rms_difference_bps{{namespace="{}",policy="fund-vs-index"}}"#,
        ns.name()
    );
    let line = page
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("{series} missing in\n{page}"));
    let value: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!((value - 30.0).abs() < 0.5, "{line}");
    assert!(
        page.contains(&format!(
            r#"sluice_parity_level{{namespace="{}",policy="fund-vs-index",level="Warning"}} 1"#,
            ns.name()
        )),
        "{page}"
    );
    let ready = reqwest::get(format!("http://{address}/readyz"))
        .await
        .expect("GET /readyz");
    assert!(ready.status().is_success());
}

#[tokio::test]
async fn bad_policies_get_a_stalled_condition_and_a_warning_event() {
    let env = TestEnv::get().await;
    let ns = env.namespace("parity-invalid").await;
    let _operator = Operator::start(&env, ns.name(), &[]);
    let cases = [
        ("short-window", "  window: 1s\n  step: 5s\n", "window"),
        (
            "order",
            "  thresholds: {warningBps: 50, criticalBps: 20, emergencyBps: 100}\n",
            "spec.thresholds must increase strictly",
        ),
        ("cron", "", "invalid cron expression"),
    ];
    for (name, extra, _) in &cases {
        let mut yaml = policy(name, extra);
        if *name == "short-window" {
            yaml = yaml.replace("  window: 20s\n  step: 1s\n", "");
        }
        if *name == "cron" {
            yaml = yaml.replace("\"* * * * *\"", "\"every day at six\"");
        }
        ns.apply_yaml(&yaml).await;
    }
    for (name, _, expected) in cases {
        let stalled = eventually(
            Duration::from_secs(30),
            &format!("Stalled on {name}"),
            async || {
                let status = policy_status(&ns, name).await;
                status
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Stalled" && c.is_true())
                    .ok_or("not yet")
            },
        )
        .await;
        assert_eq!(stalled.reason, "InvalidSpec");
        assert!(
            stalled.message.contains(expected),
            "{name}: {}",
            stalled.message
        );
        // The event follows the status write.
        eventually(
            Duration::from_secs(10),
            "an InvalidSpec event",
            async || {
                let events = ns.events().await;
                events
                    .iter()
                    .any(|e| {
                        e.object_name == name && e.reason == "InvalidSpec" && e.type_ == "Warning"
                    })
                    .then_some(())
                    .ok_or(format!("{name}: {events:?}"))
            },
        )
        .await;
    }
}
