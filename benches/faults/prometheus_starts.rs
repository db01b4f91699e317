//! When the campaign's Prometheus started, each time, as it reports it: until one lookback after
//! a start it may answer with samples from before it, and no stage may pass on such answers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

pub struct PrometheusStarts {
    starts: Arc<Mutex<Vec<Timestamp>>>,
    lookback: SignedDuration,
    task: tokio::task::JoinHandle<()>,
}

impl PrometheusStarts {
    /// Reads the lookback from Prometheus' flags, then its start every half second.
    pub async fn watch(url: &str) -> PrometheusStarts {
        let http = reqwest::Client::new();
        let flags = status(&http, url, "flags")
            .await
            .expect("Prometheus' flags");
        let lookback: sluice::api::Duration = flags["query.lookback-delta"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .expect("a query.lookback-delta flag");
        let lookback = SignedDuration::try_from(lookback.as_std()).expect("a lookback");
        let starts = Arc::new(Mutex::new(Vec::new()));
        let seen = starts.clone();
        let url = url.to_string();
        let task = tokio::spawn(async move {
            loop {
                // Down while it restarts: the next answer after it is back gives the new start.
                if let Some(start) = status(&http, &url, "runtimeinfo")
                    .await
                    .and_then(|info| info["startTime"].as_str()?.parse::<Timestamp>().ok())
                {
                    let mut starts = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    if starts.last() != Some(&start) {
                        starts.push(start);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        PrometheusStarts {
            starts,
            lookback,
            task,
        }
    }

    /// [start, start + lookback) of every start seen.
    pub fn untrusted(&self) -> Vec<(Timestamp, Timestamp)> {
        let starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        starts.iter().map(|&s| (s, s + self.lookback)).collect()
    }

    pub fn count(&self) -> usize {
        self.starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for PrometheusStarts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `data` of `/api/v1/status/<what>`, or None while Prometheus does not answer.
async fn status(http: &reqwest::Client, url: &str, what: &str) -> Option<Value> {
    let answer = http
        .get(format!("{url}/api/v1/status/{what}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let mut body: Value = answer.error_for_status().ok()?.json().await.ok()?;
    Some(body["data"].take())
}
