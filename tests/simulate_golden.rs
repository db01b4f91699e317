//! Golden tests of `sluice simulate`: each scenario of examples/simulate/ prints its committed
//! expected.txt and exits with its documented code; the recordings are those the generator
//! writes. `SLUICE_BLESS=1` rewrites expected.txt (and metrics.om) from the current code.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice::simulate::generate::{ROLLOUT_START, SCENARIOS};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/simulate")
}

fn blessing() -> bool {
    std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1")
}

/// The scenario's YAML files, sorted, as `-f` arguments.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs the replay of a scenario the way its README shows; (stdout, exit code).
fn replay(scenario: &str, extra: &[&str]) -> (String, i32) {
    let dir = examples().join(scenario);
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.current_dir(&dir).arg("simulate");
    for file in yaml_files(&dir) {
        command.arg("-f").arg(file.file_name().expect("file name"));
    }
    command.args(["--metrics", "metrics.om", "--start", ROLLOUT_START]);
    let output = command.args(extra).output().expect("sluice runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{scenario}: unexpected stderr: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    (stdout, output.status.code().expect("an exit code"))
}

fn golden(scenario: &str, expected_code: i32, expected_outcome: &str) {
    let dir = examples().join(scenario);
    let recording = SCENARIOS
        .iter()
        .find(|s| s.name == scenario)
        .expect("a generated scenario")
        .recording()
        .to_openmetrics();
    let expected_path = dir.join("expected.txt");
    if blessing() {
        std::fs::write(dir.join("metrics.om"), &recording).expect("metrics.om written");
    }
    let on_disk = std::fs::read_to_string(dir.join("metrics.om")).unwrap_or_default();
    assert!(
        on_disk == recording,
        "examples/simulate/{scenario}/metrics.om is not what the generator writes: run `SLUICE_BLESS=1 cargo nextest run --test simulate_golden`"
    );

    let (stdout, code) = replay(scenario, &[]);
    if blessing() {
        std::fs::write(&expected_path, &stdout).expect("expected.txt written");
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        stdout == expected,
        "examples/simulate/{scenario}: the timeline differs from expected.txt (SLUICE_BLESS=1 rewrites it)\n--- got:\n{stdout}"
    );
    assert_eq!(code, expected_code, "{scenario}: exit code");
    let outcome = stdout.lines().last().unwrap_or_default();
    assert!(
        outcome.starts_with(expected_outcome),
        "{scenario}: {outcome}"
    );
}

#[test]
fn a_good_release_is_promoted() {
    golden(
        "good-release",
        0,
        "outcome: promoted at 2026-01-05T11:15:04Z (+00:15:04), 15m4s after the rollout started",
    );
}

#[test]
fn a_slow_regression_is_held_by_parity_then_rolled_back_at_25_percent() {
    golden(
        "slow-regression",
        1,
        "outcome: rolled back at 2026-01-05T11:10:32Z (+00:10:32) at stage 2 (25%), 10m32s after the rollout started, because parity Critical",
    );
}

#[test]
fn a_sharp_failure_is_rolled_back_at_1_percent() {
    golden(
        "sharp-failure",
        1,
        "outcome: rolled back at 2026-01-05T11:01:02Z (+00:01:02) at stage 0 (1%), 1m2s after the rollout started, because check error-rate = 0.244898 > max 0.01",
    );
}

#[test]
fn low_traffic_holds_stage_0_for_samples_to_the_end() {
    golden(
        "low-traffic",
        1,
        "outcome: held to the end of the recording at 2026-01-05T11:15:00Z (+00:15:00) at stage 0 (1%), 15m after the rollout started: stage 0 (1%): waiting for samples (26/50)",
    );
}

#[test]
fn json_output_gives_the_same_outcome() {
    let (stdout, code) = replay("sharp-failure", &["-o", "json"]);
    assert_eq!(code, 1);
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(value["outcome"]["result"], "RolledBack");
    assert_eq!(value["outcome"]["at"], "2026-01-05T11:01:02Z");
    assert_eq!(value["outcome"]["after"], "1m2s");
    assert_eq!(value["evaluations"], 2);
    let checks = &value["steps"][2]["evaluation"]["checks"][0];
    assert_eq!(checks["name"], "error-rate");
    assert_eq!(checks["verdict"], "Fail");
}

#[test]
fn the_same_replay_is_the_same_byte_for_byte() {
    let first = replay("slow-regression", &["-o", "json"]);
    let second = replay("slow-regression", &["-o", "json"]);
    assert_eq!(first, second);
}

#[test]
fn what_if_prints_one_line_per_variant() {
    let (stdout, code) = replay(
        "sharp-failure",
        &[
            "--set",
            "analysis.checks[0].max=0.01,0.5",
            "--set",
            "analysis.failureLimit=1,3",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "What if: 4 variants of CanaryRollout checkout from 2026-01-05T11:00:00Z to 2026-01-05T11:20:00Z",
            "",
            "analysis.checks[0].max=0.01 analysis.failureLimit=1  rolled back      stage 0 (1%)    at +00:00:32  after 32s",
            "analysis.checks[0].max=0.01 analysis.failureLimit=3  rolled back      stage 0 (1%)    at +00:01:32  after 1m32s",
            "analysis.checks[0].max=0.5 analysis.failureLimit=1   promoted         stage 3 (100%)  at +00:15:04  after 15m4s",
            "analysis.checks[0].max=0.5 analysis.failureLimit=3   promoted         stage 3 (100%)  at +00:15:04  after 15m4s",
        ]
    );
}
