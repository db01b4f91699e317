//! Bad input to `sluice simulate` exits with code 2 and a message naming the problem, before
//! any replay.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(scenario: &str, file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/simulate")
        .join(scenario)
        .join(file)
        .display()
        .to_string()
}

/// A folder of its own for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-simulate-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("file written");
    path.display().to_string()
}

/// Runs `sluice simulate ARGS`; asserts exit code 2 and returns stderr.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("sluice runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "nothing replayed");
    stderr
}

fn assert_names(stderr: &str, problem: &str) {
    assert!(
        stderr.contains(problem),
        "expected {problem:?} in: {stderr}"
    );
}

/// Two series of one counter, 10 s apart, with `mangle` applied to the text.
fn recording(mangle: impl Fn(String) -> String) -> String {
    let mut text = String::from("# TYPE http_requests counter\n");
    for track in ["canary", "stable"] {
        for code in ["200", "500"] {
            for i in 0..60 {
                text.push_str(&format!(
                    "http_requests_total{{namespace=\"shop\",app=\"checkout\",track=\"{track}\",code=\"{code}\"}} {} {}\n",
                    i * 10,
                    1_767_610_800 + i * 10
                ));
            }
        }
    }
    mangle(text + "# EOF\n")
}

fn simulate_with(metrics: &str) -> String {
    refused(&[
        "-f",
        &example("sharp-failure", "rollout.yaml"),
        "--metrics",
        metrics,
    ])
}

#[test]
fn an_unknown_metrics_format_is_named() {
    let dir = scratch("format");
    let metrics = write(&dir, "metrics.dat", "<html>not metrics</html>\n");
    assert_names(
        &simulate_with(&metrics),
        "unknown format for recorded metrics",
    );
}

#[test]
fn a_gap_in_a_series_is_named_with_the_series() {
    let dir = scratch("gap");
    let text = recording(|text| {
        text.lines()
            .filter(|line| {
                !(line.contains("track=\"canary\",code=\"200\"")
                    && (20..50).any(|i| line.ends_with(&format!(" {}", 1_767_610_800 + i * 10))))
            })
            .map(|line| format!("{line}\n"))
            .collect()
    });
    let stderr = simulate_with(&write(&dir, "metrics.om", &text));
    assert_names(&stderr, "gap in");
    assert_names(&stderr, "track=\"canary\"");
}

#[test]
fn timestamps_out_of_order_are_named() {
    let dir = scratch("order");
    let text = recording(|text| text.replacen(" 1767610810\n", " 1767610790\n", 1));
    let stderr = simulate_with(&write(&dir, "metrics.om", &text));
    assert_names(&stderr, "samples of a series must be in time order");
}

#[test]
fn a_query_with_no_recorded_series_is_named_before_the_replay() {
    let dir = scratch("series");
    let metrics = write(&dir, "metrics.om", &recording(|text| text));
    let rollout = std::fs::read_to_string(example("sharp-failure", "rollout.yaml"))
        .expect("example rollout")
        .replace(
            "app=\"{{target}}\", track=\"canary\", code=~\"5..\"",
            "app=\"payments\", track=\"canary\", code=~\"5..\"",
        );
    let rollout = write(&dir, "rollout.yaml", &rollout);
    let stderr = refused(&["-f", &rollout, "--metrics", &metrics]);
    assert_names(&stderr, "matches no recorded series");
    assert_names(&stderr, "app=\"payments\"");
}

#[test]
fn documents_that_cannot_be_simulated_are_named() {
    let dir = scratch("documents");
    let metrics = example("sharp-failure", "metrics.om");
    let unreadable = write(
        &dir,
        "broken.yaml",
        "kind: CanaryRollout\nspec: [unclosed\n",
    );
    assert_names(
        &refused(&["-f", &unreadable, "--metrics", &metrics]),
        "is not valid YAML",
    );
    let deployment = write(
        &dir,
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: checkout}\n",
    );
    assert_names(
        &refused(&["-f", &deployment, "--metrics", &metrics]),
        "kind \"Deployment\" cannot be simulated",
    );
    let missing = dir.join("missing.yaml").display().to_string();
    assert_names(
        &refused(&["-f", &missing, "--metrics", &metrics]),
        "cannot read",
    );
    let rollout = std::fs::read_to_string(example("sharp-failure", "rollout.yaml"))
        .expect("example rollout")
        .replace("  - weight: 5\n", "  - weight: 0\n");
    let invalid = write(&dir, "rollout.yaml", &rollout);
    assert_names(
        &refused(&["-f", &invalid, "--metrics", &metrics]),
        "invalid spec: spec.stages weights must increase strictly",
    );
    let referenced = example("slow-regression", "rollout.yaml");
    assert_names(
        &refused(&["-f", &referenced, "--metrics", &metrics]),
        "refers to ParityPolicy \"checkout-parity\", which is not in the files given",
    );
}

#[test]
fn settings_that_do_not_fit_the_spec_are_named() {
    let rollout = example("sharp-failure", "rollout.yaml");
    let metrics = example("sharp-failure", "metrics.om");
    let with = |setting: &str| refused(&["-f", &rollout, "--metrics", &metrics, "--set", setting]);
    assert_names(
        &with("analysis.chekcs[0].max=0.1"),
        "spec.analysis has no field \"chekcs\"",
    );
    assert_names(
        &with("analysis.failureLimit=many"),
        "analysis.failureLimit=many",
    );
    assert_names(&with("stages[0].pause=soon"), "invalid duration \"soon\"");
    assert_names(&with("parity.window=5m"), "no ParityPolicy is simulated");
}

#[test]
fn missing_and_conflicting_flags_are_named() {
    let rollout = example("sharp-failure", "rollout.yaml");
    let metrics = example("sharp-failure", "metrics.om");
    assert_names(
        &refused(&["-f", &rollout]),
        "give the metrics: --metrics FILE",
    );
    assert_names(&refused(&["--metrics", &metrics]), "with -f FILE");
    assert_names(
        &refused(&[
            "-f",
            &rollout,
            "--metrics",
            &metrics,
            "--prometheus",
            "http://127.0.0.1:9",
        ]),
        "give one",
    );
    assert_names(
        &refused(&["-f", &rollout, "--prometheus", "http://127.0.0.1:9"]),
        "--prometheus needs --start and --end",
    );
    assert_names(
        &refused(&[
            "-f",
            &rollout,
            "--metrics",
            &metrics,
            "--start",
            "2020-01-01T00:00:00Z",
        ]),
        "reach outside the recording",
    );
    assert_names(
        &refused(&["-f", &rollout, "--metrics", &metrics, "--end", "tomorrow"]),
        "--end \"tomorrow\" is neither",
    );
    assert_names(
        &refused(&["-f", &rollout, "--metrics", &metrics, "-o", "yaml"]),
        "invalid value 'yaml'",
    );
}
