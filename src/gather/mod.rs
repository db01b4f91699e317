//! Gathering: runs the queries of one evaluation through a [`MetricsSource`] and hands the
//! results to the engine to judge. It renders queries, runs them concurrently and turns
//! failures into results the engine understands (a query that could not run holds). It decides
//! nothing itself, and depends only on `api`, `engine` and `metrics`: no kube, no controller.
//! The operator answers from its Prometheus pool, the simulator from a recording.

pub mod parity;
pub mod pipeline;
pub mod slo;
pub mod vars;

use std::sync::Arc;

use futures::future::join_all;
use jiff::Timestamp;

use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::slo_budget::SLOBudget;
use crate::engine::analysis::{AnalysisInput, QueryOutcome, wants_stable_value};
use crate::engine::count_test::{Counts, TrackCounts};
use crate::engine::parity::ParityReport;
use crate::engine::{parity_gate, slo_gate};
use crate::metrics::counter_ratio::count_queries;
use crate::metrics::{MetricsSource, PrometheusPool, QueryError, TemplateVars, render};
pub use vars::template_vars;

/// Where a rollout's queries go: the source for a resource's optional Prometheus address
/// (`None` = the default). The operator answers from its pool; the simulator from a recording.
pub trait MetricsSources: Send + Sync {
    fn source(&self, address: Option<&str>) -> Result<Arc<dyn MetricsSource>, QueryError>;
}

impl MetricsSources for PrometheusPool {
    fn source(&self, address: Option<&str>) -> Result<Arc<dyn MetricsSource>, QueryError> {
        self.get(address)
    }
}

async fn run_query(source: &dyn MetricsSource, query: &str, vars: &TemplateVars) -> QueryOutcome {
    let rendered = render(query, vars).map_err(|e| e.to_string())?;
    source
        .query_value(&rendered, None)
        .await
        .map_err(|e| e.to_string())
}

/// Runs the sample count, every check and the gates concurrently, then asks the checks'
/// Prometheus when it started. A Prometheus that cannot be reached gives errors, which the
/// engine treats as "hold"; one that cannot say when it started is taken as long started.
/// `now` is the evaluation's time: the end of the parity window and of the canary's SLO age.
pub async fn run(
    sources: &dyn MetricsSources,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    parity_policy: Option<&ParityPolicy>,
    slo_budget: Option<&SLOBudget>,
    now: Timestamp,
) -> (AnalysisInput, Option<ParityReport>) {
    let slo = async {
        let budget = slo_budget?;
        let address = budget.spec.prometheus.as_ref().map(|p| p.address.as_str());
        Some(match sources.source(address) {
            Ok(source) => {
                slo::evaluate_for_rollout(source.as_ref(), rollout, canary_hash, budget, now).await
            }
            Err(error) => slo_gate::unavailable(budget, &error.to_string()),
        })
    };
    let analysis = run_analysis(sources, rollout, canary_hash, parity_policy, now);
    let (analysis, slo) = futures::join!(analysis, slo);
    let (mut input, report) = analysis;
    input.gates.extend(slo);
    (input, report)
}

