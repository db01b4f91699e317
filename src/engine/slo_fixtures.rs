//! A budget and its rendered queries, shared by the tests of the SLO gate, the PrometheusRule
//! generator and the SLO gathering.

use crate::api::slo_budget::SLOBudget;

pub const GOOD: &str =
    r#"sum(avg_over_time(good{namespace="{{namespace}}",track=~"{{track}}"}[{{window}}]))"#;
pub const TOTAL: &str =
    r#"sum(avg_over_time(total{namespace="{{namespace}}",track=~"{{track}}"}[{{window}}]))"#;

/// checkout-slo in shop: availability 99 % over 2m, a critical pair 20s/5s at 14.4, and `extra`
/// lines of spec.
pub fn budget(extra: &str) -> SLOBudget {
    let yaml = format!(
        "apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {{name: checkout-slo, namespace: shop}}
spec:
  window: 2m
  interval: 1s
  objectives:
  - {{name: availability, target: 99, good: '{GOOD}', total: '{TOTAL}'}}
  burnRateAlerts:
  - {{long: 20s, short: 5s, factor: 14.4, severity: Critical}}
{extra}"
    );
    serde_saphyr::from_str(&yaml).expect("test budget parses")
}

/// `template` rendered in namespace shop.
pub fn query(template: &str, track: &str, window: &str) -> String {
    template
        .replace("{{namespace}}", "shop")
        .replace("{{track}}", track)
        .replace("{{window}}", window)
}
