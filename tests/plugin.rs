//! `kubectl-sluice` against the local control plane and a real operator: the binary is run as a
//! user would run it, and what it prints and changes is checked against the objects.

mod rollout_fixture;
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube::config::{Kubeconfig, NamedCluster};
use rollout_fixture::parity::with_parity;
use rollout_fixture::*;
use serde_json::Value;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;
use support::{TestEnv, eventually, scratch_dir, unique_suffix};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const V2: &str = "registry.example/checkout:2.0.0";
const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sluice");

/// What one run of the plugin printed, and its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the plugin with `args` and the test environment's KUBECONFIG.
async fn plugin(env: &TestEnv, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(PLUGIN)
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .await
        .expect("run kubectl-sluice");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `kubectl-sluice <args> -n <the service's namespace>` and expects exit code 0.
async fn sluice(service: &Service, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-n", service.ns.name()]);
    let run = plugin(&service.env, &all).await;
    assert_eq!(
        run.code, 0,
        "kubectl-sluice {all:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// The cells of the `get` row for `checkout` (columns are separated by 3+ spaces).
fn row_cells(table: &str) -> Vec<String> {
    let row = table
        .lines()
        .find(|line| line.starts_with("checkout"))
        .unwrap_or_else(|| panic!("no checkout row in:\n{table}"));
    row.split("   ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn get_status_and_json_show_a_rollout_and_promote_finishes_it() {
    let service = Service::start("plugin-get", &rollout_yaml(GATEWAY, LONG_STAGES, "")).await;
    let weights = service.record_weights();
    service.set_image(V2).await;
    service.wait_canary_weight(5).await;

    // The verdict column fills in with the first evaluation at the stage.
    let cells = eventually(
        Duration::from_secs(10),
        "a row with a verdict",
        async || {
            let cells = row_cells(&sluice(&service, &["get"]).await);
            if cells.get(4).map(String::as_str) == Some("Pass") {
                Ok(cells)
            } else {
                Err(cells)
            }
        },
    )
    .await;
    assert_eq!(
        cells[..7],
        ["checkout", "Progressing", "2/4", "5%", "Pass", "-", "-"],
        "NAME PHASE STAGE WEIGHT VERDICT TRACKING-ERR BUDGET: {cells:?}"
    );
    let wide = sluice(&service, &["get", "-o", "wide"]).await;
    let revision = service
        .status()
        .await
        .canary_revision
        .expect("canary revision");
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .ends_with("CANARY       STABLE       MESSAGE"),
        "{wide}"
    );
    assert!(row_cells(&wide).contains(&revision), "{wide}");

    let json: Value =
        serde_json::from_str(&sluice(&service, &["get", "checkout", "-o", "json"]).await)
            .expect("get -o json prints JSON");
    let printed: CanaryRollout = serde_json::from_value(json.clone()).expect("a CanaryRollout");
    let stored = service.rollout().await;
    assert_eq!(printed.metadata.uid, stored.metadata.uid);
    assert_eq!(printed.spec, stored.spec);
    let (printed, stored) = (printed.status.unwrap(), stored.status.unwrap());
    assert_eq!((printed.stage, printed.canary_weight), (Some(1), Some(5)));
    assert_eq!((stored.stage, stored.canary_weight), (Some(1), Some(5)));
    assert!(json["metadata"].get("managedFields").is_none(), "{json}");
    let list: Value = serde_saphyr::from_str(&sluice(&service, &["get", "-o", "yaml"]).await)
        .expect("get -o yaml prints YAML");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "checkout");

    let status = sluice(&service, &["status", "checkout"]).await;
    for expected in [
        "Phase:      Progressing",
        "Stage:      2/4, weight 5%",
        "Last evaluation: Pass",
        "failed evaluations: 0 in a row of failureLimit 2",
    ] {
        assert!(status.contains(expected), "{expected:?} in:\n{status}");
    }
    let check = status
        .lines()
        .find(|line| line.trim_start().starts_with("error-rate"))
        .unwrap_or_else(|| panic!("the check in:\n{status}"));
    assert_eq!(
        check.split_whitespace().collect::<Vec<_>>(),
        ["error-rate", "0.001", "max", "0.01", "Pass"]
    );

    let promoted = sluice(&service, &["promote", "checkout"]).await;
    assert!(promoted.contains("promote requested"), "{promoted}");
    assert!(promoted.contains("(sluice.dev/promote="), "{promoted}");
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(20))
        .await;
    weights.expect(&[0, 1, 5, 0]).await;
    assert_eq!(service.image("checkout-stable").await, V2);
    let cells = row_cells(&sluice(&service, &["get"]).await);
    assert_eq!(cells[1..4], ["Succeeded", "-", "0%"], "{cells:?}");

    let not_frozen = plugin(
        &service.env,
        &["unfreeze", "checkout", "-n", service.ns.name()],
    )
    .await;
    assert_eq!(not_frozen.code, 1);
    assert!(
        not_frozen.stderr.contains(&format!(
            "rollout checkout in namespace {} is not frozen (phase Succeeded)",
            service.ns.name()
        )),
        "{}",
        not_frozen.stderr
    );
}

/// Starts `kubectl-sluice watch checkout <extra> -n <namespace>`, its output read line by line.
fn spawn_watch(service: &Service, extra: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut watch = tokio::process::Command::new(PLUGIN)
        .args(["watch", "checkout", "-n", service.ns.name()])
        .args(extra)
        .env("KUBECONFIG", &service.env.kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start kubectl-sluice watch");
    let lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    (watch, lines)
}

#[tokio::test]
async fn watch_follows_a_paused_and_resumed_rollout_to_succeeded() {
    let service = Service::start("plugin-watch", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    service.set_image(V2).await;
    let (mut watch, mut lines) = spawn_watch(&service, &["--timeout", "2m"]);
    let printed = tokio::spawn(async move {
        let mut printed = vec![];
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push(line);
        }
        printed
    });

    service.wait_canary_weight(1).await;
    let paused = sluice(&service, &["pause", "checkout"]).await;
    assert!(
        paused.contains("spec.paused=true") && paused.contains("GitOps"),
        "{paused}"
    );
    assert!(service.rollout().await.spec.paused);
    service
        .wait_phase(Phase::Paused, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        service.phase().await,
        Some(Phase::Paused),
        "QUICK_STAGES pass in 3 s"
    );
    assert_eq!(service.canary_weight_on_route().await, Some(1));

    let resumed = sluice(&service, &["resume", "checkout"]).await;
    assert!(resumed.contains("spec.paused=false"), "{resumed}");
    assert!(!service.rollout().await.spec.paused);

    let status = tokio::time::timeout(Duration::from_secs(90), watch.wait())
        .await
        .expect("watch ends when the rollout settles")
        .expect("watch exit status");
    let printed = printed.await.expect("watch output");
    assert_eq!(status.code(), Some(0), "{printed:#?}");
    assert_eq!(
        printed.last().map(String::as_str),
        Some("rollout checkout settled: Succeeded")
    );
    // One line per change, in order: each stage with its weight, the pause, the promotion.
    let position = |needle: &str| {
        printed
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {printed:#?}"))
    };
    let order = [
        position("stage 1/4    weight 1%"),
        position("Paused       stage 1/4    weight 1%"),
        position("stage 2/4    weight 5%"),
        position("stage 3/4    weight 25%"),
        position("stage 4/4    weight 100%"),
        position("Succeeded"),
    ];
    assert!(order.is_sorted(), "{order:?} in {printed:#?}");
}

#[tokio::test]
async fn abort_rolls_back_and_retry_restarts_the_revision() {
    let service = Service::start("plugin-abort", &rollout_yaml(GATEWAY, LONG_STAGES, "")).await;
    service.set_image(V2).await;
    service.wait_canary_weight(5).await;
    let revision = service.status().await.canary_revision;

    let aborted = sluice(&service, &["abort", "checkout"]).await;
    assert!(aborted.contains("abort requested"), "{aborted}");
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(10))
        .await;
    assert_eq!(service.canary_weight_on_route().await, Some(0));
    eventually(Duration::from_secs(10), "the target at 0", async || {
        service.replicas("checkout").await == 0
    })
    .await;
    let status = sluice(&service, &["status", "checkout"]).await;
    assert!(status.contains("Phase:      RolledBack"), "{status}");
    assert!(status.contains("kubectl sluice retry checkout"), "{status}");
    let watch = plugin(
        &service.env,
        &["watch", "checkout", "-n", service.ns.name()],
    )
    .await;
    assert_eq!(
        watch.code, 1,
        "a rolled-back rollout is settled, not succeeded"
    );
    assert!(
        watch
            .stdout
            .ends_with("rollout checkout settled: RolledBack\n"),
        "{}",
        watch.stdout
    );

    let retried = sluice(&service, &["retry", "checkout"]).await;
    assert!(retried.contains("retry requested"), "{retried}");
    service.wait_canary_weight(1).await;
    let status = service.status().await;
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert_eq!(status.stage, Some(0));
    assert_eq!(status.canary_revision, revision, "the same revision again");

    let waiting = plugin(
        &service.env,
        &[
            "watch",
            "checkout",
            "--timeout",
            "2s",
            "-n",
            service.ns.name(),
        ],
    )
    .await;
    assert_eq!(waiting.code, 1, "{}", waiting.stdout);
    assert_eq!(
        waiting.stderr,
        "error: rollout checkout did not settle within 2s (phase Progressing)\n"
    );
    assert!(
        waiting.stdout.contains("Progressing  stage 1/4"),
        "{}",
        waiting.stdout
    );

    // Ctrl-C ends a watch with 130, as a shell reports an interrupted command.
    let (mut watch, mut lines) = spawn_watch(&service, &[]);
    let first = lines.next_line().await.expect("read watch output");
    assert!(first.is_some_and(|line| line.contains("Progressing")));
    let pid = watch.id().expect("watch pid").to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("watch stops on Ctrl-C")
        .expect("watch exit status");
    assert_eq!(status.code(), Some(130));
}

#[tokio::test]
async fn unfreeze_clears_the_freeze_a_parity_emergency_left() {
    let stages = "[{weight: 1, pause: 30s}, {weight: 100, pause: 3s}]";
    let service = with_parity("plugin-freeze", stages, 100.0, 101.5).await;
    service.set_image(V2).await;
    service
        .wait_phase(Phase::Frozen, Duration::from_secs(45))
        .await;
    let status = sluice(&service, &["status", "checkout"]).await;
    assert!(
        status.contains("Parity (checkout-parity): Emergency"),
        "{status}"
    );
    assert!(status.contains("RollbackAndFreeze: "), "{status}");
    assert!(
        status.contains("kubectl sluice unfreeze checkout"),
        "{status}"
    );
    // 100 against 101.5 is 150 bps apart in every sample: the RMS figure the thresholds judge.
    let cells = row_cells(&sluice(&service, &["get"]).await);
    assert_eq!(cells[1], "Frozen", "{cells:?}");
    let tracking_error: f64 = cells[5]
        .strip_suffix(" bps")
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("TRACKING ERR in bps: {cells:?}"));
    assert!((tracking_error - 150.0).abs() < 1.0, "{cells:?}");

    let unfrozen = sluice(&service, &["unfreeze", "checkout"]).await;
    assert!(unfrozen.contains("(sluice.dev/unfreeze="), "{unfrozen}");
    // The freeze is gone; the failed template stays rolled back until a new one or a retry.
    service
        .wait_phase(Phase::RolledBack, Duration::from_secs(10))
        .await;
    assert_eq!(service.condition("Frozen").await, None);
    service.wait_event("Unfrozen").await;
}

#[tokio::test]
async fn a_missing_rollout_is_a_clear_error_with_exit_code_1() {
    let env = TestEnv::get().await;
    let ns = env.namespace("plugin-missing").await;
    for command in ["status", "promote", "pause", "watch"] {
        let run = plugin(&env, &[command, "checkout", "-n", ns.name()]).await;
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            format!(
                "error: rollout checkout not found in namespace {}\n",
                ns.name()
            ),
            "{command}"
        );
    }
    let usage = plugin(&env, &["promote"]).await;
    assert_eq!(usage.code, 2, "a usage error is clap's: {}", usage.stderr);
    let empty = plugin(&env, &["get", "-n", ns.name()]).await;
    assert_eq!(empty.code, 0);
    assert_eq!(
        empty.stderr,
        format!("No resources found in {} namespace.\n", ns.name())
    );
}

