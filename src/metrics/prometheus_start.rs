//! When a Prometheus started, and how far back it looks for a series' latest sample.
//!
//! Prometheus writes a staleness marker when a target goes away, and from then on a query no
//! longer returns that target's series. A series whose target went away while Prometheus was
//! down gets no marker: after a restart, Prometheus answers with its last sample for up to
//! `--query.lookback-delta` (5m by default). Until then an answer may measure something that is
//! gone, such as an earlier canary's pods; the engine does not count such an answer as a pass.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use super::prometheus::QueryError;

/// Prometheus' own default for `--query.lookback-delta`.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(300);

/// The flag that sets how long a series' last sample is answered after it stops being scraped.
const LOOKBACK_FLAG: &str = "query.lookback-delta";

/// A Prometheus process: where it answers, when it started, its lookback.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusStart {
    pub address: String,
    pub started: Timestamp,
    pub lookback: Duration,
}

impl PrometheusStart {
    /// From this time on, no answer holds a sample of a series that went away before the start.
    pub fn trusted_from(&self) -> Timestamp {
        let lookback = jiff::SignedDuration::try_from(self.lookback).unwrap_or_default();
        self.started.checked_add(lookback).unwrap_or(Timestamp::MAX)
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct RuntimeInfo {
    #[serde(rename = "startTime")]
    start_time: Timestamp,
}

/// The lookback of the last process seen, read from its flags once per start.
#[derive(Default)]
pub(super) struct LookbackCache(Mutex<Option<(Timestamp, Duration)>>);

/// Reads `/api/v1/status/runtimeinfo`, and `/api/v1/status/flags` when the start is new.
pub(super) async fn fetch(
    http: &reqwest::Client,
    address: &str,
    auth: Option<HeaderValue>,
    cache: &LookbackCache,
) -> Result<PrometheusStart, QueryError> {
    let info: RuntimeInfo = get(http, address, "api/v1/status/runtimeinfo", &auth).await?;
    let started = info.start_time;
    let known = *cache.0.lock().unwrap_or_else(PoisonError::into_inner);
    let lookback = match known {
        Some((start, lookback)) if start == started => lookback,
        _ => {
            let flags: std::collections::HashMap<String, String> =
                get(http, address, "api/v1/status/flags", &auth).await?;
            let lookback = lookback_from_flags(&flags);
            *cache.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((started, lookback));
            lookback
        }
    };
    Ok(PrometheusStart {
        address: address.to_string(),
        started,
        lookback,
    })
}

/// The flag's value, or Prometheus' default when it is missing or not a duration.
fn lookback_from_flags(flags: &std::collections::HashMap<String, String>) -> Duration {
    flags
        .get(LOOKBACK_FLAG)
        .and_then(|text| text.parse::<crate::api::Duration>().ok())
        .map_or(DEFAULT_LOOKBACK, |d| d.as_std())
}

async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    address: &str,
    path: &str,
    auth: &Option<HeaderValue>,
) -> Result<T, QueryError> {
    let url = format!("{}/{path}", address.trim_end_matches('/'));
    let mut request = http.get(&url);
    if let Some(value) = auth {
        request = request.header(AUTHORIZATION, value.clone());
    }
    let unreachable = |reason: String| QueryError::Unreachable {
        address: address.to_string(),
        reason,
    };
    let response = request.send().await.map_err(|e| match e.is_timeout() {
        true => unreachable("request timed out".to_string()),
        false => unreachable(e.without_url().to_string()),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(QueryError::Other(format!(
            "{url}: HTTP {}",
            status.as_u16()
        )));
    }
    let envelope: Envelope<T> = response
        .json()
        .await
        .map_err(|e| QueryError::Other(format!("{url}: {}", e.without_url())))?;
    Ok(envelope.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookback_comes_from_the_flag_or_is_prometheus_default() {
        let flags = |value: &str| {
            std::collections::HashMap::from([(LOOKBACK_FLAG.to_string(), value.to_string())])
        };
        assert_eq!(lookback_from_flags(&flags("10s")), Duration::from_secs(10));
        assert_eq!(
            lookback_from_flags(&flags("1m30s")),
            Duration::from_secs(90)
        );
        assert_eq!(lookback_from_flags(&flags("soon")), DEFAULT_LOOKBACK);
        assert_eq!(lookback_from_flags(&Default::default()), DEFAULT_LOOKBACK);
    }

    #[test]
    fn answers_are_trusted_one_lookback_after_the_start() {
        let start = PrometheusStart {
            address: "http://prometheus:9090".into(),
            started: "2026-12-02T10:00:00Z".parse().unwrap(),
            lookback: Duration::from_secs(300),
        };
        assert_eq!(
            start.trusted_from(),
            "2026-12-02T10:05:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
