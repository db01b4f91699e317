//! The gates of a release pipeline: what a verification of an environment concludes, and
//! whether an environment's rollout may start (or must abandon) a release.

use std::collections::BTreeMap;

use crate::api::canary_rollout::Check;
use crate::api::parity_policy::ParityPolicyStatus;
use crate::api::release_pipeline::{
    EnvironmentRelease, ReleasePhase, ReleasePipelineSpec, ReleasePipelineStatus, ReleaseStatus,
    RiskBudget,
};
use crate::api::slo_budget::{ObjectiveState, SLOBudgetStatus};

/// What a verification measured in one environment (the queries that ran; `Err` is the
/// failure's message).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    /// Per verification check, in spec order.
    pub checks: Vec<Result<f64, String>>,
    pub volume: Option<Result<f64, String>>,
    pub shortfall: Option<Result<f64, String>>,
    /// Active, unsilenced alerts matching the incident gate, described ("alert X active").
    pub alerts: Option<Result<Vec<String>, String>>,
}

/// An SLOBudget the gates read, as the store holds it (None: not found).
#[derive(Clone, Debug)]
pub struct BudgetView<'a> {
    pub name: String,
    pub status: Option<&'a SLOBudgetStatus>,
}

/// A ParityPolicy the gates read, as the store holds it (None: not found).
#[derive(Clone, Debug)]
pub struct ParityView<'a> {
    pub name: String,
    pub status: Option<&'a ParityPolicyStatus>,
}

/// The parity gate of a release promoted at `since`: each policy's latest evaluation since then.
pub fn judge_parity(policies: &[ParityView], since: jiff::Timestamp, verdict: &mut GateVerdict) {
    use crate::api::parity_policy::ParityLevel;
    for policy in policies {
        let name = &policy.name;
        let Some(status) = policy.status else {
            verdict.holds.push(format!("ParityPolicy {name} not found"));
            continue;
        };
        let Some(evaluation) = status.last_evaluation.as_ref().filter(|e| e.time >= since) else {
            verdict.holds.push(format!(
                "ParityPolicy {name}: no evaluation since the promotion"
            ));
            continue;
        };
        let level = evaluation.level;
        let rms = evaluation
            .rms_difference_bps
            .map_or(String::new(), |bps| format!(": rms {} bps", round(bps)));
        match level {
            ParityLevel::Pass => {}
            ParityLevel::Critical | ParityLevel::Emergency => {
                verdict
                    .revoke
                    .get_or_insert(format!("ParityPolicy {name} {level}{rms}"));
            }
            ParityLevel::Warning | ParityLevel::Insufficient => {
                verdict
                    .holds
                    .push(format!("ParityPolicy {name} {level}{rms}"));
            }
        }
    }
}

/// What one verification concludes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GateVerdict {
    /// A budget or gate that revokes the release, named with its figures.
    pub revoke: Option<String>,
    /// A check out of bounds (counts toward `failureLimit`).
    pub failed_check: Option<String>,
    /// What keeps the gate closed for now.
    pub holds: Vec<String>,
}

/// The risk-budget and gate verdict of one environment, from its measurements and budgets.
/// `spent` is updated with the figures measured.
pub fn judge(
    risk: &RiskBudget,
    checks: &[Check],
    min_volume: Option<f64>,
    budgets: &[BudgetView],
    measured: &Measurements,
    entry: &mut EnvironmentRelease,
) -> GateVerdict {
    let mut verdict = GateVerdict::default();
    for (check, value) in checks.iter().zip(&measured.checks) {
        match value {
            Ok(v) if check.max.is_some_and(|max| *v > max) => {
                verdict.failed_check.get_or_insert(format!(
                    "check {} = {} above max {}",
                    check.name,
                    round(*v),
                    check.max.unwrap_or_default()
                ));
            }
            Ok(v) if check.min.is_some_and(|min| *v < min) => {
                verdict.failed_check.get_or_insert(format!(
                    "check {} = {} below min {}",
                    check.name,
                    round(*v),
                    check.min.unwrap_or_default()
                ));
            }
            Ok(_) => {}
            Err(e) => verdict.holds.push(format!("check {}: {e}", check.name)),
        }
    }
    judge_budgets(risk, budgets, entry, &mut verdict);
    if let Some(shortfall) = &measured.shortfall {
        match shortfall {
            Ok(value) => {
                entry.risk_spent.shortfall = Some(round(*value));
                if let Some(budget) = &risk.shortfall
                    && *value > budget.max
                {
                    let unit = budget
                        .unit
                        .as_deref()
                        .map_or(String::new(), |u| format!(" {u}"));
                    verdict.revoke.get_or_insert(format!(
                        "risk budget shortfall exceeded: {}{unit} > max {}{unit}",
                        round(*value),
                        budget.max
                    ));
                }
            }
            Err(e) => verdict.holds.push(format!("shortfall: {e}")),
        }
    }
    if let (Some(min), Some(volume)) = (min_volume, &measured.volume) {
        match volume {
            Ok(v) if *v < min => verdict
                .holds
                .push(format!("volume {} of at least {min}", round(*v))),
            Ok(_) => {}
            Err(e) => verdict.holds.push(format!("volume: {e}")),
        }
    }
    match &measured.alerts {
        Some(Ok(alerts)) if !alerts.is_empty() => verdict
            .holds
            .push(format!("unresolved incident: {}", alerts.join("; "))),
        Some(Err(e)) => verdict.holds.push(format!("incidents unknown: {e}")),
        _ => {}
    }
    verdict
}

