//! The virtual clock of a replay, and a [`MetricsSource`] that reads it.
//!
//! The engine and the gates ask instant queries "now" (`time: None`); in a replay "now" is the
//! virtual time, so [`VirtualClockSource`] turns every `None` into the clock's current time
//! before passing the query on. Range queries already carry explicit times.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;

use crate::gather::MetricsSources;
use crate::metrics::{LabelledSeries, MetricsSource, QueryError};

/// The replay's notion of "now", shared by the loop that advances it and the sources that
/// read it.
#[derive(Clone, Debug)]
pub struct VirtualClock(Arc<Mutex<Timestamp>>);

impl VirtualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, now: Timestamp) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }
}

/// Answers every query from `inner`, at the virtual now when the caller says "now". It also
/// stands for every Prometheus address a resource may name: a replay has one source of truth.
pub struct VirtualClockSource {
    inner: Arc<dyn MetricsSource>,
    clock: VirtualClock,
}

impl VirtualClockSource {
    pub fn new(inner: Arc<dyn MetricsSource>, clock: VirtualClock) -> Arc<Self> {
        Arc::new(Self { inner, clock })
    }
}

impl MetricsSource for VirtualClockSource {
    fn query_value<'a>(
        &'a self,
        query: &'a str,
        time: Option<Timestamp>,
    ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
        let at = time.unwrap_or_else(|| self.clock.now());
        self.inner.query_value(query, Some(at))
    }

    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
        self.inner.query_range(query, start, end, step)
    }

    fn query_range_series<'a>(
        &'a self,
        query: &'a str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
        self.inner.query_range_series(query, start, end, step)
    }
}

/// The replay's sources: this one adaptor, whatever the address.
pub struct ReplaySources(pub Arc<VirtualClockSource>);

impl MetricsSources for ReplaySources {
    fn source(&self, _address: Option<&str>) -> Result<Arc<dyn MetricsSource>, QueryError> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::FutureExt;

    use super::*;

    /// Remembers the time of each instant query.
    #[derive(Default)]
    struct TimeRecorder(Mutex<Vec<Option<Timestamp>>>);

    impl MetricsSource for TimeRecorder {
        fn query_value<'a>(
            &'a self,
            _query: &'a str,
            time: Option<Timestamp>,
        ) -> BoxFuture<'a, Result<Option<f64>, QueryError>> {
            self.0.lock().unwrap().push(time);
            futures::future::ready(Ok(None)).boxed()
        }

        fn query_range<'a>(
            &'a self,
            _query: &'a str,
            _start: Timestamp,
            _end: Timestamp,
            _step: Duration,
        ) -> BoxFuture<'a, Result<Vec<(f64, f64)>, QueryError>> {
            futures::future::ready(Ok(Vec::new())).boxed()
        }

        fn query_range_series<'a>(
            &'a self,
            _query: &'a str,
            _start: Timestamp,
            _end: Timestamp,
            _step: Duration,
        ) -> BoxFuture<'a, Result<Vec<LabelledSeries>, QueryError>> {
            futures::future::ready(Ok(Vec::new())).boxed()
        }
    }

    #[tokio::test]
    async fn now_becomes_the_virtual_time_and_explicit_times_stay() {
        let recorder = Arc::new(TimeRecorder::default());
        let start = Timestamp::from_second(1_000).unwrap();
        let clock = VirtualClock::new(start);
        let source = VirtualClockSource::new(recorder.clone(), clock.clone());
        source.query_value("up", None).await.unwrap();
        clock.set(Timestamp::from_second(1_030).unwrap());
        source.query_value("up", None).await.unwrap();
        let explicit = Timestamp::from_second(5).unwrap();
        source.query_value("up", Some(explicit)).await.unwrap();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                Some(start),
                Some(Timestamp::from_second(1_030).unwrap()),
                Some(explicit)
            ]
        );
    }
}
