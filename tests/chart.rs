//! The Helm chart (charts/sluice): lint, refusals, the apiserver's verdict on what it renders,
//! and the operator started with the environment the chart gives it. Its alerts and dashboard:
//! chart_monitoring.rs; its RBAC: chart_rbac.rs.

mod helm;
mod support;

use helm::{ClusterScoped, EVERY_OPTION, documents, find, render, run, run_ok};
use serde_json::Value;
use support::{FakeKubelet, TestEnv, scratch_dir, unique_suffix};

#[test]
fn helm_lint_is_clean_with_defaults_and_with_every_option() {
    let chart = helm::chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let every: Vec<String> = EVERY_OPTION
        .iter()
        .map(|set| format!("--set={set}"))
        .chain(["--set=watchNamespaces={shop,payments}".to_string()])
        .collect();
    for extra in [vec![], every] {
        let mut args = vec!["lint", "--strict", chart];
        args.extend(extra.iter().map(String::as_str));
        let output = run_ok("helm", &args, None);
        assert!(output.contains("0 chart(s) failed"), "{output}");
        assert!(
            !output.contains("[WARNING]") && !output.contains("[ERROR]"),
            "{output}"
        );
    }
}

#[test]
fn contradictory_values_are_refused_with_a_reason() {
    let chart = helm::chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    for (sets, reason) in [
        (
            ["replicas=2", "leaderElection.enabled=false"],
            "replicas > 1 needs leaderElection",
        ),
        (
            [
                "prometheus.auth.bearerTokenSecret.name=token",
                "prometheus.auth.basicAuthSecret.name=basic",
            ],
            "set bearerTokenSecret or basicAuthSecret, not both",
        ),
    ] {
        let mut args = vec!["template", "sluice", chart];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let output = run("helm", &args, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{sets:?} rendered");
        assert!(stderr.contains(reason), "{sets:?}: {stderr}");
    }
}

/// Minimal CRDs for the two Prometheus Operator kinds, installed only where the real ones are
/// absent (as in the local environment): the apiserver then stores the chart's objects, though
/// it does not validate their spec.
const MONITORING_CRDS: [(&str, &str, &str); 2] = [
    ("servicemonitors", "ServiceMonitor", "servicemonitor"),
    ("prometheusrules", "PrometheusRule", "prometheusrule"),
];

fn ensure_monitoring_crds() {
    for (plural, kind, singular) in MONITORING_CRDS {
        let name = format!("{plural}.monitoring.coreos.com");
        if run("kubectl", &["get", "crd", &name], None)
            .status
            .success()
        {
            continue;
        }
        let crd = format!(
            "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {name}}}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"
        );
        // Another test process may be creating it at the same moment: either create wins.
        let _ = run("kubectl", &["create", "-f", "-"], Some(&crd));
        run_ok(
            "kubectl",
            &[
                "wait",
                "--for=condition=Established",
                &format!("crd/{name}"),
                "--timeout=30s",
            ],
            None,
        );
    }
}

fn kubectl_json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    serde_json::from_str(&run_ok("kubectl", &args, None)).expect("kubectl prints JSON")
}

