//! The faults: the operator's two replicas killed or failed over, the apiserver, etcd and
//! Prometheus restarted (`hack/testenv restart`), Prometheus made slow, failing, NaN or empty
//! through the proxy. A batch's faults run one after another at times drawn from its seed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use rand::RngExt;
use rand::rngs::StdRng;

use crate::proxy::{Mode, PrometheusProxy};
use crate::scenario::sleep_until;
use crate::support::{Operator, TestEnv};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 of one replica, started again at once.
    OperatorKill,
    /// kill -9 of the replica holding the lease, started again seconds later: the other takes
    /// over when the lease runs out.
    LeaderFailover,
    ApiserverRestart,
    EtcdRestart,
    PrometheusStopped,
    PrometheusSlow,
    PrometheusErrors,
    PrometheusNaN,
    PrometheusEmpty,
}

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::OperatorKill,
        Fault::LeaderFailover,
        Fault::ApiserverRestart,
        Fault::EtcdRestart,
        Fault::PrometheusStopped,
        Fault::PrometheusSlow,
        Fault::PrometheusErrors,
        Fault::PrometheusNaN,
        Fault::PrometheusEmpty,
    ];
}

/// One fault of a batch: when, from the batch's start, and for how long.
#[derive(Clone, Debug)]
pub struct Timed {
    pub at: Duration,
    pub fault: Fault,
    pub length: Duration,
}