async fn run_analysis(
    sources: &dyn MetricsSources,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
    parity_policy: Option<&ParityPolicy>,
    now: Timestamp,
) -> (AnalysisInput, Option<ParityReport>) {
    let analysis = &rollout.spec.analysis;
    let source = match sources.source(analysis.prometheus.as_ref().map(|p| p.address.as_str())) {
        Ok(source) => source,
        Err(error) => {
            let failed = || Err(error.to_string());
            let input = AnalysisInput {
                samples: analysis.sample_count_query.as_ref().map(|_| failed()),
                checks: analysis.checks.iter().map(|_| failed()).collect(),
                baselines: analysis
                    .checks
                    .iter()
                    .map(|c| c.is_relative().then(failed))
                    .collect(),
                gates: parity_policy
                    .map(|_| {
                        let status = rollout.status.as_ref();
                        let evidence = status.map_or(&[][..], |s| &s.stage_evidence);
                        parity_gate::unavailable(&error.to_string(), evidence)
                    })
                    .into_iter()
                    .collect(),
                prometheus_start: None,
                counts: Vec::new(),
            };
            return (input, None);
        }
    };
    let vars = template_vars(rollout, "canary", canary_hash);
    let samples = async {
        match &analysis.sample_count_query {
            Some(query) => Some(run_query(source.as_ref(), query, &vars).await),
            None => None,
        }
    };
    let stable_vars = template_vars(rollout, "stable", None);
    let checks = join_all(
        analysis
            .checks
            .iter()
            .map(|check| run_query(source.as_ref(), &check.query, &vars)),
    );
    let relative_baselines = join_all(analysis.checks.iter().map(|check| async {
        match check.is_relative() {
            true => Some(run_query(source.as_ref(), &check.query, &stable_vars).await),
            false => None,
        }
    }));
    let previous_breaches =
        parity_gate::previous_breaches(&rollout.status.clone().unwrap_or_default());
    let parity = async {
        match parity_policy {
            Some(policy) => Some(
                parity::evaluate_for_rollout(
                    source.as_ref(),
                    rollout,
                    policy,
                    previous_breaches,
                    now,
                )
                .await,
            ),
            None => None,
        }
    };
    let counts = join_all(analysis.checks.iter().map(|check| async {
        let interval = analysis.interval.as_std();
        match check.is_relative() {
            true => run_counts(source.as_ref(), &check.query, &vars, &stable_vars, interval).await,
            false => None,
        }
    }));
    let (samples, checks, mut baselines, parity, counts) =
        futures::join!(samples, checks, relative_baselines, parity, counts);
    // A check the canary fails is asked of stable too, to tell a shared incident apart.
    let shared = join_all(
        analysis
            .checks
            .iter()
            .zip(&checks)
            .map(|(check, canary)| async {
                match wants_stable_value(analysis, check, canary) {
                    true => Some(run_query(source.as_ref(), &check.query, &stable_vars).await),
                    false => None,
                }
            }),
    )
    .await;
    for (baseline, stable) in baselines.iter_mut().zip(shared) {
        if stable.is_some() {
            *baseline = stable;
        }
    }
    // Read after every answer, so a restart before any of them shows.
    let prometheus_start = source.start().await.ok().flatten();
    let (gates, report) = match parity {
        Some((gate, report)) => (vec![gate], Some(report)),
        None => (Vec::new(), None),
    };
    let input = AnalysisInput {
        samples,
        checks,
        baselines,
        gates,
        prometheus_start,
        counts,
    };
    (input, report)
}

/// Both tracks' events and requests over the last `interval` behind a ratio of counters; None
/// when `query` is not one.
async fn run_counts(
    source: &dyn MetricsSource,
    query: &str,
    canary_vars: &TemplateVars,
    stable_vars: &TemplateVars,
    interval: std::time::Duration,
) -> Option<Result<Counts, String>> {
    let canary = count_queries(&render(query, canary_vars).ok()?, interval)?;
    let stable = count_queries(&render(query, stable_vars).ok()?, interval)?;
    let queries = [&canary.0, &canary.1, &stable.0, &stable.1];
    let answers = join_all(queries.map(|q| source.query_value(q, None))).await;
    let mut values = [0.0; 4];
    for ((value, answer), query) in values.iter_mut().zip(answers).zip(queries) {
        *value = match answer {
            Ok(Some(number)) => number,
            Ok(None) => return Some(Err(format!("no data for {query}"))),
            Err(error) => return Some(Err(error.to_string())),
        };
    }
    let [
        canary_events,
        canary_requests,
        stable_events,
        stable_requests,
    ] = values;
    Some(Ok(Counts {
        canary: TrackCounts {
            events: canary_events,
            requests: canary_requests,
        },
        stable: TrackCounts {
            events: stable_events,
            requests: stable_requests,
        },
    }))
}