#[tokio::test]
async fn rendered_chart_with_every_option_is_accepted_by_the_apiserver() {
    let env = TestEnv::get().await;
    let ns = env.namespace("chart").await;
    let namespace = ns.name();
    ensure_monitoring_crds();
    let release = format!("r{}", unique_suffix());
    let fullname = format!("{release}-sluice");
    let _cleanup = ClusterScoped(vec![("clusterrole", fullname.clone())]);
    let watch = format!("watchNamespaces={{{namespace}}}");
    let mut sets = EVERY_OPTION.to_vec();
    sets.push(&watch);
    let rendered = render(&release, namespace, &sets, &[]);
    helm::apply(&rendered, &[]);

    let deployment = kubectl_json(&["--namespace", namespace, "get", "deployment", &fullname]);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["serviceAccountName"], fullname);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env_var = |name: &str| -> Value {
        container["env"]
            .as_array()
            .and_then(|vars| vars.iter().find(|v| v["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} in {}", container["env"]))
    };
    assert_eq!(
        env_var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_var("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env_var("SLUICE_NAMESPACE")["value"], namespace);
    assert_eq!(env_var("SLUICE_SELECTOR")["value"], "sluice.dev/shard=a");
    assert_eq!(env_var("SLUICE_LEADER_ELECT")["value"], "true");
    assert_eq!(env_var("SLUICE_LEASE_NAMESPACE")["value"], namespace);
    assert_eq!(env_var("SLUICE_LOG_LEVEL")["value"], "info,sluice=debug");
    assert_eq!(env_var("SLUICE_MAX_CONCURRENT_RECONCILES")["value"], "4");
    // Secrets reach the operator as files only.
    assert_eq!(
        env_var("SLUICE_PROMETHEUS_PASSWORD_FILE")["value"],
        "/var/run/secrets/sluice/prometheus-basic-auth/password"
    );
    assert_eq!(
        env_var("SLUICE_PROMETHEUS_CA_FILE")["value"],
        "/var/run/secrets/sluice/prometheus-ca/ca.crt"
    );
    let secret_volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(secret_volumes, ["prometheus-basic-auth", "prometheus-ca"]);

    // With watchNamespaces the rules are bound in those namespaces only.
    let binding = kubectl_json(&["--namespace", namespace, "get", "rolebinding", &fullname]);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["subjects"][0]["name"], fullname);
    let cluster_bindings = run(
        "kubectl",
        &["get", "clusterrolebinding", &fullname, "--ignore-not-found"],
        None,
    );
    assert!(cluster_bindings.stdout.is_empty(), "no ClusterRoleBinding");
    let lease_role = kubectl_json(&[
        "--namespace",
        namespace,
        "get",
        "role",
        &format!("{fullname}-leader-election"),
    ]);
    assert_eq!(lease_role["rules"][1]["resourceNames"][0], fullname);

    let service = kubectl_json(&[
        "--namespace",
        namespace,
        "get",
        "service",
        &format!("{fullname}-metrics"),
    ]);
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    let monitor = kubectl_json(&["--namespace", namespace, "get", "servicemonitor", &fullname]);
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
    let rule = kubectl_json(&["--namespace", namespace, "get", "prometheusrule", &fullname]);
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/instance"],
        release
    );
    let dashboard = kubectl_json(&[
        "--namespace",
        namespace,
        "get",
        "configmap",
        &format!("{fullname}-dashboard"),
    ]);
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dashboard["data"]["sluice.json"].as_str().unwrap_or(""))
        .expect("the dashboard is JSON");
    assert_eq!(json["title"], "Sluice");

    // The defaults watch all namespaces: a ClusterRoleBinding, checked by the apiserver without
    // being stored, so no account gets cluster-wide rights from a test.
    let cluster_wide = render(&release, namespace, &[], &[]);
    let kinds: Vec<String> = documents(&cluster_wide)
        .iter()
        .filter_map(|d| d["kind"].as_str().map(String::from))
        .collect();
    assert!(
        kinds.contains(&"ClusterRoleBinding".to_string()),
        "{kinds:?}"
    );
    let role_bindings = kinds.iter().filter(|k| *k == "RoleBinding").count();
    assert_eq!(role_bindings, 1, "only the lease's RoleBinding: {kinds:?}");
    helm::apply(&cluster_wide, &["--dry-run=server"]);
}

/// `helm install`, `upgrade` and `uninstall` of a release watching its own namespace, whose pods
/// the fake kubelet runs: the release becomes ready, an upgrade to two replicas rolls out, and
/// the uninstall removes the cluster-scoped role but keeps the CRDs (Helm never deletes them, so
/// no CanaryRollout goes with a release).
// helm blocks its thread while the fake kubelet's task runs the pods: two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_a_release() {
    let env = TestEnv::get().await;
    let ns = env.namespace("chart-helm").await;
    let namespace = ns.name();
    let _kubelet = FakeKubelet::start(env.client.clone(), namespace);
    let release = format!("r{}", unique_suffix());
    let fullname = format!("{release}-sluice");
    let _cleanup = ClusterScoped(vec![("clusterrole", fullname.clone())]);
    let chart = helm::chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let watch = format!("watchNamespaces={{{namespace}}}");
    let common = ["--namespace", namespace, "--wait=watcher", "--timeout=90s"];
    let ready_replicas = || {
        kubectl_json(&["--namespace", namespace, "get", "deployment", &fullname])["status"]
            ["readyReplicas"]
            .clone()
    };

    let mut install = vec!["install", &release, chart, "--set", &watch];
    install.extend(common);
    run_ok("helm", &install, None);
    assert_eq!(ready_replicas(), 1);

    let mut upgrade = vec![
        "upgrade",
        &release,
        chart,
        "--reuse-values",
        "--set=replicas=2",
    ];
    upgrade.extend(common);
    run_ok("helm", &upgrade, None);
    assert_eq!(ready_replicas(), 2);

    let mut uninstall = vec!["uninstall", &release];
    uninstall.extend(common);
    run_ok("helm", &uninstall, None);
    let role = run_ok(
        "kubectl",
        &["get", "clusterrole", &fullname, "--ignore-not-found"],
        None,
    );
    assert!(role.is_empty(), "the ClusterRole is left: {role}");
    run_ok(
        "kubectl",
        &["get", "crd", "canaryrollouts.sluice.dev"],
        None,
    );
}

