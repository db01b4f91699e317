//! The shared local environment and the cluster-wide state every test relies on: the CRDs
//! (ours and the upstream HTTPRoute) and one Ready fake Node to bind pods to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Error};
use tokio::sync::OnceCell;

use super::gateway_api_crd::upstream_httproute_crd;

/// Name of the Node the fake kubelet binds pods to.
pub use sluice::devenv::FAKE_NODE;

/// Field manager for everything the test support applies.
const FIELD_MANAGER: &str = "sluice-tests";

const NOT_RUNNING: &str = "the local test environment is not running: run hack/test or `hack/testenv up` and source its env";

/// Handles on the local control plane and the shared Prometheus.
#[derive(Clone)]
pub struct TestEnv {
    /// Client for the local apiserver (from KUBECONFIG).
    pub client: Client,
    /// The shared Prometheus, e.g. http://127.0.0.1:9090.
    pub prometheus_url: String,
    /// Folder whose `*.json` files the shared Prometheus scrapes (file_sd).
    pub sd_dir: PathBuf,
    /// The kubeconfig kubectl and the operator use.
    pub kubeconfig: PathBuf,
}

impl TestEnv {
    /// Connects to the environment described by the variables `hack/testenv` exports, and makes
    /// sure (once per process) that the CRDs are established and the fake Node is Ready.
    ///
    /// Panics when the environment is missing: a test that cannot reach it has failed.
    pub async fn get() -> TestEnv {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The fake kubelet and the exporter report trouble through `tracing`: show it with the
        // test's output (RUST_LOG, default warnings).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let kubeconfig = PathBuf::from(required_var("KUBECONFIG"));
        let prometheus_url = required_var("SLUICE_PROMETHEUS_URL");
        let sd_dir = PathBuf::from(required_var("SLUICE_PROM_SD_DIR"));
        required_var("SLUICE_TESTENV");
        let client = Client::try_default().await.unwrap_or_else(|e| {
            panic!(
                "{NOT_RUNNING} (no client from {}: {e})",
                kubeconfig.display()
            )
        });
        let env = TestEnv {
            client,
            prometheus_url,
            sd_dir,
            kubeconfig,
        };

        static CLUSTER_READY: OnceCell<()> = OnceCell::const_new();
        CLUSTER_READY.get_or_init(|| env.prepare_cluster()).await;
        env
    }

    /// Another control plane, started by `hack/testenv up` into `state` (see
    /// `support::SecondCluster`), with the CRDs and the fake Node; it shares `prometheus_url` and
    /// `sd_dir` with the first.
    pub async fn other(kubeconfig: PathBuf, prometheus_url: String, sd_dir: PathBuf) -> TestEnv {
        let config = kube::config::Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
        let client = Client::try_from(config).expect("a client of the second cluster");
        let env = TestEnv {
            client,
            prometheus_url,
            sd_dir,
            kubeconfig,
        };
        env.prepare_cluster().await;
        env
    }

    async fn prepare_cluster(&self) {
        let crds_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&crds_dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", crds_dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        let mut crds: Vec<(String, CustomResourceDefinition)> = files
            .iter()
            .map(|path| {
                let yaml = std::fs::read_to_string(path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let crd = serde_saphyr::from_str(&yaml)
                    .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", path.display()));
                (path.display().to_string(), crd)
            })
            .collect();
        crds.push(("upstream HTTPRoute".into(), upstream_httproute_crd()));

        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let mut names = Vec::new();
        for (source, crd) in &crds {
            let name = crd
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| panic!("{source} has no metadata.name"));
            retry_conflicts(&format!("apply CRD {name}"), async || {
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(crd),
                )
                .await
            })
            .await;
            names.push(name);
        }
        for name in names {
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            match tokio::time::timeout(Duration::from_secs(30), established).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("waiting for CRD {name} to be established: {e}"),
                Err(_) => panic!("CRD {name} was not established within 30 s"),
            }
        }
        self.ensure_fake_node().await;
    }

    /// Creates the fake Node the fake kubelet binds pods to and marks it Ready.
    async fn ensure_fake_node(&self) {
        sluice::devenv::kubelet::register_node(&self.client)
            .await
            .unwrap_or_else(|e| panic!("registering the fake Node {FAKE_NODE}: {e}"));
    }
}

/// Runs a write until it succeeds, retrying conflicts a few times (many test processes apply
/// the same cluster-wide objects at once); any other error fails the test.
async fn retry_conflicts<T>(what: &str, mut write: impl AsyncFnMut() -> Result<T, Error>) -> T {
    let mut attempt = 0;
    loop {
        match write().await {
            Ok(value) => return value,
            Err(Error::Api(status)) if status.is_conflict() && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(Error::Api(status)) => panic!("{what}: {status}"),
            Err(e) => panic!("{NOT_RUNNING} ({what}: {e})"),
        }
    }
}

fn required_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{NOT_RUNNING} ({name} is not set)"),
    }
}
