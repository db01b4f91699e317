//! The ParityPolicy gate of a CanaryRollout: the policy's query over the canary and stable
//! tracks, judged by the pure parity engine; its level becomes a gate effect via `actions`.

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::analysis::template_vars;
use super::error::Error;
use super::workloads::FIELD_MANAGER;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::ParityVerdict;
use crate::api::parity_policy::{ParityAction, ParityLevel, ParityPolicy, ParityPolicySpec};
use crate::engine::analysis::{GateEffect, GateVerdict};
use crate::engine::parity::{self, ComponentSeries, ParityInput, ParityReport};
use crate::engine::statistics::Proportion;
use crate::metrics::{MetricsSource, TemplateVars, render};

pub const HISTORY_LIMIT: usize = 30;

/// Problems that make a rollout referencing this policy invalid.
pub fn problems(policy: &ParityPolicy) -> Vec<String> {
    let name = policy.name_any();
    let mut problems: Vec<String> = parity::validate_policy(&policy.spec)
        .into_iter()
        .map(|p| format!("ParityPolicy {name}: {p}"))
        .collect();
    if policy.spec.query.is_none() {
        problems.push(format!(
            "ParityPolicy {name}: a policy referenced by a CanaryRollout needs spec.query with {{{{track}}}}"
        ));
    }
    problems
}

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
    let components: Vec<ComponentSeries> = component_series
        .iter()
        .map(|(name, c, b)| ComponentSeries {
            name,
            candidate: c,
            baseline: b,
        })
        .collect();
    let proportions = proportions(source, spec, &canary_vars, &stable_vars).await;
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &components,
        proportions,
    };
    let report = parity::evaluate(spec, &input, previous_breaches, now);
    let gate = gate_verdict(spec, &report, query_error);
    (gate, report)
}

/// What the counted level does to the rollout.
pub fn gate_verdict(
    spec: &ParityPolicySpec,
    report: &ParityReport,
    query_error: Option<String>,
) -> GateVerdict {
    let figures = &report.figures;
    let judged = parity::judged_value(figures, spec.measure);
    let observed = report.evaluation.level;
    let counted = report.counted_level;
    let verdict = ParityVerdict {
        tracking_error_bps: judged,
        mean_difference_bps: figures.mean_bps,
        samples: figures.samples,
        level: format!("{counted:?}"),
        consecutive_breaches: report.consecutive_breaches,
    };
    let measure = format!("{:?}", spec.measure).to_lowercase();
    let figure = judged.map_or("no figure".to_string(), |v| format!("{measure} {v:.1} bps"));
    let t = &spec.thresholds;
    let (effect, reason) = match counted {
        ParityLevel::Pass if parity::is_breach(observed) => (
            GateEffect::Hold,
            format!(
                "parity {observed:?} seen {} of {} evaluations in a row: {figure}",
                report.consecutive_breaches, spec.consecutive_breaches
            ),
        ),
        ParityLevel::Pass => (GateEffect::Pass, format!("parity Pass: {figure}")),
        ParityLevel::Insufficient => {
            let why = query_error
                .or_else(|| report.data_problem())
                .unwrap_or_else(|| {
                    format!(
                        "{} samples < minSamples {}",
                        figures.samples, spec.min_samples
                    )
                });
            (GateEffect::Hold, format!("parity Insufficient: {why}"))
        }
        level => {
            let (action, threshold) = match level {
                ParityLevel::Warning => (spec.actions.warning, t.warning_bps),
                ParityLevel::Critical => (spec.actions.critical, t.critical_bps),
                _ => (spec.actions.emergency, t.emergency_bps),
            };
            let effect = match action {
                ParityAction::Ignore => GateEffect::Pass,
                ParityAction::Hold => GateEffect::Hold,
                ParityAction::Rollback => GateEffect::Rollback,
                ParityAction::RollbackAndFreeze => GateEffect::RollbackAndFreeze,
            };
            let reason = format!(
                "parity {level:?}: {figure} >= {} {threshold} bps ({} evaluations in a row; action {action:?})",
                format!("{level:?}").to_lowercase(),
                report.consecutive_breaches
            );
            (effect, reason)
        }
    };
    GateVerdict {
        source: "parity",
        effect,
        reason,
        parity: Some(verdict),
        slo: None,
    }
}

/// Records an evaluation in the policy's status: lastEvaluation, the last 30, the breach count.
pub async fn record(
    client: &kube::Client,
    policy: &ParityPolicy,
    report: &ParityReport,
) -> Result<(), Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<ParityPolicy> = Api::namespaced(client.clone(), &namespace);
    let mut status = policy.status.clone().unwrap_or_default();
    status.observed_generation = policy.metadata.generation;
    status.last_evaluation = Some(report.evaluation.clone());
    status.consecutive_breaches = report.consecutive_breaches;
    status.history.push(report.evaluation.clone());
    let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
    status.history.drain(..excess);
    let patch =
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ParityPolicy", "status": status});
    api.patch_status(
        &policy.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
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