/// The operator starts with exactly the environment the chart's Deployment gives it (every
/// option on): each SLUICE_* variable is accepted, the secrets are read from their files, and it
/// takes the chart's Lease. Paths under /var/run/secrets/sluice are moved to a scratch folder
/// holding the files the Secrets would mount.
#[tokio::test]
async fn operator_starts_with_the_environment_the_chart_renders() {
    let env = TestEnv::get().await;
    let ns = env.namespace("chart-settings").await;
    let release = format!("r{}", unique_suffix());
    let fullname = format!("{release}-sluice");
    let url = format!("prometheus.url={}", env.prometheus_url);
    let watch = format!("watchNamespaces={{{}}}", ns.name());
    let mut sets = EVERY_OPTION.to_vec();
    sets.extend([url.as_str(), watch.as_str()]);
    let rendered = render(&release, ns.name(), &sets, &["templates/deployment.yaml"]);
    let objects = documents(&rendered);
    let deployment = find(&objects, "Deployment", None);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];

    let secrets = scratch_dir().join(format!("chart-secrets-{release}"));
    for (file, content) in [
        ("prometheus-basic-auth/password", "hunter2\n".to_string()),
        (
            "prometheus-ca/ca.crt",
            std::fs::read_to_string(environment_ca(&env)).expect("the environment's CA"),
        ),
    ] {
        let path = secrets.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("secret folder");
        std::fs::write(path, content).expect("secret file");
    }
    let pod_name = format!("{fullname}-0");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["run", "--metrics-addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", &env.kubeconfig);
    for variable in container["env"].as_array().expect("env") {
        let name = variable["name"].as_str().expect("name");
        let from = &variable["valueFrom"];
        let value = match (
            variable["value"].as_str(),
            from["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Some(value), _) => value.replace(
                "/var/run/secrets/sluice",
                secrets.to_str().expect("UTF-8 path"),
            ),
            (None, Some("metadata.name")) => pod_name.clone(),
            (None, Some("metadata.namespace")) => ns.name().to_string(),
            (None, _) if from["secretKeyRef"]["key"] == "username" => "sluice".to_string(),
            _ => panic!("cannot resolve {variable}"),
        };
        command.env(name, value);
    }
    let log_path = scratch_dir().join(format!("operator-chart-settings-{release}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = KilledOnDrop(
        command
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start the operator"),
    );
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let address = support::eventually(
        std::time::Duration::from_secs(20),
        "the metrics address in the operator's JSON log",
        async || {
            if let Ok(Some(status)) = child.0.try_wait() {
                return Err(format!("the operator exited ({status}): {}", read_log()));
            }
            read_log()
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find_map(|line| line["address"].as_str().map(String::from))
                .ok_or_else(read_log)
        },
    )
    .await;
    support::eventually(
        std::time::Duration::from_secs(30),
        "sluice_leader 1 on /metrics",
        async || {
            let page = reqwest::get(format!("http://{address}/metrics"))
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            // The sample line, not a substring: the HELP line ("# HELP sluice_leader 1 while
            // this replica holds the lease ...") contains "sluice_leader 1" whatever the value.
            let leading = page.lines().any(|line| line == "sluice_leader 1");
            leading.then_some(()).ok_or(page)
        },
    )
    .await;
    drop(child);
    let lease = kubectl_json(&["--namespace", ns.name(), "get", "lease", &fullname]);
    assert_eq!(lease["spec"]["holderIdentity"], pod_name);
    let started = read_log();
    let starting = started
        .lines()
        .find(|line| line.contains("sluice operator starting"))
        .unwrap_or_else(|| panic!("no start line in\n{started}"));
    assert!(starting.contains("sluice.dev/shard=a"), "{starting}");
    assert!(starting.contains(ns.name()), "{starting}");
    assert!(starting.contains(r#""concurrency":4"#), "{starting}");
}

/// The CA file of the local apiserver, a PEM bundle at hand for the Prometheus CA setting.
fn environment_ca(env: &TestEnv) -> String {
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
    kubeconfig
        .clusters
        .into_iter()
        .find_map(|c| c.cluster?.certificate_authority)
        .expect("the environment's kubeconfig names a CA file")
}

/// A child process killed when the test ends, passed or failed.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
