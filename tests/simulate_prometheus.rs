//! The same scenario replayed from a real Prometheus gives the same decisions as from the file:
//! each example's metrics.om is written into TSDB blocks with `promtool tsdb
//! create-blocks-from openmetrics`, a private Prometheus serves them, and `sluice simulate
//! --prometheus URL --start --end` is compared with `--metrics FILE`, step by step.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice::simulate::generate::ROLLOUT_START;
use support::PrometheusInstance;

fn scenario_dir(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/simulate")
        .join(scenario)
}

/// `sluice simulate -o json` on the scenario's YAML with `source` flags; (JSON, exit code).
fn simulate(scenario: &str, source: &[&str]) -> (Value, i32) {
    let dir = scenario_dir(scenario);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenario folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("simulate")
        .args(["-o", "json", "--start", ROLLOUT_START]);
    for file in files {
        command.arg("-f").arg(file);
    }
    let output = command.args(source).output().expect("sluice runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{scenario}: {stderr}");
    let json = serde_json::from_slice(&output.stdout).expect("JSON output");
    (json, output.status.code().expect("exit code"))
}

/// What was decided at each step: when, where, the verdicts, the events and the decision.
fn decisions(replay: &Value) -> Vec<Value> {
    let steps = replay["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|step| {
            let evaluation = &step["evaluation"];
            let checks: Vec<&Value> = evaluation["checks"]
                .as_array()
                .map(|checks| checks.iter().map(|c| &c["verdict"]).collect())
                .unwrap_or_default();
            let events: Vec<&Value> = step["events"]
                .as_array()
                .map(|events| events.iter().map(|e| &e["reason"]).collect())
                .unwrap_or_default();
            serde_json::json!({
                "time": step["time"], "stage": step["stage"], "weight": step["weight"],
                "phase": step["phase"], "verdict": evaluation["verdict"], "checks": checks,
                "parity": evaluation["parity"]["level"], "slo": evaluation["slo"]["level"],
                "events": events, "decision": step["decision"],
            })
        })
        .collect()
}

/// `promtool tsdb create-blocks-from openmetrics FILE DATA`.
fn create_blocks(openmetrics: &Path, data: &Path) {
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(openmetrics)
        .arg(data)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool (is it installed?): {e}"));
    assert!(
        output.status.success(),
        "promtool refused {}: {}",
        openmetrics.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn same_decisions(scenario: &str) {
    let metrics = scenario_dir(scenario).join("metrics.om");
    let (from_file, file_code) = simulate(scenario, &["--metrics", &metrics.display().to_string()]);
    let end = from_file["end"].as_str().expect("end").to_string();
    let dir = PrometheusInstance::new_dir();
    create_blocks(&metrics, &dir.join("data"));
    let prometheus = PrometheusInstance::start_on_data(dir).await;
    let (from_prometheus, prometheus_code) = simulate(
        scenario,
        &["--prometheus", &prometheus.url(), "--end", &end],
    );
    assert!(
        !decisions(&from_file).is_empty(),
        "{scenario}: nothing decided"
    );
    assert_eq!(
        decisions(&from_prometheus),
        decisions(&from_file),
        "{scenario}: decisions from Prometheus differ from those from the file"
    );
    assert_eq!(
        from_prometheus["outcome"], from_file["outcome"],
        "{scenario}"
    );
    assert_eq!(prometheus_code, file_code, "{scenario}");
}

#[tokio::test]
async fn a_good_release_decides_the_same_from_prometheus() {
    same_decisions("good-release").await;
}

#[tokio::test]
async fn a_slow_regression_decides_the_same_from_prometheus() {
    same_decisions("slow-regression").await;
}

#[tokio::test]
async fn a_sharp_failure_decides_the_same_from_prometheus() {
    same_decisions("sharp-failure").await;
}

#[tokio::test]
async fn low_traffic_decides_the_same_from_prometheus() {
    same_decisions("low-traffic").await;
}
