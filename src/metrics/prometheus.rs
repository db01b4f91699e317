//! Prometheus behind the [`MetricsSource`] trait, and a pool of clients keyed by address.
//!
//! The adapter turns an answer into "one number", "no data" or a typed error; judging the
//! number is the engine's job. NaN is no data; ±Inf is a value (a ratio over zero requests is a
//! signal the caller judges).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use prometheus_http_query::Error as PromError;
use prometheus_http_query::error::PrometheusErrorType;
use prometheus_http_query::response::Data;
use reqwest::header::AUTHORIZATION;

use super::auth::PrometheusAuth;
use super::instrumented::{Instrumented, QueryTelemetry};
use super::prometheus_start::{self, LookbackCache, PrometheusStart};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus at {address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("Prometheus rejected the query {query:?}: {reason}")]
    BadQuery { query: String, reason: String },
    #[error(
        "query {query:?} returned {count} series where one was expected; aggregate it, e.g. wrap it in sum(...)"
    )]
    MultipleSeries { query: String, count: usize },
    #[error("invalid Prometheus address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("Prometheus query failed: {0}")]
    Other(String),
}

impl QueryError {
    /// A static label for operator metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::BadQuery { .. } => "bad_query",
            Self::MultipleSeries { .. } => "multiple_series",
            Self::InvalidAddress { .. } => "invalid_address",
            Self::Other(_) => "other",
        }
    }
}

/// One series of a range query's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelledSeries {
    pub labels: BTreeMap<String, String>,
    /// (unix seconds, value).
    pub points: Vec<(f64, f64)>,
}

pub trait MetricsSource: Send + Sync {
    /// One number at `time` (None = now). Ok(None) = no data (empty vector or NaN).
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>>;

    /// One series sampled over [start, end] every `step`, as (unix seconds, value); NaN samples
    /// are left out, and an empty vec means no data.
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>>;

    /// Every series of a range query, each with its labels (without `__name__`); NaN samples
    /// are left out, and a series with none left is dropped.
    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>>;

    /// When the Prometheus answering started, and its lookback: until one lookback after its
    /// start, an answer may hold samples of series that went away while it was down. None
    /// when the source cannot tell (a recording, a replay of the past).
    fn start(&self) -> BoxFuture<'_, Result<Option<PrometheusStart>, QueryError>> {
        Box::pin(async { Ok(None) })
    }
}

pub struct PrometheusSource {
    address: String,
    client: prometheus_http_query::Client,
    /// The client's HTTP client, for the status endpoints it has no call with headers for.
    http: reqwest::Client,
    auth: PrometheusAuth,
    lookback: LookbackCache,
}

impl PrometheusSource {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, QueryError> {
        Self::with_auth(base_url, timeout, &PrometheusAuth::default())
    }

