//! `sluice demo`: a canary rollout told end to end on a local control plane without a kubelet.
//!
//! Against the cluster of KUBECONFIG it runs the operator in this process, the fake kubelet of
//! [`crate::devenv`] and a simulated data plane (not real traffic) whose error rate depends on
//! the version; it deploys checkout with a CanaryRollout, pushes a good version and a bad one,
//! and prints a live timeline of what Sluice does. It is a show-case: it must not be used
//! against a cluster with real kubelets, whose pods the fake kubelet would contradict.

mod manifests;
mod pipeline;
mod setup;
mod simulator;
mod story;
mod timeline;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::controller::{self, RunConfig};
use crate::devenv::FakeKubelet;
use crate::metrics::{DEFAULT_TIMEOUT, MetricsSource, PrometheusSource};
use manifests::APP;
use simulator::{REQUESTS_PER_SECOND, TrafficSimulator};
use timeline::{POLL, Timeline};

/// How long Prometheus may take to pick up and scrape the simulator.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DemoConfig {
    /// Namespace of the demo's objects; created when missing.
    pub namespace: String,
    /// The Prometheus that scrapes `sd_dir`; also the operator's default.
    pub prometheus_url: String,
    /// The folder of that Prometheus' file_sd targets.
    pub sd_dir: PathBuf,
    /// Return right after the story instead of running until SIGINT or SIGTERM.
    pub exit_when_done: bool,
    /// The story must be over within this time.
    pub timeout: Duration,
    /// Where the dashboard listens; port 0 picks a free one.
    pub dashboard_address: std::net::SocketAddr,
}

/// Serves the dashboard of every namespace (the one `kubectl sluice dashboard -A
/// --allow-actions` serves: the demo's cluster is its own) and returns where it listens.
async fn start_dashboard(
    client: &kube::Client,
    address: std::net::SocketAddr,
) -> anyhow::Result<std::net::SocketAddr> {
    let options = crate::dashboard::server::Options {
        namespace: None,
        address,
        allow_actions: true,
        actor: "sluice-demo".to_string(),
    };
    let (listening, listened) = tokio::sync::oneshot::channel();
    let serving = crate::dashboard::server::serve(client.clone(), options, move |address| {
        let _ = listening.send(address);
    });
    tokio::spawn(async move {
        if let Err(error) = serving.await {
            tracing::warn!("the demo's dashboard stopped: {error}");
        }
    });
    listened
        .await
        .map_err(|_| anyhow!("the dashboard could not listen on {address}"))
}

/// Runs the demo. Ok once the story is told and (unless `exit_when_done`) a signal stopped it;
/// an error when a step fails, the story does not finish in time, or a signal interrupts it.
pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let mut shutdown = Box::pin(shutdown_signal()?);
    let client = crate::client::operator()
        .await
        .context("no Kubernetes client (KUBECONFIG)")?;
    let namespace = config.namespace.as_str();
    let mut timeline = Timeline::new(&client, namespace, APP);
    timeline.say(format!(
        "Sluice demo in namespace {namespace}: the operator runs in this process, a fake kubelet makes pods Ready, \
         and a traffic simulator (not real traffic) plays {REQUESTS_PER_SECOND} requests/s through the HTTPRoute's weights"
    ));

    let staging = pipeline::staging_namespace(namespace);
    setup::prepare(&client, namespace).await?;
    setup::prepare(&client, &staging).await?;
    timeline.say(format!(
        "namespaces {namespace} (production) and {staging}, CRDs and the fake Node ready"
    ));
    let _kubelets = [namespace, staging.as_str()].map(|ns| FakeKubelet::start(client.clone(), ns));
    let simulator = start_simulator(&client, namespace, &config).await?;
    let staging_simulator = start_simulator(&client, &staging, &config).await?;
    timeline.say(format!(
        "fake kubelet started; traffic simulators registered in {}, waiting for Prometheus to scrape them",
        config.sd_dir.display()
    ));
    wait_until_scraped(&config, &simulator).await?;
    wait_until_scraped(&config, &staging_simulator).await?;
    timeline.say(format!(
        "Prometheus {} scrapes the simulator",
        config.prometheus_url
    ));

    let mut operator: JoinHandle<anyhow::Result<()>> = tokio::spawn(controller::run(RunConfig {
        namespaces: vec![namespace.to_string(), staging.clone()],
        selector: None,
        prometheus_url: config.prometheus_url.clone(),
        prometheus_auth: Default::default(),
        metrics_address: None,
        lease: None,
        concurrency: controller::DEFAULT_CONCURRENCY,
        freeze_namespace: controller::DEFAULT_FREEZE_NAMESPACE.to_string(),
        audit: Default::default(),
    }));
    timeline.say(format!(
        "operator started, watching namespaces {namespace} and {staging}"
    ));
    let dashboard = start_dashboard(&client, config.dashboard_address).await?;
    timeline.say(format!(
        "DASHBOARD: http://{dashboard}/rollouts/{namespace}/{APP} (kubectl sluice dashboard, with its buttons)"
    ));

    let told = tokio::select! {
        told = tokio::time::timeout(config.timeout, story::tell(&client, namespace, &mut timeline, &simulator)) => told,
        stopped = &mut operator => return Err(operator_stopped(stopped)),
        signal = &mut shutdown => bail!("stopped by {signal} before the story was over"),
    };
    match told {
        Ok(result) => result?,
        Err(_) => bail!(
            "the demo did not finish within {:?}: {}",
            config.timeout,
            timeline.situation()
        ),
    }
    timeline.say(
        "the story is over: 2.0.0 was promoted, 4.0.0-drift and 3.0.0-bad were rolled back, \
             an incident froze releases and 5.0.0 went through by request, \
             and 6.0.0 went from staging to production through the pipeline",
    );
    if config.exit_when_done {
        return Ok(());
    }

    print_explore_hints(namespace, &config.prometheus_url, dashboard);
    loop {
        tokio::select! {
            stopped = &mut operator => match stopped {
                // The operator stops cleanly on SIGINT and SIGTERM too.
                Ok(Ok(())) => break,
                other => return Err(operator_stopped(other)),
            },
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(POLL) => {
                timeline.observe().await;
            }
        }
    }
    timeline.say("stopped: the operator, the fake kubelet and the traffic simulator are gone");
    Ok(())
}

