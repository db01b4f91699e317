//! Scenarios of a release going through staging and production, on a virtual clock.

use std::collections::BTreeMap;

use super::*;
use crate::api::canary_rollout::HistoryEntry;
use crate::api::parity_policy::{ParityEvaluation, ParityLevel, ParityPolicyStatus};
use crate::api::release_pipeline::{Promotion, ShortfallBudget};
use crate::api::slo_budget::{ObjectiveState, ObjectiveStatus, SLOBudgetStatus};
use crate::engine::pipeline_gates::{GateNote, ParityView, gate_note, read_gate_note};

const PIPELINE: &str = "
release: {containers: [checkout]}
environments:
- name: staging
  rolloutRef: {name: checkout-staging}
  soak: 7d
  verification:
    interval: 1h
    failureLimit: 2
    checks: [{name: error-rate, query: 'sum(x)', max: 0.01}]
  gates:
    sloBudgets: [checkout-slo]
    incidents: {matchers: ['service=checkout']}
  riskBudget: {maxCanaryWeight: 1, maxErrorBudgetSpend: 0.01}
- name: production
  rolloutRef: {name: checkout-production}
  promotion: Push
  soak: 0s
  riskBudget: {maxCanaryWeight: 5, maxErrorBudgetSpend: 0.05}
";

const DAY: i64 = 86_400;

struct World {
    spec: ReleasePipelineSpec,
    status: ReleasePipelineStatus,
    rollouts: [CanaryRolloutStatus; 2],
    targets: [TargetView; 2],
    budget: SLOBudgetStatus,
    /// The staging gates' ParityPolicy, when there is one.
    parity: Option<ParityPolicyStatus>,
    now: Timestamp,
    events: Vec<PlannedEvent>,
}

fn images(tag: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(
        "checkout".to_string(),
        format!("registry.local/checkout:{tag}"),
    )])
}

fn target(tag: &str) -> TargetView {
    TargetView {
        images: images(tag),
        revision: format!("rev-{tag}"),
    }
}

fn budget(remaining: f64, state: ObjectiveState) -> SLOBudgetStatus {
    SLOBudgetStatus {
        objectives: vec![ObjectiveStatus {
            name: "availability".into(),
            sli: Some(0.999),
            budget_remaining: Some(remaining),
            burn_rates: BTreeMap::new(),
            state,
        }],
        ..Default::default()
    }
}

fn all_clear() -> Measurements {
    Measurements {
        checks: vec![Ok(0.001)],
        alerts: Some(Ok(Vec::new())),
        ..Default::default()
    }
}

impl World {
    /// Both environments settled on 2.0; staging's target now holds 2.1.
    fn new() -> Self {
        let settled = |tag: &str| CanaryRolloutStatus {
            phase: Some(Phase::Idle),
            stable_revision: Some(format!("rev-{tag}")),
            ..Default::default()
        };
        Self {
            spec: serde_saphyr::from_str(PIPELINE).expect("spec parses"),
            status: ReleasePipelineStatus::default(),
            rollouts: [settled("2.0"), settled("2.0")],
            targets: [target("2.1"), target("2.0")],
            budget: budget(0.80, ObjectiveState::Meeting),
            parity: None,
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            events: Vec::new(),
        }
    }

    fn step(&mut self, staging: Option<Measurements>) -> Plan {
        let views = (0..2)
            .map(|i| EnvironmentView {
                rollout: Some(&self.rollouts[i]),
                target: Some(self.targets[i].clone()),
                budgets: match i {
                    0 => vec![BudgetView {
                        name: "checkout-slo".into(),
                        status: Some(&self.budget),
                    }],
                    _ => Vec::new(),
                },
                parity: match (i, &self.parity) {
                    (0, Some(status)) => vec![ParityView {
                        name: "checkout-parity".into(),
                        status: Some(status),
                    }],
                    _ => Vec::new(),
                },
                measured: if i == 0 { staging.clone() } else { None },
            })
            .collect();
        let plan = plan(&Snapshot {
            spec: &self.spec,
            status: &self.status,
            generation: Some(1),
            environments: views,
            problems: &[],
            now: self.now,
        });
        self.status = plan.status.clone();
        self.events.extend(plan.events.clone());
        plan
    }

