//! Delivery figures on /metrics, per namespace and environment (the rollout's
//! `sluice.dev/environment` label, else its namespace): deployments by result, lead time and
//! time to restore, the change-failure ratio. Counted from what this process saw; the audit
//! trail (`sluice report`) keeps them across restarts.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::canary_rollout::{CanaryRolloutStatus, RolloutResult};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// 10 s to about 91 h: a test canary takes seconds, a production canary 48–72 h.
fn duration_buckets() -> Histogram {
    Histogram::new(exponential_buckets(10.0, 2.0, 16))
}

#[derive(Default)]
struct Tally {
    promoted: u64,
    rolled_back: u64,
}

pub struct DeliveryMetrics {
    deployments: Family<Labels, Counter>,
    lead_time: Family<Labels, Histogram, fn() -> Histogram>,
    time_to_restore: Family<Labels, Histogram, fn() -> Histogram>,
    change_failure_ratio: Family<Labels, FloatGauge>,
    tallies: Mutex<HashMap<Labels, Tally>>,
    /// When each rollout's first unrestored rollback ended.
    failed_since: Mutex<HashMap<(String, String), Timestamp>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeliveryMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            deployments: Family::default(),
            lead_time: Family::new_with_constructor(duration_buckets),
            time_to_restore: Family::new_with_constructor(duration_buckets),
            change_failure_ratio: Family::default(),
            tallies: Mutex::default(),
            failed_since: Mutex::default(),
        };
        registry.register(
            "deployments",
            "Rollouts that ended, by result (Promoted, RolledBack)",
            metrics.deployments.clone(),
        );
        registry.register(
            "deployment_lead_time_seconds",
            "From a rollout's start (its new template seen) to its promotion",
            metrics.lead_time.clone(),
        );
        registry.register(
            "time_to_restore_seconds",
            "From a rollback to the next promotion of the same rollout",
            metrics.time_to_restore.clone(),
        );
        registry.register(
            "change_failure_ratio",
            "Rollbacks over rollouts that ended, since the operator started",
            metrics.change_failure_ratio.clone(),
        );
        metrics
    }

    /// Counts the rollout that ended in this reconcile, if one did.
    pub fn record(
        &self,
        namespace: &str,
        name: &str,
        environment: &str,
        before: &CanaryRolloutStatus,
        after: &CanaryRolloutStatus,
    ) {
        let Some(entry) = after.history.last() else {
            return;
        };
        if before.history.last() == Some(entry) {
            return;
        }
        let labels: Labels = vec![
            ("namespace".into(), namespace.into()),
            ("environment".into(), environment.into()),
        ];
        let result = match entry.result {
            RolloutResult::Promoted => "Promoted",
            RolloutResult::RolledBack => "RolledBack",
        };
        let mut with_result = labels.clone();
        with_result.push(("result".into(), result.into()));
        self.deployments.get_or_create(&with_result).inc();
        let key = (namespace.to_string(), name.to_string());
        let mut tallies = lock(&self.tallies);
        let tally = tallies.entry(labels.clone()).or_default();
        match entry.result {
            RolloutResult::Promoted => {
                tally.promoted += 1;
                let lead = entry.finished_at.duration_since(entry.started_at);
                self.lead_time
                    .get_or_create(&labels)
                    .observe(lead.as_secs_f64().max(0.0));
                if let Some(failed) = lock(&self.failed_since).remove(&key) {
                    let restore = entry.finished_at.duration_since(failed);
                    self.time_to_restore
                        .get_or_create(&labels)
                        .observe(restore.as_secs_f64().max(0.0));
                }
            }
            RolloutResult::RolledBack => {
                tally.rolled_back += 1;
                lock(&self.failed_since)
                    .entry(key)
                    .or_insert(entry.finished_at);
            }
        }
        let ended = (tally.promoted + tally.rolled_back) as f64;
        self.change_failure_ratio
            .get_or_create(&labels)
            .set(tally.rolled_back as f64 / ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::HistoryEntry;

    fn ended(
        status: &CanaryRolloutStatus,
        result: RolloutResult,
        start: i64,
        end: i64,
    ) -> CanaryRolloutStatus {
        let mut after = status.clone();
        after.history.push(HistoryEntry {
            revision: format!("r{end}"),
            result,
            started_at: Timestamp::from_second(start).unwrap(),
            finished_at: Timestamp::from_second(end).unwrap(),
            reason: String::new(),
        });
        after
    }

    #[test]
    fn a_rollback_then_a_promotion_counts_both_the_lead_time_and_the_restore() {
        let mut registry = Registry::with_prefix("sluice");
        let metrics = DeliveryMetrics::new(&mut registry);
        let start = CanaryRolloutStatus::default();
        let failed = ended(&start, RolloutResult::RolledBack, 0, 100);
        metrics.record("shop", "checkout", "production", &start, &failed);
        metrics.record("shop", "checkout", "production", &failed, &failed);
        let promoted = ended(&failed, RolloutResult::Promoted, 200, 260);
        metrics.record("shop", "checkout", "production", &failed, &promoted);
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &registry).unwrap();
        let labels = r#"namespace="shop",environment="production""#;
        for line in [
            format!(r#"sluice_deployments_total{{{labels},result="RolledBack"}} 1"#),
            format!(r#"sluice_deployments_total{{{labels},result="Promoted"}} 1"#),
            format!("sluice_deployment_lead_time_seconds_sum{{{labels}}} 60.0"),
            format!("sluice_time_to_restore_seconds_sum{{{labels}}} 160.0"),
            format!("sluice_change_failure_ratio{{{labels}}} 0.5"),
        ] {
            assert!(page.contains(&line), "missing {line} in\n{page}");
        }
    }
}
