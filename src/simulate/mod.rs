//! `sluice simulate`: replaying the decision engine against recorded metrics on a virtual clock.
//!
//! [`recorded`] turns a file of recorded series into a [`crate::metrics::MetricsSource`] that
//! answers the rendered PromQL as the Prometheus on this machine would.

pub mod recorded;