/// Two to four faults in the first 35 s of a batch, in time order.
pub fn draw(rng: &mut StdRng) -> Vec<Timed> {
    let count = rng.random_range(2..=4);
    let mut faults: Vec<Timed> = (0..count)
        .map(|_| Timed {
            at: Duration::from_millis(rng.random_range(1000..35_000)),
            fault: Fault::ALL[rng.random_range(0..Fault::ALL.len())],
            length: Duration::from_millis(rng.random_range(1000..12_000)),
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

/// The operator as a Deployment of two replicas would run it: leader election on a Lease.
pub struct Operators {
    replicas: Vec<(&'static str, Operator)>,
    leases: Api<Lease>,
    /// Exits nobody asked for, with the replica's name.
    pub unexpected_exits: Vec<String>,
    /// Exits of a leader that could not renew its lease (the apiserver or etcd down for longer
    /// than the renewal allows): by design, so that no two replicas act at once
    /// (docs/operations.md); restarted as the kubelet would.
    pub lease_exits: usize,
    /// Exits of each replica in the current batch: more than [`CRASH_LOOP`] is a crash loop.
    exits_in_batch: [usize; 2],
}

/// Exits of one replica within one batch that make a crash loop, whatever their cause.
const CRASH_LOOP: usize = 3;

const IDENTITIES: [&str; 2] = ["sluice-a", "sluice-b"];

impl Operators {
    pub fn start(env: &TestEnv, prometheus_url: &str, lease_namespace: &str) -> Operators {
        let args = [
            "--leader-elect",
            "--lease-namespace",
            lease_namespace,
            "--lease-duration",
            "4s",
        ];
        let replicas = IDENTITIES
            .map(|identity| {
                let envs = [("POD_NAME", identity), ("RUST_LOG", "info,kube=warn")];
                let operator = Operator::start_cluster_wide(env, prometheus_url, &args, &envs);
                (identity, operator)
            })
            .into();
        Operators {
            replicas,
            leases: Api::namespaced(env.client.clone(), lease_namespace),
            unexpected_exits: Vec::new(),
            lease_exits: 0,
            exits_in_batch: [0; 2],
        }
    }

    /// Restarts a replica that ended on its own, and counts it: an exit on a lost lease is by
    /// design, any other exit and any crash loop is a violation.
    pub async fn look(&mut self) {
        for (index, (identity, operator)) in self.replicas.iter_mut().enumerate() {
            let Some(status) = operator.exit_status() else {
                continue;
            };
            let log = operator.log();
            let last_lines: Vec<&str> = log.lines().rev().take(5).collect();
            let last_words = last_lines.first().copied().unwrap_or_default().to_string();
            self.exits_in_batch[index] += 1;
            if last_lines
                .iter()
                .any(|l| l.contains("sluice: lost the lease"))
            {
                self.lease_exits += 1;
            } else {
                self.unexpected_exits.push(format!(
                    "{identity} exited on its own ({status}): {last_words}"
                ));
            }
            if self.exits_in_batch[index] == CRASH_LOOP + 1 {
                self.unexpected_exits.push(format!(
                    "{identity} crash loop: {} exits in one batch",
                    self.exits_in_batch[index]
                ));
            }
            operator.restart().await;
        }
    }

    /// A new batch: exits are counted towards a crash loop from now.
    pub fn new_batch(&mut self) {
        self.exits_in_batch = [0; 2];
    }

    async fn holder(&self) -> Option<usize> {
        let lease = self.leases.get_opt("sluice").await.ok()??;
        let holder = lease.spec?.holder_identity?;
        IDENTITIES.iter().position(|i| *i == holder)
    }

    /// Every line of the replicas' logs that reports a panic.
    pub fn panics(&self) -> Vec<String> {
        self.replicas
            .iter()
            .flat_map(|(identity, operator)| {
                operator
                    .log()
                    .lines()
                    .filter(|l| l.contains("panicked"))
                    .map(|l| format!("{identity}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn log_paths(&self) -> Vec<String> {
        self.replicas
            .iter()
            .map(|(_, o)| o.log_path().display().to_string())
            .collect()
    }
}

/// Runs `faults` at their times from `start`, keeping an eye on the replicas in between.
pub async fn run(
    faults: Vec<Timed>,
    start: Instant,
    mut operators: Operators,
    proxy: Arc<PrometheusProxy>,
) -> Operators {
    for timed in faults {
        let at = start + timed.at;
        while Instant::now() < at {
            operators.look().await;
            tokio::time::sleep(Duration::from_millis(250).min(at - Instant::now())).await;
        }
        inject(&timed, &mut operators, &proxy).await;
    }
    operators.look().await;
    operators
}

async fn inject(timed: &Timed, operators: &mut Operators, proxy: &PrometheusProxy) {
    let length = timed.length;
    match timed.fault {
        Fault::OperatorKill => {
            let index = (length.as_millis() % 2) as usize;
            operators.replicas[index].1.restart().await;
        }
        Fault::LeaderFailover => {
            let index = operators.holder().await.unwrap_or(0);
            let operator = &mut operators.replicas[index].1;
            operator.kill().await;
            tokio::time::sleep(length).await;
            operator.restart().await;
        }
        Fault::ApiserverRestart => restart("kube-apiserver", length).await,
        Fault::EtcdRestart => restart("etcd", length).await,
        Fault::PrometheusStopped => restart("prometheus", length).await,
        Fault::PrometheusSlow => proxy_for(proxy, Mode::Slow(Duration::from_secs(4)), length).await,
        Fault::PrometheusErrors => proxy_for(proxy, Mode::Errors, length).await,
        Fault::PrometheusNaN => proxy_for(proxy, Mode::NotANumber, length).await,
        Fault::PrometheusEmpty => proxy_for(proxy, Mode::Empty, length).await,
    }
}

/// The script that started the environment and restarts its components.
const TESTENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");

async fn proxy_for(proxy: &PrometheusProxy, mode: Mode, length: Duration) {
    proxy.set(mode);
    sleep_until(Instant::now() + length).await;
    proxy.set(Mode::Pass);
}

/// `hack/testenv restart`: kill -9, down for `length` (whole seconds, at least one), started
/// again with the same command line.
async fn restart(component: &str, length: Duration) {
    let seconds = length.as_secs().max(1).to_string();
    let status = tokio::process::Command::new("bash")
        .args([TESTENV, "restart", component, &seconds])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap_or_else(|e| panic!("running hack/testenv restart {component}: {e}"));
    assert!(
        status.success(),
        "hack/testenv restart {component}: {status}"
    );
}

/// Whether every component of the environment runs, for a check between batches.
pub async fn environment_down() -> Vec<String> {
    let output = tokio::process::Command::new("bash")
        .args([TESTENV, "status"])
        .output()
        .await
        .expect("hack/testenv status");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.ends_with("stopped"))
        .map(str::to_string)
        .collect()
}
