//! The operator over a fleet: N CanaryRollouts in one namespace, watched by the operator binary
//! as a process of its own. For each N it prints the time to adopt them all, the apiserver
//! requests per rollout the operator sent to adopt them and then to roll all of them out once
//! (by verb and resource, from the apiserver's audit log), its memory and CPU at rest and at
//! peak, reconcile duration quantiles, its Prometheus queries, and the 429/5xx answers it got.
//! Last, it pulls the kill switch (a DeliveryFreeze with `action: Rollback`) on the whole fleet
//! in flight and prints how long each canary took to roll back.
//!
//! ```text
//! SLUICE_AUDIT=1 SLUICE_TESTENV=/tmp/sluice-fleet-env bash hack/testenv up
//! source /tmp/sluice-fleet-env/env
//! SLUICE_FLEET_SIZES=100,300 cargo bench --bench fleet    # or: cargo bench --bench fleet -- 100 300
//! ```
//!
//! docs/fleet.md says what each figure means.

#[path = "fleet/audit.rs"]
mod audit;
#[path = "fleet/kill_switch.rs"]
mod kill_switch;
#[path = "fleet/operator_stats.rs"]
mod operator_stats;
#[path = "fleet/services.rs"]
mod services;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::Client;
use reqwest::header::{HeaderName, HeaderValue};

use audit::{AuditLog, Tally};
use operator_stats::{MetricsPage, ProcessSample, bucket_delta, quantile};
use services::{ERROR_METRIC, Fleet, Progress};
use support::{FakeKubelet, MetricsExporter, Operator, TestEnv};

/// User-Agents of the harness's own clients, so the audit log tells them from the operator.
const BENCH_AGENT: &str = "sluice-fleet-bench";
const KUBELET_AGENT: &str = "sluice-fleet-bench-kubelet";

/// What the operator logs: its production default, so logging costs what it costs in a cluster.
const OPERATOR_LOG: &str = "info,kube=warn";

const IMAGE: &str = "registry.example/app:1.0.0";
const NEW_IMAGE: &str = "registry.example/app:2.0.0";

/// Time after adoption for the last status writes and the controller-manager's work on the new
/// stable Deployments to die down before the rest window starts.
const SETTLE: Duration = Duration::from_secs(10);

/// Time the apiserver may take to write an audit event after answering.
const AUDIT_FLUSH: Duration = Duration::from_secs(1);

const RECONCILE_DURATION: &str = "sluice_reconcile_duration_seconds";
const ROLLOUT: (&str, &str) = ("controller", "rollout");

struct Settings {
    sizes: Vec<usize>,
    /// Bound on each wait: Deployments available, rollouts adopted, rollouts promoted.
    timeout: Duration,
    /// How long the operator is watched at rest.
    rest: Duration,
}

impl Settings {
    /// Sizes from the arguments (`cargo bench --bench fleet -- 100 300`) or SLUICE_FLEET_SIZES
    /// (default 100); SLUICE_FLEET_TIMEOUT and SLUICE_FLEET_REST in seconds.
    fn read() -> Settings {
        let numbers = |text: &str| -> Vec<usize> {
            text.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .unwrap_or_else(|_| panic!("not a fleet size: {s}"))
                })
                .collect()
        };
        // cargo passes `--bench` to the bench binary.
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with("--"))
            .collect();
        let sizes = if args.is_empty() {
            numbers(&std::env::var("SLUICE_FLEET_SIZES").unwrap_or_else(|_| "100".into()))
        } else {
            args.iter().flat_map(|a| numbers(a)).collect()
        };
        let seconds = |name: &str, default: u64| {
            Duration::from_secs(
                std::env::var(name)
                    .ok()
                    .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not seconds")))
                    .unwrap_or(default),
            )
        };
        Settings {
            sizes,
            timeout: seconds("SLUICE_FLEET_TIMEOUT", 600),
            rest: seconds("SLUICE_FLEET_REST", 30),
        }
    }
}

/// The figures of one fleet size, for the closing summary.
#[derive(Default)]
struct Summary {
    size: usize,
    adopted: String,
    adoption_requests: Option<f64>,
    rolled_out: String,
    rollout_requests: Option<f64>,
    rss_at_rest_mib: f64,
    peak_rss_mib: f64,
    cpu_at_rest: f64,
}