/// SLO states and the error-budget part of the risk budget.
fn judge_budgets(
    risk: &RiskBudget,
    budgets: &[BudgetView],
    entry: &mut EnvironmentRelease,
    verdict: &mut GateVerdict,
) {
    let mut least_remaining: Option<f64> = None;
    for budget in budgets {
        let Some(status) = budget.status else {
            verdict
                .holds
                .push(format!("SLOBudget {} not found", budget.name));
            continue;
        };
        if status.objectives.is_empty() {
            verdict
                .holds
                .push(format!("SLOBudget {} not evaluated yet", budget.name));
        }
        for objective in &status.objectives {
            let what = format!("SLO {}/{} {}", budget.name, objective.name, objective.state);
            match objective.state {
                ObjectiveState::Meeting => {}
                ObjectiveState::Critical => {
                    verdict
                        .revoke
                        .get_or_insert(format!("{what}: critically violated"));
                }
                _ => verdict.holds.push(what),
            }
            if let Some(remaining) = objective.budget_remaining {
                least_remaining = Some(least_remaining.map_or(remaining, |l| l.min(remaining)));
            }
        }
    }
    let Some(remaining) = least_remaining else {
        return;
    };
    let at_start = *entry
        .risk_spent
        .error_budget_at_start
        .get_or_insert(remaining);
    let spent = (at_start - remaining).max(0.0);
    entry.risk_spent.error_budget = Some(round(spent));
    if let Some(max) = risk.max_error_budget_spend
        && spent > max
    {
        verdict.revoke.get_or_insert(format!(
            "risk budget maxErrorBudgetSpend exceeded: {} of the error budget burnt > max {max}",
            round(spent)
        ));
    }
}

/// Four significant figures, for figures written into status and messages.
fn round(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let digits = 3 - value.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// What an environment's rollout may do with a candidate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", content = "reason")]
pub enum Admission {
    /// Not part of a pipeline, or cleared by it.
    Admit,
    /// The release has not cleared the environment before: do not start it.
    Wait(String),
    /// The release was revoked: do not start it, roll back a canary of it.
    Revoke(String),
}

/// The release a set of images makes for the pipeline's containers; None when one is missing.
pub fn release_of(
    spec: &ReleasePipelineSpec,
    images: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    spec.release
        .containers
        .iter()
        .map(|c| images.get(c).map(|image| (c.clone(), image.clone())))
        .collect()
}

/// Short name of a release: each image's last path segment, e.g. `checkout:2.1`.
pub fn release_name(images: &BTreeMap<String, String>) -> String {
    let short: Vec<&str> = images
        .values()
        .map(|image| image.rsplit('/').next().unwrap_or(image))
        .collect();
    short.join(",")
}

/// Whether environment `index`'s rollout may run a candidate with these images.
pub fn admission(
    spec: &ReleasePipelineSpec,
    status: &ReleasePipelineStatus,
    index: usize,
    candidate_images: &BTreeMap<String, String>,
) -> Admission {
    let Some(images) = release_of(spec, candidate_images) else {
        return Admission::Wait(format!(
            "the target lacks a release container ({})",
            spec.release.containers.join(", ")
        ));
    };
    let name = release_name(&images);
    let release = status.releases.iter().find(|r| r.images == images);
    let entry = |i: usize| release.and_then(|r| entry_of(r, &spec.environments[i].name));
    // A revoked entry's message names where and why ("revoked in staging: ...").
    if let Some(here) = entry(index).filter(|e| e.phase == ReleasePhase::Revoked) {
        return Admission::Revoke(format!("{name} {}", here.message));
    }
    if index == 0 {
        return Admission::Admit;
    }
    let upstream = &spec.environments[index - 1].name;
    match entry(index - 1) {
        None => Admission::Wait(format!("{name} has not run in {upstream} yet")),
        Some(e) if e.phase.releases_downstream() => Admission::Admit,
        Some(e) if e.phase == ReleasePhase::Revoked => {
            Admission::Revoke(format!("{name} {}", e.message))
        }
        Some(e) => Admission::Wait(waiting_message(&name, upstream, e)),
    }
}

/// Why a release waits for the environment before: "checkout:2.1 has soaked 3d of 7d in
/// staging", or what holds it there.
pub fn waiting_message(name: &str, upstream: &str, entry: &EnvironmentRelease) -> String {
    match (entry.phase, &entry.soak) {
        (ReleasePhase::Soaking, Some(soak)) => {
            let mut message = format!("{name} has soaked {soak} in {upstream}");
            if entry.message.contains("held:") {
                message.push_str(&format!("; {}", entry.message));
            }
            message
        }
        (phase, _) if entry.message.is_empty() => format!("{name} is {phase} in {upstream}"),
        (phase, _) => format!("{name} is {phase} in {upstream}: {}", entry.message),
    }
}

pub fn entry_of<'r>(
    release: &'r ReleaseStatus,
    environment: &str,
) -> Option<&'r EnvironmentRelease> {
    release.environments.iter().find(|e| e.name == environment)
}

