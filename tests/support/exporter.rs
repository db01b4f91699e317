//! A metrics endpoint the test controls, scraped by the real Prometheus.
//!
//! It answers `GET /metrics` in the Prometheus text format on a loopback port and registers
//! itself through the shared file_sd folder. Every series it exposes carries the label
//! `sluice_test_exporter="<id>"` (added by service discovery), so tests running at once never
//! see each other's series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{TestEnv, eventually, unique_suffix};

/// Label that service discovery adds to every series of one exporter.
pub const EXPORTER_LABEL: &str = "sluice_test_exporter";

/// (metric name, labels sorted by name)
type SeriesKey = (String, Vec<(String, String)>);
type Series = Arc<Mutex<BTreeMap<SeriesKey, f64>>>;

/// A running exporter; stops serving and unregisters on drop.
pub struct MetricsExporter {
    id: String,
    address: String,
    series: Series,
    sd_file: PathBuf,
    prometheus_url: String,
    server: JoinHandle<()>,
}

impl MetricsExporter {
    /// Starts serving on 127.0.0.1 and registers the target with the shared Prometheus.
    pub async fn start(env: &TestEnv, name: &str) -> MetricsExporter {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the exporter");
        let address = listener.local_addr().expect("exporter address").to_string();
        let id = format!("{}-{}", file_safe(name), unique_suffix());
        let series = Series::default();
        let server = tokio::spawn(serve(listener, series.clone()));

        let sd_file = env.sd_dir.join(format!("{id}.json"));
        let target =
            serde_json::json!([{ "targets": [address], "labels": { EXPORTER_LABEL: id } }]);
        // Prometheus watches `*.json`: write elsewhere, then rename, so it never reads half a file.
        let partial = env.sd_dir.join(format!("{id}.json.partial"));
        std::fs::write(&partial, target.to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", partial.display()));
        std::fs::rename(&partial, &sd_file)
            .unwrap_or_else(|e| panic!("renaming to {}: {e}", sd_file.display()));

        MetricsExporter {
            id,
            address,
            series,
            sd_file,
            prometheus_url: env.prometheus_url.clone(),
            server,
        }
    }

    /// The value of the `sluice_test_exporter` label on this exporter's series.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// host:port the exporter listens on.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Exposes `metric{labels}` with `value` from now on (replacing an earlier value).
    pub fn set(&self, metric: &str, labels: &[(&str, &str)], value: f64) {
        self.series
            .lock()
            .expect("series")
            .insert(key(metric, labels), value);
    }

    /// Stops exposing `metric{labels}`; Prometheus marks it stale at the next scrape.
    pub fn remove(&self, metric: &str, labels: &[(&str, &str)]) {
        self.series
            .lock()
            .expect("series")
            .remove(&key(metric, labels));
    }

    /// Stops exposing every series.
    pub fn clear(&self) {
        self.series.lock().expect("series").clear();
    }

    /// A PromQL selector for `metric{labels}` as scraped from this exporter.
    pub fn selector(&self, metric: &str, labels: &[(&str, &str)]) -> String {
        let mut matchers: Vec<String> = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
            .collect();
        matchers.push(format!("{EXPORTER_LABEL}=\"{}\"", self.id));
        format!("{metric}{{{}}}", matchers.join(","))
    }

    /// The page `/metrics` serves now.
    pub fn render(&self) -> String {
        render(&self.series.lock().expect("series"))
    }

    /// Waits until the shared Prometheus returns the current value of `metric{labels}`.
    pub async fn wait_until_scraped(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.wait_until_scraped_by(&self.prometheus_url, metric, labels)
            .await
    }

    /// Waits until the Prometheus at `prometheus_url` returns the current value of
    /// `metric{labels}`, and returns it.
    pub async fn wait_until_scraped_by(
        &self,
        prometheus_url: &str,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> f64 {
        let expected = self
            .series
            .lock()
            .expect("series")
            .get(&key(metric, labels))
            .copied();
        let Some(expected) = expected else {
            panic!("{metric}{labels:?} is not set on exporter {}", self.id)
        };
        let client = prometheus_http_query::Client::try_from(prometheus_url)
            .unwrap_or_else(|e| panic!("bad Prometheus URL {prometheus_url}: {e}"));
        let query = self.selector(metric, labels);
        let what = format!("{prometheus_url} to return {query} = {expected}");
        eventually(Duration::from_secs(30), &what, async || {
            let result = client
                .query(&query)
                .get()
                .await
                .map_err(|e| e.to_string())?;
            let values: Vec<f64> = result
                .data()
                .as_vector()
                .map(|samples| samples.iter().map(|s| s.sample().value()).collect())
                .unwrap_or_default();
            match values.as_slice() {
                [value] if value == &expected || (value.is_nan() && expected.is_nan()) => {
                    Ok(*value)
                }
                _ => Err(format!("{values:?}")),
            }
        })
        .await
    }
}

impl Drop for MetricsExporter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sd_file);
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, series: Series) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, series.clone()));
            }
            Err(e) => eprintln!("metrics exporter: accept: {e}"),
        }
    }
}

/// Answers one request and closes the connection.
async fn answer(mut stream: TcpStream, series: Series) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let response = if head.starts_with("GET ")
        && (path == "/metrics" || path.starts_with("/metrics?"))
    {
        let body = render(&series.lock().expect("series"));
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The text exposition format: one `# TYPE <metric> gauge` line per metric, then its samples.
fn render(series: &BTreeMap<SeriesKey, f64>) -> String {
    let mut page = String::new();
    let mut last_metric = None;
    for ((metric, labels), value) in series {
        if last_metric != Some(metric) {
            let _ = writeln!(page, "# TYPE {metric} gauge");
            last_metric = Some(metric);
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let value = match *value {
            v if v.is_nan() => "NaN".to_string(),
            v if v == f64::INFINITY => "+Inf".to_string(),
            v if v == f64::NEG_INFINITY => "-Inf".to_string(),
            v => v.to_string(),
        };
        let _ = writeln!(page, "{metric}{labels} {value}");
    }
    page
}

fn key(metric: &str, labels: &[(&str, &str)]) -> SeriesKey {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    (metric.to_string(), labels)
}

/// Escapes a label value for the exposition format and PromQL string literals alike.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
