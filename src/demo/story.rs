//! What the demo shows, step by step: Sluice adopts checkout 1.0.0, promotes the good 2.0.0
//! stage by stage, rolls back 4.0.0-drift when the ParityPolicy finds one symbol 60 bps off,
//! rolls back 3.0.0-bad when its error rate breaks the check, holds 5.0.0 while an incident has
//! spent the error budget, and then takes 6.0.0 from staging to production through a
//! ReleasePipeline ([`super::pipeline`]).

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use kube::Client;
use tokio::time::Instant;

use super::manifests::{
    self, APP, BAD_VERSION, CHECK_MAX, CHECK_NAME, CHECK_WINDOW_SECONDS, DRIFT_VERSION,
    FIRST_VERSION, GOOD_VERSION, NEXT_VERSION, PARITY_POLICY, SLO_BUDGET, image,
};
use super::simulator::{
    BAD_ERROR_RATIO, DRIFT, DRIFT_SYMBOL, GOOD_ERROR_RATIO, INCIDENT_ERROR_RATIO,
    REQUESTS_PER_SECOND, SYMBOLS, TrafficSimulator,
};
use super::timeline::{POLL, Timeline};
use crate::api::canary_rollout::{HistoryEntry, Phase, RolloutResult};
use crate::api::{CanaryRollout, SLOBudget};
use crate::plugin::requests::Request;
use kube::api::{Api, Patch, PatchParams};

/// How long the event of a finished rollout may lag behind its status.
const EVENT_LAG: Duration = Duration::from_secs(5);
/// Pause between two releases: three scrapes of Prometheus.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the rollout may stay Invalid while what it refers to reaches the operator's cache.
const INVALID_PATIENCE: Duration = Duration::from_secs(15);

/// Tells the whole story; an error says which step went wrong.
pub async fn tell(
    client: &Client,
    namespace: &str,
    timeline: &mut Timeline,
    simulator: &TrafficSimulator,
) -> anyhow::Result<()> {
    timeline.say(format!(
        "applying Deployment {APP} ({}, 3 replicas), Service {APP}, HTTPRoute {APP} and CanaryRollout {APP}",
        image(FIRST_VERSION)
    ));
    timeline.say(format!(
        "  the rollout: a shadow stage (the canary gets a copy of every request and serves no user), \
         then 1/5/25/100 %, 5 s each, an evaluation every 2 s; check {CHECK_NAME}: \
         the 5xx share of the canary's pods (by pod-template-hash) over {CHECK_WINDOW_SECONDS} s \
         must stay <= {CHECK_MAX}; rollback after 2 failed evaluations in a row"
    ));
    timeline.say(format!(
        "  ParityPolicy {PARITY_POLICY}: the canary's quotes against stable's for {} symbols, per \
         symbol and weighted by notional; 20 / 50 / 100 bps: hold, roll back, roll back and freeze",
        SYMBOLS.len()
    ));
    manifests::apply(client, namespace).await.context(
        "applying the demo's ParityPolicy, Deployment, Service, HTTPRoute and CanaryRollout",
    )?;

    timeline.waiting_for(format!("Sluice to adopt {APP} (phase Idle)"));
    // The rollout may be seen before the ParityPolicy it refers to reaches the operator's
    // cache: Invalid for a moment is expected, Invalid for long is not.
    let mut invalid_since = None;
    follow(timeline, |rollout| match phase(rollout) {
        Some(Phase::Idle) => Some(Ok(())),
        Some(Phase::Invalid) => {
            let since = *invalid_since.get_or_insert_with(Instant::now);
            (since.elapsed() > INVALID_PATIENCE).then(|| {
                let message = rollout.status.as_ref().and_then(|s| s.message.clone());
                Err(anyhow!(
                    "the demo's CanaryRollout is invalid: {}",
                    message.unwrap_or_default()
                ))
            })
        }
        _ => {
            invalid_since = None;
            None
        }
    })
    .await?;
    timeline.say(format!(
        "adopted: {APP}-stable runs {FIRST_VERSION} and the HTTPRoute sends it all traffic"
    ));

    let good = push(
        client,
        namespace,
        timeline,
        GOOD_VERSION,
        &format!(
            "a good version: the simulator fails {} of its requests",
            percent(GOOD_ERROR_RATIO)
        ),
    )
    .await?;
    if good.result != RolloutResult::Promoted {
        bail!(
            "{GOOD_VERSION} was rolled back although the simulator serves it with {} errors: {}",
            percent(GOOD_ERROR_RATIO),
            good.reason
        );
    }
    timeline.say(format!("RESULT: {GOOD_VERSION} promoted: {}", good.reason));

    let drift = push(
        client,
        namespace,
        timeline,
        DRIFT_VERSION,
        &format!(
            "a version whose {DRIFT_SYMBOL} quotes drift {:.0} bps high, with few errors",
            DRIFT * 10_000.0
        ),
    )
    .await?;
    if drift.result != RolloutResult::RolledBack || !drift.reason.contains("parity") {
        bail!(
            "{DRIFT_VERSION} was not rolled back by the ParityPolicy although its {DRIFT_SYMBOL} quotes drift: {}",
            drift.reason
        );
    }
    timeline.say(format!(
        "RESULT: {DRIFT_VERSION} rolled back: {}",
        drift.reason
    ));

    let bad = push(
        client,
        namespace,
        timeline,
        BAD_VERSION,
        &format!(
            "a bad version: the simulator fails {} of its requests",
            percent(BAD_ERROR_RATIO)
        ),
    )
    .await?;
    if bad.result != RolloutResult::RolledBack {
        bail!(
            "{BAD_VERSION} was promoted although the simulator serves it with {} errors: {}",
            percent(BAD_ERROR_RATIO),
            bad.reason
        );
    }
    timeline.say(format!("RESULT: {BAD_VERSION} rolled back: {}", bad.reason));
    timeline.say(format!(
        "{APP}-stable still runs {GOOD_VERSION} with all traffic; the Deployment {APP} keeps {BAD_VERSION} at 0 replicas"
    ));
    budget_freeze(client, namespace, timeline, simulator).await?;
    super::pipeline::tell(client, namespace, timeline).await
}