    fn advance(&mut self, secs: i64) {
        self.now = Timestamp::from_second(self.now.as_second() + secs).unwrap();
    }

    fn entry(&self, tag: &str, environment: &str) -> &EnvironmentRelease {
        let release = self
            .status
            .releases
            .iter()
            .find(|r| r.images == images(tag))
            .expect("release tracked");
        pipeline_gates::entry_of(release, environment).expect("environment entry")
    }

    fn canary(&mut self, env: usize, tag: &str, weight: u32) {
        let rollout = &mut self.rollouts[env];
        rollout.phase = Some(Phase::Progressing);
        rollout.canary_revision = Some(format!("rev-{tag}"));
        rollout.canary_weight = Some(weight);
        rollout.rollout_started_at.get_or_insert(self.now);
    }

    fn promoted(&mut self, env: usize, tag: &str) {
        let rollout = &mut self.rollouts[env];
        rollout.phase = Some(Phase::Succeeded);
        rollout.stable_revision = Some(format!("rev-{tag}"));
        rollout.canary_weight = Some(0);
        rollout.history.push(HistoryEntry {
            revision: format!("rev-{tag}"),
            result: RolloutResult::Promoted,
            started_at: self.now,
            finished_at: self.now,
            reason: "analysis passed".into(),
        });
    }

    fn admission(&self, env: usize, tag: &str) -> Admission {
        admission(&self.spec, &self.status, env, &images(tag))
    }
}

#[test]
fn a_good_release_soaks_in_staging_then_is_pushed_to_production() {
    let mut world = World::new();
    world.step(None);
    assert_eq!(world.status.releases[0].name, "checkout:2.1");
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Waiting);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Waiting
    );
    assert_eq!(
        world.admission(1, "2.1"),
        Admission::Wait(
            "checkout:2.1 is Waiting in staging: waiting for the rollout to start".into()
        )
    );

    world.canary(0, "2.1", 1);
    world.step(None);
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Progressing);
    assert_eq!(staging.risk_spent.canary_weight, Some(1));

    world.promoted(0, "2.1");
    world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Soaking);
    world.advance(3 * DAY);
    let plan = world.step(Some(all_clear()));
    assert!(plan.pushes.is_empty());
    assert_eq!(
        world.entry("2.1", "staging").soak.as_deref(),
        Some("3d of 7d")
    );
    assert_eq!(
        world.admission(1, "2.1"),
        Admission::Wait("checkout:2.1 has soaked 3d of 7d in staging".into())
    );
    // The soak's end is the next thing due, unless a verification comes first.
    assert_eq!(plan.requeue_after, Duration::from_secs(300));

    world.advance(4 * DAY);
    let plan = world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);
    assert_eq!(world.admission(1, "2.1"), Admission::Admit);
    assert_eq!(
        plan.pushes,
        vec![Push {
            environment: 1,
            images: images("2.1")
        }]
    );
    assert!(world.events.iter().any(|e| e.reason == "ReleasePushed"));

    // Pushed: production's target holds 2.1, its canary runs, then it is promoted (no soak).
    world.targets[1] = target("2.1");
    let plan = world.step(None);
    assert!(plan.pushes.is_empty(), "pushed once");
    world.canary(1, "2.1", 5);
    world.step(None);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Progressing
    );
    world.promoted(1, "2.1");
    world.step(None);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Promoted
    );
    let reasons: Vec<&str> = world.events.iter().map(|e| e.reason).collect();
    for reason in [
        "ReleaseSeen",
        "ReleaseProgressing",
        "ReleaseSoaking",
        "ReleaseVerified",
        "ReleasePromoted",
    ] {
        assert!(
            reasons.contains(&reason),
            "{reason} missing from {reasons:?}"
        );
    }
}

