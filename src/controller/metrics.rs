//! Operator metrics (prefix `sluice_`), exposed on `/metrics` in the OpenMetrics text format.
//!
//! Per-object gauges carry the object's namespace and name, as kube-state-metrics does; error
//! counters carry only static categories.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::parity_policy::{ParityEvaluation, ParityLevel};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

const PARITY_LEVELS: [ParityLevel; 5] = [
    ParityLevel::Pass,
    ParityLevel::Warning,
    ParityLevel::Critical,
    ParityLevel::Emergency,
    ParityLevel::Insufficient,
];

pub struct Metrics {
    registry: Registry,
    parity_tracking_error: Family<Labels, FloatGauge>,
    parity_mean_difference: Family<Labels, FloatGauge>,
    parity_rms_difference: Family<Labels, FloatGauge>,
    parity_residual: Family<Labels, FloatGauge>,
    parity_component_difference: Family<Labels, FloatGauge>,
    parity_level: Family<Labels, Gauge>,
    parity_evaluations: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let metrics = Self {
            registry: Registry::default(),
            parity_tracking_error: Family::default(),
            parity_mean_difference: Family::default(),
            parity_rms_difference: Family::default(),
            parity_residual: Family::default(),
            parity_component_difference: Family::default(),
            parity_level: Family::default(),
            parity_evaluations: Family::default(),
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
            "reconcile_errors",
            "Reconcile errors by kind and static category",
            metrics.reconcile_errors.clone(),
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
            level_labels.push(("level".into(), format!("{level:?}")));
            self.parity_level
                .get_or_create(&level_labels)
                .set(i64::from(level == evaluation.level));
        }
        let mut counted = labels;
        counted.push(("level".into(), format!("{:?}", evaluation.level)));
        self.parity_evaluations.get_or_create(&counted).inc();
    }

    pub fn record_error(&self, kind: &str, category: &str) {
        let labels = vec![
            ("kind".to_string(), kind.to_string()),
            ("category".to_string(), category.to_string()),
        ];
        self.reconcile_errors.get_or_create(&labels).inc();
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
}
