//! A metrics endpoint the test controls, scraped by the real Prometheus.
//!
//! The exporter itself lives in the library (`sluice::devenv::exporter`), shared with the demo:
//! it answers `GET /metrics` on a loopback port and registers itself through the shared file_sd
//! folder. Every series it exposes carries the label `sluice_test_exporter="<id>"` (added by
//! service discovery), so tests running at once never see each other's series. This wrapper adds
//! what only tests want: panics instead of errors, and waiting until Prometheus has scraped a
//! value.

use std::time::Duration;

use sluice::devenv::exporter;

use super::{TestEnv, eventually, unique_suffix};

pub use sluice::devenv::exporter::EXPORTER_LABEL;

/// A running exporter; stops serving and unregisters on drop.
pub struct MetricsExporter {
    inner: exporter::MetricsExporter,
    prometheus_url: String,
}

impl MetricsExporter {
    /// Starts serving on 127.0.0.1 and registers the target with the shared Prometheus.
    pub async fn start(env: &TestEnv, name: &str) -> MetricsExporter {
        let id = format!("{name}-{}", unique_suffix());
        let inner = exporter::MetricsExporter::start(&env.sd_dir, &id)
            .await
            .unwrap_or_else(|e| panic!("starting the metrics exporter {id}: {e}"));
        MetricsExporter {
            inner,
            prometheus_url: env.prometheus_url.clone(),
        }
    }

    /// The value of the `sluice_test_exporter` label on this exporter's series.
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// host:port the exporter listens on.
    pub fn address(&self) -> &str {
        self.inner.address()
    }

    /// Exposes `metric{labels}` with `value` from now on (replacing an earlier value).
    pub fn set(&self, metric: &str, labels: &[(&str, &str)], value: f64) {
        self.inner.set(metric, labels, value);
    }

    /// Stops exposing `metric{labels}`; Prometheus marks it stale at the next scrape.
    pub fn remove(&self, metric: &str, labels: &[(&str, &str)]) {
        self.inner.remove(metric, labels);
    }

    /// Stops exposing every series.
    pub fn clear(&self) {
        self.inner.clear();
    }

    /// A PromQL selector for `metric{labels}` as scraped from this exporter.
    pub fn selector(&self, metric: &str, labels: &[(&str, &str)]) -> String {
        self.inner.selector(metric, labels)
    }

    /// The page `/metrics` serves now.
    pub fn render(&self) -> String {
        self.inner.render()
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
        let Some(expected) = self.inner.get(metric, labels) else {
            panic!("{metric}{labels:?} is not set on exporter {}", self.id())
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

    /// Waits until the shared Prometheus holds at least `samples` scrapes of `metric{labels}`
    /// from the last minute: enough history for a query over a window.
    pub async fn wait_until_recorded(&self, metric: &str, labels: &[(&str, &str)], samples: u32) {
        let client = prometheus_http_query::Client::try_from(self.prometheus_url.as_str())
            .unwrap_or_else(|e| panic!("bad Prometheus URL {}: {e}", self.prometheus_url));
        let query = format!("count_over_time({}[1m])", self.selector(metric, labels));
        let what = format!("{} to hold {samples} samples: {query}", self.prometheus_url);
        eventually(Duration::from_secs(60), &what, async || {
            let result = client
                .query(&query)
                .get()
                .await
                .map_err(|e| e.to_string())?;
            let count = result
                .data()
                .as_vector()
                .and_then(|v| v.first().map(|s| s.sample().value()))
                .unwrap_or(0.0);
            (count >= f64::from(samples))
                .then_some(())
                .ok_or(format!("{count} so far"))
        })
        .await
    }
}