#[test]
fn a_check_failing_during_the_soak_revokes_the_release_downstream_too() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.step(Some(all_clear()));
    world.advance(DAY);
    let failing = Measurements {
        checks: vec![Ok(0.05)],
        ..all_clear()
    };
    world.step(Some(failing.clone()));
    let staging = world.entry("2.1", "staging");
    assert_eq!(
        (staging.phase, staging.failed_verifications),
        (ReleasePhase::Soaking, 1)
    );
    world.advance(3600);
    world.step(Some(failing));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Revoked);
    assert_eq!(
        staging.message,
        "revoked in staging: check error-rate = 0.05 above max 0.01, 2 verifications in a row"
    );
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Revoked
    );
    let Admission::Revoke(reason) = world.admission(1, "2.1") else {
        panic!("production must not take a revoked release");
    };
    assert_eq!(
        reason,
        "checkout:2.1 revoked in staging: check error-rate = 0.05 above max 0.01, 2 verifications in a row"
    );
    assert!(
        world
            .events
            .iter()
            .any(|e| e.warning && e.reason == "ReleaseRevoked")
    );
    // Later verifications change nothing: revoked is final.
    world.advance(7 * DAY);
    let plan = world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Revoked);
    assert!(plan.pushes.is_empty());
}

#[test]
fn an_active_alert_holds_a_soaked_release_until_it_resolves() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.advance(7 * DAY);
    let alert = Measurements {
        alerts: Some(Ok(vec!["alert CheckoutLatencyHigh active".into()])),
        ..all_clear()
    };
    let plan = world.step(Some(alert));
    assert!(plan.pushes.is_empty());
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Soaking);
    let Admission::Wait(why) = world.admission(1, "2.1") else {
        panic!("held");
    };
    assert_eq!(
        why,
        "checkout:2.1 has soaked 7d of 7d in staging; soaked 7d of 7d; held: unresolved incident: alert CheckoutLatencyHigh active"
    );
    world.advance(3600);
    let plan = world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);
    assert_eq!(plan.pushes.len(), 1);
}

#[test]
fn an_error_budget_overrun_during_the_canary_revokes_naming_the_budget() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(Some(all_clear()));
    assert_eq!(
        world
            .entry("2.1", "staging")
            .risk_spent
            .error_budget_at_start,
        Some(0.8)
    );
    world.budget = budget(0.785, ObjectiveState::Meeting);
    world.advance(3600);
    world.step(Some(all_clear()));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Revoked);
    assert_eq!(staging.risk_spent.error_budget, Some(0.015));
    assert!(
        staging
            .message
            .contains("risk budget maxErrorBudgetSpend exceeded"),
        "{}",
        staging.message
    );
    // The staging rollout itself is told to roll its canary back.
    assert!(matches!(world.admission(0, "2.1"), Admission::Revoke(_)));
}

#[test]
fn a_critical_slo_revokes_and_a_shortfall_over_budget_revokes() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.step(Some(all_clear()));
    world.budget = budget(0.80, ObjectiveState::Critical);
    world.advance(3600);
    world.step(Some(all_clear()));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Revoked);
    assert_eq!(
        staging.message,
        "revoked in staging: SLO checkout-slo/availability Critical: critically violated"
    );

    let mut world = World::new();
    world.spec.environments[0].risk_budget.shortfall = Some(ShortfallBudget {
        query: "pnl".into(),
        max: 1000.0,
        unit: Some("USD".into()),
    });
    world.canary(0, "2.1", 1);
    world.step(Some(Measurements {
        shortfall: Some(Ok(1520.0)),
        ..all_clear()
    }));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Revoked);
    assert_eq!(
        staging.message,
        "revoked in staging: risk budget shortfall exceeded: 1520 USD > max 1000 USD"
    );
}

#[test]
fn a_release_git_puts_in_production_before_it_soaked_waits() {
    let mut world = World::new();
    world.spec.environments[1].promotion = Promotion::GitOps;
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.step(Some(all_clear()));
    world.advance(2 * DAY);
    world.targets[1] = target("2.1");
    let plan = world.step(Some(all_clear()));
    assert!(
        plan.pushes.is_empty(),
        "GitOps environments are never pushed"
    );
    let production = world.entry("2.1", "production");
    assert_eq!(production.phase, ReleasePhase::Waiting);
    assert_eq!(
        production.message,
        "checkout:2.1 has soaked 2d of 7d in staging"
    );
    // A release never seen upstream waits too, saying so.
    assert_eq!(
        world.admission(1, "2.2"),
        Admission::Wait("checkout:2.2 has not run in staging yet".into())
    );
}

