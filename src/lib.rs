//! Sluice: progressive delivery for Kubernetes, gated on parity and SLO error budgets.
//!
//! `engine` is the pure decision core; `controller`, `metrics` and `traffic` are the I/O shell.

pub mod api;
pub mod controller;
pub mod engine;
pub mod metrics;
pub mod telemetry;
pub mod traffic;
