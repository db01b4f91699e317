//! Recorded metrics for `sluice simulate`: a file of raw series, and a PromQL evaluator over it
//! behind [`crate::metrics::MetricsSource`].
//!
//! [`Recording`] reads OpenMetrics text (with timestamps) or the JSON of Prometheus'
//! `/api/v1/query_range`, and refuses what would make a replay lie: samples out of order,
//! duplicates, holes longer than the 5 m lookback. [`RecordedMetrics`] answers the queries Sluice
//! renders (rates, increases, ratios, histogram quantiles, aggregations, arithmetic) with the
//! semantics of the Prometheus 2.x on this machine: the 5 m lookback of instant selectors, range
//! selectors closed at both ends, `extrapolatedRate`, `histogram_quantile`'s interpolation. What
//! it does not implement it rejects by name ("not supported in replay from a file; use
//! --prometheus"), never by a silent approximation. It decides nothing about the numbers; it
//! must not read the clock (the caller's time, or the end of the recording, is "now").

mod error;
mod eval;
mod json;
mod openmetrics;
mod recording;
mod source;

pub use error::{Location, RecordingError};
pub use recording::{Labels, RecordedSeries, Recording};
pub use source::RecordedMetrics;

/// How far back an instant selector looks for a sample, as Prometheus' default
/// `--query.lookback-delta`; a longer hole in a series is an error in the recording.
pub const LOOKBACK_SECONDS: i64 = 300;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod format_tests;
