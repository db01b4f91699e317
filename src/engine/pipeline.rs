//! The ReleasePipeline plan: where each release stands in each environment, what a
//! verification concludes, which release Sluice pushes to the next environment.
//!
//! All state lives in the pipeline's status (phases with their `since`, the promotion time the
//! soak counts from, the verification counters), so a restarted operator or a new leader
//! continues where the last one stopped, and the state does not grow with the soak's length.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::pipeline_gates::{
    self, Admission, BudgetView, Measurements, ParityView, admission, release_name, release_of,
};
use super::rollout::PlannedEvent;
use crate::api::canary_rollout::{CanaryRolloutStatus, Phase, RolloutResult, Stage};
use crate::api::conditions::{Condition, READY, RECONCILING, STALLED, set_condition};
use crate::api::release_pipeline::{
    EnvironmentRelease, ReleasePhase, ReleasePipelineSpec, ReleasePipelineStatus, ReleaseStatus,
    RiskSpent,
};

/// Releases kept in the status.
pub const RELEASE_LIMIT: usize = 10;
const REST_REQUEUE: Duration = Duration::from_secs(300);
const INVALID_REQUEUE: Duration = Duration::from_secs(60);

/// The target Deployment of an environment: its images and pod-template revision.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetView {
    pub images: BTreeMap<String, String>,
    pub revision: String,
}

/// What the pipeline reads of one environment.
#[derive(Clone, Debug, Default)]
pub struct EnvironmentView<'a> {
    pub rollout: Option<&'a CanaryRolloutStatus>,
    pub target: Option<TargetView>,
    /// The SLOBudgets its gates read.
    pub budgets: Vec<BudgetView<'a>>,
    /// The ParityPolicies its gates read.
    pub parity: Vec<ParityView<'a>>,
    /// Measured in this reconcile, when a verification was due (see [`verification_due`]).
    pub measured: Option<Measurements>,
}

pub struct Snapshot<'a> {
    pub spec: &'a ReleasePipelineSpec,
    pub status: &'a ReleasePipelineStatus,
    pub generation: Option<i64>,
    /// One per environment, in spec order.
    pub environments: Vec<EnvironmentView<'a>>,
    /// Problems found by validation and dereferencing; any stalls the pipeline.
    pub problems: &'a [String],
    pub now: Timestamp,
}

/// Images Sluice sets on an environment's target (promotion: Push).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub environment: usize,
    pub images: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: ReleasePipelineStatus,
    pub events: Vec<PlannedEvent>,
    pub pushes: Vec<Push>,
    pub requeue_after: Duration,
}

/// Spec problems that need no cluster: repeated names or rollouts (a cycle), a soak shorter
/// than the verification interval, relative verification checks, queries that are not PromQL,
/// unknown matchers.
pub fn validate(spec: &ReleasePipelineSpec, namespace: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: Vec<(&str, (String, &str))> = Vec::new();
    for (i, env) in spec.environments.iter().enumerate() {
        let rollout = rollout_key(env, namespace);
        if let Some((other, _)) = seen.iter().find(|(name, _)| *name == env.name) {
            problems.push(format!(
                "spec.environments[{i}].name {other:?} is used twice"
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, r)| *r == rollout) {
            problems.push(format!(
                "spec.environments[{i}].rolloutRef {}/{} is also environment {other}'s: a release would cycle",
                rollout.0, rollout.1
            ));
        }
        seen.push((&env.name, rollout));
        if env.verification.interval.is_zero() {
            problems.push(format!(
                "spec.environments[{i}].verification.interval must be longer than 0s"
            ));
        }
        if !env.soak.is_zero() && env.soak < env.verification.interval {
            problems.push(format!(
                "spec.environments[{i}].soak {} is shorter than verification.interval {}",
                env.soak, env.verification.interval
            ));
        }
        for (c, check) in env.verification.checks.iter().enumerate() {
            if check.is_relative() || (check.min.is_none() && check.max.is_none()) {
                problems.push(format!(
                    "spec.environments[{i}].verification.checks[{c}] needs min or max, and no maxIncrease/maxDecrease (nothing to compare with once promoted)"
                ));
            }
            let field = format!("spec.environments[{i}].verification.checks[{c}].query");
            problems.extend(promql_problem(&field, &check.query));
        }
        if let Some(volume) = &env.gates.min_volume {
            let field = format!("spec.environments[{i}].gates.minVolume.query");
            problems.extend(promql_problem(&field, &volume.query));
        }
        if let Some(shortfall) = &env.risk_budget.shortfall {
            let field = format!("spec.environments[{i}].riskBudget.shortfall.query");
            problems.extend(promql_problem(&field, &shortfall.query));
        }
        if let Some(gate) = &env.gates.incidents {
            for (m, matcher) in gate.matchers.iter().enumerate() {
                if crate::metrics::alert_matchers::parse(matcher).is_err() {
                    problems.push(format!(
                        "spec.environments[{i}].gates.incidents.matchers[{m}] {matcher:?} is not name=value, name!=value, name=~regex or name!~regex"
                    ));
                }
            }
        }
    }
    problems
}

/// A problem when `query` does not render with the template variables or parse as PromQL.
fn promql_problem(field: &str, query: &str) -> Option<String> {
    crate::metrics::template::validate_promql(query)
        .err()
        .map(|error| format!("{field}: {error}"))
}

/// Namespace and name of an environment's rollout.
pub fn rollout_key<'s>(
    env: &'s crate::api::release_pipeline::Environment,
    namespace: &'s str,
) -> (String, &'s str) {
    let ns = env.rollout_ref.namespace.as_deref().unwrap_or(namespace);
    (ns.to_string(), env.rollout_ref.name.as_str())
}

