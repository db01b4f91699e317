//! Sluice: progressive delivery for Kubernetes, gated on parity and SLO error budgets.
//!
//! `engine` is the pure decision core; `controller`, `metrics` and `traffic` are the I/O shell.
//! `devenv` stands in for kubelets and applications in a local environment (tests, the demo);
//! `demo` tells a rollout end to end on such an environment.

pub mod api;
pub mod controller;
pub mod demo;
pub mod devenv;
pub mod engine;
pub mod metrics;
pub mod simulate;
pub mod telemetry;
pub mod traffic;
