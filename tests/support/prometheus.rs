//! A Prometheus of the test's own, to stop and start again ("Prometheus went away during a
//! stage") without disturbing the shared one. Same configuration shape as `hack/testenv`: it
//! scrapes the shared file_sd folder every second.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::{TestEnv, free_port, scratch_dir, unique_suffix};

/// The lookback of a scraping instance, as `hack/testenv` sets it: ten scrapes of 1 s. Sluice
/// counts no pass until one lookback after a Prometheus started, so the default 5m would hold
/// every test's rollout for five minutes.
pub const LOOKBACK: &str = "10s";

/// A dedicated `prometheus` process on a loopback port with its own data folder; killed on drop.
pub struct PrometheusInstance {
    port: u16,
    dir: PathBuf,
    /// `--query.lookback-delta`, when not Prometheus' default.
    lookback: Option<&'static str>,
    child: Option<Child>,
}

impl PrometheusInstance {
    /// Starts it on a free port and waits until it is ready.
    pub async fn start(env: &TestEnv) -> PrometheusInstance {
        let dir = Self::new_dir();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n\
             - job_name: sluice-test-exporters\n  scrape_interval: 1s\n  file_sd_configs:\n\
             \x20 - files: [\"{}/*.json\"]\n    refresh_interval: 1s\n",
            env.sd_dir.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        Self::launch_in(dir, Some(LOOKBACK)).await
    }

    /// A fresh folder for an instance, with an empty `data/` to fill (e.g. with
    /// `promtool tsdb create-blocks-from`) before [`PrometheusInstance::start_on_data`].
    pub fn new_dir() -> PathBuf {
        let dir = scratch_dir().join(format!("prometheus-{}", unique_suffix()));
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        dir
    }

    /// Starts it on the TSDB already in `dir/data`, scraping nothing: a Prometheus that answers
    /// only from the blocks it was given, with Prometheus' default lookback.
    pub async fn start_on_data(dir: PathBuf) -> PrometheusInstance {
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 1m\n",
        )
        .expect("write prometheus.yml");
        Self::launch_in(dir, None).await
    }

    async fn launch_in(dir: PathBuf, lookback: Option<&'static str>) -> PrometheusInstance {
        // The free port may be taken by someone else before Prometheus binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            if let Some(child) = launch(&dir, port, lookback).await {
                return PrometheusInstance {
                    port,
                    dir,
                    lookback,
                    child: Some(child),
                };
            }
        }
        panic!(
            "prometheus did not start; see {}",
            dir.join("prometheus.log").display()
        );
    }

    /// Base URL, e.g. http://127.0.0.1:40123.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process (no clean shutdown, like a crash) and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port with the same data folder, and waits until it is ready.
    pub async fn start_again(&mut self) {
        self.stop().await;
        self.child = launch(&self.dir, self.port, self.lookback).await;
        assert!(
            self.child.is_some(),
            "prometheus did not start again; see {}",
            self.log_path().display()
        );
    }

    /// Whether `/-/ready` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        is_ready(&self.url()).await
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }
}

impl Drop for PrometheusInstance {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Spawns Prometheus for `dir` on `port` and waits up to 30 s until it is ready; `None` if it
/// exited (port taken) or never got ready.
async fn launch(dir: &Path, port: u16, lookback: Option<&str>) -> Option<Child> {
    let log_path = dir.join("prometheus.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
    let mut child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1d")
        .args(lookback.map(|l| format!("--query.lookback-delta={l}")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run prometheus (is it installed?): {e}"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if is_ready(&url).await {
            return Some(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    None
}

async fn is_ready(url: &str) -> bool {
    match prometheus_http_query::Client::try_from(url) {
        Ok(client) => client.is_server_ready().await.unwrap_or(false),
        Err(_) => false,
    }
}
