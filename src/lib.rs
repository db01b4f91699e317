//! Sluice: progressive delivery for Kubernetes, gated on parity and SLO error budgets.
//!
//! `engine` is the pure decision core; `controller`, `metrics` and `traffic` are the I/O shell;
//! `gather` runs the queries an evaluation needs and hands the results to the engine.
//! `devenv` stands in for kubelets and applications in a local environment (tests, the demo);
//! `demo` tells a rollout end to end on such an environment; `plugin` is the kubectl plugin;
//! `simulate` replays the engine against recorded metrics.

pub mod api;
pub mod audit;
pub mod client;
pub mod controller;
pub mod dashboard;
pub mod demo;
pub mod devenv;
pub mod engine;
pub mod gather;
pub mod metrics;
pub mod noise;
pub mod notify;
pub mod plugin;
pub mod simulate;
pub mod telemetry;
pub mod traffic;
