//! An Alertmanager of the test's own (Debian's `prometheus-alertmanager`) on a loopback port:
//! alerts are posted to it and silenced through its API v2, as Prometheus and a person would.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{free_port, scratch_dir, unique_suffix};

pub struct AlertmanagerInstance {
    port: u16,
    dir: PathBuf,
    child: Child,
    http: reqwest::Client,
}

impl AlertmanagerInstance {
    /// Starts it on a free port (trying a few, in case another process takes one first) and
    /// waits until it is ready.
    pub async fn start() -> AlertmanagerInstance {
        let dir = scratch_dir().join(format!("alertmanager-{}", unique_suffix()));
        std::fs::create_dir_all(dir.join("data")).expect("alertmanager folder");
        std::fs::write(
            dir.join("alertmanager.yml"),
            "route: {receiver: nobody}\nreceivers: [{name: nobody}]\n",
        )
        .expect("write alertmanager.yml");
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let port = free_port();
            let log_path = dir.join("alertmanager.log");
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("alertmanager log");
            let mut child = Command::new("prometheus-alertmanager")
                .arg(format!(
                    "--config.file={}",
                    dir.join("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // No gossip: a single instance needs no cluster port.
                .arg("--cluster.listen-address=")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run prometheus-alertmanager (hack/testenv install): {e}")
                });
            let url = format!("http://127.0.0.1:{port}/-/ready");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return AlertmanagerInstance {
                        port,
                        dir,
                        child,
                        http,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill().await;
        }
        panic!(
            "alertmanager did not start; see {}",
            dir.join("alertmanager.log").display()
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Posts a firing alert with these labels, active for the next hour.
    pub async fn fire(&self, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let ends = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let body = json!([{"labels": labels, "endsAt": ends.to_string()}]);
        let response = self
            .http
            .post(format!("{}/api/v2/alerts", self.url()))
            .json(&body)
            .send()
            .await
            .expect("post alert");
        assert!(
            response.status().is_success(),
            "posting alert: {}",
            response.status()
        );
    }

    /// Silences alerts whose `name` label equals `value`, for an hour; returns the silence id.
    pub async fn silence(&self, name: &str, value: &str) -> String {
        let now = jiff::Timestamp::now();
        let body = json!({
            "matchers": [{"name": name, "value": value, "isRegex": false, "isEqual": true}],
            "startsAt": now.to_string(),
            "endsAt": (now + jiff::SignedDuration::from_hours(1)).to_string(),
            "createdBy": "sluice tests",
            "comment": "known incident",
        });
        let response = self
            .http
            .post(format!("{}/api/v2/silences", self.url()))
            .json(&body)
            .send()
            .await
            .expect("post silence");
        assert!(
            response.status().is_success(),
            "posting silence: {}",
            response.status()
        );
        let answer: Value = response.json().await.expect("silence answer");
        answer["silenceID"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for AlertmanagerInstance {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