/// Problems of an environment's rollout: stages beyond the risk budget's traffic share.
pub fn rollout_problems(index: usize, budget_weight: Option<u32>, stages: &[Stage]) -> Vec<String> {
    let Some(max) = budget_weight else {
        return Vec::new();
    };
    stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.weight > max)
        .map(|(s, stage)| {
            format!(
                "spec.environments[{index}].riskBudget.maxCanaryWeight {max}: the rollout's stage {s} sends {}% to the canary",
                stage.weight
            )
        })
        .collect()
}

/// Whether environment `index` is due a verification: its current release is in flight or
/// promoted there, and the last verification is older than the interval.
pub fn verification_due(
    spec: &ReleasePipelineSpec,
    status: &ReleasePipelineStatus,
    index: usize,
    target: Option<&TargetView>,
    now: Timestamp,
) -> bool {
    let env = &spec.environments[index];
    let Some(images) = target.and_then(|t| release_of(spec, &t.images)) else {
        return false;
    };
    let Some(entry) = status
        .releases
        .iter()
        .find(|r| r.images == images)
        .and_then(|r| pipeline_gates::entry_of(r, &env.name))
    else {
        return false;
    };
    let verified = matches!(
        entry.phase,
        ReleasePhase::Progressing | ReleasePhase::Soaking | ReleasePhase::Verified
    );
    verified
        && entry
            .last_verification
            .is_none_or(|last| elapsed(last, now) >= env.verification.interval.as_std())
}

pub fn plan(snapshot: &Snapshot) -> Plan {
    let mut planner = Planner {
        s: snapshot,
        status: snapshot.status.clone(),
        events: Vec::new(),
        pushes: Vec::new(),
    };
    planner.status.observed_generation = snapshot.generation;
    if !snapshot.problems.is_empty() {
        return planner.invalid();
    }
    // Downstream first, so that of two releases first seen together the upstream one is newer.
    for index in (0..snapshot.spec.environments.len()).rev() {
        planner.register(index);
    }
    for index in 0..snapshot.spec.environments.len() {
        planner.observe(index);
    }
    planner.finish()
}

struct Planner<'s, 'a> {
    s: &'s Snapshot<'a>,
    status: ReleasePipelineStatus,
    events: Vec<PlannedEvent>,
    pushes: Vec<Push>,
}

