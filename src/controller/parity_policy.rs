//! The ParityPolicy reconciler: validation and conditions for every policy, and the standalone
//! evaluation of a policy with a `schedule` (the daily parity job), with no rollout involved.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::Context;
use super::error::Error;
use super::objects;
use super::parity::HISTORY_LIMIT;
use crate::api::conditions::{Condition, READY, RECONCILING, STALLED, set_condition};
use crate::api::parity_policy::{ParityLevel, ParityPolicy, ParityPolicySpec, ParityPolicyStatus};
use crate::engine::parity::{self, ComponentSeries, ParityInput};
use crate::engine::schedule;
use crate::metrics::{MetricsSource, TemplateVars, render};

const IDLE_REQUEUE: Duration = Duration::from_secs(300);

pub async fn reconcile(policy: Arc<ParityPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let spec = &policy.spec;
    let old = policy.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = policy.metadata.generation;
    let now = Timestamp::now();

    let problems = parity::validate_policy_with_schedule(spec, &|expression| {
        schedule::parse(expression).map(drop)
    });
    if !problems.is_empty() {
        let message = format!("invalid spec: {}", problems.join("; "));
        let was_invalid = old
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
        set_conditions(&mut status, false, "InvalidSpec", &message, now);
        if !was_invalid {
            objects::publish(&ctx, policy.as_ref(), true, "InvalidSpec", &message).await;
        }
        objects::apply_status(&ctx, policy.as_ref(), &old, &status).await?;
        return Ok(Action::requeue(IDLE_REQUEUE));
    }

    let Some(expression) = &spec.schedule else {
        set_conditions(
            &mut status,
            true,
            "Referenced",
            "evaluated by the CanaryRollouts that reference it",
            now,
        );
        objects::apply_status(&ctx, policy.as_ref(), &old, &status).await?;
        return Ok(Action::await_change());
    };
    let cron = schedule::parse(expression).map_err(Error::Invalid)?;
    let last_run = old.last_evaluation.as_ref().map(|e| e.time);
    let since = last_run
        .or_else(|| policy.meta().creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let due = schedule::next_after(&cron, since).is_some_and(|at| at <= now);

    if due {
        let source = ctx
            .prometheus
            .get(spec.prometheus.as_ref().map(|p| p.address.as_str()));
        let report = match source {
            Ok(source) => {
                evaluate(
                    source.as_ref(),
                    &namespace,
                    spec,
                    old.consecutive_breaches,
                    now,
                )
                .await
            }
            Err(error) => Err(error.to_string()),
        };
        match report {
            Ok(report) => {
                let evaluation = report.evaluation.clone();
                let previous_level = old.last_evaluation.as_ref().map(|e| e.level);
                status.last_evaluation = Some(evaluation.clone());
                status.consecutive_breaches = report.consecutive_breaches;
                status.history.push(evaluation.clone());
                let excess = status.history.len().saturating_sub(HISTORY_LIMIT);
                status.history.drain(..excess);
                let summary = summary(spec, &report);
                set_conditions(&mut status, true, "Evaluated", &summary, now);
                ctx.metrics
                    .record_parity(&namespace, &policy.name_any(), &evaluation);
                if previous_level != Some(report.counted_level) {
                    let breach = parity::is_breach(report.counted_level);
                    objects::publish(
                        &ctx,
                        policy.as_ref(),
                        breach,
                        "ParityLevelChanged",
                        &summary,
                    )
                    .await;
                }
            }
            Err(error) => {
                let message = format!("evaluation failed: {error}");
                set_conditions(&mut status, false, "EvaluationFailed", &message, now);
                objects::publish(&ctx, policy.as_ref(), true, "EvaluationFailed", &message).await;
            }
        }
    }
    objects::apply_status(&ctx, policy.as_ref(), &old, &status).await?;
    let next = schedule::next_after(&cron, if due { now } else { since }).unwrap_or(now);
    let wait = Duration::from_millis(
        u64::try_from(next.duration_since(now).as_millis().max(500)).unwrap_or(500),
    );
    Ok(Action::requeue(wait.min(IDLE_REQUEUE)))
}

pub fn error_policy(policy: Arc<ParityPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.record_error("parity_policy", error.category());
    warn!(policy = %policy.name_any(), namespace = policy.namespace().unwrap_or_default(), category = error.category(), "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(10))
}

/// Candidate and baseline over the window: explicit queries, or `query` per track.
async fn evaluate(
    source: &dyn MetricsSource,
    namespace: &str,
    spec: &ParityPolicySpec,
    previous_breaches: u32,
    now: Timestamp,
) -> Result<parity::ParityReport, String> {
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
    let components: Vec<ComponentSeries> = component_series
        .iter()
        .map(|(name, c, b)| ComponentSeries {
            name,
            candidate: c,
            baseline: b,
        })
        .collect();
    let proportions =
        super::parity::proportions(source, spec, &vars("canary"), &vars("stable")).await;
    let input = ParityInput {
        candidate: &candidate,
        baseline: &baseline,
        components: &components,
        proportions,
    };
    Ok(parity::evaluate(spec, &input, previous_breaches, now))
}

fn summary(spec: &ParityPolicySpec, report: &parity::ParityReport) -> String {
    let figures = &report.figures;
    let measure = format!("{:?}", spec.measure).to_lowercase();
    let judged = parity::judged_value(figures, spec.measure);
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    let mut text = format!(
        "parity {:?}: {measure} {} bps (mean {} bps, tracking error {} bps, rms {} bps) over {} samples",
        report.counted_level,
        fmt(judged),
        fmt(figures.mean_bps),
        fmt(figures.stddev_bps),
        fmt(figures.rms_bps),
        figures.samples
    );
    if report.counted_level == ParityLevel::Insufficient
        && let Some(problem) = report.data_problem()
    {
        text.push_str(&format!("; {problem}"));
    }
    text
}

fn set_conditions(
    status: &mut ParityPolicyStatus,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    set_condition(
        &mut status.conditions,
        Condition::new(READY, ok, reason, message, now),
    );
    set_condition(
        &mut status.conditions,
        Condition::new(RECONCILING, false, reason, message, now),
    );
    set_condition(
        &mut status.conditions,
        Condition::new(STALLED, reason == "InvalidSpec", reason, message, now),
    );
}
