//! A metrics endpoint whose series the caller sets, scraped by a real Prometheus.
//!
//! It answers `GET /metrics` in the Prometheus text format on a loopback port and registers
//! itself through a file_sd folder: a `<id>.json` file naming its address, which Prometheus
//! (configured with `file_sd_configs` on `<folder>/*.json`, as `hack/testenv` does) picks up
//! within a second or two. Service discovery adds the label `sluice_test_exporter="<id>"` to
//! every series, so exporters running at once never see each other's series. Dropping the
//! exporter unregisters it and stops serving.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::warn;

/// Label that service discovery adds to every series of one exporter.
pub const EXPORTER_LABEL: &str = "sluice_test_exporter";

/// Largest request head read before answering; scrapes send a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// (metric name, labels sorted by name)
type SeriesKey = (String, Vec<(String, String)>);
type Series = Arc<Mutex<BTreeMap<SeriesKey, f64>>>;

/// A running exporter; stops serving and unregisters on drop.
pub struct MetricsExporter {
    id: String,
    address: String,
    series: Series,
    sd_file: PathBuf,
    server: JoinHandle<()>,
}

impl MetricsExporter {
    /// Serves on a free port of 127.0.0.1 and registers the target as `<sd_dir>/<id>.json`.
    /// Characters of `id` other than ASCII letters, digits and '-' become '-'.
    pub async fn start(sd_dir: &Path, id: &str) -> Result<MetricsExporter, io::Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let id = file_safe(id);
        let sd_file = register(sd_dir, &id, &address)?;
        let series = Series::default();
        let server = tokio::spawn(serve(listener, series.clone()));
        Ok(MetricsExporter {
            id,
            address,
            series,
            sd_file,
            server,
        })
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
        self.lock().insert(key(metric, labels), value);
    }

    /// The value `metric{labels}` is exposed with, if it is.
    pub fn get(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.lock().get(&key(metric, labels)).copied()
    }

    /// Stops exposing `metric{labels}`; Prometheus marks it stale at the next scrape.
    pub fn remove(&self, metric: &str, labels: &[(&str, &str)]) {
        self.lock().remove(&key(metric, labels));
    }

    /// Stops exposing every series.
    pub fn clear(&self) {
        self.lock().clear();
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
        render(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<SeriesKey, f64>> {
        lock(&self.series)
    }
}

impl Drop for MetricsExporter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sd_file);
        self.server.abort();
    }
}

/// Another endpoint (e.g. the operator's /metrics) registered for the Prometheus that scrapes
/// the file_sd folder, with the label `sluice_test_exporter="<id>"`; unregistered on drop.
pub struct ScrapeTarget {
    sd_file: PathBuf,
}

impl ScrapeTarget {
    pub fn register(sd_dir: &Path, id: &str, address: &str) -> Result<ScrapeTarget, io::Error> {
        Ok(ScrapeTarget {
            sd_file: register(sd_dir, &file_safe(id), address)?,
        })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sd_file);
    }
}

/// Writes the file_sd target file and returns its path. Prometheus watches `*.json`: the file is
/// written under another name and renamed, so Prometheus never reads half of it.
fn register(sd_dir: &Path, id: &str, address: &str) -> Result<PathBuf, io::Error> {
    let sd_file = sd_dir.join(format!("{id}.json"));
    let partial = sd_dir.join(format!("{id}.json.partial"));
    let target = serde_json::json!([{ "targets": [address], "labels": { EXPORTER_LABEL: id } }]);
    let in_sd_dir = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", partial.display()));
    std::fs::write(&partial, target.to_string()).map_err(in_sd_dir)?;
    std::fs::rename(&partial, &sd_file).map_err(in_sd_dir)?;
    Ok(sd_file)
}

fn lock(series: &Series) -> MutexGuard<'_, BTreeMap<SeriesKey, f64>> {
    series.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(listener: TcpListener, series: Series) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, series.clone()));
            }
            Err(e) => warn!("metrics exporter: accept: {e}"),
        }
    }
}

/// Answers one request and closes the connection.
async fn answer(mut stream: TcpStream, series: Series) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST_HEAD {
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
        let body = render(&lock(&series));
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
/// PromQL's `rate()` does not look at the type, so counters work as gauges too.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_type_line_per_metric_and_escapes_label_values() {
        let mut series = BTreeMap::new();
        series.insert(key("up", &[]), 1.0);
        series.insert(
            key("requests_total", &[("path", "/a\"b"), ("code", "200")]),
            3.5,
        );
        series.insert(key("requests_total", &[("code", "500")]), f64::NAN);
        assert_eq!(
            render(&series),
            "# TYPE requests_total gauge\n\
             requests_total{code=\"200\",path=\"/a\\\"b\"} 3.5\n\
             requests_total{code=\"500\"} NaN\n\
             # TYPE up gauge\n\
             up 1\n"
        );
    }

    #[tokio::test]
    async fn registers_in_the_sd_folder_serves_metrics_and_unregisters_on_drop() {
        let sd_dir = std::env::temp_dir().join(format!("sluice-exporter-{}", std::process::id()));
        std::fs::create_dir_all(&sd_dir).unwrap();
        let exporter = MetricsExporter::start(&sd_dir, "unit test").await.unwrap();
        assert_eq!(exporter.id(), "unit-test");
        exporter.set("up", &[("track", "canary")], 1.0);
        assert_eq!(
            exporter.selector("up", &[("track", "canary")]),
            "up{track=\"canary\",sluice_test_exporter=\"unit-test\"}"
        );

        let sd_file = sd_dir.join("unit-test.json");
        let target: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&sd_file).unwrap()).unwrap();
        assert_eq!(target[0]["targets"][0], exporter.address());
        assert_eq!(target[0]["labels"][EXPORTER_LABEL], "unit-test");

        let mut stream = TcpStream::connect(exporter.address()).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("up{track=\"canary\"} 1\n"), "{response}");

        drop(exporter);
        assert!(!sd_file.exists());
        let _ = std::fs::remove_dir_all(&sd_dir);
    }
}
