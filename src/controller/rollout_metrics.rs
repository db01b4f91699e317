//! The CanaryRollout families of /metrics: where each rollout is, what its evaluations said,
//! how rollouts ended, and how long reconciles take.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::canary_rollout::{CanaryRolloutStatus, Phase, Verdict};
use crate::engine::RollbackCause;

type Labels = Vec<(String, String)>;

const PHASES: [Phase; 9] = [
    Phase::Idle,
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Succeeded,
    Phase::RolledBack,
    Phase::Frozen,
    Phase::Waiting,
    Phase::Invalid,
];

pub struct RolloutMetrics {
    phase: Family<Labels, Gauge>,
    stage: Family<Labels, Gauge>,
    canary_weight: Family<Labels, Gauge>,
    evaluations: Family<Labels, Counter>,
    promotions: Family<Labels, Counter>,
    rollbacks: Family<Labels, Counter>,
    reconcile_duration: Family<Labels, Histogram, fn() -> Histogram>,
}

/// 1 ms to about 16 s: a reconcile is a handful of API calls and queries.
fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl RolloutMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            phase: Family::default(),
            stage: Family::default(),
            canary_weight: Family::default(),
            evaluations: Family::default(),
            promotions: Family::default(),
            rollbacks: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_buckets),
        };
        registry.register(
            "rollout_phase",
            "1 for the rollout's current phase, 0 for the others",
            metrics.phase.clone(),
        );
        registry.register(
            "rollout_stage",
            "Index of the rollout's current stage (0 is the first)",
            metrics.stage.clone(),
        );
        registry.register(
            "rollout_canary_weight",
            "Percent of traffic the rollout's canary receives",
            metrics.canary_weight.clone(),
        );
        registry.register(
            "rollout_evaluations",
            "Analysis evaluations by verdict",
            metrics.evaluations.clone(),
        );
        registry.register(
            "rollout_promotions",
            "Candidates promoted",
            metrics.promotions.clone(),
        );
        registry.register(
            "rollout_rollbacks",
            "Candidates rolled back, by cause (analysis, parity, slo, progress_deadline, manual)",
            metrics.rollbacks.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, by controller",
            metrics.reconcile_duration.clone(),
        );
        metrics
    }

    /// Records a reconcile's outcome: the status it wrote, and what changed since `before`.
    pub fn record(
        &self,
        namespace: &str,
        name: &str,
        before: &CanaryRolloutStatus,
        after: &CanaryRolloutStatus,
        rollback: Option<RollbackCause>,
    ) {
        let labels = rollout_labels(namespace, name);
        if let Some(current) = after.phase {
            for phase in PHASES {
                self.phase
                    .get_or_create(&with(&labels, "phase", &format!("{phase:?}")))
                    .set(i64::from(phase == current));
            }
        }
        self.stage
            .get_or_create(&labels)
            .set(i64::from(after.stage.unwrap_or(0)));
        self.canary_weight
            .get_or_create(&labels)
            .set(i64::from(after.canary_weight.unwrap_or(0)));
        let evaluated = |s: &CanaryRolloutStatus| s.last_evaluation.as_ref().map(|e| e.time);
        if let Some(evaluation) = &after.last_evaluation
            && evaluated(after) != evaluated(before)
        {
            self.evaluations
                .get_or_create(&with(&labels, "verdict", verdict_label(evaluation.verdict)))
                .inc();
        }
        let ended = |s: &CanaryRolloutStatus| s.history.last().map(|h| h.finished_at);
        if after.phase == Some(Phase::Succeeded) && ended(after) != ended(before) {
            self.promotions.get_or_create(&labels).inc();
        }
        if let Some(cause) = rollback {
            self.rollbacks
                .get_or_create(&with(&labels, "reason", cause.as_str()))
                .inc();
        }
    }

    /// Drops the gauges of a rollout that is gone; its counters stay until restart, as counters do.
    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = rollout_labels(namespace, name);
        for phase in PHASES {
            self.phase
                .remove(&with(&labels, "phase", &format!("{phase:?}")));
        }
        self.stage.remove(&labels);
        self.canary_weight.remove(&labels);
    }

    pub fn observe_reconcile(&self, controller: &str, seconds: f64) {
        self.reconcile_duration
            .get_or_create(&vec![("controller".into(), controller.into())])
            .observe(seconds);
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "Pass",
        Verdict::Fail => "Fail",
        Verdict::NoData => "NoData",
    }
}

fn rollout_labels(namespace: &str, name: &str) -> Labels {
    vec![
        ("namespace".into(), namespace.into()),
        ("name".into(), name.into()),
    ]
}

fn with(labels: &Labels, key: &str, value: &str) -> Labels {
    let mut labels = labels.clone();
    labels.push((key.into(), value.into()));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::{Evaluation, HistoryEntry, RolloutResult};
    use jiff::Timestamp;

    fn page(registry: &Registry) -> String {
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, registry).unwrap();
        page
    }

    fn evaluated(status: &mut CanaryRolloutStatus, second: i64, verdict: Verdict) {
        status.last_evaluation = Some(Evaluation {
            time: Timestamp::from_second(second).unwrap(),
            verdict,
            samples: None,
            checks: Vec::new(),
            parity: None,
            slo: None,
            message: None,
        });
    }

    #[test]
    fn phase_stage_weight_and_counts_follow_the_status() {
        let mut registry = Registry::with_prefix("sluice");
        let metrics = RolloutMetrics::new(&mut registry);
        let before = CanaryRolloutStatus::default();
        let mut after = CanaryRolloutStatus {
            phase: Some(Phase::Progressing),
            stage: Some(1),
            canary_weight: Some(5),
            ..CanaryRolloutStatus::default()
        };
        evaluated(&mut after, 100, Verdict::Pass);
        metrics.record("shop", "checkout", &before, &after, None);
        // The same status again (a reconcile without an evaluation) counts nothing new.
        metrics.record("shop", "checkout", &after, &after, None);
        let mut rolled_back = after.clone();
        rolled_back.phase = Some(Phase::RolledBack);
        evaluated(&mut rolled_back, 160, Verdict::Fail);
        rolled_back.history.push(HistoryEntry {
            revision: "abc".into(),
            result: RolloutResult::RolledBack,
            started_at: Timestamp::from_second(0).unwrap(),
            finished_at: Timestamp::from_second(160).unwrap(),
            reason: "error rate".into(),
        });
        metrics.record(
            "shop",
            "checkout",
            &after,
            &rolled_back,
            Some(RollbackCause::Analysis),
        );
        let text = page(&registry);
        for line in [
            r#"sluice_rollout_phase{namespace="shop",name="checkout",phase="RolledBack"} 1"#,
            r#"sluice_rollout_phase{namespace="shop",name="checkout",phase="Progressing"} 0"#,
            r#"sluice_rollout_stage{namespace="shop",name="checkout"} 1"#,
            r#"sluice_rollout_canary_weight{namespace="shop",name="checkout"} 5"#,
            r#"sluice_rollout_evaluations_total{namespace="shop",name="checkout",verdict="Pass"} 1"#,
            r#"sluice_rollout_evaluations_total{namespace="shop",name="checkout",verdict="Fail"} 1"#,
            r#"sluice_rollout_rollbacks_total{namespace="shop",name="checkout",reason="analysis"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("sluice_rollout_promotions_total{"), "{text}");
        metrics.forget("shop", "checkout");
        let text = page(&registry);
        assert!(!text.contains("sluice_rollout_phase{"), "{text}");
        assert!(text.contains("sluice_rollout_rollbacks_total{"), "{text}");
    }
}