#[tokio::main]
async fn main() {
    let settings = Settings::read();
    let shared = TestEnv::get().await;
    let env = TestEnv {
        client: client_as(BENCH_AGENT).await,
        ..shared
    };
    let kubelet_client = client_as(KUBELET_AGENT).await;
    let audit_log = std::env::var_os("SLUICE_AUDIT_LOG").map(PathBuf::from);
    if audit_log.is_none() {
        println!(
            "SLUICE_AUDIT_LOG is not set: no request counts (start the environment with SLUICE_AUDIT=1 hack/testenv up)"
        );
    }
    let mut summaries = Vec::new();
    for &size in &settings.sizes {
        summaries.push(measure(&env, &kubelet_client, audit_log.as_deref(), size, &settings).await);
    }
    println!(
        "\nsummary (requests are per rollout; memory in MiB; CPU at rest in seconds over {} s)",
        settings.rest.as_secs()
    );
    println!(
        "{:>6}  {:>16}  {:>8}  {:>16}  {:>8}  {:>7}  {:>7}  {:>7}",
        "N", "adopted", "requests", "rolled out", "requests", "RSS", "peak", "CPU"
    );
    let per = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for s in summaries {
        println!(
            "{:>6}  {:>16}  {:>8}  {:>16}  {:>8}  {:>7.1}  {:>7.1}  {:>7.2}",
            s.size,
            s.adopted,
            per(s.adoption_requests),
            s.rolled_out,
            per(s.rollout_requests),
            s.rss_at_rest_mib,
            s.peak_rss_mib,
            s.cpu_at_rest
        );
    }
}

/// A client of the local environment that names itself `agent`.
async fn client_as(agent: &'static str) -> Client {
    let mut config = kube::Config::infer()
        .await
        .unwrap_or_else(|e| panic!("no kubeconfig for the local environment: {e}"));
    config.headers.push((
        HeaderName::from_static("user-agent"),
        HeaderValue::from_static(agent),
    ));
    Client::try_from(config).unwrap_or_else(|e| panic!("a client for the local environment: {e}"))
}