#[test]
fn invalid_pipelines_are_named_field_by_field() {
    let spec: ReleasePipelineSpec = serde_saphyr::from_str(
        "
release: {containers: [checkout]}
environments:
- {name: staging, rolloutRef: {name: checkout}, soak: 30s, verification: {interval: 1m}}
- name: production
  rolloutRef: {name: checkout, namespace: shop}
  verification: {interval: 0s, checks: [{name: latency, query: q, maxIncrease: 0.1}]}
  gates:
    incidents: {matchers: ['severity']}
    minVolume: {query: 'sum(increase(trades_total[{{window}}])', min: 100}
  riskBudget: {shortfall: {query: 'sum(shortfall_{{day}})', max: 10}}
",
    )
    .unwrap();
    let mut problems = validate(&spec, "shop");
    let volume = problems.remove(4);
    assert!(
        volume.starts_with("spec.environments[1].gates.minVolume.query: ")
            && volume.contains("sum(increase(trades_total[{{window}}])"),
        "{volume}"
    );
    let shortfall = problems.remove(4);
    assert!(
        shortfall.starts_with("spec.environments[1].riskBudget.shortfall.query: ")
            && shortfall.contains("day"),
        "{shortfall}"
    );
    assert_eq!(
        problems,
        vec![
            "spec.environments[0].soak 30s is shorter than verification.interval 1m",
            "spec.environments[1].rolloutRef shop/checkout is also environment staging's: a release would cycle",
            "spec.environments[1].verification.interval must be longer than 0s",
            "spec.environments[1].verification.checks[0] needs min or max, and no maxIncrease/maxDecrease (nothing to compare with once promoted)",
            "spec.environments[1].gates.incidents.matchers[0] \"severity\" is not name=value, name!=value, name=~regex or name!~regex",
        ]
    );
    let stages: Vec<Stage> = serde_saphyr::from_str("[{weight: 1}, {weight: 5}]").unwrap();
    assert_eq!(
        rollout_problems(0, Some(1), &stages),
        vec![
            "spec.environments[0].riskBudget.maxCanaryWeight 1: the rollout's stage 1 sends 5% to the canary"
        ]
    );
    assert!(rollout_problems(0, None, &stages).is_empty());
}

#[test]
fn durations_for_people_keep_two_units() {
    let cases = [
        (5, "5s"),
        (130, "2m10s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (3 * 86_400 + 7200, "3d2h"),
        (7 * 86_400, "7d"),
    ];
    for (secs, text) in cases {
        assert_eq!(coarse(Duration::from_secs(secs)), text);
    }
}

#[test]
fn a_gate_note_round_trips_and_applies_only_to_its_revision() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    let candidate = images("2.1");
    let note = gate_note(
        "shop/checkout",
        &world.spec,
        &world.status,
        1,
        ("rev-2.1", &candidate),
        Some("rev-2.0"),
    );
    let text = serde_json::to_string(&note).unwrap();
    assert_eq!(
        text,
        r#"{"pipeline":"shop/checkout","environment":"production","revision":"rev-2.1","verdict":"Wait","reason":"checkout:2.1 is Progressing in staging"}"#
    );
    assert_eq!(read_gate_note(&text), Ok(note.clone()));
    let (admission, revoked) = note.verdicts(Some("rev-2.1"), Some("rev-2.0"));
    assert_eq!(
        admission,
        Admission::Wait("checkout:2.1 is Progressing in staging".into())
    );
    assert_eq!(revoked, None);
    // A note about another revision (written before Git changed the target) decides nothing.
    let admit: GateNote = read_gate_note(
        r#"{"pipeline":"shop/checkout","environment":"production","revision":"rev-2.1","verdict":"Admit"}"#,
    )
    .unwrap();
    assert_eq!(admit.verdicts(Some("rev-2.1"), None).0, Admission::Admit);
    assert_eq!(
        admit.verdicts(Some("rev-3.0"), None).0,
        Admission::Wait(
            "waiting for ReleasePipeline shop/checkout's verdict on this revision".into()
        )
    );
    let revoked = read_gate_note(
        r#"{"pipeline":"p","environment":"e","revision":"r","verdict":"Admit","stableRevision":"s1","stableRevoked":"checkout:2.1 revoked in staging: x"}"#,
    )
    .unwrap();
    assert!(revoked.verdicts(Some("r"), Some("s1")).1.is_some());
    assert_eq!(revoked.verdicts(Some("r"), Some("s0")).1, None);
    assert!(
        read_gate_note("yes")
            .unwrap_err()
            .starts_with("annotation sluice.dev/pipeline-gate")
    );
}

