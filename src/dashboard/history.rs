//! What the dashboard has seen of each rollout since it started, from its watch: one sample per
//! change of phase, stage, traffic or evaluation (pure). The status holds only the latest
//! evaluation, so the charts over time are drawn from these samples, and from the
//! ParityPolicy's own history of evaluations.

use std::collections::VecDeque;

use jiff::Timestamp;

use super::charts::Chart;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::Phase;
use crate::api::parity_policy::ParityPolicy;
use crate::engine::parity::{ParityFigures, judged_value};

/// Samples kept per rollout: a day of evaluations every minute, or an hour at every second.
const KEEP: usize = 2000;

/// A check at one evaluation: (name, value, min, max).
pub type CheckSample = (String, Option<f64>, Option<f64>, Option<f64>);

/// The rollout at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub time: Timestamp,
    pub phase: Option<Phase>,
    pub stage: Option<u32>,
    pub weight: Option<u32>,
    pub mirror: Option<u32>,
    /// When the evaluation below ran.
    pub evaluated_at: Option<Timestamp>,
    pub checks: Vec<CheckSample>,
    pub parity_bps: Option<f64>,
    pub budget_remaining: Option<f64>,
}

impl Sample {
    pub fn of(rollout: &CanaryRollout, now: Timestamp) -> Sample {
        let status = rollout.status.clone().unwrap_or_default();
        let evaluation = status.last_evaluation.as_ref();
        Sample {
            time: now,
            phase: status.phase,
            stage: status.stage,
            weight: status.canary_weight,
            mirror: status.canary_mirror,
            evaluated_at: evaluation.map(|e| e.time),
            checks: evaluation
                .map(|e| {
                    e.checks
                        .iter()
                        .map(|c| (c.name.clone(), c.value, c.min, c.max))
                        .collect()
                })
                .unwrap_or_default(),
            parity_bps: evaluation
                .and_then(|e| e.parity.as_ref())
                .and_then(|p| p.tracking_error_bps),
            budget_remaining: evaluation
                .and_then(|e| e.slo.as_ref())
                .and_then(|s| s.budget_remaining),
        }
    }

