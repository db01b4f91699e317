//! The queries of an SLOBudget: each objective over every window for the whole service (the
//! budget's own evaluation, `engine::slo_budget`), and on the canary track of a rollout (the
//! gate, `engine::slo_gate`). Each distinct rendered query runs once, concurrently; the first
//! error of an objective is kept so the engine can say which query failed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::future::join_all;
use jiff::Timestamp;

use super::MetricsSources;
use super::vars::template_vars;
use crate::api::slo_budget::{Objective, SLOBudget, SLOBudgetSpec};
use crate::api::{CanaryRollout, Duration};
use crate::engine::analysis::GateVerdict;
use crate::engine::name_of;
use crate::engine::slo::{self, Measurements, WindowMeasurement, WindowMeasurements};
use crate::engine::slo_gate::{self, CanaryFigures, service_vars};
use crate::metrics::{MetricsSource, TemplateVars, render};

/// What a query gave: a number, no data, or why it could not run.
pub type QueryResult = Result<Option<f64>, String>;

/// Runs each distinct rendered query once, concurrently.
async fn run_all(
    source: &dyn MetricsSource,
    queries: impl IntoIterator<Item = String>,
) -> HashMap<String, QueryResult> {
    let distinct: BTreeSet<String> = queries.into_iter().collect();
    let results = join_all(distinct.iter().map(|query| async move {
        source
            .query_value(query, None)
            .await
            .map_err(|e| e.to_string())
    }))
    .await;
    distinct.into_iter().zip(results).collect()
}

/// An objective's `good` and `total` queries rendered, or why they could not be.
type RenderedPair = Result<(String, String), String>;

/// `good` and `total` of `objective` rendered with `vars`.
fn render_pair(objective: &Objective, vars: &TemplateVars) -> RenderedPair {
    let good = render(&objective.good, vars).map_err(|e| e.to_string())?;
    let total = render(&objective.total, vars).map_err(|e| e.to_string())?;
    Ok((good, total))
}

/// The measurement of a rendered pair; the first error, if a query failed.
fn measurement(
    pair: &RenderedPair,
    results: &HashMap<String, QueryResult>,
) -> Result<WindowMeasurement, String> {
    let (good, total) = pair.as_ref().map_err(Clone::clone)?;
    let value = |query: &String| {
        results
            .get(query)
            .cloned()
            .unwrap_or_else(|| Err("query was not run".to_string()))
    };
    Ok(WindowMeasurement {
        good: value(good)?,
        total: value(total)?,
    })
}

/// Every objective of `spec` over every window of [`slo::query_windows`] for the whole
/// service, and the query errors per objective (the first one of each).
pub async fn measure_service(
    source: &dyn MetricsSource,
    namespace: &str,
    spec: &SLOBudgetSpec,
) -> (Measurements, BTreeMap<String, String>) {
    let windows = slo::query_windows(spec);
    let pairs: Vec<(&Objective, Duration, RenderedPair)> = spec
        .objectives
        .iter()
        .flat_map(|objective| {
            windows.iter().map(move |window| {
                let vars = service_vars(namespace, *window);
                (objective, *window, render_pair(objective, &vars))
            })
        })
        .collect();
    let results = run_all(
        source,
        pairs
            .iter()
            .filter_map(|(_, _, pair)| pair.as_ref().ok())
            .flat_map(|(good, total)| [good.clone(), total.clone()]),
    )
    .await;
    let mut measurements = Measurements::new();
    let mut errors = BTreeMap::new();
    for (objective, window, pair) in &pairs {
        match measurement(pair, &results) {
            Ok(measured) => measurements.record(&objective.name, *window, measured),
            Err(error) => {
                errors
                    .entry(objective.name.clone())
                    .or_insert_with(|| format!("over {window}: {error}"));
            }
        }
    }
    (measurements, errors)
}

/// [`measure_service`] on the budget's Prometheus; when there is none to ask, every objective
/// fails with the reason.
pub async fn measure_budget(
    sources: &dyn MetricsSources,
    namespace: &str,
    spec: &SLOBudgetSpec,
) -> (Measurements, BTreeMap<String, String>) {
    match sources.source(spec.prometheus.as_ref().map(|p| p.address.as_str())) {
        Ok(source) => measure_service(source.as_ref(), namespace, spec).await,
        Err(error) => (
            Measurements::new(),
            spec.objectives
                .iter()
                .map(|o| (o.name.clone(), error.to_string()))
                .collect(),
        ),
    }
}

/// The canary's age rounded up to whole seconds, at least 1 s: the range of its queries.
fn canary_age(started: Option<Timestamp>, now: Timestamp) -> Duration {
    let millis = started.map_or(0, |started| now.duration_since(started).as_millis());
    let seconds = u64::try_from(millis).unwrap_or(0).div_ceil(1000).max(1);
    Duration::from_secs(seconds)
}