#[test]
fn too_little_volume_holds_until_the_minimum_is_reached() {
    let mut world = World::new();
    world.spec.environments[0].gates.min_volume = Some(crate::api::release_pipeline::MinVolume {
        query: "trades".into(),
        min: 100.0,
    });
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.advance(7 * DAY);
    let plan = world.step(Some(Measurements {
        volume: Some(Ok(42.0)),
        ..all_clear()
    }));
    assert!(plan.pushes.is_empty());
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Soaking);
    assert_eq!(staging.held_by, vec!["volume 42 of at least 100"]);
    // No data is no volume: it holds too.
    world.advance(3600);
    world.step(Some(Measurements {
        volume: Some(Err("no data".into())),
        ..all_clear()
    }));
    assert_eq!(
        world.entry("2.1", "staging").held_by,
        vec!["volume: no data"]
    );
    world.advance(3600);
    let plan = world.step(Some(Measurements {
        volume: Some(Ok(130.0)),
        ..all_clear()
    }));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);
    assert_eq!(plan.pushes.len(), 1);
}

#[test]
fn a_verified_release_replaced_keeps_its_phase_and_a_replaced_canary_is_superseded() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.advance(7 * DAY);
    world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);

    // 2.2 reaches staging's target; its canary is replaced by 2.3 before promotion.
    world.targets[0] = target("2.2");
    world.rollouts[0].rollout_started_at = None;
    world.canary(0, "2.2", 1);
    world.advance(2 * DAY);
    let plan = world.step(Some(all_clear()));
    assert_eq!(
        world.entry("2.2", "staging").phase,
        ReleasePhase::Progressing
    );
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);
    // 2.1 is no longer verified here, and its old verification does not make the pipeline spin.
    assert_eq!(plan.requeue_after, Duration::from_secs(300));

    world.targets[0] = target("2.3");
    world.canary(0, "2.3", 1);
    world.step(None);
    let replaced = world.entry("2.2", "staging");
    assert_eq!(replaced.phase, ReleasePhase::Superseded);
    assert_eq!(
        replaced.message,
        "replaced by checkout:2.3 before its promotion"
    );
    let downstream = world.entry("2.2", "production");
    assert_eq!(downstream.phase, ReleasePhase::Superseded);
    assert_eq!(
        downstream.message,
        "superseded in staging before it was cleared there"
    );
    assert_eq!(world.status.releases[0].name, "checkout:2.3");
    assert!(world.events.iter().any(|e| e.reason == "ReleaseSuperseded"
        && !e.warning
        && e.note == "checkout:2.2 in staging: replaced by checkout:2.3 before its promotion"));
}

