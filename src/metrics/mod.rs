//! Metrics: PromQL templates and the Prometheus adapter behind the [`MetricsSource`] trait.
//!
//! This module decides only what a query means and what Prometheus answered: the rendered
//! PromQL, one number, "no data" (empty vector or NaN), or a typed [`QueryError`]. It must not
//! judge the numbers (thresholds, parity, budgets belong to the engine), retry, or sleep; the
//! caller owns time and policy. Tests elsewhere use [`FakeMetrics`] instead of a server.

pub mod alert_matchers;
pub mod alertmanager;
mod auth;
pub mod counter_ratio;
mod fake;
mod instrumented;
pub mod prometheus;
mod prometheus_start;
pub mod template;

pub use auth::{BasicAuth, PrometheusAuth};
pub use fake::FakeMetrics;
pub use instrumented::{Instrumented, QueryTelemetry};
pub use prometheus::{
    DEFAULT_TIMEOUT, LabelledSeries, MetricsSource, PrometheusPool, PrometheusSource, QueryError,
};
pub use prometheus_start::{DEFAULT_LOOKBACK, PrometheusStart};
pub use template::{KNOWN_VARIABLES, TemplateError, TemplateVars, render, validate_promql};
