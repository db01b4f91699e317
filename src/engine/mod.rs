//! The pure decision core: no kube, no I/O, the clock passed in.
//!
//! Given a snapshot of what is observed (spec, previous status, the target and stable
//! Deployments, query results, now), `rollout::plan` returns a plan: the desired traffic weight
//! and replica counts, the new status, the events to record and when to look again. The shell in
//! `controller` carries the plan out; everything interesting is unit-tested here.

pub mod analysis;
pub mod conditions;
pub mod hand_back;
pub mod parity;
pub mod requests;
pub mod revision;
pub mod rollout;
pub mod schedule;
pub mod slo;
pub mod statistics;
pub mod validate;

pub use rollout::{
    Plan, PlannedEvent, RollbackCause, Snapshot, StableChange, Workload, evaluation_due,
    evaluation_wanted, plan,
};
