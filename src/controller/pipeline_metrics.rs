//! The ReleasePipeline families of /metrics: per pipeline and environment, where the newest
//! release stands, its soak and the risk it spent. Releases are not a label (their number
//! grows without bound); the series follow the newest release.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::release_pipeline::{ReleasePhase, ReleasePipelineSpec, ReleasePipelineStatus};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

const PHASES: [ReleasePhase; 8] = [
    ReleasePhase::Waiting,
    ReleasePhase::Progressing,
    ReleasePhase::Soaking,
    ReleasePhase::Verified,
    ReleasePhase::Promoted,
    ReleasePhase::Revoked,
    ReleasePhase::RolledBack,
    ReleasePhase::Superseded,
];

#[derive(Default)]
pub struct PipelineMetrics {
    phase: Family<Labels, Gauge>,
    soaked_seconds: Family<Labels, FloatGauge>,
    error_budget_spent: Family<Labels, FloatGauge>,
    shortfall: Family<Labels, FloatGauge>,
    canary_weight_spent: Family<Labels, Gauge>,
}

impl PipelineMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pipeline_release_phase",
            "1 for the phase of the pipeline's newest release in the environment, 0 for the others",
            self.phase.clone(),
        );
        registry.register(
            "pipeline_soaked_seconds",
            "How long the newest release has soaked in the environment",
            self.soaked_seconds.clone(),
        );
        registry.register(
            "pipeline_risk_error_budget_spent",
            "Share of the SLO error budget the newest release burnt in the environment",
            self.error_budget_spent.clone(),
        );
        registry.register(
            "pipeline_risk_shortfall",
            "Cumulative business-metric shortfall of the newest release, in the budget's unit",
            self.shortfall.clone(),
        );
        registry.register(
            "pipeline_risk_canary_weight",
            "Highest canary weight (percent) the newest release reached in the environment",
            self.canary_weight_spent.clone(),
        );
    }

    pub fn record(
        &self,
        namespace: &str,
        pipeline: &str,
        spec: &ReleasePipelineSpec,
        status: &ReleasePipelineStatus,
        now: jiff::Timestamp,
    ) {
        let newest = status.releases.first();
        for env in &spec.environments {
            let labels: Labels = vec![
                ("namespace".into(), namespace.into()),
                ("pipeline".into(), pipeline.into()),
                ("environment".into(), env.name.clone()),
            ];
            let entry = newest.and_then(|r| r.environments.iter().find(|e| e.name == env.name));
            for phase in PHASES {
                let mut phase_labels = labels.clone();
                phase_labels.push(("phase".into(), phase.as_str().into()));
                let on = entry.is_some_and(|e| e.phase == phase);
                self.phase.get_or_create(&phase_labels).set(i64::from(on));
            }
            let Some(entry) = entry else {
                continue;
            };
            if let Some(promoted) = entry.promoted_at {
                let soaked = now.duration_since(promoted).as_secs_f64().max(0.0);
                self.soaked_seconds.get_or_create(&labels).set(soaked);
            }
            let spent = &entry.risk_spent;
            if let Some(value) = spent.error_budget {
                self.error_budget_spent.get_or_create(&labels).set(value);
            }
            if let Some(value) = spent.shortfall {
                self.shortfall.get_or_create(&labels).set(value);
            }
            if let Some(weight) = spent.canary_weight {
                self.canary_weight_spent
                    .get_or_create(&labels)
                    .set(i64::from(weight));
            }
        }
    }
}