/// Measures the canary track: each objective over each burn-rate window (cut to the canary's
/// age, so an earlier canary's errors do not count), its good and total since the rollout
/// started, and the whole service's total over the SLO window (the denominator of the spend).
pub async fn measure_canary(
    source: &dyn MetricsSource,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    spec: &SLOBudgetSpec,
    now: Timestamp,
) -> CanaryFigures {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let started = rollout.status.as_ref().and_then(|s| s.rollout_started_at);
    let age = canary_age(started, now);
    let canary_vars = |window: Duration| {
        template_vars(rollout, "canary", canary_hash).set("window", window.to_string())
    };
    let pair_windows: BTreeSet<Duration> = spec
        .burn_rate_alerts
        .iter()
        .flat_map(|p| [p.long, p.short])
        .collect();

    struct Rendered<'a> {
        objective: &'a Objective,
        windows: Vec<(Duration, RenderedPair)>,
        since_start: RenderedPair,
        service_total: Result<String, String>,
    }
    let rendered: Vec<Rendered> = spec
        .objectives
        .iter()
        .map(|objective| Rendered {
            objective,
            windows: pair_windows
                .iter()
                .map(|w| (*w, render_pair(objective, &canary_vars((*w).min(age)))))
                .collect(),
            since_start: render_pair(objective, &canary_vars(age)),
            service_total: render(&objective.total, &service_vars(&namespace, spec.window))
                .map_err(|e| e.to_string()),
        })
        .collect();
    let queries = rendered.iter().flat_map(|r| {
        let pairs = r
            .windows
            .iter()
            .map(|(_, pair)| pair)
            .chain([&r.since_start])
            .filter_map(|pair| pair.as_ref().ok())
            .flat_map(|(good, total)| [good.clone(), total.clone()]);
        pairs.chain(r.service_total.clone().ok())
    });
    let results = run_all(source, queries.collect::<Vec<_>>()).await;

    let mut figures = CanaryFigures::default();
    for r in &rendered {
        let name = &r.objective.name;
        let mut errors = BTreeSet::new();
        let mut canary = WindowMeasurements::new();
        for (window, pair) in &r.windows {
            match measurement(pair, &results) {
                Ok(measured) => {
                    canary.insert(*window, measured);
                }
                Err(error) => {
                    errors.insert(error);
                }
            }
        }
        figures
            .burns
            .push(slo::canary_burn(spec, r.objective, &canary));
        let since_start = measurement(&r.since_start, &results);
        let service_total = r
            .service_total
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|q| {
                results
                    .get(q)
                    .cloned()
                    .unwrap_or_else(|| Err("query was not run".to_string()))
            });
        let (bad, total) = match (&since_start, &service_total) {
            (Ok(m), Ok(total)) => (slo::canary_bad_events(m.good, m.total, age), *total),
            _ => (None, None),
        };
        errors.extend(since_start.err());
        errors.extend(service_total.err());
        figures
            .spends
            .push(slo::judge_canary_spend(spec, r.objective, bad, total));
        figures.errors.extend(
            errors
                .into_iter()
                .map(|error| format!("objective {name}: {error}")),
        );
    }
    figures
}

