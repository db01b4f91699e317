//! The queries of a ParityPolicy: the candidate and baseline series over the window, the
//! components and the good/total proportions, for a rollout's two tracks or for a scheduled
//! evaluation. The parity engine judges them; query failures become the reason of an
//! Insufficient report (the stage holds) or of a failed evaluation.

use jiff::Timestamp;

use super::MetricsSources;
use super::vars::template_vars;
use crate::api::CanaryRollout;
use crate::api::parity_policy::{GroupsSpec, ParityPolicy, ParityPolicySpec};
use crate::engine::analysis::GateVerdict;
use crate::engine::parity::{self, ComponentSeries, ParityInput, ParityReport};
use crate::engine::parity_gate;
use crate::engine::parity_groups::{self, GroupSeries};
use crate::engine::parity_sequential::SequentialContext;
use crate::engine::statistics::Proportion;
use crate::metrics::{MetricsSource, TemplateVars, render};

/// Samples of `query` over the window ending now, but none from before `since`.
async fn range(
    source: &dyn MetricsSource,
    query: &str,
    vars: &TemplateVars,
    spec: &ParityPolicySpec,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Vec<(f64, f64)>, String> {
    let rendered = render(query, vars).map_err(|e| e.to_string())?;
    let window_start = now
        .checked_sub(spec.window.as_std())
        .map_err(|e| e.to_string())?;
    let start = since.map_or(window_start, |since| since.max(window_start));
    source
        .query_range(&rendered, start, now, spec.step.as_std())
        .await
        .map_err(|e| e.to_string())
}

/// Evaluates the policy over the two tracks of `rollout`, on samples taken since the rollout
/// started (older ones belong to another candidate). Query failures give an Insufficient report
/// (the stage holds) with the reason.
pub async fn evaluate_for_rollout(
    source: &dyn MetricsSource,
    rollout: &CanaryRollout,
    policy: &ParityPolicy,
    previous_breaches: u32,
    now: Timestamp,
) -> (GateVerdict, ParityReport) {
    let spec = &policy.spec;
    let query = spec.query.clone().unwrap_or_default();
    let since = rollout.status.as_ref().and_then(|s| s.rollout_started_at);
    let canary_vars = template_vars(rollout, "canary", None);
    let stable_vars = template_vars(rollout, "stable", None);
    if let Some(groups) = &spec.groups {
        let tracks = GroupedQueries {
            candidate: (&query, &canary_vars),
            baseline: (&query, &stable_vars),
        };
        let (series, query_error) =
            match grouped_series(source, spec, groups, &tracks, since, now).await {
                Ok(series) => (series, None),
                Err(error) => (Vec::new(), Some(error)),
            };
        let report = parity_groups::evaluate_grouped(spec, groups, &series, previous_breaches, now);
        let gate = parity_gate::gate_verdict(spec, &report, query_error);
        return (gate, report);
    }
    let (candidate, baseline) = futures::join!(
        range(source, &query, &canary_vars, spec, since, now),
        range(source, &query, &stable_vars, spec, since, now)
    );
    let mut component_series = Vec::new();
    for component in &spec.components {
        let (c, b) = futures::join!(
            range(source, &component.query, &canary_vars, spec, since, now),
            range(source, &component.query, &stable_vars, spec, since, now)
        );
        component_series.push((
            component.name.as_str(),
            c.unwrap_or_default(),
            b.unwrap_or_default(),
        ));
    }
    let query_error = candidate
        .as_ref()
        .err()
        .or(baseline.as_ref().err())
        .cloned();
    let (candidate, baseline) = (candidate.unwrap_or_default(), baseline.unwrap_or_default());
    let components = component_refs(&component_series);
    let proportions = proportions(source, spec, &canary_vars, &stable_vars).await;
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &components,
        proportions,
    };
    let context = parity_gate::sequential_context(&rollout.spec, rollout.status.as_ref(), spec);
    let report = parity::evaluate_with(spec, &input, previous_breaches, Some(&context), now);
    let gate = parity_gate::gate_verdict(spec, &report, query_error);
    (gate, report)
}

