//! Runs a rollout's queries against Prometheus for one evaluation.

use futures::future::join_all;

use crate::api::CanaryRollout;
use crate::engine::analysis::{AnalysisInput, QueryOutcome};
use crate::metrics::{MetricsSource, PrometheusPool, TemplateVars, render};

/// Template variables of a rollout, for the given track.
pub fn template_vars(
    rollout: &CanaryRollout,
    track: &str,
    pod_template_hash: Option<&str>,
) -> TemplateVars {
    let spec = &rollout.spec;
    let status = rollout.status.clone().unwrap_or_default();
    TemplateVars::new()
        .set(
            "namespace",
            rollout.metadata.namespace.clone().unwrap_or_default(),
        )
        .set("target", spec.target_ref.name.clone())
        .set("service", spec.service.name.clone())
        .set("interval", spec.analysis.interval.to_string())
        .set("track", track)
        .set("canaryRevision", status.canary_revision.unwrap_or_default())
        .set("stableRevision", status.stable_revision.unwrap_or_default())
        .set("podTemplateHash", pod_template_hash.unwrap_or_default())
}

async fn run_query(source: &dyn MetricsSource, query: &str, vars: &TemplateVars) -> QueryOutcome {
    let rendered = render(query, vars).map_err(|e| e.to_string())?;
    source
        .query_value(&rendered, None)
        .await
        .map_err(|e| e.to_string())
}

/// Runs the sample count and every check concurrently. A Prometheus that cannot be reached
/// gives errors, which the engine treats as "hold".
pub async fn run(
    pool: &PrometheusPool,
    rollout: &CanaryRollout,
    canary_hash: Option<&str>,
) -> AnalysisInput {
    let analysis = &rollout.spec.analysis;
    let source = match pool.get(analysis.prometheus.as_ref().map(|p| p.address.as_str())) {
        Ok(source) => source,
        Err(error) => {
            let failed = || Err(error.to_string());
            return AnalysisInput {
                samples: analysis.sample_count_query.as_ref().map(|_| failed()),
                checks: analysis.checks.iter().map(|_| failed()).collect(),
                baselines: analysis
                    .checks
                    .iter()
                    .map(|c| c.is_relative().then(failed))
                    .collect(),
                gates: Vec::new(),
            };
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
    let baselines = join_all(analysis.checks.iter().map(|check| async {
        match check.is_relative() {
            true => Some(run_query(source.as_ref(), &check.query, &stable_vars).await),
            false => None,
        }
    }));
    let (samples, checks, baselines) = futures::join!(samples, checks, baselines);
    AnalysisInput {
        samples,
        checks,
        baselines,
        gates: Vec::new(),
    }
}
