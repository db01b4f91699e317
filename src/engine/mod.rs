//! The pure decision core: no kube, no I/O, the clock passed in.
//!
//! Given a snapshot of what is observed (spec, previous status, the target and stable
//! Deployments, query results, now), `rollout::plan` returns a plan: the desired traffic weight
//! and replica counts, the new status, the events to record and when to look again. The shell in
//! `controller` carries the plan out; everything interesting is unit-tested here. The gates a
//! rollout consults (`parity_gate`, `slo_gate`) and the status of the policies themselves
//! (`parity_policy::plan`, `slo_budget::plan`) are decided here the same way; the query results
//! they judge are gathered by `gather`, which this module must not import.

pub mod analysis;
pub mod conditions;
pub mod count_test;
pub mod delivery_freeze;
pub mod delivery_freeze_status;
pub mod dispersion;
pub mod distribution;
pub mod hand_back;
pub mod notification;
pub mod parity;
pub mod parity_gate;
pub mod parity_groups;
pub mod parity_policy;
pub mod parity_sequential;
pub mod pipeline;
pub mod pipeline_gates;
pub mod prometheus_rule;
pub mod requests;
pub mod revision;
pub mod rollout;
pub mod schedule;
pub mod sequential;
pub mod slo;
pub mod slo_budget;
pub mod slo_gate;
pub mod statistics;
pub mod validate;

#[cfg(test)]
pub(crate) mod slo_fixtures;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use rollout::{
    Plan, PlannedEvent, RollbackCause, Snapshot, StableChange, Workload, evaluation_due,
    evaluation_wanted, plan,
};

/// An object's name as `kube::ResourceExt::name_any` gives it (the name, else the
/// generateName), for reasons and problems.
pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name
        .as_deref()
        .or(meta.generate_name.as_deref())
        .unwrap_or_default()
}