/// Evaluates the budget on the canary of `rollout` (see the module doc).
pub async fn evaluate_for_rollout(
    source: &dyn MetricsSource,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    budget: &SLOBudget,
    now: Timestamp,
) -> GateVerdict {
    let figures = measure_canary(source, rollout, canary_hash, &budget.spec, now).await;
    slo_gate::gate_verdict(name_of(&budget.metadata), budget.status.as_ref(), &figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::slo_budget::ObjectiveState;
    use crate::engine::analysis::GateEffect;
    use crate::engine::slo_fixtures::{GOOD, TOTAL, budget, query};
    use crate::engine::slo_gate::gate_verdict;
    use crate::metrics::{FakeMetrics, QueryError};

    fn rollout(started: Timestamp) -> CanaryRollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "checkout"},
                "service": {"name": "checkout", "port": 80},
                "trafficRouting": {"replicas": {}},
                "analysis": {"sloBudgetRef": {"name": "checkout-slo"}}
            },
            "status": {"phase": "Progressing", "rolloutStartedAt": started.to_string()}
        }))
        .expect("test rollout parses")
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    /// The canary's answers: `error_ratio` of 10 requests/s over every window used at age 12 s
    /// (the 20 s window cut to 12 s), and 100 requests/s for the whole service.
    fn canary_answers(error_ratio: f64) -> FakeMetrics {
        let metrics = FakeMetrics::new();
        for window in ["12s", "5s"] {
            metrics.set_value(
                query(GOOD, "canary", window),
                Some(10.0 * (1.0 - error_ratio)),
            );
            metrics.set_value(query(TOTAL, "canary", window), Some(10.0));
        }
        metrics.set_value(query(TOTAL, ".*", "2m"), Some(100.0));
        metrics
    }

    #[tokio::test]
    async fn the_whole_service_is_measured_over_every_window_with_all_tracks() {
        let spec = budget("").spec;
        let metrics = FakeMetrics::new();
        metrics.set_value(query(GOOD, ".*", "2m"), Some(99.0));
        metrics.set_value(query(TOTAL, ".*", "2m"), Some(100.0));
        metrics.set_error(query(GOOD, ".*", "5s"), QueryError::Other("timeout".into()));
        let (measurements, errors) = measure_service(&metrics, "shop", &spec).await;
        let availability = measurements.objective("availability").expect("measured");
        assert_eq!(
            availability.get(&Duration::from_secs(120)),
            Some(&WindowMeasurement::new(99.0, 100.0))
        );
        assert_eq!(
            availability.get(&Duration::from_secs(20)),
            Some(&WindowMeasurement::default()),
            "no data is recorded as such"
        );
        assert_eq!(
            errors.get("availability").map(String::as_str),
            Some("over 5s: Prometheus query failed: timeout")
        );
        let asked = metrics.queries();
        assert_eq!(asked.len(), 6, "good and total over 2m, 20s, 5s: {asked:?}");
    }

    #[tokio::test]
    async fn a_canary_burning_fast_is_rolled_back_naming_the_objective_and_the_rate() {
        let budget = budget("");
        let metrics = canary_answers(0.5);
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        assert!(figures.errors.is_empty(), "{:?}", figures.errors);
        assert_eq!(
            figures.burns[0].burn_rates,
            BTreeMap::from([("20s".to_string(), 50.0), ("5s".to_string(), 50.0)])
        );
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Rollback);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: objective availability burning 50.0x over 20s/5s (critical pair 14.4) on the canary track"
        );
        assert_eq!(gate.slo.map(|s| s.level), Some(ObjectiveState::Unknown));
    }

    #[tokio::test]
    async fn a_canary_spending_more_than_its_share_is_rolled_back() {
        // 1 bad request/s for 12 s against 0.01 x 100/s x 120 s = 120 allowed: 10 %.
        let budget = budget("  policy: {canaryMaxBudgetSpend: 0.05}\n");
        let metrics = canary_answers(0.1);
        metrics.set_value(query(GOOD, "canary", "12s"), Some(9.0));
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let spend = figures.spends[0].spend.expect("a spend");
        assert!((spend - 0.1).abs() < 1e-9, "{spend}");
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Rollback);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: the canary burnt 10.0 % of objective availability's error budget, above spec.policy.canaryMaxBudgetSpend 5.0 %"
        );
    }

    #[tokio::test]
    async fn a_healthy_canary_passes_and_one_without_data_holds() {
        let budget = budget("  policy: {canaryMaxBudgetSpend: 0.5}\n");
        let figures = measure_canary(
            &canary_answers(0.01),
            &rollout(at(0)),
            None,
            &budget.spec,
            at(12),
        )
        .await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Pass, "{}", gate.reason);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: canary within budget: availability burning 1.0x at most, 1.0 % of its budget spent"
        );
        let empty = FakeMetrics::new();
        let figures = measure_canary(&empty, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::HoldForUserTraffic);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: no data for the canary track yet"
        );
    }

    #[tokio::test]
    async fn failing_canary_queries_hold_the_stage() {
        let budget = budget("");
        let metrics = canary_answers(0.0);
        metrics.set_error(
            query(TOTAL, ".*", "2m"),
            QueryError::Other("timeout".into()),
        );
        let figures = measure_canary(&metrics, &rollout(at(0)), None, &budget.spec, at(12)).await;
        let gate = gate_verdict("checkout-slo", None, &figures);
        assert_eq!(gate.effect, GateEffect::Hold);
        assert_eq!(
            gate.reason,
            "SLOBudget checkout-slo: query failed: objective availability: Prometheus query failed: timeout"
        );
    }

    #[test]
    fn the_canary_age_is_rounded_up_to_whole_seconds() {
        let started = at(0);
        let now = started
            .checked_add(jiff::SignedDuration::from_millis(12_300))
            .unwrap();
        assert_eq!(canary_age(Some(started), now), Duration::from_secs(13));
        assert_eq!(canary_age(Some(now), now), Duration::from_secs(1));
        assert_eq!(canary_age(None, now), Duration::from_secs(1));
    }
}
