//! Operator metrics (prefix `sluice_`), exposed on `/metrics` in the OpenMetrics text format.
//!
//! Per-object gauges carry the object's namespace and name, as kube-state-metrics does; error
//! counters carry only static categories.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::parity_policy::{ParityEvaluation, ParityLevel};
use crate::api::slo_budget::{ObjectiveState, ObjectiveStatus};
use crate::audit::buffer::AuditMetrics;
use crate::metrics::QueryTelemetry;
use crate::notify::metrics::NotificationMetrics;

use super::delivery_metrics::DeliveryMetrics;
use super::pipeline_metrics::PipelineMetrics;
use super::rollout_metrics::RolloutMetrics;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

const PARITY_LEVELS: [ParityLevel; 5] = [
    ParityLevel::Pass,
    ParityLevel::Warning,
    ParityLevel::Critical,
    ParityLevel::Emergency,
    ParityLevel::Insufficient,
];

const OBJECTIVE_STATES: [ObjectiveState; 5] = [
    ObjectiveState::Meeting,
    ObjectiveState::AtRisk,
    ObjectiveState::Violated,
    ObjectiveState::Critical,
    ObjectiveState::Unknown,
];

/// One SLOBudget's figures, as [`Metrics::record_slo`] takes them.
pub struct SloFigures<'a> {
    pub objectives: &'a [ObjectiveStatus],
    pub compliance_score: Option<f64>,
    pub frozen: bool,
}

/// The label sets last written for one SLOBudget, so series of objectives and windows that
/// left the spec are removed rather than left at their last value.
#[derive(Default)]
struct SloSeries {
    remaining: Vec<Labels>,
    burn_rate: Vec<Labels>,
    state: Vec<Labels>,
}

