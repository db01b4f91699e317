//! A second control plane (etcd, kube-apiserver, controller-manager) from `hack/testenv up` with
//! its own state folder, for environments in another cluster; stopped on drop.

use std::path::PathBuf;
use std::process::Command;

use super::{TestEnv, scratch_dir, unique_suffix};

pub struct SecondCluster {
    pub env: TestEnv,
    state: PathBuf,
}

fn testenv(state: &PathBuf, command: &str) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/testenv");
    Command::new("bash")
        .args([script, command])
        .env("SLUICE_TESTENV", state)
        .env_remove("SLUICE_AUDIT")
        .output()
        .unwrap_or_else(|e| panic!("hack/testenv {command}: {e}"))
}

impl SecondCluster {
    /// Starts it (about 5 s with the cached Kubernetes build) beside the shared one.
    pub async fn start(first: &TestEnv) -> SecondCluster {
        let state = scratch_dir().join(format!("cluster-{}", unique_suffix()));
        let up = testenv(&state, "up");
        assert!(
            up.status.success(),
            "a second control plane did not start:\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let env = TestEnv::other(
            state.join("kubeconfig"),
            first.prometheus_url.clone(),
            first.sd_dir.clone(),
        )
        .await;
        SecondCluster { env, state }
    }

    /// Its kubeconfig with the CA certificate embedded, as a cluster Secret holds it.
    pub fn portable_kubeconfig(&self) -> String {
        let text = std::fs::read_to_string(self.state.join("kubeconfig")).expect("kubeconfig");
        let ca_path = self.state.join("pki/ca.crt");
        let ca = std::fs::read(&ca_path).expect("ca.crt");
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(ca);
        text.replace(
            &format!("certificate-authority: {}", ca_path.display()),
            &format!("certificate-authority-data: {encoded}"),
        )
    }
}

impl Drop for SecondCluster {
    fn drop(&mut self) {
        let _ = testenv(&self.state, "down");
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}