impl Planner<'_, '_> {
    fn invalid(mut self) -> Plan {
        let message = format!("invalid spec: {}", self.s.problems.join("; "));
        let stalled = self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.is_true() && c.message == message);
        if !stalled {
            self.event(true, "InvalidSpec", message.clone());
        }
        self.set_health(false, "InvalidSpec", &message, true);
        let events = self.events;
        Plan {
            status: self.status,
            events,
            pushes: Vec::new(),
            requeue_after: INVALID_REQUEUE,
        }
    }

    fn event(&mut self, warning: bool, reason: &'static str, note: String) {
        self.events.push(PlannedEvent {
            warning,
            reason,
            note,
        });
    }

    fn set_health(&mut self, ready: bool, reason: &str, message: &str, stalled: bool) {
        let in_flight = !stalled && self.in_flight();
        for (type_, value) in [(READY, ready), (RECONCILING, in_flight), (STALLED, stalled)] {
            let mut condition = Condition::new(type_, value, reason, message, self.s.now);
            condition.observed_generation = self.s.generation;
            set_condition(&mut self.status.conditions, condition);
        }
    }

    fn in_flight(&self) -> bool {
        self.status.releases.first().is_some_and(|r| {
            r.environments.iter().any(|e| {
                matches!(
                    e.phase,
                    ReleasePhase::Waiting | ReleasePhase::Progressing | ReleasePhase::Soaking
                )
            })
        })
    }

    /// Environment `index`: the release its target holds, every release's phase there, the
    /// verification, and a push from upstream.
    fn observe(&mut self, index: usize) {
        let env_name = self.s.spec.environments[index].name.clone();
        if index > 0 {
            self.await_upstream(index);
        }
        for r in 0..self.status.releases.len() {
            if pipeline_gates::entry_of(&self.status.releases[r], &env_name).is_some() {
                self.update(r, index);
            }
        }
        if index > 0 {
            self.push(index);
        }
    }

    /// The release environment `index`'s target holds, with its revision there.
    fn register(&mut self, index: usize) {
        let view = &self.s.environments[index];
        if let Some(target) = &view.target
            && let Some(images) = release_of(self.s.spec, &target.images)
        {
            let r = self.release_index(images);
            let entry = self.entry(r, index);
            entry.revision = Some(target.revision.clone());
        }
    }

    /// The release for `images`, added as the newest when first seen.
    fn release_index(&mut self, images: BTreeMap<String, String>) -> usize {
        if let Some(r) = self.status.releases.iter().position(|r| r.images == images) {
            return r;
        }
        let name = release_name(&images);
        self.event(false, "ReleaseSeen", format!("new release {name}"));
        self.status.releases.insert(
            0,
            ReleaseStatus {
                name,
                images,
                first_seen: self.s.now,
                environments: Vec::new(),
            },
        );
        self.status.releases.truncate(RELEASE_LIMIT);
        0
    }

    /// The release's entry for environment `index`, created Waiting, kept in pipeline order.
    fn entry(&mut self, r: usize, index: usize) -> &mut EnvironmentRelease {
        let spec = self.s.spec;
        let name = &spec.environments[index].name;
        let now = self.s.now;
        let release = &mut self.status.releases[r];
        let position = match release.environments.iter().position(|e| &e.name == name) {
            Some(p) => p,
            None => {
                let order = |n: &str| spec.environments.iter().position(|e| e.name == n);
                let at = release
                    .environments
                    .iter()
                    .position(|e| order(&e.name) > Some(index))
                    .unwrap_or(release.environments.len());
                release.environments.insert(
                    at,
                    EnvironmentRelease {
                        name: name.clone(),
                        phase: ReleasePhase::Waiting,
                        since: now,
                        revision: None,
                        started_at: None,
                        promoted_at: None,
                        soak: None,
                        risk_spent: RiskSpent::default(),
                        failed_verifications: 0,
                        last_verification: None,
                        held_by: Vec::new(),
                        message: String::new(),
                    },
                );
                at
            }
        };
        &mut release.environments[position]
    }

    /// The release upstream's target holds waits here too, so the matrix shows what comes.
    fn await_upstream(&mut self, index: usize) {
        let Some(images) = self.held(index - 1) else {
            return;
        };
        if let Some(r) = self.status.releases.iter().position(|r| r.images == images) {
            self.entry(r, index);
        }
    }

    /// Brings one release's phase in environment `index` up to date.
    fn update(&mut self, r: usize, index: usize) {
        let spec = self.s.spec;
        let env = &spec.environments[index];
        let view = &self.s.environments[index];
        let now = self.s.now;
        let release_images = self.status.releases[r].images.clone();
        let name = self.status.releases[r].name.clone();
        let current = self
            .held(index)
            .is_some_and(|images| images == release_images);
        let admitted = admission(spec, &self.status, index, &release_images);
        let revoked_upstream = self
            .upstream_in(r, index, ReleasePhase::Revoked)
            .map(|(_, entry)| entry.message.clone());
        let superseded_upstream = self
            .upstream_in(r, index, ReleasePhase::Superseded)
            .map(|(upstream, _)| upstream.to_string());
        let replaced_by = self.replacement(r, index);
        let Some(entry) = self.status.releases[r]
            .environments
            .iter_mut()
            .find(|e| e.name == env.name)
        else {
            return;
        };
        let before = (entry.phase, entry.message.clone());
        let rollout = view.rollout;
        let revision = entry.revision.clone();
        let is = |field: Option<&String>| revision.is_some() && field == revision.as_ref();
        let rollout_phase = rollout.and_then(|s| s.phase);

        let settled = matches!(
            entry.phase,
            ReleasePhase::Verified | ReleasePhase::Promoted | ReleasePhase::RolledBack
        );
        if entry.phase != ReleasePhase::Revoked {
            if let Some(message) = revoked_upstream {
                entry.phase = ReleasePhase::Revoked;
                entry.message = message;
            } else if let Some(other) = replaced_by.filter(|_| !settled) {
                if entry.phase != ReleasePhase::Superseded {
                    entry.message = match entry.phase {
                        ReleasePhase::Soaking => {
                            format!("replaced by {other} before it was verified")
                        }
                        _ => format!("replaced by {other} before its promotion"),
                    };
                    entry.phase = ReleasePhase::Superseded;
                }
                // Should it come back, its soak counts from its latest promotion.
                entry.promoted_at = None;
            } else if let Some(upstream) = superseded_upstream.filter(|_| {
                !current
                    && matches!(
                        entry.phase,
                        ReleasePhase::Waiting | ReleasePhase::Superseded
                    )
            }) {
                entry.phase = ReleasePhase::Superseded;
                entry.message = format!("superseded in {upstream} before it was cleared there");
            } else if let Some(status) = rollout.filter(|s| is(s.stable_revision.as_ref())) {
                let promoted_at = *entry.promoted_at.get_or_insert_with(|| {
                    promotion_time(status, revision.as_deref().unwrap_or_default()).unwrap_or(now)
                });
                soak(env, entry, promoted_at, current.then_some(view), now);
            } else if let Some(status) = rollout.filter(|s| is(s.canary_revision.as_ref())) {
                match rollout_phase {
                    Some(Phase::Progressing | Phase::Paused | Phase::Promoting) => {
                        entry.phase = ReleasePhase::Progressing;
                        entry.started_at = entry.started_at.or(status.rollout_started_at);
                        let weight = status.canary_weight.unwrap_or(0);
                        let spent = entry.risk_spent.canary_weight.unwrap_or(0).max(weight);
                        entry.risk_spent.canary_weight = Some(spent);
                        entry.message = status.message.clone().unwrap_or_default();
                        if let Some(measured) = view.measured.as_ref().filter(|_| current) {
                            verify_budgets(env, entry, &view.budgets, measured, now);
                        }
                    }
                    Some(Phase::RolledBack | Phase::Frozen) => {
                        entry.phase = ReleasePhase::RolledBack;
                        entry.message = status.message.clone().unwrap_or_default();
                    }
                    _ => {}
                }
            } else if matches!(
                entry.phase,
                ReleasePhase::Waiting | ReleasePhase::Superseded
            ) || entry.phase == ReleasePhase::Progressing && current
            {
                entry.phase = ReleasePhase::Waiting;
                entry.message = match (&admitted, index) {
                    (Admission::Wait(why), _) => why.clone(),
                    (_, 0) => "waiting for the rollout to start".to_string(),
                    (_, _) if current => {
                        "cleared upstream; waiting for the rollout to start".to_string()
                    }
                    (_, _) => format!("cleared upstream; waiting for {name} to reach {}", env.name),
                };
            }
        }
        if (entry.phase, &entry.message) != (before.0, &before.1) {
            if entry.phase != before.0 {
                entry.since = now;
            }
            let (warning, reason) = phase_event(entry.phase);
            let note = format!("{name} in {}: {}", env.name, entry.message);
            if entry.phase != before.0 {
                self.event(warning, reason, note);
            }
        }
    }

    /// The release environment `index`'s target holds, as the images of the release containers.
    fn held(&self, index: usize) -> Option<BTreeMap<String, String>> {
        self.s.environments[index]
            .target
            .as_ref()
            .and_then(|t| release_of(self.s.spec, &t.images))
    }

    /// The first environment before `index` where release `r` is in `phase`, with its entry.
    fn upstream_in(
        &self,
        r: usize,
        index: usize,
        phase: ReleasePhase,
    ) -> Option<(&str, &EnvironmentRelease)> {
        self.s.spec.environments[..index]
            .iter()
            .find_map(|upstream| {
                pipeline_gates::entry_of(&self.status.releases[r], &upstream.name)
                    .filter(|e| e.phase == phase)
                    .map(|e| (upstream.name.as_str(), e))
            })
    }

    /// The release that took release `r`'s place in environment `index`: one the environment's
    /// target holds instead, once `r` had been there, or, if it never got there, a newer one.
    fn replacement(&self, r: usize, index: usize) -> Option<String> {
        let images = self.held(index)?;
        let held = self
            .status
            .releases
            .iter()
            .position(|x| x.images == images)?;
        let release = &self.status.releases[r];
        let was_here = pipeline_gates::entry_of(release, &self.s.spec.environments[index].name)
            .is_some_and(|e| e.revision.is_some());
        (held != r && (was_here || held < r)).then(|| self.status.releases[held].name.clone())
    }

    /// Sets the upstream release on a `Push` environment once it is cleared there and newer
    /// than what the environment holds.
    fn push(&mut self, index: usize) {
        let spec = self.s.spec;
        let env = &spec.environments[index];
        if env.promotion != crate::api::release_pipeline::Promotion::Push {
            return;
        }
        let upstream = &spec.environments[index - 1].name;
        let here = self.held(index);
        let held_here = here.as_ref().and_then(|images| {
            self.status
                .releases
                .iter()
                .position(|r| &r.images == images)
        });
        let candidate = self.status.releases.iter().enumerate().find(|(_, r)| {
            pipeline_gates::entry_of(r, upstream).is_some_and(|e| e.phase.releases_downstream())
                && pipeline_gates::entry_of(r, &env.name)
                    .is_none_or(|e| e.phase == ReleasePhase::Waiting)
        });
        let Some((r, release)) = candidate else {
            return;
        };
        if held_here.is_some_and(|h| h <= r) {
            return;
        }
        let images = release.images.clone();
        let note = format!(
            "{} pushed to {}: cleared in {upstream}",
            release.name, env.name
        );
        self.pushes.push(Push {
            environment: index,
            images,
        });
        self.event(false, "ReleasePushed", note);
    }

    fn finish(mut self) -> Plan {
        let summary = match self.status.releases.first() {
            Some(release) => {
                let phases: Vec<String> = release
                    .environments
                    .iter()
                    .map(|e| format!("{} {}", e.name, e.phase))
                    .collect();
                format!("{}: {}", release.name, phases.join(", "))
            }
            None => "no release seen yet".to_string(),
        };
        self.set_health(true, "Evaluated", &summary, false);
        let requeue_after = self.requeue();
        Plan {
            status: self.status,
            events: self.events,
            pushes: self.pushes,
            requeue_after,
        }
    }

    /// The next moment something is due: a verification or a soak's end.
    fn requeue(&self) -> Duration {
        let mut next = REST_REQUEUE;
        for (env, view) in self.s.spec.environments.iter().zip(&self.s.environments) {
            // Only the release an environment holds now is verified there.
            let held = view
                .target
                .as_ref()
                .and_then(|t| release_of(self.s.spec, &t.images));
            for release in self
                .status
                .releases
                .iter()
                .filter(|r| Some(&r.images) == held.as_ref())
            {
                let Some(entry) = pipeline_gates::entry_of(release, &env.name) else {
                    continue;
                };
                let due = match entry.phase {
                    ReleasePhase::Progressing | ReleasePhase::Soaking | ReleasePhase::Verified => {
                        let interval = env.verification.interval.as_std();
                        let since = entry
                            .last_verification
                            .map_or(Duration::ZERO, |l| elapsed(l, self.s.now));
                        let mut due = interval.saturating_sub(since);
                        if let Some(promoted) = entry.promoted_at {
                            let soaked = elapsed(promoted, self.s.now);
                            if soaked < env.soak.as_std() {
                                due = due.min(env.soak.as_std() - soaked);
                            }
                        }
                        due
                    }
                    // Waiting moves with upstream, which the lines above time.
                    _ => continue,
                };
                next = next.min(due);
            }
        }
        next.max(Duration::from_secs(1))
    }
}

