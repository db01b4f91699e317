//! `kubectl sluice dashboard`: a live web view of rollouts and pipelines.

pub mod budget_history;
pub mod charts;
pub mod history;
pub mod pages;
pub mod server;
