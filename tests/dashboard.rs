//! `kubectl sluice dashboard` in headless Chromium against the local cluster: the pages load
//! without console errors, show the figures the API holds, follow a stage as it advances, and
//! the buttons do what they say. Screenshots land in target/tmp/screenshots.

mod rollout_fixture;
mod support;

use std::process::Stdio;
use std::time::Duration;

use fantoccini::Locator;
use rollout_fixture::*;
use sluice::api::SLOBudget;
use sluice::api::canary_rollout::Phase;
use sluice::api::release_pipeline::{ReleasePhase, ReleasePipeline};
use support::browser::Browser;
use support::eventually;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sluice");

/// The first stage passes after 4 s; the second holds for good, until a button moves it.
const STAGES: &str = "[{weight: 1, pause: 4s}, {weight: 5, pause: 10m}, {weight: 100, pause: 10m}]";

/// Starts the dashboard on a free port and returns it with its URL.
async fn dashboard(service: &Service, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(PLUGIN)
        .args([
            "dashboard",
            "-n",
            service.ns.name(),
            "--address",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("KUBECONFIG", &service.env.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start kubectl-sluice dashboard");
    let stdout = child.stdout.take().expect("dashboard stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the dashboard prints its URL")
        .expect("read stdout")
        .expect("a line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (child, url)
}

/// The text of the element `css` once it equals `expected` (the page updates itself).
async fn shows(browser: &Browser, css: &str, expected: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("{css} = {expected}"),
        async || {
            let text = browser
                .client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            if text == expected { Ok(()) } else { Err(text) }
        },
    )
    .await
}

/// The texts of the elements `css` matches now.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in browser
        .client
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_default()
    {
        // An element swapped out by an update in between is read at the next try.
        if let Ok(text) = element.text().await {
            out.push(text);
        }
    }
    out
}

const PIPELINE: &str = "apiVersion: sluice.dev/v1alpha1
kind: ReleasePipeline
metadata: {name: checkout}
spec:
  release: {containers: [app]}
  environments:
  - {name: production, rolloutRef: {name: checkout}}
";

#[tokio::test]
async fn the_dashboard_shows_live_figures_and_its_buttons_act() {
    let service = Service::start("dashboard", &rollout_yaml(GATEWAY, STAGES, "")).await;
    let (_dashboard, url) = dashboard(&service, &["--allow-actions"]).await;
    let browser = Browser::start().await;
    let ns = service.ns.name().to_string();
    let row = format!("tr[data-rollout=\"{ns}/checkout\"]");

    // A pipeline of one environment, for the overview's release matrix.
    service.ns.apply_yaml(PIPELINE).await;

    // The overview shows the rollout at rest, then follows it without a reload.
    browser.client.goto(&url).await.expect("open the overview");
    shows(&browser, &format!("{row} .phase"), "Idle").await;
    browser.screenshot("overview-idle").await;
    service.set_image("registry.example/checkout:2.0.0").await;
    shows(&browser, &format!("{row} .traffic"), "1%").await;
    shows(&browser, &format!("{row} .traffic"), "5%").await;
    browser.screenshot("overview-stage-2").await;

    // The rollout's page: the figures the API holds.
    browser
        .client
        .find(Locator::Css(&format!("{row} a")))
        .await
        .expect("the rollout's link")
        .click()
        .await
        .expect("open the rollout's page");
    shows(&browser, "#summary .stage", "2/3").await;
    shows(&browser, "#summary .traffic", "5%").await;
    let status = service.status().await;
    let value = status.last_evaluation.as_ref().unwrap().checks[0]
        .value
        .unwrap();
    let shown = browser
        .client
        .find(Locator::Css("#checks td.value"))
        .await
        .expect("the check's value")
        .text()
        .await
        .unwrap();
    assert_eq!(
        shown,
        format!("{value:.4}"),
        "the check's value as the API holds it"
    );
    let charts_loaded = browser
        .client
        .execute(
            "return [...document.querySelectorAll('.charts img')].map(i => i.complete && i.naturalWidth > 0)",
            vec![],
        )
        .await
        .expect("read the charts");
    let charts_loaded: Vec<bool> = serde_json::from_value(charts_loaded).unwrap();
    assert!(
        charts_loaded.len() >= 2 && charts_loaded.iter().all(|l| *l),
        "{charts_loaded:?}"
    );
    browser.screenshot("rollout-stage-2").await;

    // The buttons: pause sets spec.paused, resume clears it, promote promotes.
    let click = async |id: &str| {
        browser
            .client
            .wait()
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("button {id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {id}: {e}"));
    };
    click("pause").await;
    eventually(Duration::from_secs(20), "spec.paused", async || {
        service.rollout().await.spec.paused.then_some(())
    })
    .await;
    shows(&browser, "#summary .phase", "Paused").await;
    click("resume").await;
    eventually(Duration::from_secs(20), "spec.paused cleared", async || {
        (!service.rollout().await.spec.paused).then_some(())
    })
    .await;
    click("promote").await;
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    shows(&browser, "#summary .phase", "Succeeded").await;
    let actor = service
        .rollout()
        .await
        .metadata
        .annotations
        .unwrap_or_default()
        .get("sluice.dev/requested-by")
        .cloned()
        .unwrap_or_default();
    assert!(actor.ends_with("(dashboard)"), "{actor}");
    browser.screenshot("rollout-promoted").await;

    // The decision log lists the Events recorded on the rollout, as the API lists them.
    let shown_reasons = eventually(
        Duration::from_secs(20),
        "the Promoted event on the page",
        async || {
            let reasons = texts(&browser, "#events td.reason").await;
            reasons
                .iter()
                .any(|r| r == "Promoted")
                .then_some(reasons.clone())
                .ok_or(reasons)
        },
    )
    .await;
    let recorded: Vec<String> = service
        .ns
        .events()
        .await
        .into_iter()
        .filter(|e| e.object_name == "checkout" && e.object_kind == "CanaryRollout")
        .map(|e| e.reason)
        .collect();
    for reason in ["RolloutStarted", "StageAdvanced", "Promoted"] {
        assert!(
            shown_reasons.iter().any(|r| r == reason),
            "{reason} not on the page: {shown_reasons:?}"
        );
    }
    for reason in &shown_reasons {
        assert!(
            recorded.contains(reason),
            "{reason} is not an Event of the rollout: {recorded:?}"
        );
    }

    // The overview's matrix shows the release where the pipeline's status has it.
    browser.client.goto(&url).await.expect("open the overview");
    let phase = eventually(
        Duration::from_secs(30),
        "checkout:2.0.0 Promoted in the pipeline's status",
        async || {
            let pipeline = service
                .ns
                .api::<ReleasePipeline>()
                .get("checkout")
                .await
                .map_err(|e| e.to_string())?;
            let phase = pipeline
                .status
                .unwrap_or_default()
                .releases
                .iter()
                .find(|r| r.name == "checkout:2.0.0")
                .and_then(|r| r.environments.first().map(|e| e.phase));
            (phase == Some(ReleasePhase::Promoted))
                .then_some(ReleasePhase::Promoted)
                .ok_or(format!("{phase:?}"))
        },
    )
    .await;
    let cell = "table[data-pipeline=\"checkout\"] tr[data-release=\"checkout:2.0.0\"] td[data-environment=\"production\"]";
    eventually(Duration::from_secs(20), "the matrix cell", async || {
        let text = texts(&browser, cell).await.join("");
        text.starts_with(&format!("{} since ", phase.as_str()))
            .then_some(())
            .ok_or(text)
    })
    .await;
    browser.screenshot("overview-pipeline").await;

    let errors = browser.console_errors().await;
    assert_eq!(errors, Vec::<String>::new(), "console errors");
    browser.close().await;
}

/// 99.9 % of requests good over 30 s, evaluated every second, one burn-rate pair.
const BUDGET: &str = "apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {name: checkout-slo}
spec:
  window: 30s
  interval: 1s
  objectives:
  - name: availability
    target: 99.9
    good: 'sum(avg_over_time(sluice_test_slo_good{namespace=\"{{namespace}}\",track=~\"{{track}}\"}[{{window}}]))'
    total: 'sum(avg_over_time(sluice_test_slo_total{namespace=\"{{namespace}}\",track=~\"{{track}}\"}[{{window}}]))'
  burnRateAlerts: [{long: 10s, short: 2s, factor: 14.4, severity: Critical}]
";

#[tokio::test]
async fn a_read_only_dashboard_has_no_buttons_and_refuses_requests() {
    let extra = "    sloBudgetRef: {name: checkout-slo}\n";
    let service = Service::deploy("dashboard-ro", &rollout_yaml(GATEWAY, STAGES, extra)).await;
    let ns = service.ns.name().to_string();
    for (metric, rate) in [
        ("sluice_test_slo_good", 99.8),
        ("sluice_test_slo_total", 100.0),
    ] {
        service.exporter.set(
            metric,
            &[("namespace", ns.as_str()), ("track", "stable")],
            rate,
        );
    }
    service.ns.apply_yaml(BUDGET).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    let (_dashboard, url) = dashboard(&service, &[]).await;
    let browser = Browser::start().await;
    let ns = service.ns.name().to_string();
    browser
        .client
        .goto(&format!("{url}rollouts/{ns}/checkout"))
        .await
        .expect("open the rollout's page");
    shows(&browser, "#summary .phase", "Idle").await;
    let buttons = browser
        .client
        .find_all(Locator::Css("button"))
        .await
        .unwrap();
    assert!(buttons.is_empty(), "no buttons on a read-only dashboard");
    browser.screenshot("rollout-read-only").await;
    let refused = reqwest::Client::new()
        .post(format!("{url}api/rollouts/{ns}/checkout/promote"))
        .send()
        .await
        .expect("post a promote");
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(service.status().await.phase, Some(Phase::Idle));

    // The budget's burn rates, as the SLOBudget's status holds them at each evaluation: 0.2 %
    // of requests failing against a budget of 0.1 % is a burn rate of 2 in every window.
    let alt = "chart: burn rate (checkout-slo, availability)";
    let chart = eventually(
        Duration::from_secs(30),
        "the burn-rate chart with both windows",
        async || {
            let src = browser
                .client
                .find(Locator::Css(&format!("img[alt=\"{alt}\"]")))
                .await
                .map_err(|e| e.to_string())?
                .attr("src")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no src")?;
            let svg = reqwest::get(format!("{}{}", url, src.trim_start_matches('/')))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            (svg.contains("2s window") && svg.contains("10s window") && svg.contains("<polyline"))
                .then_some(svg.clone())
                .ok_or(svg)
        },
    )
    .await;
    assert!(chart.contains("Critical 10s/2s at 14.4"), "{chart}");
    let budget = service
        .ns
        .api::<SLOBudget>()
        .get("checkout-slo")
        .await
        .expect("the SLOBudget");
    let rates = &budget.status.expect("evaluated").objectives[0].burn_rates;
    for window in ["2s", "10s"] {
        let rate = rates.get(window).copied().unwrap_or_default();
        assert!((rate - 2.0).abs() < 1e-6, "{window}: {rates:?}");
    }
    browser.screenshot("rollout-burn-rate").await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    browser.close().await;
}
