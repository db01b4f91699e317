//! Parity per symbol on the local control plane: one symbol of five 60 bps off rolls the canary
//! back and is named; the figures match values computed here from the prices published.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::parity::policy_status;
use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};
use sluice::api::parity_policy::ParityLevel;
use support::eventually;

const PRICE: &str = "sluice_test_symbol_price";
const NOTIONAL: &str = "sluice_test_symbol_notional";
/// Symbol, stable price, notional; MSFT's canary prices 0.6 % above its stable.
const SYMBOLS: [(&str, f64, f64); 5] = [
    ("AAPL", 190.0, 1.0),
    ("AMZN", 180.0, 2.0),
    ("GOOG", 170.0, 3.0),
    ("MSFT", 400.0, 4.0),
    ("NVDA", 120.0, 10.0),
];

const POLICY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: ParityPolicy
metadata: {name: checkout-parity}
spec:
  query: 'max by (symbol) (sluice_test_symbol_price{namespace="{{namespace}}",track="{{track}}"})'
  window: 8s
  step: 1s
  minSamples: 4
  consecutiveBreaches: 2
  groups:
    by: [symbol]
    weightQuery: 'max by (symbol) (sluice_test_symbol_notional{namespace="{{namespace}}"})'
    maxGroups: 10
"#;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sluice");

#[tokio::test]
async fn a_canary_60_bps_off_on_one_symbol_of_five_is_rolled_back_naming_the_symbol() {
    let extra = "    parityPolicyRef: {name: checkout-parity}\n";
    let stages = "[{weight: 5, pause: 60s}, {weight: 100, pause: 2s}]";
    let service = Service::deploy("parity-groups", &rollout_yaml(GATEWAY, stages, extra)).await;
    service.ns.apply_yaml(POLICY).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    let ns = service.ns.name().to_string();
    for (symbol, price, notional) in SYMBOLS {
        let canary = if symbol == "MSFT" {
            price * 1.006
        } else {
            price
        };
        for (track, value) in [("stable", price), ("canary", canary)] {
            let labels = [
                ("namespace", ns.as_str()),
                ("track", track),
                ("symbol", symbol),
            ];
            service.exporter.set(PRICE, &labels, value);
        }
        service.exporter.set(
            NOTIONAL,
            &[("namespace", ns.as_str()), ("symbol", symbol)],
            notional,
        );
    }
    let last = [
        ("namespace", ns.as_str()),
        ("track", "canary"),
        ("symbol", "NVDA"),
    ];
    service.exporter.wait_until_scraped(PRICE, &last).await;

    service.set_image("registry.example/checkout:2.0.0").await;
    let rollout = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(60))
        .await;
    let status = rollout.status.unwrap();
    let entry = status.history.last().unwrap();
    assert_eq!(entry.result, RolloutResult::RolledBack);
    assert!(
        entry.reason.starts_with("parity Critical: group symbol=MSFT rms 60.0 bps >= critical 50 bps (5 groups, 1 breaching; aggregate rms 12.0 bps)"),
        "{}",
        entry.reason
    );
    let note = service.awaited_warning("RolledBack").await;
    assert!(note.contains("group symbol=MSFT"), "{note}");
    let verdict = status.last_evaluation.unwrap().parity.unwrap();
    assert_eq!(verdict.worst_groups[0].group, "symbol=MSFT");

    // Independently: each symbol's difference is constant, (canary - stable) / stable; the
    // aggregate weighs them by notional (1 + 2 + 3 + 4 + 10 = 20).
    let expected_msft = (400.0 * 1.006 - 400.0) / 400.0 * 10_000.0;
    let expected_aggregate = expected_msft * 4.0 / 20.0;
    let evaluation = eventually(
        Duration::from_secs(20),
        "the policy's status shows the groups",
        async || {
            let status = policy_status(&service).await?;
            let last = status.last_evaluation.ok_or("no evaluation".to_string())?;
            last.groups
                .is_some()
                .then_some(last)
                .ok_or("no groups".to_string())
        },
    )
    .await;
    let groups = evaluation.groups.clone().unwrap();
    assert_eq!((groups.count, groups.breaching), (5, 1));
    let msft = &groups.worst[0];
    assert_eq!(msft.group, "symbol=MSFT");
    assert_eq!(msft.level, ParityLevel::Critical);
    assert!(
        (msft.rms_difference_bps.unwrap() - expected_msft).abs() < 1e-6,
        "{msft:?}"
    );
    assert!(
        (msft.mean_difference_bps.unwrap() - expected_msft).abs() < 1e-6,
        "{msft:?}"
    );
    assert!((msft.weight - 0.2).abs() < 1e-9, "{msft:?}");
    for other in &groups.worst[1..] {
        assert_eq!(other.rms_difference_bps, Some(0.0), "{other:?}");
        assert_eq!(other.level, ParityLevel::Pass);
    }
    let aggregate = evaluation.rms_difference_bps.unwrap();
    assert!((aggregate - expected_aggregate).abs() < 1e-6, "{aggregate}");

    let metrics = service.operator_metrics().await;
    let series = |name: &str, needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(needle))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    };
    assert_eq!(
        series("sluice_parity_groups{", "kind=\"judged\"").as_deref(),
        Some("5")
    );
    assert_eq!(
        series("sluice_parity_groups{", "kind=\"breaching\"").as_deref(),
        Some("1")
    );
    let worst: f64 = series("sluice_parity_worst_group_rms_bps{", "checkout-parity")
        .expect("worst group series")
        .parse()
        .unwrap();
    assert!((worst - expected_msft).abs() < 1e-6, "{worst}");
    assert!(!metrics.contains("MSFT"), "no group label on any series");

    let output = tokio::process::Command::new(PLUGIN)
        .args(["status", "checkout", "-n", &ns])
        .env("KUBECONFIG", &service.env.kubeconfig)
        .output()
        .await
        .expect("run kubectl-sluice");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("worst groups"), "{stdout}");
    let msft_row = stdout
        .lines()
        .find(|l| l.contains("symbol=MSFT"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        msft_row.contains("Critical") && msft_row.contains("60.0"),
        "{msft_row}"
    );
}

#[tokio::test]
async fn series_without_the_group_label_hold_the_stage_naming_the_field() {
    let extra = "    parityPolicyRef: {name: checkout-parity}\n";
    let stages = "[{weight: 5, pause: 2s}, {weight: 100, pause: 2s}]";
    let service = Service::deploy("parity-nolabel", &rollout_yaml(GATEWAY, stages, extra)).await;
    service
        .ns
        .apply_yaml(&POLICY.replace("by: [symbol]", "by: [venue]"))
        .await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    let ns = service.ns.name().to_string();
    for track in ["stable", "canary"] {
        let labels = [
            ("namespace", ns.as_str()),
            ("track", track),
            ("symbol", "AAPL"),
        ];
        service.exporter.set(PRICE, &labels, 190.0);
    }
    let last = [
        ("namespace", ns.as_str()),
        ("track", "canary"),
        ("symbol", "AAPL"),
    ];
    service.exporter.wait_until_scraped(PRICE, &last).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    let held = service.awaited_warning("AnalysisHeld").await;
    assert!(
        held.contains("has no label \"venue\" named in spec.groups.by"),
        "{held}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = service.status().await;
    assert_eq!(
        status.phase,
        Some(Phase::Progressing),
        "held, never promoted"
    );
    assert_eq!(status.stage, Some(0));
}