/// A promoted release: soak progress, verification, Soaking ↔ Verified, or Revoked.
fn soak(
    env: &crate::api::release_pipeline::Environment,
    entry: &mut EnvironmentRelease,
    promoted_at: Timestamp,
    current: Option<&EnvironmentView>,
    now: Timestamp,
) {
    let soaked = elapsed(promoted_at, now);
    if env.soak.is_zero() {
        entry.phase = ReleasePhase::Promoted;
        entry.message = "promoted; no soak here".to_string();
        return;
    }
    let soak_done = soaked >= env.soak.as_std();
    entry.soak = Some(format!(
        "{} of {}",
        coarse(soaked.min(env.soak.as_std())),
        env.soak
    ));
    // A release this environment no longer holds (replaced once verified, or its target
    // unreadable) keeps its last phase: it is no longer verified.
    let Some(view) = current else {
        return;
    };
    if let Some(measured) = &view.measured {
        let mut verdict = pipeline_gates::judge(
            &env.risk_budget,
            &env.verification.checks,
            env.gates.min_volume.as_ref().map(|v| v.min),
            &view.budgets,
            measured,
            entry,
        );
        pipeline_gates::judge_parity(&view.parity, promoted_at, &mut verdict);
        entry.last_verification = Some(now);
        entry.held_by = verdict.holds;
        entry.failed_verifications = match &verdict.failed_check {
            Some(_) => entry.failed_verifications + 1,
            None => 0,
        };
        let revoke = verdict.revoke.or_else(|| {
            verdict
                .failed_check
                .filter(|_| entry.failed_verifications >= env.verification.failure_limit)
                .map(|check| {
                    format!(
                        "{check}, {} verifications in a row",
                        entry.failed_verifications
                    )
                })
        });
        if let Some(reason) = revoke {
            entry.phase = ReleasePhase::Revoked;
            entry.message = format!("revoked in {}: {reason}", env.name);
            return;
        }
    }
    let verified_since_promotion = entry.last_verification.is_some_and(|l| l >= promoted_at);
    let open = verified_since_promotion && entry.held_by.is_empty();
    entry.phase = if soak_done && open {
        ReleasePhase::Verified
    } else {
        ReleasePhase::Soaking
    };
    entry.message = match (soak_done, open) {
        (true, true) => format!("soaked {} and verified", env.soak),
        (_, false) if !entry.held_by.is_empty() => format!(
            "soaked {}; held: {}",
            entry.soak.as_deref().unwrap_or_default(),
            entry.held_by.join("; ")
        ),
        (true, false) => "soaked; waiting for a verification".to_string(),
        (false, _) => format!("soaked {}", entry.soak.as_deref().unwrap_or_default()),
    };
}

