//! `sluice simulate`: replays a rollout's decisions against recorded metrics, offline.
//!
//! The replay runs the operator's own code — `gather::run` gathers the checks,
//! parity and SLO gates through a [`crate::metrics::MetricsSource`], `engine::plan` decides —
//! with a virtual clock instead of the wall clock and virtual Deployments that become
//! available at once. [`recorded`] turns a file of recorded series into a `MetricsSource` that
//! answers the rendered PromQL as the Prometheus on this machine would. This module decides
//! nothing about a canary itself: it sets the scene, advances time, and reports what the
//! engine decided. See docs/simulate.md.

pub mod clock;
pub mod corpus;
pub mod error;
pub mod generate;
pub mod inputs;
pub mod queries;
pub mod recorded;
pub mod replay;
pub mod report;
pub mod run;
pub mod what_if;
pub mod world;

pub use error::SimulateError;
pub use inputs::{Documents, RawDocuments};
pub use replay::{Replay, replay};