/// An incident on stable spends the error budget; the budget freezes releases; a good release
/// waits, and goes through once a person lets this one release pass.
async fn budget_freeze(
    client: &Client,
    namespace: &str,
    timeline: &mut Timeline,
    simulator: &TrafficSimulator,
) -> anyhow::Result<()> {
    settle(timeline).await;
    timeline.say(format!(
        ">>> an incident, not a release: {APP}-stable fails {} of users' requests",
        percent(INCIDENT_ERROR_RATIO)
    ));
    simulator.set_incident(true);
    timeline.waiting_for(format!("SLOBudget {SLO_BUDGET} to freeze releases"));
    let budgets: Api<SLOBudget> = Api::namespaced(client.clone(), namespace);
    let frozen = loop {
        let budget = budgets.get_opt(SLO_BUDGET).await?;
        let status = budget.and_then(|b| b.status).unwrap_or_default();
        if status.frozen {
            break status;
        }
        tokio::time::sleep(POLL).await;
        timeline.observe().await;
    };
    let left = frozen
        .objectives
        .iter()
        .filter_map(|o| o.budget_remaining)
        .fold(f64::INFINITY, f64::min);
    timeline.say(format!(
        "RESULT: SLOBudget {SLO_BUDGET} frozen: {} of the error budget left, below freezeBelowRemaining 10 %",
        percent_of(left)
    ));

    timeline.say(format!(
        ">>> kubectl -n {namespace} set image deployment/{APP} {APP}={}   (a good version, during the incident)",
        image(NEXT_VERSION)
    ));
    manifests::set_image(client, namespace, &image(NEXT_VERSION)).await?;
    timeline.waiting_for(format!(
        "the rollout of {NEXT_VERSION} to be held by the freeze"
    ));
    follow(timeline, |rollout| {
        (phase(rollout) == Some(Phase::Frozen)).then_some(Ok(()))
    })
    .await?;
    let message = timeline
        .observe()
        .await
        .and_then(|r| r.status?.message)
        .unwrap_or_default();
    timeline.say(format!(
        "RESULT: {NEXT_VERSION} waits, phase Frozen: {message}"
    ));

    simulator.set_incident(false);
    timeline.say("the incident is over; the budget stays spent until it leaves the 30 s window");
    let before = timeline.observe().await.and_then(|r| last_entry(&r));
    let rollout = timeline
        .observe()
        .await
        .ok_or_else(|| anyhow!("the CanaryRollout {APP} is gone"))?;
    let request = Request::Unfreeze.patch(&rollout, jiff::Timestamp::now())?;
    timeline.say(format!(
        ">>> kubectl sluice unfreeze {APP} -n {namespace}   ({})",
        request.summary
    ));
    let rollouts: Api<CanaryRollout> = Api::namespaced(client.clone(), namespace);
    rollouts
        .patch(APP, &PatchParams::default(), &Patch::Merge(&request.patch))
        .await?;
    timeline.waiting_for(format!("the rollout of {NEXT_VERSION} to finish"));
    let entry = follow(timeline, |rollout| {
        last_entry(rollout)
            .filter(|entry| Some(entry) != before.as_ref())
            .map(Ok)
    })
    .await?;
    if entry.result != RolloutResult::Promoted {
        bail!(
            "{NEXT_VERSION} was not promoted after the override: {}",
            entry.reason
        );
    }
    timeline.say(format!(
        "RESULT: {NEXT_VERSION} promoted through the freeze by request; the override was for this release only"
    ));
    Ok(())
}

