//! The operator binary as a child process watching one test namespace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use super::{TestEnv, scratch_dir, unique_suffix};

/// A running `sluice run`; killed on drop. Its output goes to a log file whose path (and tail)
/// is printed when the test fails.
pub struct Operator {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    kubeconfig: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Operator {
    /// Starts `sluice run --namespace <namespace> --prometheus-url <shared Prometheus>
    /// <extra_args>`.
    pub fn start(env: &TestEnv, namespace: &str, extra_args: &[&str]) -> Operator {
        Self::start_with_prometheus(env, namespace, &env.prometheus_url, extra_args)
    }

    /// Like [`Operator::start`] with another default Prometheus (e.g. a [`super::PrometheusInstance`]).
    pub fn start_with_prometheus(
        env: &TestEnv,
        namespace: &str,
        prometheus_url: &str,
        extra_args: &[&str],
    ) -> Operator {
        Self::start_with_env(env, namespace, prometheus_url, extra_args, &[])
    }

    /// Like [`Operator::start_with_prometheus`], with more environment variables (e.g. POD_NAME,
    /// which names the process in leases and events).
    pub fn start_with_env(
        env: &TestEnv,
        namespace: &str,
        prometheus_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        Self::start_as(&env.kubeconfig, namespace, prometheus_url, extra_args, envs)
    }

    /// Like [`Operator::start_with_env`], with the credentials of another kubeconfig (e.g. a
    /// ServiceAccount token, to run under that account's RBAC).
    pub fn start_as(
        kubeconfig: &Path,
        namespace: &str,
        prometheus_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        Self::spawn_run(
            kubeconfig,
            Some(namespace),
            prometheus_url,
            extra_args,
            envs,
        )
    }

    /// `sluice run` over every namespace of the cluster (no `--namespace`), e.g. for a campaign
    /// whose scenarios each have a namespace of their own.
    pub fn start_cluster_wide(
        env: &TestEnv,
        prometheus_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        Self::spawn_run(&env.kubeconfig, None, prometheus_url, extra_args, envs)
    }

    fn spawn_run(
        kubeconfig: &Path,
        namespace: Option<&str>,
        prometheus_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Operator {
        let mut args: Vec<String> = vec!["run".into()];
        if let Some(namespace) = namespace {
            args.extend(["--namespace".into(), namespace.into()]);
        }
        args.extend(
            [
                "--prometheus-url",
                prometheus_url,
                "--metrics-addr",
                "127.0.0.1:0",
            ]
            .map(String::from),
        );
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let scope = namespace.unwrap_or("all");
        let log_path = scratch_dir().join(format!("operator-{scope}-{}.log", unique_suffix()));
        let mut operator = Operator {
            args,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            kubeconfig: kubeconfig.to_path_buf(),
            log_path,
            child: None,
        };
        operator.spawn();
        operator
    }

    /// Kills the process and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Sends SIGTERM (what Kubernetes sends) and waits up to `timeout` for the process to end.
    pub async fn terminate(&mut self, timeout: std::time::Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let pid = child.id()?;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let status = tokio::time::timeout(timeout, child.wait()).await.ok()?.ok();
        self.child = None;
        status
    }

    /// The address of its /metrics endpoint, from the line it logs when it starts serving.
    pub async fn metrics_address(&self) -> String {
        super::eventually(
            std::time::Duration::from_secs(20),
            "the operator's metrics address in its log",
            async || {
                let log = self.log();
                log.lines()
                    .filter(|line| line.contains("serving /metrics"))
                    .find_map(|line| {
                        let start = line.find("127.0.0.1:")?;
                        let rest = &line[start..];
                        let end = rest
                            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                            .unwrap_or(rest.len());
                        Some(rest[..end].to_string())
                    })
                    .ok_or(())
            },
        )
        .await
    }

    /// Kills it and starts it again with the same arguments, appending to the same log.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn();
    }

    /// The exit status if the process has ended on its own.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The process id while it runs, e.g. to read its memory and CPU time from /proc.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the operator has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log_path.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sluice=debug".into()),
            )
            // After the default RUST_LOG, so a caller can choose its own (a benchmark logs less).
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the operator: {e}"));
        self.child = Some(child);
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("operator log: {}\n(last lines)", self.log_path.display());
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
}
