//! The last part of the story: a ReleasePipeline from staging to production. Staging is a
//! second copy of checkout in the namespace `<namespace>-staging` with a canary at 1 %; a
//! release promoted there soaks for 10 s while its stable error ratio is verified every 2 s,
//! and only then does Sluice set it on production's Deployment, where the production rollout
//! takes it through its own stages.

use anyhow::{Context as _, bail};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::manifests::{
    self, APP, CHECK_MAX, CHECK_NAME, CHECK_WINDOW_SECONDS, FIELD_MANAGER, NEXT_VERSION, image,
};
use super::story::{follow_in, last_entry, phase, settle};
use super::timeline::{POLL, Timeline};
use crate::api::CanaryRollout;
use crate::api::canary_rollout::{Phase, RolloutResult};
use crate::api::release_pipeline::{EnvironmentRelease, ReleasePhase, ReleasePipeline};
use crate::engine::pipeline_gates::entry_of;

/// The environments' names, also the timeline's labels of their rollouts.
pub const STAGING: &str = "staging";
pub const PRODUCTION: &str = "production";
/// The release that goes from staging to production.
pub const PIPELINE_VERSION: &str = "6.0.0";
/// How long a release must run promoted in staging before production may take it.
pub const SOAK_SECONDS: u64 = 10;
/// How often a release in staging is verified.
const VERIFICATION_SECONDS: u64 = 2;

/// The namespace of the staging copy of checkout.
pub fn staging_namespace(namespace: &str) -> String {
    format!("{namespace}-{STAGING}")
}

/// Tells the pipeline's part of the story, production's rollout being the timeline's first.
pub async fn tell(client: &Client, namespace: &str, timeline: &mut Timeline) -> anyhow::Result<()> {
    let staging = staging_namespace(namespace);
    settle(timeline).await;
    timeline.say(format!(
        ">>> a pipeline: staging before production. Applying checkout ({}) with a 1 % canary in \
         namespace {staging}, and ReleasePipeline {APP}: staging (soak {SOAK_SECONDS} s, stable's \
         error ratio verified every {VERIFICATION_SECONDS} s, risk budget: canary weight <= 1 %) \
         → production (promotion: Push, Sluice sets the image)",
        image(NEXT_VERSION)
    ));
    apply_staging(client, &staging)
        .await
        .with_context(|| format!("applying checkout's staging copy in {staging}"))?;
    timeline.label_first(PRODUCTION);
    timeline.follow_rollout(client, &staging, APP, STAGING);
    timeline.waiting_for(format!("Sluice to adopt {APP} in {staging}"));
    follow_in(timeline, STAGING, |rollout| {
        (phase(rollout) == Some(Phase::Idle)).then_some(Ok(()))
    })
    .await?;

    let pipelines: Api<ReleasePipeline> = Api::namespaced(client.clone(), namespace);
    pipelines
        .patch(
            APP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(release_pipeline(&staging)),
        )
        .await
        .context("applying the ReleasePipeline")?;
    timeline.follow_events(client, namespace, "ReleasePipeline", APP, "pipeline");
    // The pipeline orders releases by when it first sees them: it must know what production
    // holds before staging gets a newer one, or it would take the newer one for the older.
    timeline.waiting_for(format!(
        "ReleasePipeline {APP} to see {NEXT_VERSION} in production"
    ));
    let current = format!("{APP}:{NEXT_VERSION}");
    await_phase(
        &pipelines,
        &current,
        PRODUCTION,
        ReleasePhase::Promoted,
        timeline,
    )
    .await?;

    let production_before = timeline.observe().await.and_then(|r| last_entry(&r));
    let staging_before = timeline.last_seen(STAGING).and_then(last_entry);
    timeline.say(format!(
        ">>> kubectl -n {staging} set image deployment/{APP} {APP}={}   (a new release enters \
         staging; nobody touches production)",
        image(PIPELINE_VERSION)
    ));
    manifests::set_image(client, &staging, &image(PIPELINE_VERSION)).await?;
    timeline.waiting_for(format!("the staging rollout of {PIPELINE_VERSION}"));
    let in_staging = follow_in(timeline, STAGING, |rollout| {
        last_entry(rollout)
            .filter(|entry| Some(entry) != staging_before.as_ref())
            .map(Ok)
    })
    .await?;
    if in_staging.result != RolloutResult::Promoted {
        bail!(
            "{PIPELINE_VERSION} was rolled back in staging: {}",
            in_staging.reason
        );
    }
    timeline.say(format!(
        "RESULT: {PIPELINE_VERSION} promoted in staging; it soaks there {SOAK_SECONDS} s before production may take it"
    ));

    timeline.waiting_for(format!(
        "{PIPELINE_VERSION} to soak in staging, be pushed to production and go through its rollout there"
    ));
    let in_production = super::story::follow(timeline, |rollout| {
        last_entry(rollout)
            .filter(|entry| Some(entry) != production_before.as_ref())
            .map(Ok)
    })
    .await?;
    if in_production.result != RolloutResult::Promoted {
        bail!(
            "{PIPELINE_VERSION} was rolled back in production: {}",
            in_production.reason
        );
    }
    // The pipeline records the promotion in the reconcile the rollout's move triggers.
    let release = format!("{APP}:{PIPELINE_VERSION}");
    timeline.waiting_for(format!(
        "ReleasePipeline {APP} to record {PIPELINE_VERSION} promoted in production"
    ));
    let pipeline = await_phase(
        &pipelines,
        &release,
        PRODUCTION,
        ReleasePhase::Promoted,
        timeline,
    )
    .await?;
    let soaked = soaked_before_production(&pipeline, &release)?;
    timeline.say(format!(
        "RESULT: {PIPELINE_VERSION} pushed to production by the pipeline after {soaked} in staging, and promoted there"
    ));
    timeline.say(format!("kubectl sluice pipeline {APP} -n {namespace}:"));
    let matrix = crate::plugin::pipeline::pipeline_matrix(&pipeline, jiff::Timestamp::now());
    for line in matrix.lines() {
        println!("          {line}");
    }
    Ok(())
}

