//! `FakeMetrics`: a [`MetricsSource`] answering from canned results, for tests and the simulator.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use jiff::Timestamp;

use super::prometheus::{LabelledSeries, MetricsSource, QueryError};

type Answers<T> = Mutex<HashMap<String, Result<T, QueryError>>>;

/// Answers by the rendered query string; a query it was not told about has no data.
/// Time arguments are ignored: a range query returns the whole series it was given.
#[derive(Debug, Default)]
pub struct FakeMetrics {
    values: Answers<Option<f64>>,
    ranges: Answers<Vec<(f64, f64)>>,
    labelled: Answers<Vec<LabelledSeries>>,
    asked: Mutex<Vec<String>>,
}

impl FakeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer of a labelled range query; a plain range query of it is its only series (or
    /// `MultipleSeries`).
    pub fn set_range_series(&self, query: impl Into<String>, series: Vec<LabelledSeries>) {
        lock(&self.labelled).insert(query.into(), Ok(series));
    }

    pub fn set_value(&self, query: impl Into<String>, value: Option<f64>) {
        lock(&self.values).insert(query.into(), Ok(value));
    }

    pub fn set_error(&self, query: impl Into<String>, err: QueryError) {
        lock(&self.values).insert(query.into(), Err(err));
    }

    pub fn set_range(&self, query: impl Into<String>, series: Vec<(f64, f64)>) {
        lock(&self.ranges).insert(query.into(), Ok(series));
    }

    pub fn set_range_error(&self, query: impl Into<String>, err: QueryError) {
        lock(&self.ranges).insert(query.into(), Err(err));
    }

    /// Every query asked so far, instant and range, in order: to check what was rendered.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.asked).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MetricsSource for FakeMetrics {
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        _time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        lock(&self.asked).push(query.to_string());
        let answer = lock(&self.values).get(query).cloned().unwrap_or(Ok(None));
        futures::future::ready(answer).boxed()
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        _start: Timestamp,
        _end: Timestamp,
        _step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
        lock(&self.asked).push(query.to_string());
        let answer = lock(&self.ranges).get(query).cloned().unwrap_or_else(|| {
            match lock(&self.labelled).get(query).cloned() {
                Some(Ok(mut series)) if series.len() <= 1 => {
                    Ok(series.pop().map(|s| s.points).unwrap_or_default())
                }
                Some(Ok(series)) => Err(QueryError::MultipleSeries {
                    query: query.to_string(),
                    count: series.len(),
                }),
                Some(Err(error)) => Err(error),
                None => Ok(Vec::new()),
            }
        });
        futures::future::ready(answer).boxed()
    }

    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        _start: Timestamp,
        _end: Timestamp,
        _step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
        lock(&self.asked).push(query.to_string());
        let labelled = lock(&self.labelled).get(query).cloned();
        let answer = labelled.unwrap_or_else(|| {
            let plain = lock(&self.ranges).get(query).cloned();
            plain.unwrap_or(Ok(Vec::new())).map(|points| {
                let series = LabelledSeries {
                    labels: Default::default(),
                    points,
                };
                (!series.points.is_empty())
                    .then_some(series)
                    .into_iter()
                    .collect()
            })
        });
        futures::future::ready(answer).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_what_it_was_told_and_no_data_otherwise() {
        let fake = FakeMetrics::new();
        fake.set_value("a", Some(0.5));
        fake.set_value("b", None);
        let err = QueryError::MultipleSeries {
            query: "c".into(),
            count: 2,
        };
        fake.set_error("c", err.clone());

        assert_eq!(fake.query_value("a", None).await, Ok(Some(0.5)));
        assert_eq!(fake.query_value("b", None).await, Ok(None));
        assert_eq!(fake.query_value("c", None).await, Err(err));
        assert_eq!(fake.query_value("unknown", None).await, Ok(None));
        assert_eq!(fake.queries(), ["a", "b", "c", "unknown"]);
    }

    #[tokio::test]
    async fn answers_range_queries_from_their_own_map() {
        let fake = FakeMetrics::new();
        fake.set_range("r", vec![(1.0, 2.0), (2.0, 3.0)]);
        fake.set_range_error("down", QueryError::Other("boom".into()));
        let (start, end) = (Timestamp::UNIX_EPOCH, Timestamp::now());
        let step = Duration::from_secs(60);

        assert_eq!(
            fake.query_range("r", start, end, step).await,
            Ok(vec![(1.0, 2.0), (2.0, 3.0)])
        );
        assert_eq!(
            fake.query_range("unknown", start, end, step).await,
            Ok(vec![])
        );
        assert_eq!(
            fake.query_range("down", start, end, step)
                .await
                .unwrap_err()
                .category(),
            "other"
        );
        assert_eq!(
            fake.query_value("r", None).await,
            Ok(None),
            "instant and range maps are separate"
        );
    }
}