/// During the canary only the risk budget is judged: the rollout's own checks judge the rest.
fn verify_budgets(
    env: &crate::api::release_pipeline::Environment,
    entry: &mut EnvironmentRelease,
    budgets: &[BudgetView],
    measured: &Measurements,
    now: Timestamp,
) {
    let verdict = pipeline_gates::judge(&env.risk_budget, &[], None, budgets, measured, entry);
    entry.last_verification = Some(now);
    if let Some(reason) = verdict.revoke {
        entry.phase = ReleasePhase::Revoked;
        entry.message = format!("revoked in {}: {reason}", env.name);
    }
}

/// When the rollout promoted `revision`, from its history.
fn promotion_time(status: &CanaryRolloutStatus, revision: &str) -> Option<Timestamp> {
    status
        .history
        .iter()
        .rev()
        .find(|h| h.revision == revision && h.result == RolloutResult::Promoted)
        .map(|h| h.finished_at)
}

fn phase_event(phase: ReleasePhase) -> (bool, &'static str) {
    match phase {
        ReleasePhase::Waiting => (false, "ReleaseWaiting"),
        ReleasePhase::Progressing => (false, "ReleaseProgressing"),
        ReleasePhase::Soaking => (false, "ReleaseSoaking"),
        ReleasePhase::Verified => (false, "ReleaseVerified"),
        ReleasePhase::Promoted => (false, "ReleasePromoted"),
        ReleasePhase::Revoked => (true, "ReleaseRevoked"),
        ReleasePhase::RolledBack => (true, "ReleaseRolledBack"),
        ReleasePhase::Superseded => (false, "ReleaseSuperseded"),
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    now.duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// A duration for people: two units at most (3d2h, 5h30m, 4m10s).
pub fn coarse(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