#[test]
fn a_release_replaced_while_soaking_is_superseded_and_soaks_afresh_if_it_comes_back() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    world.advance(3 * DAY);
    world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Soaking);

    // 2.2 takes staging's target three days into 2.1's soak: 2.1 is never verified, so it is
    // superseded at once, in staging and in production, which waited for it.
    world.targets[0] = target("2.2");
    world.step(None);
    let superseded = world.entry("2.1", "staging");
    assert_eq!(superseded.phase, ReleasePhase::Superseded);
    assert_eq!(
        superseded.message,
        "replaced by checkout:2.2 before it was verified"
    );
    assert_eq!(superseded.promoted_at, None);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Superseded
    );
    assert_eq!(world.entry("2.2", "staging").phase, ReleasePhase::Waiting);
    // Production is told why, should someone set 2.1 there by hand.
    assert_eq!(
        world.admission(1, "2.1"),
        Admission::Wait(
            "checkout:2.1 is Superseded in staging: replaced by checkout:2.2 before it was verified"
                .into()
        )
    );
    // Nothing of it is pushed, however long it stays.
    world.advance(7 * DAY);
    let plan = world.step(Some(all_clear()));
    assert!(plan.pushes.is_empty());
    assert_eq!(
        world.entry("2.1", "staging").phase,
        ReleasePhase::Superseded
    );

    // Back on staging's target before 2.2 started: 2.1 is still the stable there, promoted ten
    // days ago, and soaks from that promotion; production waits for it again.
    world.targets[0] = target("2.1");
    let plan = world.step(Some(all_clear()));
    let back = world.entry("2.1", "staging");
    assert_eq!(back.phase, ReleasePhase::Verified, "{}", back.message);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Waiting
    );
    assert_eq!(plan.pushes.len(), 1, "cleared again, it is pushed");
}

#[test]
fn a_release_replaced_before_its_canary_started_is_superseded() {
    let mut world = World::new();
    world.step(None);
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Waiting);
    world.targets[0] = target("2.2");
    world.step(None);
    assert_eq!(
        world.entry("2.1", "staging").phase,
        ReleasePhase::Superseded
    );
    assert_eq!(world.entry("2.2", "staging").phase, ReleasePhase::Waiting);
    assert_eq!(
        world.entry("2.1", "production").phase,
        ReleasePhase::Superseded
    );
    // Production's own release, older than both, is not superseded by them.
    assert_eq!(
        world.entry("2.0", "production").phase,
        ReleasePhase::Promoted
    );
}

fn parity_at(time: Timestamp, level: ParityLevel, rms: f64) -> ParityPolicyStatus {
    let evaluation: ParityEvaluation = serde_json::from_value(serde_json::json!({
        "time": time.to_string(),
        "rmsDifferenceBps": rms,
        "samples": 30,
        "level": level,
    }))
    .expect("an evaluation");
    ParityPolicyStatus {
        last_evaluation: Some(evaluation),
        ..Default::default()
    }
}

#[test]
fn a_scheduled_parity_evaluation_gates_the_soak() {
    let mut world = World::new();
    world.canary(0, "2.1", 1);
    world.step(None);
    world.promoted(0, "2.1");
    let promoted = world.now;
    // An evaluation from before the promotion says nothing about this release.
    world.parity = Some(parity_at(
        Timestamp::from_second(promoted.as_second() - 60).unwrap(),
        ParityLevel::Pass,
        3.0,
    ));
    world.advance(7 * DAY);
    world.step(Some(all_clear()));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Soaking);
    assert_eq!(
        staging.held_by,
        vec!["ParityPolicy checkout-parity: no evaluation since the promotion"]
    );
    world.parity = Some(parity_at(world.now, ParityLevel::Warning, 31.0));
    world.advance(3600);
    world.step(Some(all_clear()));
    assert_eq!(
        world.entry("2.1", "staging").held_by,
        vec!["ParityPolicy checkout-parity Warning: rms 31 bps"]
    );
    world.parity = Some(parity_at(world.now, ParityLevel::Pass, 4.0));
    world.advance(3600);
    world.step(Some(all_clear()));
    assert_eq!(world.entry("2.1", "staging").phase, ReleasePhase::Verified);
    world.parity = Some(parity_at(world.now, ParityLevel::Critical, 62.0));
    world.advance(3600);
    world.step(Some(all_clear()));
    let staging = world.entry("2.1", "staging");
    assert_eq!(staging.phase, ReleasePhase::Revoked);
    assert_eq!(
        staging.message,
        "revoked in staging: ParityPolicy checkout-parity Critical: rms 62 bps"
    );
}