/// A scheduled evaluation of the policy in `namespace`, with no rollout: candidate and baseline
/// over the window (explicit queries, or `query` per track). `previous_breaches` is
/// `status.consecutiveBreaches`. Why there is no report, when Prometheus cannot be asked or the
/// candidate or baseline query fails.
pub async fn evaluate_scheduled(
    sources: &dyn MetricsSources,
    namespace: &str,
    spec: &ParityPolicySpec,
    previous_breaches: u32,
    sequential: &SequentialContext<'_>,
    now: Timestamp,
) -> Result<ParityReport, String> {
    let source = sources
        .source(spec.prometheus.as_ref().map(|p| p.address.as_str()))
        .map_err(|e| e.to_string())?;
    let source = source.as_ref();
    let vars = |track: &str| {
        TemplateVars::new()
            .set("namespace", namespace)
            .set("track", track)
            .set("window", spec.window.to_string())
    };
    let (candidate_query, candidate_vars, baseline_query, baseline_vars) =
        match (&spec.candidate, &spec.baseline, &spec.query) {
            (Some(candidate), Some(baseline), _) => (
                candidate.clone(),
                vars("canary"),
                baseline.clone(),
                vars("stable"),
            ),
            (_, _, Some(query)) => (query.clone(), vars("canary"), query.clone(), vars("stable")),
            _ => return Err("spec needs query, or candidate and baseline".into()),
        };
    if let Some(groups) = &spec.groups {
        let tracks = GroupedQueries {
            candidate: (&candidate_query, &candidate_vars),
            baseline: (&baseline_query, &baseline_vars),
        };
        let series = grouped_series(source, spec, groups, &tracks, None, now).await?;
        return Ok(parity_groups::evaluate_grouped(
            spec,
            groups,
            &series,
            previous_breaches,
            now,
        ));
    }
    let start = now
        .checked_sub(spec.window.as_std())
        .map_err(|e| e.to_string())?;
    let range = async |query: &str, vars: &TemplateVars| -> Result<Vec<(f64, f64)>, String> {
        let rendered = render(query, vars).map_err(|e| e.to_string())?;
        source
            .query_range(&rendered, start, now, spec.step.as_std())
            .await
            .map_err(|e| e.to_string())
    };
    let candidate = range(&candidate_query, &candidate_vars).await?;
    let baseline = range(&baseline_query, &baseline_vars).await?;
    let mut component_series = Vec::new();
    for component in &spec.components {
        let c = range(&component.query, &vars("canary"))
            .await
            .unwrap_or_default();
        let b = range(&component.query, &vars("stable"))
            .await
            .unwrap_or_default();
        component_series.push((component.name.as_str(), c, b));
    }
    let components = component_refs(&component_series);
    let proportions = proportions(source, spec, &vars("canary"), &vars("stable")).await;
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &components,
        proportions,
    };
    Ok(parity::evaluate_with(
        spec,
        &input,
        previous_breaches,
        Some(sequential),
        now,
    ))
}

/// The query and template variables of each track.
struct GroupedQueries<'a> {
    candidate: (&'a str, &'a TemplateVars),
    baseline: (&'a str, &'a TemplateVars),
}

/// Every group's series on both tracks over the window (from `since`, when later), with their
/// weights; why not, when a query fails or its series cannot be grouped.
async fn grouped_series(
    source: &dyn MetricsSource,
    spec: &ParityPolicySpec,
    groups: &GroupsSpec,
    tracks: &GroupedQueries<'_>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Result<Vec<GroupSeries>, String> {
    let window_start = now
        .checked_sub(spec.window.as_std())
        .map_err(|e| e.to_string())?;
    let start = since.map_or(window_start, |since| since.max(window_start));
    let series = async |query: &str, vars: &TemplateVars| {
        let rendered = render(query, vars).map_err(|e| e.to_string())?;
        source
            .query_range_series(&rendered, start, now, spec.step.as_std())
            .await
            .map_err(|e| e.to_string())
    };
    let (candidate, baseline) = futures::join!(
        series(tracks.candidate.0, tracks.candidate.1),
        series(tracks.baseline.0, tracks.baseline.1)
    );
    let weights = match &groups.weight_query {
        Some(query) => Some(
            series(query, tracks.baseline.1)
                .await
                .map_err(|e| format!("spec.groups.weightQuery: {e}"))?,
        ),
        None => None,
    };
    parity_groups::group_series(groups, candidate?, baseline?, weights)
}

type Points = Vec<(f64, f64)>;

fn component_refs<'a>(series: &'a [(&'a str, Points, Points)]) -> Vec<ComponentSeries<'a>> {
    series
        .iter()
        .map(|(name, c, b)| ComponentSeries {
            name,
            candidate: c,
            baseline: b,
        })
        .collect()
}

/// Good/total per track for the proportions test, when `statistics.good` and `total` are set;
/// none when a query fails or has no data (the test is then left out, not failed).
pub async fn proportions(
    source: &dyn MetricsSource,
    spec: &ParityPolicySpec,
    candidate_vars: &TemplateVars,
    baseline_vars: &TemplateVars,
) -> Option<(Proportion, Proportion)> {
    let statistics = spec.statistics.as_ref()?;
    let (good, total) = (statistics.good.as_ref()?, statistics.total.as_ref()?);
    let value = async |query: &str, vars: &TemplateVars| -> Option<f64> {
        let rendered = render(query, vars).ok()?;
        source.query_value(&rendered, None).await.ok().flatten()
    };
    let candidate = Proportion {
        good: value(good, candidate_vars).await?,
        total: value(total, candidate_vars).await?,
    };
    let baseline = Proportion {
        good: value(good, baseline_vars).await?,
        total: value(total, baseline_vars).await?,
    };
    Some((candidate, baseline))
}