pub struct Metrics {
    registry: Registry,
    parity_tracking_error: Family<Labels, FloatGauge>,
    parity_mean_difference: Family<Labels, FloatGauge>,
    parity_rms_difference: Family<Labels, FloatGauge>,
    parity_residual: Family<Labels, FloatGauge>,
    parity_component_difference: Family<Labels, FloatGauge>,
    parity_level: Family<Labels, Gauge>,
    parity_evaluations: Family<Labels, Counter>,
    parity_groups: Family<Labels, Gauge>,
    parity_worst_group_rms: Family<Labels, FloatGauge>,
    slo_budget_remaining: Family<Labels, FloatGauge>,
    slo_burn_rate: Family<Labels, FloatGauge>,
    slo_objective_state: Family<Labels, Gauge>,
    slo_compliance_score: Family<Labels, FloatGauge>,
    slo_frozen: Family<Labels, Gauge>,
    slo_series: Mutex<HashMap<(String, String), SloSeries>>,
    reconcile_errors: Family<Labels, Counter>,
    leader: Gauge,
    pub rollouts: RolloutMetrics,
    pub pipelines: PipelineMetrics,
    pub notifications: NotificationMetrics,
    pub audit: AuditMetrics,
    pub delivery: DeliveryMetrics,
    /// Handed to the Prometheus pool, which times every query.
    pub queries: QueryTelemetry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let rollouts = RolloutMetrics::new(&mut registry);
        let pipelines = PipelineMetrics::default();
        pipelines.register(&mut registry);
        let notifications = NotificationMetrics::default();
        notifications.register(&mut registry);
        let audit = AuditMetrics::default();
        let delivery = DeliveryMetrics::new(&mut registry);
        audit.register(&mut registry);
        let metrics = Self {
            registry: Registry::default(),
            rollouts,
            pipelines,
            notifications,
            audit,
            delivery,
            queries: QueryTelemetry::default(),
            leader: Gauge::default(),
            parity_tracking_error: Family::default(),
            parity_mean_difference: Family::default(),
            parity_rms_difference: Family::default(),
            parity_residual: Family::default(),
            parity_component_difference: Family::default(),
            parity_level: Family::default(),
            parity_evaluations: Family::default(),
            parity_groups: Family::default(),
            parity_worst_group_rms: Family::default(),
            slo_budget_remaining: Family::default(),
            slo_burn_rate: Family::default(),
            slo_objective_state: Family::default(),
            slo_compliance_score: Family::default(),
            slo_frozen: Family::default(),
            slo_series: Mutex::default(),
            reconcile_errors: Family::default(),
        };
        registry.register(
            "parity_tracking_error_bps",
            "Tracking error (sample standard deviation of the active difference), basis points",
            metrics.parity_tracking_error.clone(),
        );
        registry.register(
            "parity_mean_difference_bps",
            "Mean active difference (bias), basis points",
            metrics.parity_mean_difference.clone(),
        );
        registry.register(
            "parity_rms_difference_bps",
            "Root-mean-square active difference, basis points",
            metrics.parity_rms_difference.clone(),
        );
        registry.register(
            "parity_residual_bps",
            "Mean difference not explained by the components, basis points",
            metrics.parity_residual.clone(),
        );
        registry.register(
            "parity_component_difference_bps",
            "Mean difference attributed to a component, basis points",
            metrics.parity_component_difference.clone(),
        );
        registry.register(
            "parity_level",
            "1 for the parity level of the latest evaluation, 0 for the others",
            metrics.parity_level.clone(),
        );
        registry.register(
            "parity_evaluations",
            "Parity evaluations by observed level",
            metrics.parity_evaluations.clone(),
        );
        registry.register(
            "parity_groups",
            "Groups of a grouped policy's latest evaluation: judged, and breaching (Warning or above); per-group figures are in the status, not here, to keep the series bounded",
            metrics.parity_groups.clone(),
        );
        registry.register(
            "parity_worst_group_rms_bps",
            "RMS difference of the worst group of a grouped policy's latest evaluation, basis points",
            metrics.parity_worst_group_rms.clone(),
        );
        registry.register(
            "slo_budget_remaining",
            "Fraction of the objective's error budget left over the SLO window; negative once overspent",
            metrics.slo_budget_remaining.clone(),
        );
        registry.register(
            "slo_burn_rate",
            "Burn rate of the objective's error budget over a window (1 spends it exactly over the SLO window)",
            metrics.slo_burn_rate.clone(),
        );
        registry.register(
            "slo_objective_state",
            "1 for the objective's state at the latest evaluation, 0 for the others",
            metrics.slo_objective_state.clone(),
        );
        registry.register(
            "slo_compliance_score",
            "Mean over the objectives of the budget left, clamped to 0-1, times 100",
            metrics.slo_compliance_score.clone(),
        );
        registry.register(
            "slo_frozen",
            "1 while the SLOBudget holds new rollouts, else 0",
            metrics.slo_frozen.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by controller and static category",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "prometheus_query_duration_seconds",
            "Duration of requests to Prometheus, by type (instant or range query, or status: its start)",
            metrics.queries.duration.clone(),
        );
        registry.register(
            "prometheus_query_failures",
            "Failed Prometheus queries, by static category",
            metrics.queries.failures.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease and acts (always 1 without leader election)",
            metrics.leader.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The exposition page.
    pub fn render(&self) -> String {
        let mut page = String::new();
        if encode(&mut page, &self.registry).is_err() {
            page.clear();
        }
        page
    }

    pub fn record_parity(&self, namespace: &str, policy: &str, evaluation: &ParityEvaluation) {
        let labels = object_labels(namespace, "policy", policy);
        let set = |family: &Family<Labels, FloatGauge>, value: Option<f64>| match value {
            Some(value) => {
                family.get_or_create(&labels).set(value);
            }
            None => {
                family.remove(&labels);
            }
        };
        set(&self.parity_tracking_error, evaluation.tracking_error_bps);
        set(&self.parity_mean_difference, evaluation.mean_difference_bps);
        set(&self.parity_rms_difference, evaluation.rms_difference_bps);
        set(&self.parity_residual, evaluation.residual_bps);
        for component in &evaluation.components {
            let mut component_labels = labels.clone();
            component_labels.push(("component".into(), component.name.clone()));
            self.parity_component_difference
                .get_or_create(&component_labels)
                .set(component.difference_bps);
        }
        for level in PARITY_LEVELS {
            let mut level_labels = labels.clone();
            level_labels.push(("level".into(), level.as_str().into()));
            self.parity_level
                .get_or_create(&level_labels)
                .set(i64::from(level == evaluation.level));
        }
        for (kind, count) in [
            ("judged", evaluation.groups.as_ref().map(|g| g.count)),
            ("breaching", evaluation.groups.as_ref().map(|g| g.breaching)),
        ] {
            let mut kind_labels = labels.clone();
            kind_labels.push(("kind".into(), kind.into()));
            match count {
                Some(count) => {
                    self.parity_groups
                        .get_or_create(&kind_labels)
                        .set(i64::from(count));
                }
                None => {
                    self.parity_groups.remove(&kind_labels);
                }
            }
        }
        let worst = evaluation.groups.as_ref().and_then(|g| g.worst.first());
        set(
            &self.parity_worst_group_rms,
            worst.and_then(|g| g.rms_difference_bps),
        );
        let mut counted = labels;
        counted.push(("level".into(), evaluation.level.as_str().into()));
        self.parity_evaluations.get_or_create(&counted).inc();
    }

    /// Sets the SLOBudget's series to `figures`, removing those of objectives or windows that
    /// have no figure any more.
    pub fn record_slo(&self, namespace: &str, slo: &str, figures: &SloFigures) {
        let budget = object_labels(namespace, "slo", slo);
        let mut now = SloSeries::default();
        for objective in figures.objectives {
            let mut labels = budget.clone();
            labels.push(("objective".into(), objective.name.clone()));
            if let Some(remaining) = objective.budget_remaining {
                self.slo_budget_remaining
                    .get_or_create(&labels)
                    .set(remaining);
                now.remaining.push(labels.clone());
            }
            for (window, rate) in &objective.burn_rates {
                let mut window_labels = labels.clone();
                window_labels.push(("window".into(), window.clone()));
                self.slo_burn_rate.get_or_create(&window_labels).set(*rate);
                now.burn_rate.push(window_labels);
            }
            for state in OBJECTIVE_STATES {
                let mut state_labels = labels.clone();
                state_labels.push(("state".into(), state.as_str().into()));
                self.slo_objective_state
                    .get_or_create(&state_labels)
                    .set(i64::from(state == objective.state));
                now.state.push(state_labels);
            }
        }
        match figures.compliance_score {
            Some(score) => {
                self.slo_compliance_score.get_or_create(&budget).set(score);
            }
            None => {
                self.slo_compliance_score.remove(&budget);
            }
        }
        self.slo_frozen
            .get_or_create(&budget)
            .set(i64::from(figures.frozen));
        let mut series = self
            .slo_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = series.remove(&(namespace.to_string(), slo.to_string()));
        if let Some(before) = before {
            remove_missing(
                &self.slo_budget_remaining,
                &before.remaining,
                &now.remaining,
            );
            remove_missing(&self.slo_burn_rate, &before.burn_rate, &now.burn_rate);
            remove_missing(&self.slo_objective_state, &before.state, &now.state);
        }
        series.insert((namespace.to_string(), slo.to_string()), now);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts a failed reconcile of `controller` (rollout, parity_policy, slo_budget).
    pub fn record_error(&self, controller: &str, category: &str) {
        let labels = vec![
            ("controller".to_string(), controller.to_string()),
            ("category".to_string(), category.to_string()),
        ];
        self.reconcile_errors.get_or_create(&labels).inc();
    }
}

fn remove_missing<M>(family: &Family<Labels, M>, before: &[Labels], now: &[Labels]) {
    for labels in before.iter().filter(|l| !now.contains(l)) {
        family.remove(labels);
    }
}

fn object_labels(namespace: &str, kind: &str, name: &str) -> Labels {
    vec![
        ("namespace".into(), namespace.into()),
        (kind.into(), name.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parity_policy::ComponentAttribution;

    #[test]
    fn the_leader_sample_line_follows_the_lease_not_the_help_text() {
        let metrics = Metrics::new();
        let sample = |page: &str, line: &str| page.lines().any(|l| l == line);
        let page = metrics.render();
        // The HELP text starts with "1 while ...": a substring match would see a leader here.
        assert!(page.contains("sluice_leader 1"));
        assert!(sample(&page, "sluice_leader 0"), "{page}");
        assert!(!sample(&page, "sluice_leader 1"), "{page}");
        metrics.set_leader(true);
        assert!(sample(&metrics.render(), "sluice_leader 1"));
    }

    #[test]
    fn parity_figures_are_exposed_per_policy() {
        let metrics = Metrics::new();
        let evaluation = ParityEvaluation {
            time: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            tracking_error_bps: Some(3.5),
            mean_difference_bps: Some(61.0),
            rms_difference_bps: Some(61.1),
            samples: 30,
            level: ParityLevel::Critical,
            components: vec![ComponentAttribution {
                name: "fees".into(),
                difference_bps: 40.0,
                share: Some(0.66),
            }],
            residual_bps: Some(21.0),
            statistics: None,
            sequential: None,
            groups: None,
        };
        metrics.record_parity("shop", "checkout-parity", &evaluation);
        let page = metrics.render();
        for line in [
            r#"sluice_parity_tracking_error_bps{namespace="shop",policy="checkout-parity"} 3.5"#,
            r#"sluice_parity_rms_difference_bps{namespace="shop",policy="checkout-parity"} 61.1"#,
            r#"sluice_parity_component_difference_bps{namespace="shop",policy="checkout-parity",component="fees"} 40.0"#,
            r#"sluice_parity_level{namespace="shop",policy="checkout-parity",level="Critical"} 1"#,
            r#"sluice_parity_level{namespace="shop",policy="checkout-parity",level="Pass"} 0"#,
        ] {
            assert!(page.contains(line), "missing {line} in\n{page}");
        }
    }

    #[test]
    fn slo_figures_are_exposed_per_objective_and_window() {
        use std::collections::BTreeMap;
        let metrics = Metrics::new();
        let objective = |name: &str, windows: &[(&str, f64)]| ObjectiveStatus {
            name: name.into(),
            sli: Some(0.999),
            budget_remaining: Some(0.8),
            burn_rates: windows
                .iter()
                .map(|(w, r)| (w.to_string(), *r))
                .collect::<BTreeMap<_, _>>(),
            state: ObjectiveState::AtRisk,
        };
        let both = [
            objective("availability", &[("1h", 2.5), ("5m", 0.5)]),
            objective("latency", &[("1h", 1.0)]),
        ];
        metrics.record_slo(
            "shop",
            "checkout-slo",
            &SloFigures {
                objectives: &both,
                compliance_score: Some(80.0),
                frozen: false,
            },
        );
        let page = metrics.render();
        for line in [
            r#"sluice_slo_budget_remaining{namespace="shop",slo="checkout-slo",objective="availability"} 0.8"#,
            r#"sluice_slo_burn_rate{namespace="shop",slo="checkout-slo",objective="availability",window="1h"} 2.5"#,
            r#"sluice_slo_objective_state{namespace="shop",slo="checkout-slo",objective="latency",state="AtRisk"} 1"#,
            r#"sluice_slo_objective_state{namespace="shop",slo="checkout-slo",objective="latency",state="Meeting"} 0"#,
            r#"sluice_slo_compliance_score{namespace="shop",slo="checkout-slo"} 80.0"#,
            r#"sluice_slo_frozen{namespace="shop",slo="checkout-slo"} 0"#,
        ] {
            assert!(page.contains(line), "missing {line} in\n{page}");
        }
        // latency leaves the spec, availability loses its 5m figure: their series go.
        let one = [objective("availability", &[("1h", 3.0)])];
        metrics.record_slo(
            "shop",
            "checkout-slo",
            &SloFigures {
                objectives: &one,
                compliance_score: None,
                frozen: true,
            },
        );
        let page = metrics.render();
        assert!(!page.contains(r#"objective="latency""#), "{page}");
        assert!(!page.contains(r#"window="5m""#), "{page}");
        assert!(!page.contains("sluice_slo_compliance_score{"), "{page}");
        assert!(
            page.contains(r#"sluice_slo_frozen{namespace="shop",slo="checkout-slo"} 1"#),
            "{page}"
        );
    }
}
