//! A [`MetricsSource`] that times its queries and counts failures for the operator's /metrics.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::prometheus::{LabelledSeries, MetricsSource, QueryError};
use super::prometheus_start::PrometheusStart;

type Labels = Vec<(String, String)>;
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The query families, registered by the operator's metrics registry.
#[derive(Clone)]
pub struct QueryTelemetry {
    /// Seconds per query, by `type` (instant, range, or status: when Prometheus started).
    pub duration: HistogramFamily,
    /// Failed queries, by static category (see [`QueryError::category`]).
    pub failures: Family<Labels, Counter>,
}

impl Default for QueryTelemetry {
    fn default() -> Self {
        Self {
            duration: Family::new_with_constructor(query_buckets),
            failures: Family::default(),
        }
    }
}

/// 5 ms to about 10 s: a healthy Prometheus answers in milliseconds, the timeout is 5 s.
fn query_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

pub struct Instrumented<S> {
    inner: S,
    telemetry: QueryTelemetry,
}

impl<S: MetricsSource> Instrumented<S> {
    pub fn new(inner: S, telemetry: QueryTelemetry) -> Self {
        Self { inner, telemetry }
    }

    fn observe<T>(&self, kind: &str, started: Instant, result: &Result<T, QueryError>) {
        let elapsed: Duration = started.elapsed();
        self.telemetry
            .duration
            .get_or_create(&vec![("type".into(), kind.into())])
            .observe(elapsed.as_secs_f64());
        if let Err(error) = result {
            self.telemetry
                .failures
                .get_or_create(&vec![("category".into(), error.category().into())])
                .inc();
        }
    }
}

impl<S: MetricsSource> MetricsSource for Instrumented<S> {
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.query_value(query, time).await;
            self.observe("instant", started, &result);
            result
        })
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.query_range(query, start, end, step).await;
            self.observe("range", started, &result);
            result
        })
    }

    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.query_range_series(query, start, end, step).await;
            self.observe("range", started, &result);
            result
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<Option<PrometheusStart>, QueryError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.start().await;
            self.observe("status", started, &result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FakeMetrics;
    use prometheus_client::registry::Registry;

    #[tokio::test]
    async fn queries_are_timed_and_failures_counted_by_category() {
        let fake = FakeMetrics::new();
        fake.set_value("up", Some(1.0));
        fake.set_error(
            "broken",
            QueryError::BadQuery {
                query: "broken".into(),
                reason: "parse error".into(),
            },
        );
        let telemetry = QueryTelemetry::default();
        let source = Instrumented::new(fake, telemetry.clone());
        assert_eq!(source.query_value("up", None).await, Ok(Some(1.0)));
        assert!(source.query_value("broken", None).await.is_err());
        let mut registry = Registry::with_prefix("sluice");
        registry.register("prometheus_query_duration_seconds", "t", telemetry.duration);
        registry.register("prometheus_query_failures", "f", telemetry.failures);
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &registry).unwrap();
        assert!(
            page.contains(r#"sluice_prometheus_query_duration_seconds_count{type="instant"} 2"#),
            "{page}"
        );
        assert!(
            page.contains(r#"sluice_prometheus_query_failures_total{category="bad_query"} 1"#),
            "{page}"
        );
    }
}
