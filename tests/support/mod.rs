//! Support for cluster tests against the local control plane (`hack/testenv`).
//!
//! A test gets the environment, its own namespace, and whatever fakes it needs:
//!
//! ```ignore
//! let env = TestEnv::get().await;
//! let ns = env.namespace("rollout").await;
//! let kubelet = FakeKubelet::start(env.client.clone(), ns.name());
//! ns.apply_yaml(DEPLOYMENT);
//! ```
//!
//! Tests run as many processes at once: everything here is safe to run concurrently, and a
//! missing environment is a failure, never a skip.

#![allow(dead_code, unused_imports)]

mod alertmanager;
pub mod browser;
mod env;
mod eventually;
mod exporter;
mod gateway_api_crd;
mod kubelet;
mod namespace;
mod operator;
mod postgres;
mod prometheus;
pub mod receivers;
mod second_cluster;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use alertmanager::AlertmanagerInstance;
pub use env::{FAKE_NODE, TestEnv};
pub use eventually::{Attempt, eventually};
pub use exporter::MetricsExporter;
pub use kubelet::FakeKubelet;
pub use namespace::{TestEvent, TestNamespace};
pub use operator::Operator;
pub use postgres::PostgresInstance;
pub use prometheus::{LOOKBACK, PrometheusInstance};
pub use second_cluster::SecondCluster;

/// A lowercase suffix unique across the test processes running now and recent runs (pid,
/// counter, milliseconds), usable in DNS labels and file names.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}-{count:x}-{:x}",
        std::process::id(),
        millis & 0xff_ffff
    )
}

/// A loopback port free right now (another process may take it before it is bound).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Where helpers put logs and scratch directories (kept after the run for inspection).
pub fn scratch_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// Removes the hand-back finalizer of every CanaryRollout in `namespace`, once the operator is
/// gone: nothing else would run it, and the namespace would stay Terminating for good.
pub fn clear_rollout_finalizers(env: &TestEnv, namespace: &str) {
    std::thread::sleep(std::time::Duration::from_millis(200));
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .env("KUBECONFIG", &env.kubeconfig)
            .args(["--namespace", namespace])
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
    };
    let Ok(listed) = kubectl(&["get", "canaryrollouts", "--output", "name"]) else {
        return;
    };
    for rollout in String::from_utf8_lossy(&listed.stdout).lines() {
        let _ = kubectl(&[
            "patch",
            rollout,
            "--type",
            "merge",
            "--patch",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
    }
}
