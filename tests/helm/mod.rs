//! `helm` and `kubectl` against charts/sluice, for the chart tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Every optional part switched on (ServiceMonitor, PrometheusRule, dashboard, Prometheus basic
/// auth and CA, a shard selector), as `helm --set` arguments. (A bearer token is the other
/// choice of auth: the chart refuses both at once.)
pub const EVERY_OPTION: &[&str] = &[
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "prometheusRule.additionalAlertLabels.team=platform",
    "dashboard.enabled=true",
    "replicas=2",
    "selector=sluice.dev/shard=a",
    "prometheus.auth.basicAuthSecret.name=prometheus-basic-auth",
    "prometheus.caSecret.name=prometheus-ca",
    "log.level=info\\,sluice=debug",
    "maxConcurrentReconciles=4",
];

pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/sluice")
}

/// Runs a tool of the test environment; panics when it cannot be started.
pub fn run(program: &str, args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): run `hack/testenv install` and source its env")
        });
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for the tool")
}

/// Like [`run`], panicking with the tool's output when it fails; returns its stdout.
pub fn run_ok(program: &str, args: &[&str], input: Option<&str>) -> String {
    let output = run(program, args, input);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `helm template <release> charts/sluice --namespace <namespace>` with `--set` values and, when
/// given, only those templates.
pub fn render(release: &str, namespace: &str, sets: &[&str], only: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    for template in only {
        args.extend(["--show-only", template]);
    }
    run_ok("helm", &args, None)
}

/// `kubectl apply --server-side` of `yaml` (plus `extra` arguments, e.g. `--dry-run=server`);
/// panics with kubectl's output when the apiserver refuses it.
pub fn apply(yaml: &str, extra: &[&str]) {
    let mut args = vec!["apply", "--server-side", "--field-manager=chart-test"];
    args.extend(extra);
    args.extend(["-f", "-"]);
    run_ok("kubectl", &args, Some(yaml));
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// The one document of this kind (and name, when given).
pub fn find<'a>(documents: &'a [Value], kind: &str, name: Option<&str>) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && name.is_none_or(|n| d["metadata"]["name"] == n))
        .unwrap_or_else(|| panic!("no {kind} {name:?} in the rendered chart"))
}

/// Deletes cluster-scoped objects a test created (ClusterRoles and their bindings) when the
/// test ends, failed or not: they would outlive the namespace.
pub struct ClusterScoped(pub Vec<(&'static str, String)>);

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let _ = run(
                "kubectl",
                &["delete", kind, name, "--ignore-not-found", "--wait=false"],
                None,
            );
        }
    }
}
