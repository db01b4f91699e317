//! Metrics: PromQL templates, and (next) the Prometheus adapter.
//!
//! This module decides only what a query means: the rendered PromQL. It must not judge the
//! numbers (thresholds, parity, budgets belong to the engine).

pub mod template;

pub use template::{KNOWN_VARIABLES, TemplateError, TemplateVars, render, validate_promql};