    /// Whether `other` shows the same rollout state (nothing worth a new sample).
    fn same_state(&self, other: &Sample) -> bool {
        (
            self.phase,
            self.stage,
            self.weight,
            self.mirror,
            self.evaluated_at,
        ) == (
            other.phase,
            other.stage,
            other.weight,
            other.mirror,
            other.evaluated_at,
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct RolloutHistory {
    samples: VecDeque<Sample>,
}

impl RolloutHistory {
    /// Records the rollout as seen at `now`, unless nothing changed since the last sample.
    pub fn observe(&mut self, rollout: &CanaryRollout, now: Timestamp) {
        let mut sample = Sample::of(rollout, now);
        sample.time = now;
        if self
            .samples
            .back()
            .is_some_and(|last| last.same_state(&sample))
        {
            return;
        }
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// When the first sample was taken: time zero of the charts.
    pub fn start(&self) -> Option<Timestamp> {
        self.samples.front().map(|s| s.time)
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// The charts of the rollout: its traffic, each check against its bounds, parity against
    /// the policy's thresholds, and the error budget left.
    pub fn charts(&self, policy: Option<&ParityPolicy>, now: Timestamp) -> Vec<Chart> {
        let Some(start) = self.samples.front().map(|s| s.time) else {
            return vec![Chart {
                title: "canary weight".into(),
                unit: "%".into(),
                ..Chart::default()
            }];
        };
        let at = |t: Timestamp| t.duration_since(start).as_secs_f64().max(0.0);
        let mut charts = vec![Chart {
            title: "canary weight".into(),
            points: self
                .samples
                .iter()
                .filter_map(|s| s.weight.map(|w| (at(s.time), f64::from(w))))
                .collect(),
            lines: Vec::new(),
            steps: true,
            unit: "%".into(),
            ..Chart::default()
        }];
        if self.samples.iter().any(|s| s.mirror.is_some()) {
            charts.push(Chart {
                title: "shadow: requests copied to the canary".into(),
                points: self
                    .samples
                    .iter()
                    .map(|s| (at(s.time), f64::from(s.mirror.unwrap_or(0))))
                    .collect(),
                lines: Vec::new(),
                steps: true,
                unit: "%".into(),
                ..Chart::default()
            });
        }
        let evaluated: Vec<&Sample> = {
            let mut seen = None;
            self.samples
                .iter()
                .filter(|s| {
                    let new = s.evaluated_at.is_some() && s.evaluated_at != seen;
                    seen = s.evaluated_at;
                    new
                })
                .collect()
        };
        let mut names: Vec<&str> = Vec::new();
        for sample in &evaluated {
            for (name, ..) in &sample.checks {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        for name in names {
            let mut chart = Chart {
                title: format!("check {name}"),
                ..Chart::default()
            };
            for sample in &evaluated {
                let time = at(sample.evaluated_at.unwrap_or(sample.time));
                if let Some((_, value, min, max)) = sample.checks.iter().find(|c| c.0 == name) {
                    if let Some(value) = value {
                        chart.points.push((time, *value));
                    }
                    chart.lines = [("min", *min), ("max", *max)]
                        .into_iter()
                        .filter_map(|(label, bound)| bound.map(|b| (label.to_string(), b)))
                        .collect();
                }
            }
            charts.push(chart);
        }
        if let Some(policy) = policy {
            let t = &policy.spec.thresholds;
            let history = policy
                .status
                .as_ref()
                .map(|s| s.history.as_slice())
                .unwrap_or(&[]);
            let measure = policy.spec.measure;
            let points: Vec<(f64, f64)> = history
                .iter()
                .filter(|e| e.time >= start)
                .filter_map(|e| {
                    let figures = ParityFigures {
                        samples: e.samples,
                        mean_bps: e.mean_difference_bps,
                        stddev_bps: e.tracking_error_bps,
                        rms_bps: e.rms_difference_bps,
                        skipped: 0,
                    };
                    judged_value(&figures, measure).map(|v| (at(e.time), v))
                })
                .collect();
            let points = if points.is_empty() {
                evaluated
                    .iter()
                    .filter_map(|s| s.parity_bps.map(|v| (at(s.time), v)))
                    .collect()
            } else {
                points
            };
            charts.push(Chart {
                title: format!(
                    "parity ({}, {})",
                    policy.metadata.name.clone().unwrap_or_default(),
                    measure.as_str()
                ),
                points,
                lines: vec![
                    ("warning".into(), t.warning_bps),
                    ("critical".into(), t.critical_bps),
                    ("emergency".into(), t.emergency_bps),
                ],
                steps: false,
                unit: "bps".into(),
                ..Chart::default()
            });
        }
        // A weight or a mirror holds until it changes: the steps reach the present.
        for chart in charts.iter_mut().filter(|c| c.steps) {
            if let Some(&(time, value)) = chart.points.last()
                && at(now) > time
            {
                chart.points.push((at(now), value));
            }
        }
        if let Some(chart) = policy.and_then(|p| components_chart(p, start)) {
            charts.push(chart);
        }
        if evaluated.iter().any(|s| s.budget_remaining.is_some()) {
            charts.push(Chart {
                title: "error budget remaining".into(),
                points: evaluated
                    .iter()
                    .filter_map(|s| s.budget_remaining.map(|b| (at(s.time), b * 100.0)))
                    .collect(),
                lines: vec![("exhausted".into(), 0.0)],
                steps: false,
                unit: "%".into(),
                ..Chart::default()
            });
        }
        charts
    }
}

/// The policy's attribution over time: the mean difference, each component's share of it, and
/// what they leave unexplained. None for a policy without components.
fn components_chart(policy: &ParityPolicy, start: Timestamp) -> Option<Chart> {
    if policy.spec.components.is_empty() {
        return None;
    }
    let at = |t: Timestamp| t.duration_since(start).as_secs_f64().max(0.0);
    let history: Vec<_> = policy
        .status
        .as_ref()
        .map(|s| s.history.iter().filter(|e| e.time >= start).collect())
        .unwrap_or_default();
    let mut chart = Chart {
        title: format!(
            "parity components ({})",
            policy.metadata.name.clone().unwrap_or_default()
        ),
        main_label: Some("mean difference".into()),
        points: history
            .iter()
            .filter_map(|e| e.mean_difference_bps.map(|v| (at(e.time), v)))
            .collect(),
        unit: "bps".into(),
        ..Chart::default()
    };
    for component in &policy.spec.components {
        let points = history
            .iter()
            .filter_map(|e| {
                let share = e.components.iter().find(|c| c.name == component.name)?;
                Some((at(e.time), share.difference_bps))
            })
            .collect();
        chart.more_series.push((component.name.clone(), points));
    }
    let residual = history
        .iter()
        .filter_map(|e| e.residual_bps.map(|v| (at(e.time), v)))
        .collect();
    chart.more_series.push(("residual".into(), residual));
    Some(chart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::{CanaryRolloutStatus, CheckResult, Evaluation, Verdict};

    fn rollout(weight: u32, evaluated: i64, value: f64) -> CanaryRollout {
        let mut rollout: CanaryRollout = serde_saphyr::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: checkout, namespace: shop}\nspec:\n  targetRef: {name: checkout}\n  service: {name: checkout, port: 80}\n  trafficRouting: {replicas: {}}\n",
        )
        .unwrap();
        rollout.status = Some(CanaryRolloutStatus {
            phase: Some(Phase::Progressing),
            stage: Some(0),
            canary_weight: Some(weight),
            last_evaluation: Some(Evaluation {
                time: Timestamp::from_second(evaluated).unwrap(),
                verdict: Verdict::Pass,
                samples: None,
                checks: vec![CheckResult {
                    name: "error-rate".into(),
                    value: Some(value),
                    min: None,
                    max: Some(0.02),
                    baseline: None,
                    change: None,
                    change_interval: None,
                    evaluations: None,
                    verdict: Verdict::Pass,
                    message: None,
                }],
                parity: None,
                slo: None,
                message: None,
            }),
            ..CanaryRolloutStatus::default()
        });
        rollout
    }

    #[test]
    fn samples_follow_changes_and_charts_show_them_against_their_bounds() {
        let mut history = RolloutHistory::default();
        let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        history.observe(&rollout(1, 1_700_000_000, 0.002), at(0));
        history.observe(&rollout(1, 1_700_000_000, 0.002), at(1));
        history.observe(&rollout(1, 1_700_000_002, 0.003), at(2));
        history.observe(&rollout(5, 1_700_000_002, 0.003), at(5));
        assert_eq!(
            history.samples().count(),
            3,
            "an unchanged status adds nothing"
        );
        let charts = history.charts(None, at(9));
        assert_eq!(charts[0].title, "canary weight");
        assert_eq!(
            charts[0].points,
            [(0.0, 1.0), (2.0, 1.0), (5.0, 5.0), (9.0, 5.0)],
            "the last weight holds until now"
        );
        let check = &charts[1];
        assert_eq!(check.title, "check error-rate");
        assert_eq!(check.points, [(0.0, 0.002), (2.0, 0.003)]);
        assert_eq!(check.lines, [("max".to_string(), 0.02)]);
    }

    #[test]
    fn the_components_chart_follows_the_attribution_of_each_evaluation() {
        let mut policy: ParityPolicy = serde_saphyr::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: ParityPolicy\nmetadata: {name: pricing, namespace: shop}\nspec:\n  query: 'sum(price{track=\"{{track}}\"})'\n  components:\n  - {name: fees, query: 'sum(fees{track=\"{{track}}\"})'}\n",
        )
        .unwrap();
        let evaluation = |second: i64, mean: f64, fees: f64| {
            serde_json::json!({
                "time": Timestamp::from_second(1_700_000_000 + second).unwrap(),
                "meanDifferenceBps": mean, "samples": 30, "level": "Pass",
                "components": [{"name": "fees", "differenceBps": fees}],
                "residualBps": mean - fees
            })
        };
        policy.status = Some(
            serde_json::from_value(serde_json::json!({
                "history": [evaluation(-10, 1.0, 1.0), evaluation(0, 12.0, 9.0), evaluation(30, 20.0, 15.0)]
            }))
            .unwrap(),
        );
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let chart = components_chart(&policy, start).expect("a components chart");
        assert_eq!(chart.title, "parity components (pricing)");
        assert_eq!(
            chart.points,
            [(0.0, 12.0), (30.0, 20.0)],
            "from the start on"
        );
        assert_eq!(
            chart.more_series,
            [
                ("fees".to_string(), vec![(0.0, 9.0), (30.0, 15.0)]),
                ("residual".to_string(), vec![(0.0, 3.0), (30.0, 5.0)])
            ]
        );
        let svg = super::super::charts::svg(&chart);
        assert!(svg.contains("fees") && svg.contains("residual"), "{svg}");
        policy.spec.components.clear();
        assert_eq!(components_chart(&policy, start), None);
    }
}
