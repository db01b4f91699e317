//! `kubectl sluice dashboard`: a live web view of rollouts and pipelines.

pub mod charts;
pub mod history;
pub mod pages;
pub mod server;