/// Waits [`SETTLE`] while the timeline goes on.
pub(super) async fn settle(timeline: &mut Timeline) {
    let settled = Instant::now() + SETTLE;
    while Instant::now() < settled {
        tokio::time::sleep(POLL).await;
        timeline.observe().await;
    }
}

fn percent_of(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// Sets the image of the Deployment to `version` and follows the rollout until a new history
/// entry says how it ended, and its event has been printed.
async fn push(
    client: &Client,
    namespace: &str,
    timeline: &mut Timeline,
    version: &str,
    about: &str,
) -> anyhow::Result<HistoryEntry> {
    let before = timeline.observe().await.and_then(|r| last_entry(&r));
    if before.is_some() {
        // The simulator drops the last canary's series when its pods go; Prometheus marks them
        // stale at its next scrape (every second), as it would a real canary's. Without the
        // pause, a canary started at once could be judged on the last one's latest samples.
        timeline.waiting_for(format!(
            "{} s, until the last canary's series are stale in Prometheus",
            SETTLE.as_secs()
        ));
        settle(timeline).await;
    }
    timeline.say(format!(
        ">>> kubectl -n {namespace} set image deployment/{APP} {APP}={}   ({about}; {REQUESTS_PER_SECOND} requests/s in all, simulated)",
        image(version)
    ));
    manifests::set_image(client, namespace, &image(version))
        .await
        .with_context(|| format!("setting the image of Deployment {APP} to {version}"))?;
    let events_before = timeline.reasons_seen().len();

    timeline.waiting_for(format!(
        "the rollout of {version} to be promoted or rolled back"
    ));
    let entry = follow(timeline, |rollout| {
        if phase(rollout) == Some(Phase::Invalid) {
            return Some(Err(anyhow!(
                "the CanaryRollout became invalid during the rollout of {version}"
            )));
        }
        last_entry(rollout)
            .filter(|entry| Some(entry) != before.as_ref())
            .map(Ok)
    })
    .await?;

    let reason = match entry.result {
        RolloutResult::Promoted => "Promoted",
        RolloutResult::RolledBack => "RolledBack",
    };
    timeline.waiting_for(format!("the {reason} event of {version}"));
    let deadline = Instant::now() + EVENT_LAG;
    while !timeline.reasons_seen()[events_before..]
        .iter()
        .any(|r| r == reason)
        && Instant::now() < deadline
    {
        tokio::time::sleep(POLL).await;
        timeline.observe().await;
    }
    Ok(entry)
}

/// Observes the rollouts until `done` returns an outcome for the one labelled `label`.
pub(super) async fn follow_in<T>(
    timeline: &mut Timeline,
    label: &str,
    mut done: impl FnMut(&CanaryRollout) -> Option<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    loop {
        timeline.observe().await;
        if let Some(outcome) = timeline.last_seen(label).and_then(&mut done) {
            return outcome;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Observes the rollout until `done` returns an outcome.
pub(super) async fn follow<T>(
    timeline: &mut Timeline,
    mut done: impl FnMut(&CanaryRollout) -> Option<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    loop {
        if let Some(rollout) = timeline.observe().await
            && let Some(outcome) = done(&rollout)
        {
            return outcome;
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(super) fn phase(rollout: &CanaryRollout) -> Option<Phase> {
    rollout.status.as_ref()?.phase
}

pub(super) fn last_entry(rollout: &CanaryRollout) -> Option<HistoryEntry> {
    rollout.status.as_ref()?.history.last().cloned()
}

fn percent(ratio: f64) -> String {
    format!("{} %", ratio * 100.0)
}