    /// A source that authenticates with `auth` and trusts its CA bundle besides the system's.
    pub fn with_auth(
        base_url: &str,
        timeout: Duration,
        auth: &PrometheusAuth,
    ) -> Result<Self, QueryError> {
        let invalid = |reason: String| QueryError::InvalidAddress {
            address: base_url.to_string(),
            reason,
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(invalid("expected an http:// or https:// URL".to_string()));
        }
        let mut http = reqwest::Client::builder().timeout(timeout);
        if let Some(bundle) = &auth.ca_file {
            let pem = std::fs::read(bundle)
                .map_err(|e| invalid(format!("reading CA bundle {}: {e}", bundle.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(format!(
                    "CA bundle {}: {}",
                    bundle.display(),
                    root_cause(&e)
                ))
            })?;
            http = http.tls_certs_merge(certificates);
        }
        let http = http.build().map_err(|e| invalid(root_cause(&e)))?;
        let client = prometheus_http_query::Client::from(http.clone(), base_url)
            .map_err(|e| invalid(root_cause(&e)))?;
        Ok(Self {
            address: base_url.to_string(),
            client,
            http,
            auth: auth.clone(),
            lookback: LookbackCache::default(),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The answer of a range query, as Prometheus gave it.
    async fn range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Data, QueryError> {
        if step.is_zero() {
            let reason = "the range query step must be positive".to_string();
            return Err(QueryError::BadQuery {
                query: query.to_string(),
                reason,
            });
        }
        let mut request = self.client.query_range(
            query,
            start.as_second(),
            end.as_second(),
            step.as_secs_f64(),
        );
        if let Some(value) = self.auth.header()? {
            request = request.header(AUTHORIZATION, value);
        }
        let result = request.get().await.map_err(|e| self.classify(e, query))?;
        Ok(result.into_inner().0)
    }

    fn classify(&self, err: PromError, query: &str) -> QueryError {
        let unreachable = |reason: String| QueryError::Unreachable {
            address: self.address.clone(),
            reason,
        };
        match &err {
            PromError::Prometheus(e) => match e.error_type() {
                PrometheusErrorType::BadData | PrometheusErrorType::Execution => {
                    QueryError::BadQuery {
                        query: query.to_string(),
                        reason: e.message().to_string(),
                    }
                }
                PrometheusErrorType::Timeout | PrometheusErrorType::Unavailable => {
                    unreachable(e.to_string())
                }
                _ => QueryError::Other(e.to_string()),
            },
            PromError::Client(e) => match e.inner() {
                Some(r) if r.is_timeout() => unreachable("request timed out".to_string()),
                Some(r) if r.is_connect() => unreachable(root_cause(r)),
                Some(r) if r.status().is_some_and(|s| matches!(s.as_u16(), 502..=504)) => {
                    unreachable(format!("HTTP {}", r.status().map_or(0, |s| s.as_u16())))
                }
                _ => QueryError::Other(describe(&err)),
            },
            _ => QueryError::Other(err.to_string()),
        }
    }
}

impl MetricsSource for PrometheusSource {
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        Box::pin(async move {
            let mut request = self.client.query(query);
            if let Some(value) = self.auth.header()? {
                request = request.header(AUTHORIZATION, value);
            }
            if let Some(time) = time {
                request = request.at(time.as_second());
            }
            let result = request.get().await.map_err(|e| self.classify(e, query))?;
            instant_value(result.into_inner().0, query)
        })
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
        Box::pin(async move { range_series(self.range(query, start, end, step).await?, query) })
    }

    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
        Box::pin(async move { labelled_series(self.range(query, start, end, step).await?, query) })
    }

    fn start(&self) -> BoxFuture<'_, Result<Option<PrometheusStart>, QueryError>> {
        Box::pin(async move {
            let auth = self.auth.header()?;
            prometheus_start::fetch(&self.http, &self.address, auth, &self.lookback)
                .await
                .map(Some)
        })
    }
}

fn nan_as_none(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

fn instant_value(data: Data, query: &str) -> Result<Option<f64>, QueryError> {
    match data {
        Data::Scalar(sample) => Ok(nan_as_none(sample.value())),
        Data::Vector(series) => match series.as_slice() {
            [] => Ok(None),
            [one] => Ok(nan_as_none(one.sample().value())),
            many => Err(QueryError::MultipleSeries {
                query: query.to_string(),
                count: many.len(),
            }),
        },
        Data::Matrix(_) => Err(QueryError::BadQuery {
            query: query.to_string(),
            reason: "the query returns a range vector; wrap it in a function such as rate(...)"
                .to_string(),
        }),
    }
}

fn range_series(data: Data, query: &str) -> Result<Vec<(f64, f64)>, QueryError> {
    let Data::Matrix(series) = data else {
        return Err(QueryError::Other(format!(
            "range query {query:?} did not return a matrix"
        )));
    };
    match series.as_slice() {
        [] => Ok(Vec::new()),
        [one] => Ok(one
            .samples()
            .iter()
            .filter_map(|s| nan_as_none(s.value()).map(|v| (s.timestamp(), v)))
            .collect()),
        many => Err(QueryError::MultipleSeries {
            query: query.to_string(),
            count: many.len(),
        }),
    }
}

fn labelled_series(data: Data, query: &str) -> Result<Vec<LabelledSeries>, QueryError> {
    let Data::Matrix(series) = data else {
        return Err(QueryError::Other(format!(
            "range query {query:?} did not return a matrix"
        )));
    };
    Ok(series
        .iter()
        .map(|one| LabelledSeries {
            labels: one
                .metric()
                .iter()
                .filter(|(name, _)| name.as_str() != "__name__")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            points: one
                .samples()
                .iter()
                .filter_map(|s| nan_as_none(s.value()).map(|v| (s.timestamp(), v)))
                .collect(),
        })
        .filter(|one| !one.points.is_empty())
        .collect())
}

/// The error with its innermost cause, when it has one.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    match err.source() {
        Some(_) => format!("{err}: {}", root_cause(err)),
        None => err.to_string(),
    }
}

/// The innermost cause, which says what went wrong ("Connection refused") without the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// One source per Prometheus address, built on first use; `None` means the operator's default.
pub struct PrometheusPool {
    default_address: String,
    timeout: Duration,
    auth: PrometheusAuth,
    telemetry: Option<QueryTelemetry>,
    fixed: Option<Arc<dyn MetricsSource>>,
    sources: Mutex<HashMap<String, Arc<dyn MetricsSource>>>,
}

impl PrometheusPool {
    pub fn new(default_address: impl Into<String>) -> Self {
        Self {
            default_address: default_address.into(),
            timeout: DEFAULT_TIMEOUT,
            auth: PrometheusAuth::default(),
            telemetry: None,
            fixed: None,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// A pool in which every address, the default included, answers from `source`: for tests
    /// and the simulator.
    pub fn single(source: Arc<dyn MetricsSource>) -> Self {
        Self {
            fixed: Some(source),
            ..Self::new("")
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Credentials and CA for every address, the default and those named by resources.
    pub fn with_auth(mut self, auth: PrometheusAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Times every query and counts failures by category.
    pub fn with_telemetry(mut self, telemetry: QueryTelemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    pub fn default_address(&self) -> &str {
        &self.default_address
    }

    pub fn get(&self, address: Option<&str>) -> Result<Arc<dyn MetricsSource>, QueryError> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed.clone());
        }
        let address = address
            .unwrap_or(&self.default_address)
            .trim_end_matches('/');
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = sources.get(address) {
            return Ok(source.clone());
        }
        let prometheus = PrometheusSource::with_auth(address, self.timeout, &self.auth)?;
        let source: Arc<dyn MetricsSource> = match &self.telemetry {
            Some(telemetry) => Arc::new(Instrumented::new(prometheus, telemetry.clone())),
            None => Arc::new(prometheus),
        };
        sources.insert(address.to_string(), source.clone());
        Ok(source)
    }
}

#[cfg(test)]
mod tests;
