//! A rollout run live on the local control plane (fake kubelet, test exporter, the shared
//! Prometheus) and replayed by `sluice simulate` from the series Prometheus recorded reach the
//! same decisions at the same stages: the same events (stage started and advanced, failed
//! evaluations, rollback at 25 %) with the same notes, and the same rollback reason.

mod rollout_fixture;
mod support;

use std::process::Command;
use std::time::Duration;

use rollout_fixture::*;
use sluice::api::canary_rollout::Phase;
use support::{eventually, scratch_dir, unique_suffix};

/// Stage 2 lasts long enough for the failure to land in it, live and replayed.
const STAGES: &str = "[{weight: 1, pause: 3s}, {weight: 5, pause: 3s}, {weight: 25, pause: 30s}, {weight: 100, pause: 3s}]";
/// The events the engine decides, as opposed to those of the shell.
const DECISIONS: [&str; 5] = [
    "RolloutStarted",
    "StageStarted",
    "StageAdvanced",
    "AnalysisFailed",
    "RolledBack",
];

/// `query_range` JSON of the namespace's error-ratio series, one sample a second.
async fn record(prometheus: &str, namespace: &str, start: i64, end: i64) -> String {
    let query = format!("{ERROR_METRIC}{{namespace=\"{namespace}\"}}");
    let url = format!("{prometheus}/api/v1/query_range");
    let response = reqwest::Client::new()
        .get(url)
        .query(&[
            ("query", query),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "1".to_string()),
        ])
        .send()
        .await
        .expect("Prometheus answers");
    assert!(response.status().is_success(), "{response:?}");
    response.text().await.expect("a body")
}

fn sorted(mut events: Vec<(String, String)>) -> Vec<(String, String)> {
    events.sort();
    events
}

#[tokio::test]
async fn a_live_rollout_and_its_replay_decide_the_same_at_the_same_stages() {
    let rollout = rollout_yaml(GATEWAY, STAGES, "");
    let service = Service::start("simlive", &rollout).await;
    // The recording must cover the whole rollout: start it once Prometheus has the series.
    let namespace = service.ns.name().to_string();
    let prometheus = service.env.prometheus_url.clone();
    eventually(
        Duration::from_secs(30),
        "the series in Prometheus",
        async || {
            let now = jiff::Timestamp::now().as_second();
            let recorded = record(&prometheus, &namespace, now - 1, now).await;
            match recorded.contains("\"values\"") {
                true => Ok(()),
                false => Err(recorded),
            }
        },
    )
    .await;
    service.set_image("registry.example/checkout:2.0.0").await;
    eventually(Duration::from_secs(60), "stage 2", async || {
        let status = service.status().await;
        match status.stage {
            Some(2) => Ok(()),
            _ => Err((status.phase, status.stage, status.message)),
        }
    })
    .await;
    // The replay's virtual Deployments take the 2 s requeue to become available where the fake
    // kubelet may be quicker, so its stages can trail the live ones by a few seconds: fail the
    // canary well inside stage 2, where both are.
    tokio::time::sleep(Duration::from_secs(8)).await;
    service.set_canary_error_ratio(0.2);
    let rolled_back = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(30))
        .await;
    service.wait_event("RolledBack").await;
    let status = rolled_back.status.expect("a status");
    let started = status.rollout_started_at.expect("a start").as_second();
    let finished = status.history.last().expect("history").finished_at;
    let canary_revision = status.canary_revision.clone().expect("a canary revision");
    // Let Prometheus scrape past the decision before reading the history back.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let dir = scratch_dir().join(format!("simulate-live-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let recording = record(&prometheus, &namespace, started, finished.as_second() + 2).await;
    std::fs::write(dir.join("recording.json"), recording).expect("recording written");
    let replayed_rollout = rollout.replace(
        "metadata: {name: checkout}",
        &format!("metadata: {{name: checkout, namespace: {namespace}}}"),
    );
    std::fs::write(dir.join("rollout.yaml"), replayed_rollout).expect("rollout written");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args([
            "simulate",
            "-f",
            "rollout.yaml",
            "--metrics",
            "recording.json",
        ])
        .args(["--start", &started.to_string(), "-o", "json"])
        .output()
        .expect("sluice runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "rolled back: {stderr}");
    let replay: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");

    let replayed: Vec<(String, String)> = replay["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|step| step["events"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (text(&e["reason"]), text(&e["note"]))
        })
        .filter(|(reason, _)| DECISIONS.contains(&reason.as_str()))
        .collect();
    let live: Vec<(String, String)> = service
        .ns
        .events()
        .await
        .into_iter()
        .filter(|e| e.object_kind == "CanaryRollout" && DECISIONS.contains(&e.reason.as_str()))
        .map(|e| (e.reason, e.message.replace(&canary_revision, "candidate")))
        .collect();
    assert_eq!(
        sorted(replayed),
        sorted(live),
        "operator log: {}",
        service.operator_log()
    );
    let outcome = &replay["outcome"];
    assert_eq!(outcome["result"], "RolledBack");
    assert_eq!(outcome["stage"], 2);
    assert_eq!(outcome["weight"], 25);
    assert_eq!(
        outcome["reason"],
        status.history.last().expect("history").reason.as_str()
    );
}
