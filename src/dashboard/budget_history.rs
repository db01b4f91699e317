//! What the dashboard has seen of each SLOBudget since it started: every objective's burn rate
//! per window at each evaluation (pure). The status holds only the latest rates, so the chart
//! over time is drawn from these samples.

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;

use super::charts::Chart;
use crate::api::SLOBudget;

/// Evaluations kept per budget.
const KEEP: usize = 2000;

/// One evaluation: when, and per objective its burn rate per window.
#[derive(Clone, Debug, PartialEq)]
struct BudgetSample {
    time: Timestamp,
    burn_rates: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Clone, Debug, Default)]
pub struct BudgetHistory {
    samples: VecDeque<BudgetSample>,
}

impl BudgetHistory {
    /// Records the budget's latest evaluation, once.
    pub fn observe(&mut self, budget: &SLOBudget) {
        let Some(status) = &budget.status else {
            return;
        };
        let Some(time) = status.last_evaluation_time else {
            return;
        };
        if self.samples.back().is_some_and(|last| last.time == time) {
            return;
        }
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(BudgetSample {
            time,
            burn_rates: status
                .objectives
                .iter()
                .map(|o| (o.name.clone(), o.burn_rates.clone()))
                .collect(),
        });
    }

    /// One chart per objective: the burn rate of each window since `start`, against the
    /// factors of the budget's burn-rate alerts.
    pub fn charts(&self, budget: &SLOBudget, start: Timestamp) -> Vec<Chart> {
        let at = |t: Timestamp| t.duration_since(start).as_secs_f64().max(0.0);
        let samples: Vec<&BudgetSample> = self.samples.iter().filter(|s| s.time >= start).collect();
        let mut lines: Vec<(String, f64)> = Vec::new();
        for pair in &budget.spec.burn_rate_alerts {
            let label = format!("{:?} {}/{} at", pair.severity, pair.long, pair.short);
            if !lines.iter().any(|(_, factor)| *factor == pair.factor) {
                lines.push((label, pair.factor));
            }
        }
        budget
            .spec
            .objectives
            .iter()
            .map(|objective| {
                let mut windows: Vec<&String> = samples
                    .iter()
                    .filter_map(|s| s.burn_rates.get(&objective.name))
                    .flat_map(|rates| rates.keys())
                    .collect();
                windows.sort_by_key(|w| w.parse::<crate::api::Duration>().ok());
                windows.dedup();
                Chart {
                    title: format!(
                        "burn rate ({}, {})",
                        budget.metadata.name.clone().unwrap_or_default(),
                        objective.name
                    ),
                    more_series: windows
                        .into_iter()
                        .map(|window| {
                            let points = samples
                                .iter()
                                .filter_map(|s| {
                                    let rate = s.burn_rates.get(&objective.name)?.get(window)?;
                                    Some((at(s.time), *rate))
                                })
                                .collect();
                            (format!("{window} window"), points)
                        })
                        .collect(),
                    lines: lines.clone(),
                    unit: "× budget rate".into(),
                    ..Chart::default()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(evaluated: i64, rates: &[(&str, f64)]) -> SLOBudget {
        let mut budget: SLOBudget = serde_saphyr::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: SLOBudget\nmetadata: {name: checkout-slo, namespace: shop}\nspec:\n  window: 30d\n  objectives:\n  - {name: availability, target: 99.9, good: 'sum(rate(good[{{window}}]))', total: 'sum(rate(all[{{window}}]))'}\n  burnRateAlerts:\n  - {long: 1h, short: 5m, factor: 14.4, severity: Critical}\n  - {long: 6h, short: 30m, factor: 6, severity: Critical}\n",
        )
        .unwrap();
        let rates: BTreeMap<&str, f64> = rates.iter().copied().collect();
        budget.status = Some(
            serde_json::from_value(serde_json::json!({
                "lastEvaluationTime": Timestamp::from_second(1_700_000_000 + evaluated).unwrap(),
                "objectives": [{"name": "availability", "burnRates": rates, "state": "Meeting"}]
            }))
            .unwrap(),
        );
        budget
    }

    #[test]
    fn each_window_is_a_series_against_the_alert_factors() {
        let mut history = BudgetHistory::default();
        history.observe(&budget(0, &[("1h", 2.0), ("5m", 20.0)]));
        history.observe(&budget(0, &[("1h", 2.0), ("5m", 20.0)]));
        history.observe(&budget(60, &[("1h", 3.0), ("5m", 1.0)]));
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let charts = history.charts(&budget(60, &[]), start);
        assert_eq!(charts.len(), 1);
        let chart = &charts[0];
        assert_eq!(chart.title, "burn rate (checkout-slo, availability)");
        assert_eq!(
            chart.more_series,
            [
                ("5m window".to_string(), vec![(0.0, 20.0), (60.0, 1.0)]),
                ("1h window".to_string(), vec![(0.0, 2.0), (60.0, 3.0)])
            ],
            "one point per evaluation, windows shortest first"
        );
        assert_eq!(
            chart.lines,
            [
                ("Critical 1h/5m at".to_string(), 14.4),
                ("Critical 6h/30m at".to_string(), 6.0)
            ]
        );
        let later = Timestamp::from_second(1_700_000_030).unwrap();
        assert_eq!(
            history.charts(&budget(60, &[]), later)[0].more_series[0].1,
            [(30.0, 1.0)],
            "only what follows the start, in seconds since it"
        );
    }
}
