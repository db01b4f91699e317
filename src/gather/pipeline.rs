//! A verification of a release pipeline's environment: its checks, volume and shortfall
//! queries, and the incident gate (Alertmanager, or Prometheus `ALERTS` when Alertmanager is
//! not configured or cannot be reached). Failures become `Err` results, which hold the gate.

use futures::future::{OptionFuture, join_all};
use jiff::Timestamp;

use super::{MetricsSources, run_query, template_vars};
use crate::api::CanaryRollout;
use crate::api::duration::Duration;
use crate::api::release_pipeline::Environment;
use crate::engine::pipeline_gates::Measurements;
use crate::metrics::{MetricsSource, TemplateVars, alert_matchers, alertmanager};

/// Measures environment `env`, whose rollout is `rollout`; `since` is when the release entered
/// the environment (the `{{window}}` of the volume and shortfall queries).
pub async fn measure(
    sources: &dyn MetricsSources,
    rollout: &CanaryRollout,
    env: &Environment,
    since: Timestamp,
    now: Timestamp,
) -> Measurements {
    let address = rollout
        .spec
        .analysis
        .prometheus
        .as_ref()
        .map(|p| p.address.as_str());
    let source = match sources.source(address) {
        Ok(source) => source,
        Err(e) => return unreachable(env, &e.to_string()),
    };
    let window_secs = now.duration_since(since).as_secs().max(1);
    let vars = template_vars(rollout, "stable", None).set(
        "window",
        Duration::from_secs(window_secs.unsigned_abs()).to_string(),
    );
    let checks = join_all(
        env.verification
            .checks
            .iter()
            .map(|check| value(source.as_ref(), &check.query, &vars)),
    );
    let volume: OptionFuture<_> = env
        .gates
        .min_volume
        .as_ref()
        .map(|v| value(source.as_ref(), &v.query, &vars))
        .into();
    let shortfall: OptionFuture<_> = env
        .risk_budget
        .shortfall
        .as_ref()
        .map(|s| value(source.as_ref(), &s.query, &vars))
        .into();
    let alerts: OptionFuture<_> = env
        .gates
        .incidents
        .as_ref()
        .map(|gate| incidents(source.as_ref(), gate))
        .into();
    let (checks, volume, shortfall, alerts) = futures::join!(checks, volume, shortfall, alerts);
    Measurements {
        checks,
        volume,
        shortfall,
        alerts,
    }
}

async fn value(
    source: &dyn MetricsSource,
    query: &str,
    vars: &TemplateVars,
) -> Result<f64, String> {
    match run_query(source, query, vars).await? {
        Some(value) => Ok(value),
        None => Err("no data".to_string()),
    }
}

/// Active alerts matching the gate, described ("alert X active"): from Alertmanager when it
/// answers, else from `ALERTS`.
async fn incidents(
    source: &dyn MetricsSource,
    gate: &crate::api::release_pipeline::IncidentGate,
) -> Result<Vec<String>, String> {
    let matchers: Vec<_> = gate
        .matchers
        .iter()
        .filter_map(|m| alert_matchers::parse(m).ok())
        .collect();
    let unreachable = match &gate.alertmanager {
        Some(base) => match alertmanager::active_alerts(base, &matchers).await {
            Ok(names) => return Ok(names.iter().map(|n| format!("alert {n} active")).collect()),
            Err(e) => Some(e),
        },
        None => None,
    };
    let query = format!("count({})", alert_matchers::alerts_query(&matchers));
    match source.query_value(&query, None).await {
        Ok(Some(count)) if count > 0.0 => Ok(vec![format!(
            "{count} alert{} firing in Prometheus ALERTS",
            if count == 1.0 { "" } else { "s" }
        )]),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(match unreachable {
            Some(first) => format!("{first}; Prometheus ALERTS: {e}"),
            None => format!("Prometheus ALERTS: {e}"),
        }),
    }
}

/// Every measurement failed the same way.
fn unreachable(env: &Environment, reason: &str) -> Measurements {
    let failed = || Err(reason.to_string());
    Measurements {
        checks: env.verification.checks.iter().map(|_| failed()).collect(),
        volume: env.gates.min_volume.as_ref().map(|_| failed()),
        shortfall: env.risk_budget.shortfall.as_ref().map(|_| failed()),
        alerts: env
            .gates
            .incidents
            .as_ref()
            .map(|_| Err(reason.to_string())),
    }
}