/// The environment of the pipeline (living in `home`) whose rollout is `namespace/name`.
pub fn claimed_environment(
    spec: &ReleasePipelineSpec,
    home: &str,
    namespace: &str,
    name: &str,
) -> Option<usize> {
    spec.environments.iter().position(|env| {
        env.rollout_ref.name == name
            && env.rollout_ref.namespace.as_deref().unwrap_or(home) == namespace
    })
}

/// Why environment `index`'s stable revision must be rolled back: the release it runs was
/// revoked (here or upstream) and the environment says `onRevoke: Rollback`.
pub fn stable_revoked(
    spec: &ReleasePipelineSpec,
    status: &ReleasePipelineStatus,
    index: usize,
    stable_revision: &str,
) -> Option<String> {
    let env = spec.environments.get(index)?;
    if env.on_revoke != crate::api::release_pipeline::OnRevoke::Rollback {
        return None;
    }
    status.releases.iter().find_map(|release| {
        let entry = entry_of(release, &env.name)?;
        (entry.phase == ReleasePhase::Revoked && entry.revision.as_deref() == Some(stable_revision))
            .then(|| format!("{} {}", release.name, entry.message))
    })
}

/// The annotation through which a pipeline in another cluster tells a rollout its verdict.
pub const GATE_ANNOTATION: &str = "sluice.dev/pipeline-gate";

/// What a pipeline tells a rollout in another cluster: the verdict on one candidate revision
/// and, when the stable revision's release was revoked there with `onRevoke: Rollback`, why to
/// undo it. Each part names the revision it is about, so a note written before the target
/// changed is never applied to another revision.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateNote {
    /// `namespace/name` of the pipeline, for people reading the annotation.
    pub pipeline: String,
    pub environment: String,
    /// The target revision (pod-template hash) the verdict is about.
    pub revision: String,
    #[serde(flatten)]
    pub admission: Admission,
    /// The stable revision `stable_revoked` is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revoked: Option<String>,
    /// The environment undoes revoked promotions: keep stable templates for that.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_templates: bool,
}

/// The note for environment `index`, from the pipeline's status as just planned; `candidate`
/// is the target's revision and images there.
pub fn gate_note(
    pipeline: &str,
    spec: &ReleasePipelineSpec,
    status: &ReleasePipelineStatus,
    index: usize,
    candidate: (&str, &BTreeMap<String, String>),
    stable_revision: Option<&str>,
) -> GateNote {
    let stable_revoked = stable_revision.and_then(|r| stable_revoked(spec, status, index, r));
    GateNote {
        pipeline: pipeline.to_string(),
        environment: spec.environments[index].name.clone(),
        revision: candidate.0.to_string(),
        admission: admission(spec, status, index, candidate.1),
        stable_revision: stable_revoked
            .as_ref()
            .and(stable_revision.map(str::to_string)),
        stable_revoked,
        keep_templates: keeps_templates(spec, index),
    }
}

/// A note read back from the annotation.
pub fn read_gate_note(annotation: &str) -> Result<GateNote, String> {
    serde_json::from_str(annotation)
        .map_err(|e| format!("annotation {GATE_ANNOTATION} is not a pipeline verdict: {e}"))
}

impl GateNote {
    /// The verdicts for a rollout whose target is at `target_revision` and stable at
    /// `stable_revision`: a verdict about another revision is no verdict yet (wait for the
    /// pipeline to write one).
    pub fn verdicts(
        &self,
        target_revision: Option<&str>,
        stable_revision: Option<&str>,
    ) -> (Admission, Option<String>) {
        let admission = match target_revision {
            Some(revision) if revision == self.revision => self.admission.clone(),
            _ => Admission::Wait(format!(
                "waiting for ReleasePipeline {}'s verdict on this revision",
                self.pipeline
            )),
        };
        let revoked = self.stable_revoked.clone().filter(|_| {
            self.stable_revision.is_some() && self.stable_revision.as_deref() == stable_revision
        });
        (admission, revoked)
    }
}

/// Whether environment `index` undoes revoked promotions, so its rollout keeps the templates of
/// its current and previous stable revisions.
pub fn keeps_templates(spec: &ReleasePipelineSpec, index: usize) -> bool {
    spec.environments
        .get(index)
        .is_some_and(|env| env.on_revoke == crate::api::release_pipeline::OnRevoke::Rollback)
}
