//! Debian's headless Chromium, driven through chromedriver (WebDriver) by fantoccini.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{eventually, free_port, scratch_dir, unique_suffix};

pub struct Browser {
    pub client: Client,
    _driver: Child,
    /// Where screenshots go (kept as test artifacts).
    pub artifacts: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session through it.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start /usr/bin/chromedriver (hack/testenv install installs chromium-driver)");
        let profile = scratch_dir().join(format!("chromium-{}", unique_suffix()));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(Duration::from_secs(20), "a Chromium session", async || {
            ClientBuilder::rustls()
                .map_err(|e| e.to_string())?
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        let artifacts = scratch_dir().join("screenshots");
        std::fs::create_dir_all(&artifacts).expect("screenshot folder");
        Browser {
            client,
            _driver: driver,
            artifacts,
        }
    }

    /// Saves a screenshot of the page as `<name>.png` among the artifacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The browser console's entries at level SEVERE since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("read the browser's console log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// chromedriver's log endpoint (`goog:loggingPrefs`): the console since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}
