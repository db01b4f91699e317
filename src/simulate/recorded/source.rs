//! [`RecordedMetrics`]: a [`MetricsSource`] answering from a [`Recording`], with the same
//! answer shapes as `PrometheusSource` (one number, no data, `MultipleSeries`, `BadQuery`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use jiff::Timestamp;

use super::error::RecordingError;
use super::eval::{Outcome, Plan, SeriesStore};
use super::recording::Recording;
use crate::metrics::{LabelledSeries, MetricsSource, QueryError};

/// Prometheus refuses range queries with more points than this per series.
const MAX_RANGE_POINTS: i64 = 11_000;

/// Answers PromQL from recorded series. A query without a time is asked at the end of the
/// recording. Times are whole seconds, as `PrometheusSource` sends them.
pub struct RecordedMetrics {
    store: SeriesStore,
    plans: Mutex<HashMap<String, Arc<Plan>>>,
}

impl RecordedMetrics {
    pub fn new(recording: Recording) -> Self {
        Self {
            store: SeriesStore::new(&recording),
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// Parses, checks every construct is supported and every selector matches at least one
    /// recorded series: the replay calls this for each rendered query before it starts.
    pub fn check_query(&self, query: &str) -> Result<(), RecordingError> {
        let plan = self.plan(query)?;
        match plan.unmatched_selector() {
            Some(selector) => Err(RecordingError::NoMatchingSeries {
                query: query.to_string(),
                selector: selector.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The compiled query, from the cache when it was asked before.
    fn plan(&self, query: &str) -> Result<Arc<Plan>, RecordingError> {
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(plan) = plans.get(query) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(Plan::compile(query, &self.store)?);
        plans.insert(query.to_string(), plan.clone());
        Ok(plan)
    }

    fn bad_query(query: &str, reason: impl ToString) -> QueryError {
        QueryError::BadQuery {
            query: query.to_string(),
            reason: reason.to_string(),
        }
    }

    fn value_at(&self, query: &str, time: Option<Timestamp>) -> Result<Option<f64>, QueryError> {
        let plan = self
            .plan(query)
            .map_err(|e| Self::bad_query(query, reason(e)))?;
        let time_ms = time.map_or(self.store.end_ms(), |t| t.as_second() * 1000);
        let outcome = plan
            .instant(&self.store, time_ms)
            .map_err(|e| Self::bad_query(query, e.0))?;
        match outcome {
            Outcome::Scalar(value) => Ok(nan_as_none(value)),
            Outcome::Vector(values) => {
                let mut present = values.into_iter().flatten();
                match (present.next(), present.count()) {
                    (None, _) => Ok(None),
                    (Some(value), 0) => Ok(nan_as_none(value)),
                    (Some(_), more) => Err(QueryError::MultipleSeries {
                        query: query.to_string(),
                        count: more + 1,
                    }),
                }
            }
            Outcome::Matrix => Err(Self::bad_query(
                query,
                "the query returns a range vector; wrap it in a function such as rate(...)",
            )),
        }
    }

    fn series_over(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<(f64, f64)>, QueryError> {
        let mut series = self.labelled_series_over(query, start, end, step)?;
        match series.len() {
            0 => Ok(Vec::new()),
            1 => Ok(series.swap_remove(0).points),
            count => Err(QueryError::MultipleSeries {
                query: query.to_string(),
                count,
            }),
        }
    }

    fn labelled_series_over(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<LabelledSeries>, QueryError> {
        let step_ms = step.as_millis() as i64;
        if step_ms <= 0 {
            return Err(Self::bad_query(
                query,
                "the range query step must be positive",
            ));
        }
        let (start_ms, end_ms) = (start.as_second() * 1000, end.as_second() * 1000);
        if end_ms < start_ms {
            return Err(Self::bad_query(
                query,
                "end timestamp must not be before start time",
            ));
        }
        if (end_ms - start_ms) / step_ms > MAX_RANGE_POINTS {
            return Err(Self::bad_query(
                query,
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let plan = self
            .plan(query)
            .map_err(|e| Self::bad_query(query, reason(e)))?;
        let series = plan
            .labelled_range(&self.store, start_ms, end_ms, step_ms)
            .map_err(|e| Self::bad_query(query, e.0))?;
        Ok(series
            .into_iter()
            .map(|(labels, mut points)| {
                points.retain(|(_, value)| !value.is_nan());
                LabelledSeries { labels, points }
            })
            .filter(|series| !series.points.is_empty())
            .collect())
    }
}

/// Why a query cannot be answered, without repeating the query `BadQuery` already names.
fn reason(error: RecordingError) -> String {
    match error {
        RecordingError::InvalidQuery { reason, .. } => reason,
        RecordingError::Unsupported { construct, .. } => {
            format!("{construct} is not supported in replay from a file; use --prometheus")
        }
        other => other.to_string(),
    }
}

fn nan_as_none(value: f64) -> Option<f64> {
    (!value.is_nan()).then_some(value)
}

impl MetricsSource for RecordedMetrics {
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        futures::future::ready(self.value_at(query, time)).boxed()
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
        futures::future::ready(self.series_over(query, start, end, step)).boxed()
    }

    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
        futures::future::ready(self.labelled_series_over(query, start, end, step)).boxed()
    }
}