/// Starts the traffic simulator of checkout in `namespace`.
async fn start_simulator(
    client: &kube::Client,
    namespace: &str,
    config: &DemoConfig,
) -> anyhow::Result<TrafficSimulator> {
    TrafficSimulator::start(client.clone(), namespace, &config.sd_dir)
        .await
        .with_context(|| {
            format!(
                "starting the traffic simulator of {namespace} in {}",
                config.sd_dir.display()
            )
        })
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed at once, so a signal
/// that arrives before the future is first polled is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

fn operator_stopped(stopped: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match stopped {
        Ok(Ok(())) => anyhow!("the operator stopped"),
        Ok(Err(e)) => e.context("the operator stopped"),
        Err(e) => anyhow!("the operator task failed: {e}"),
    }
}

/// Fails early, with a hint, when the Prometheus does not scrape the folder the simulator
/// registered in: without it every evaluation would hold for lack of data.
async fn wait_until_scraped(
    config: &DemoConfig,
    simulator: &TrafficSimulator,
) -> anyhow::Result<()> {
    let prometheus = PrometheusSource::new(&config.prometheus_url, DEFAULT_TIMEOUT)
        .with_context(|| format!("Prometheus URL {}", config.prometheus_url))?;
    let query = simulator.up_selector();
    let deadline = tokio::time::Instant::now() + SCRAPE_TIMEOUT;
    let mut last_error = None;
    while tokio::time::Instant::now() < deadline {
        match prometheus.query_value(&query, None).await {
            Ok(Some(count)) if count > 0.0 => return Ok(()),
            Ok(_) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "Prometheus {} did not scrape the traffic simulator within {SCRAPE_TIMEOUT:?}{}: \
         is {} the file_sd folder of that Prometheus (SLUICE_PROM_SD_DIR of hack/testenv)?",
        config.prometheus_url,
        last_error.map(|e| format!(" ({e})")).unwrap_or_default(),
        config.sd_dir.display()
    )
}

fn print_explore_hints(namespace: &str, prometheus_url: &str, dashboard: std::net::SocketAddr) {
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
    println!();
    println!("Sluice, the fake kubelet and the traffic simulator keep running. Explore:");
    println!("  export KUBECONFIG={kubeconfig}");
    println!("  kubectl -n {namespace} get canaryrollouts");
    println!("  kubectl -n {namespace} describe canaryrollout {APP}");
    println!("  kubectl get events -n {namespace}");
    println!("  the dashboard: http://{dashboard}/ (or: kubectl sluice dashboard -n {namespace})");
    let staging = pipeline::staging_namespace(namespace);
    println!("  kubectl sluice pipeline {APP} -n {namespace}");
    println!(
        "  kubectl -n {staging} set image deployment/{APP} {APP}={}   # another release, through staging to production; a tag with \"bad\" fails, with \"drift\" quotes MSFT high",
        manifests::image("7.0.0")
    );
    let query = format!(
        "sum by (track, code) (rate({}{{namespace=\"{namespace}\"}}[15s]))",
        simulator::METRIC
    );
    println!(
        "  Prometheus, simulated traffic: {prometheus_url}/graph?g0.expr={}",
        encode(&query)
    );
    println!("The timeline goes on below. Stop with Ctrl-C.");
    println!();
}

/// Percent-encodes a query for a URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