/// `release`'s entry for `environment` in the pipeline's status.
fn entry<'p>(
    pipeline: &'p ReleasePipeline,
    release: &str,
    environment: &str,
) -> Option<&'p EnvironmentRelease> {
    let status = pipeline.status.as_ref()?;
    let release = status.releases.iter().find(|r| r.name == release)?;
    entry_of(release, environment)
}

/// Waits until the pipeline's status has `release` in `phase` in `environment`, and returns
/// the pipeline as then read.
async fn await_phase(
    pipelines: &Api<ReleasePipeline>,
    release: &str,
    environment: &str,
    phase: ReleasePhase,
    timeline: &mut Timeline,
) -> anyhow::Result<ReleasePipeline> {
    loop {
        if let Some(pipeline) = pipelines.get_opt(APP).await?
            && entry(&pipeline, release, environment).is_some_and(|e| e.phase == phase)
        {
            return Ok(pipeline);
        }
        tokio::time::sleep(POLL).await;
        timeline.observe().await;
    }
}

/// How long the release had run promoted in staging when its production canary started.
fn soaked_before_production(pipeline: &ReleasePipeline, release: &str) -> anyhow::Result<String> {
    let promoted = entry(pipeline, release, STAGING).and_then(|e| e.promoted_at);
    let started = entry(pipeline, release, PRODUCTION).and_then(|e| e.started_at);
    match (promoted, started) {
        (Some(promoted), Some(started)) => Ok(format!(
            "{:.0} s",
            started.duration_since(promoted).as_secs_f64()
        )),
        _ => bail!(
            "the pipeline's status lacks when {release} was promoted in staging or started in production: {:?}",
            pipeline.status
        ),
    }
}

/// Server-side applies staging's Deployment (the version production runs), Service, HTTPRoute
/// and CanaryRollout.
async fn apply_staging(client: &Client, namespace: &str) -> Result<(), kube::Error> {
    manifests::apply_service(client, namespace, NEXT_VERSION).await?;
    let rollouts: Api<CanaryRollout> = Api::namespaced(client.clone(), namespace);
    rollouts
        .patch(
            APP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(staging_rollout()),
        )
        .await?;
    Ok(())
}

/// Staging's rollout: production's with one stage at 1 %, judged by the same check, without
/// production's ParityPolicy and SLOBudget.
fn staging_rollout() -> Value {
    let mut rollout = manifests::canary_rollout();
    let spec = &mut rollout["spec"];
    spec["stages"] = json!([{"weight": 1, "pause": "5s"}]);
    if let Some(analysis) = spec["analysis"].as_object_mut() {
        analysis.remove("parityPolicyRef");
        analysis.remove("sloBudgetRef");
    }
    rollout
}

/// The 5xx share of the stable track's requests, the check a release in staging is verified by.
fn stable_error_query() -> String {
    let stable = r#"namespace="{{namespace}}",track="stable""#;
    let window = CHECK_WINDOW_SECONDS;
    format!(
        r#"sum(rate(http_requests_total{{{stable},code=~"5.."}}[{window}s])) / sum(rate(http_requests_total{{{stable}}}[{window}s]))"#
    )
}

fn release_pipeline(staging_namespace: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ReleasePipeline",
        "metadata": {"name": APP},
        "spec": {
            "release": {"containers": [APP]},
            "environments": [
                {
                    "name": STAGING,
                    "rolloutRef": {"name": APP, "namespace": staging_namespace},
                    "soak": format!("{SOAK_SECONDS}s"),
                    "verification": {
                        "interval": format!("{VERIFICATION_SECONDS}s"),
                        "failureLimit": 2,
                        "checks": [{"name": CHECK_NAME, "query": stable_error_query(), "max": CHECK_MAX}]
                    },
                    "riskBudget": {"maxCanaryWeight": 1}
                },
                {
                    "name": PRODUCTION,
                    "rolloutRef": {"name": APP},
                    "promotion": "Push"
                }
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::{rollout_problems, validate};
    use crate::metrics::{TemplateVars, render, validate_promql};

    #[test]
    fn the_pipeline_is_valid_and_stagings_rollout_fits_its_risk_budget() {
        let pipeline: ReleasePipeline =
            serde_json::from_value(release_pipeline("demo-staging")).unwrap();
        assert_eq!(validate(&pipeline.spec, "demo"), Vec::<String>::new());
        let staging: CanaryRollout = serde_json::from_value(staging_rollout()).unwrap();
        assert!(staging.spec.analysis.parity_policy_ref.is_none());
        assert!(staging.spec.analysis.slo_budget_ref.is_none());
        assert_eq!(staging.spec.analysis.checks.len(), 1);
        assert_eq!(
            rollout_problems(0, Some(1), &staging.spec.stages),
            Vec::<String>::new()
        );
        let check = &pipeline.spec.environments[0].verification.checks[0];
        let rendered = render(
            &check.query,
            &TemplateVars::new().set("namespace", "demo-staging"),
        )
        .unwrap();
        validate_promql(&rendered).unwrap();
        assert!(rendered.contains(r#"namespace="demo-staging",track="stable""#));
    }
}