async fn measure(
    env: &TestEnv,
    kubelet_client: &Client,
    audit_log: Option<&Path>,
    size: usize,
    settings: &Settings,
) -> Summary {
    let mut summary = Summary {
        size,
        ..Default::default()
    };
    let ns = env.namespace(&format!("fleet-{size}")).await;
    println!("\n== {size} rollouts (namespace {}) ==", ns.name());
    let _kubelet = FakeKubelet::start(kubelet_client.clone(), ns.name());
    let exporter = MetricsExporter::start(env, ns.name()).await;
    let canary = [("namespace", ns.name()), ("track", "canary")];
    exporter.set(ERROR_METRIC, &canary, 0.001);
    exporter.wait_until_scraped(ERROR_METRIC, &canary).await;

    let fleet = Fleet::new(env.client.clone(), ns.name(), size);
    fleet
        .create_deployments(IMAGE)
        .await
        .unwrap_or_else(|e| panic!("creating the Deployments: {e}"));
    let deployed = fleet.wait_available(settings.timeout).await;
    println!(
        "{}",
        progress_line("Deployments available", size, &deployed)
    );
    fleet
        .create_rollouts()
        .await
        .unwrap_or_else(|e| panic!("creating the CanaryRollouts: {e}"));

    // Adoption: from the operator's start until every rollout is at rest with a stable revision.
    let mut audit = audit_log
        .map(|path| AuditLog::from_end(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let started = Timestamp::now();
    let mut operator = Operator::start_with_env(
        env,
        ns.name(),
        &env.prometheus_url,
        &[],
        &[("RUST_LOG", OPERATOR_LOG)],
    );
    let pid = operator.pid().expect("the operator runs");
    let metrics_address = operator.metrics_address().await;
    let adopted = fleet.wait_adopted(settings.timeout).await;
    let adopted_at = Timestamp::now();
    summary.adopted = short_progress(size, &adopted);
    println!("\nadoption: {}", progress_line("adopted", size, &adopted));
    let after_adoption = scrape(&metrics_address).await;
    follow(&mut audit);
    print_operator_figures(&MetricsPage::default(), &after_adoption, size);
    let at_adoption = process(pid);
    println!(
        "  operator CPU {:.2} s, RSS {:.1} MiB",
        at_adoption.cpu_seconds,
        mib(at_adoption.rss_kib)
    );

    // At rest: nothing changes; whatever the operator does now it does for every idle fleet.
    tokio::time::sleep(SETTLE).await;
    let rest_from = Timestamp::now();
    let (before_rest, page_before_rest) = (process(pid), scrape(&metrics_address).await);
    tokio::time::sleep(settings.rest).await;
    let rest_to = Timestamp::now();
    let (after_rest, page_after_rest) = (process(pid), scrape(&metrics_address).await);
    summary.rss_at_rest_mib = mib(after_rest.rss_kib);
    summary.cpu_at_rest = after_rest.cpu_seconds - before_rest.cpu_seconds;
    println!(
        "\nat rest ({} s window, {} s after adoption): RSS {:.1} MiB, CPU {:.2} s",
        settings.rest.as_secs(),
        SETTLE.as_secs(),
        summary.rss_at_rest_mib,
        summary.cpu_at_rest
    );
    follow(&mut audit);
    print_operator_figures(&page_before_rest, &page_after_rest, size);

    // A mass rollout: a new image on every target, until each rollout promoted it.
    let mut rollout_window = None;
    if adopted.complete(size) {
        let before = fleet
            .stable_revisions()
            .await
            .unwrap_or_else(|e| panic!("reading the stable revisions: {e}"));
        let rollout_from = Timestamp::now();
        let clock = Instant::now();
        let cpu_before = process(pid).cpu_seconds;
        fleet
            .change_image(NEW_IMAGE)
            .await
            .unwrap_or_else(|e| panic!("changing the image: {e}"));
        let changed_after = clock.elapsed();
        let promoted = fleet.wait_promoted(&before, settings.timeout).await;
        let rollout_to = Timestamp::now();
        let after_rollout = scrape(&metrics_address).await;
        let cpu_after = process(pid).cpu_seconds;
        summary.rolled_out = short_progress(size, &promoted);
        println!(
            "\ntwo-stage rollout of a new image (all images changed within {:.1} s): {}",
            changed_after.as_secs_f64(),
            progress_line("promoted", size, &promoted)
        );
        rollout_window = Some((rollout_from, rollout_to));
        follow(&mut audit);
        print_operator_figures(&page_after_rest, &after_rollout, size);
        println!("  operator CPU {:.2} s", cpu_after - cpu_before);
    } else {
        println!("\ntwo-stage rollout skipped: not every rollout was adopted");
        summary.rolled_out = "skipped".into();
    }

    let end = process(pid);
    summary.peak_rss_mib = mib(end.peak_rss_kib);
    println!(
        "\noperator peak RSS (VmHWM) {:.1} MiB, CPU {:.2} s in all; log: {}",
        summary.peak_rss_mib,
        end.cpu_seconds,
        operator.log_path().display()
    );
    if let Some(status) = operator.exit_status() {
        println!("  the operator had exited: {status}");
    }

    // The kill switch, after the figures above so they stay comparable with earlier runs.
    let killed = match rollout_window.is_some() {
        true => kill_switch::pull(&env.client, &fleet, ns.name(), settings.timeout).await,
        false => None,
    };
    if let Some(killed) = &killed {
        killed.print(size);
    }

    // The apiserver logs a watch when it ends: only now is every request in the log.
    operator.kill().await;
    if let Some(audit) = &mut audit {
        tokio::time::sleep(AUDIT_FLUSH).await;
        follow_log(audit);
        let per_rollout = |t: &Tally| t.total as f64 / size as f64;
        let adoption = audit.tally(started, adopted_at);
        summary.adoption_requests = Some(per_rollout(&adoption));
        print_requests("adoption", &adoption, size);
        print_requests("at rest", &audit.tally(rest_from, rest_to), size);
        if let Some((from, to)) = rollout_window {
            let rollout = audit.tally(from, to);
            summary.rollout_requests = Some(per_rollout(&rollout));
            print_requests("two-stage rollout", &rollout, size);
        }
        if let Some(killed) = &killed {
            print_requests(
                "kill switch",
                &audit.tally(killed.pulled_at, killed.done_at),
                size,
            );
        }
    }
    if let Err(e) = fleet.release_rollouts().await {
        println!(
            "  removing the finalizers: {e} (namespace {} may stay Terminating)",
            ns.name()
        );
    }
    // Dropping the namespace deletes it.
    summary
}

fn progress_line(what: &str, size: usize, progress: &Progress) -> String {
    let seconds = progress.elapsed.as_secs_f64();
    if progress.complete(size) {
        format!("all {size} {what} after {seconds:.1} s")
    } else {
        format!(
            "{what} {}/{size} after {seconds:.0} s, then gave up (the others: {})",
            progress.reached, progress.stragglers
        )
    }
}

fn short_progress(size: usize, progress: &Progress) -> String {
    let seconds = progress.elapsed.as_secs_f64();
    if progress.complete(size) {
        format!("{seconds:.1} s")
    } else {
        format!("{}/{size} in {seconds:.0} s", progress.reached)
    }
}

/// Reads what the apiserver logged since the last look.
fn follow(audit: &mut Option<AuditLog>) {
    if let Some(audit) = audit {
        follow_log(audit);
    }
}

fn follow_log(audit: &mut AuditLog) {
    if let Err(e) = audit.read_new() {
        println!("  reading the audit log: {e}");
    }
}

fn print_requests(phase: &str, tally: &Tally, size: usize) {
    let per = |n: u64| n as f64 / size as f64;
    println!(
        "\napiserver requests by the operator, {phase}: {} ({:.1} per rollout); answered 429: {}, 5xx: {}",
        tally.total,
        per(tally.total),
        tally.throttled,
        tally.server_errors
    );
    for (verb, resource, n) in tally.calls_by_count() {
        println!("    {verb:<7} {resource:<28} {n:>8} {:>8.1}", per(n));
    }
    let rules: Vec<String> = tally
        .rules
        .iter()
        .map(|(rule, n)| format!("{} {n}", rule.describe()))
        .collect();
    let others: Vec<String> = tally
        .others
        .iter()
        .map(|(agent, n)| format!("{agent} {n}"))
        .collect();
    println!(
        "    counted as the operator's by {}; other clients, not counted: {}",
        if rules.is_empty() {
            "nothing".to_string()
        } else {
            rules.join(", ")
        },
        if others.is_empty() {
            "none".to_string()
        } else {
            others.join(", ")
        }
    );
    if tally.unreadable > 0 {
        println!("    ({} audit lines could not be read)", tally.unreadable);
    }
    if tally.lost {
        println!("    (incomplete: the audit log was rotated twice between two reads)");
    }
}

/// What the operator's /metrics says happened between two scrapes.
fn print_operator_figures(before: &MetricsPage, after: &MetricsPage, size: usize) {
    let delta = |name: &str, matching: &[(&str, &str)]| {
        after.sum(name, matching) - before.sum(name, matching)
    };
    let reconciles = delta(&format!("{RECONCILE_DURATION}_count"), &[ROLLOUT]);
    let buckets = bucket_delta(
        &before.buckets(RECONCILE_DURATION, &[ROLLOUT]),
        &after.buckets(RECONCILE_DURATION, &[ROLLOUT]),
    );
    let at = |q: f64| match quantile(&buckets, q) {
        None => "-".to_string(),
        Some(Ok(seconds)) => format!("{:.1} ms", seconds * 1e3),
        Some(Err(bound)) => format!("> {:.0} ms", bound * 1e3),
    };
    println!(
        "  reconciles: {reconciles:.0} ({:.1} per rollout), duration p50 {}, p99 {}; errors {:.0}",
        reconciles / size as f64,
        at(0.5),
        at(0.99),
        delta("sluice_reconcile_errors_total", &[ROLLOUT])
    );
    let queries = delta("sluice_prometheus_query_duration_seconds_count", &[]);
    println!(
        "  Prometheus queries: {queries:.0} ({:.1} per rollout), failed {:.0}",
        queries / size as f64,
        delta("sluice_prometheus_query_failures_total", &[])
    );
}

async fn scrape(address: &str) -> MetricsPage {
    MetricsPage::fetch(address).await.unwrap_or_else(|e| {
        println!("  scraping the operator's /metrics: {e}");
        MetricsPage::default()
    })
}

fn process(pid: u32) -> ProcessSample {
    ProcessSample::read(pid).unwrap_or_else(|e| {
        println!("  reading /proc/{pid} of the operator: {e}");
        ProcessSample::default()
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