/// A kubeconfig with the test cluster as context `good` (namespace `namespace`) and a cluster
/// nothing listens on as context `broken`, the current one.
fn two_context_kubeconfig(env: &TestEnv, namespace: &str) -> PathBuf {
    let mut config = Kubeconfig::read_from(&env.kubeconfig).expect("read the test kubeconfig");
    let current = config.current_context.clone().expect("a current context");
    let mut good = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .cloned()
        .expect("the current context");
    let mut broken = good.clone();
    let good_context = good.context.as_mut().expect("context details");
    good_context.namespace = Some(namespace.to_string());
    let cluster_name = good_context.cluster.clone();
    let mut dead: NamedCluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .cloned()
        .expect("the context's cluster");
    dead.name = "nowhere".into();
    dead.cluster.as_mut().expect("cluster details").server = Some("https://127.0.0.1:1".into());
    broken.context.as_mut().expect("context details").cluster = "nowhere".into();
    good.name = "good".into();
    broken.name = "broken".into();
    config.clusters.push(dead);
    config.contexts = vec![good, broken];
    config.current_context = Some("broken".into());
    let path = scratch_dir().join(format!("kubeconfig-{}", unique_suffix()));
    write_json(&path, &config);
    path
}

fn write_json(path: &Path, config: &Kubeconfig) {
    let text = serde_json::to_string_pretty(config).expect("kubeconfig as JSON");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[tokio::test]
async fn context_picks_the_cluster_and_its_namespace() {
    let env = TestEnv::get().await;
    let ns = env.namespace("plugin-context").await;
    ns.apply_yaml(&rollout_yaml(GATEWAY, QUICK_STAGES, ""))
        .await;
    let kubeconfig = two_context_kubeconfig(&env, ns.name());
    let path = kubeconfig.to_str().expect("a UTF-8 path");

    let current = plugin(&env, &["get", "--kubeconfig", path]).await;
    assert_eq!(
        current.code, 1,
        "the current context is broken: {}",
        current.stdout
    );
    assert!(current.stderr.starts_with("error: "), "{}", current.stderr);
    assert!(
        current.stderr.contains("Connection refused"),
        "{}",
        current.stderr
    );

    let good = plugin(&env, &["--context", "good", "get", "--kubeconfig", path]).await;
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert_eq!(
        row_cells(&good.stdout)[0],
        "checkout",
        "the rollout in the context's namespace"
    );

    let broken = plugin(&env, &["get", "--kubeconfig", path, "--context", "broken"]).await;
    assert_eq!(broken.code, 1, "{}", broken.stdout);
}

#[tokio::test]
async fn freeze_holds_a_release_and_thaw_lets_it_through() {
    let service = Service::start("plugin-freeze", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let said = sluice(&service, &["freeze", "--reason", "quarter end close"]).await;
    assert!(
        said.contains(&format!(
            "DeliveryFreeze {}/sluice-freeze in force",
            service.ns.name()
        )),
        "{said}"
    );
    service.set_image(V2).await;
    let frozen = service
        .wait_phase(Phase::Frozen, Duration::from_secs(15))
        .await;
    let message = frozen.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("quarter end close"), "{message}");
    assert_eq!(service.replicas("checkout").await, 0);

    let said = sluice(&service, &["thaw"]).await;
    assert!(said.contains("deleted"), "{said}");
    service
        .wait_phase(Phase::Succeeded, Duration::from_secs(40))
        .await;
    service.assert_promoted(V2).await;

    // Thawing what is not frozen says so, and fails.
    let mut args = vec!["thaw", "-n", service.ns.name()];
    args.extend(["--name", "nothing-here"]);
    let run = plugin(&service.env, &args).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("DeliveryFreeze nothing-here not found"),
        "{}",
        run.stderr
    );
}
