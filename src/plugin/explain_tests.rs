use super::*;
use crate::api::canary_rollout::HistoryEntry;
use crate::api::canary_rollout::{Phase, Verdict};
use crate::api::conditions::{Condition, FROZEN, STALLED};
use crate::api::parity_policy::ParityLevel;
use crate::engine::rollout::{FROZEN_BY_BUDGET, FROZEN_BY_ROLLBACK};
use crate::plugin::fixtures::{NOW, budget, parity_policy, rollout};

fn explain(rollout: &CanaryRollout, with_objects: bool) -> String {
    let policy = parity_policy();
    let budget = budget();
    Explained {
        rollout,
        parity_policy: with_objects.then_some(&policy),
        slo_budget: with_objects.then_some(&budget),
        now: NOW,
    }
    .render()
}

/// The section that starts with `title` up to the next blank line.
fn section(text: &str, title: &str) -> String {
    let start = text
        .find(title)
        .unwrap_or_else(|| panic!("no {title:?} in:\n{text}"));
    let rest = &text[start..];
    rest.split("\n\n").next().unwrap_or(rest).to_string()
}

fn with_status(edit: impl FnOnce(&mut CanaryRolloutStatus)) -> CanaryRollout {
    let mut rollout = rollout();
    edit(rollout.status.as_mut().expect("fixture status"));
    rollout
}

#[test]
fn a_progressing_rollout_is_explained_in_full() {
    assert_eq!(
        explain(&rollout(), true),
        "\
Name:       checkout
Namespace:  shop
Phase:      Progressing
Message:    stage 1 (5%): waiting for the pause (42s left)
Stage:      2/4, weight 5%, since 2026-11-18T11:05:28Z (72s ago)
Revisions:  canary 7f9c6d5a01, stable 6d8f7c9b02 (rollout started 3m10s ago)

Last evaluation: Pass, 8s ago (2026-11-18T11:06:32Z)
  all checks passed
  canary samples this interval: 320
  CHECK         VALUE   BOUNDS                                                                           VERDICT
  error-rate    0.002   max 0.01                                                                         Pass
  p99-latency   0.21    stable 0.2, change +5.0% (max +10.0%), interval +1.0% to +9.0%, 12 evaluations   Pass
  Parity (checkout-parity): Pass
    tracking error 12.4 bps, mean difference 3.1 bps, 24 samples, 0 breaches in a row
    attribution (policy evaluation 20s ago): fees 2.0 bps (65.0%), slippage 0.8 bps (26.0%), residual 0.3 bps
  SLO (checkout-slo): Meeting, budget remaining 82.0%
    OBJECTIVE      STATE     SLI      BUDGET   BURN RATES
    availability   Meeting   99.86%   71.0%    1h 0.4, 5m 0.3
    latency        Meeting   99.93%   93.0%    -

Waiting for:
  the pause: 48s left of 2m
  samples: 640 of 1000 counted at this stage
  next evaluation: due in 22s (every 30s)
  failed evaluations: 0 in a row of failureLimit 2

Conditions:
  TYPE          STATUS   REASON        AGE     MESSAGE
  Ready         False    Progressing   3m10s   rollout in progress
  Reconciling   True     Progressing   3m10s   stage 1 (5%)

History (newest last):
  REVISION     RESULT     FINISHED   TOOK   REASON
  5e1a2b3c4d   Promoted   25h ago    30m    all stages passed
"
    );
}

#[test]
fn missing_policy_objects_are_named_instead_of_their_details() {
    let text = explain(&rollout(), false);
    assert!(
        text.contains("    (ParityPolicy checkout-parity not found: no attribution)\n"),
        "{text}"
    );
    assert!(
        text.contains("    (SLOBudget checkout-slo not found: no burn rates)\n"),
        "{text}"
    );
    assert!(!text.contains("attribution (policy"), "{text}");
}

#[test]
fn a_failing_check_shows_its_value_bounds_and_why() {
    let rollout = with_status(|s| {
        let evaluation = s.last_evaluation.as_mut().unwrap();
        evaluation.verdict = Verdict::Fail;
        evaluation.checks[0].value = Some(0.034);
        evaluation.checks[0].verdict = Verdict::Fail;
        evaluation.checks[1].value = None;
        evaluation.checks[1].change = None;
        evaluation.checks[1].change_interval = None;
        evaluation.checks[1].evaluations = None;
        evaluation.checks[1].verdict = Verdict::NoData;
        evaluation.checks[1].message = Some("query returned no series".into());
        s.failed_evaluations = 1;
    });
    let text = explain(&rollout, true);
    let checks = section(&text, "  CHECK");
    assert!(
        checks.contains("error-rate    0.034     max 0.01     Fail"),
        "{checks}"
    );
    assert!(
        checks.contains("p99-latency   no data   stable 0.2   NoData (query returned no series)"),
        "{checks}"
    );
    assert!(
        text.contains("failed evaluations: 1 in a row of failureLimit 2"),
        "{text}"
    );
}

#[test]
fn a_stage_held_by_no_data_and_parity_says_so() {
    let rollout = with_status(|s| {
        let evaluation = s.last_evaluation.as_mut().unwrap();
        evaluation.verdict = Verdict::NoData;
        evaluation.message = Some("check error-rate: no data".into());
        evaluation.parity.as_mut().unwrap().level = ParityLevel::Warning;
    });
    let waiting = section(&explain(&rollout, true), "Waiting for:");
    assert!(
        waiting.contains("data: the last evaluation had none (check error-rate: no data); analysis.noData is Hold"),
        "{waiting}"
    );
    assert!(
        waiting.contains("parity: the level is Warning"),
        "{waiting}"
    );
}

#[test]
fn a_paused_rollout_says_how_to_resume() {
    let mut rollout = with_status(|s| s.phase = Some(Phase::Paused));
    rollout.spec.paused = true;
    let waiting = section(&explain(&rollout, true), "Waiting for:");
    assert!(
        waiting.contains(
            "spec.paused is true: no stage advances until `kubectl sluice resume checkout`"
        ),
        "{waiting}"
    );
}

#[test]
fn a_stage_not_started_waits_for_the_canary_pods() {
    let rollout = with_status(|s| {
        s.stage = Some(0);
        s.stage_started_at = None;
        s.last_evaluation = None;
    });
    let text = explain(&rollout, true);
    assert!(
        text.contains("Stage:      1/4, weight 5%, not started: the canary is not available yet"),
        "{text}"
    );
    assert!(text.contains("\nLast evaluation: none yet\n"), "{text}");
    let waiting = section(&text, "Waiting for:");
    assert_eq!(
        waiting,
        "Waiting for:\n  the canary's pods to become available (progressDeadline 10m, scaled up 3m10s ago)"
    );
}

#[test]
fn an_overdue_evaluation_is_reported_as_due_now() {
    let rollout = with_status(|s| {
        s.last_evaluation.as_mut().unwrap().time = "2026-11-18T11:06:00Z".parse().unwrap();
    });
    let waiting = section(&explain(&rollout, true), "Waiting for:");
    assert!(
        waiting.contains("next evaluation: due now (10s overdue) (every 30s)"),
        "{waiting}"
    );
}

#[test]
fn a_frozen_rollout_names_the_freeze_and_its_remedy() {
    let cases = [
        (
            FROZEN_BY_ROLLBACK,
            "only a person clears it: `kubectl sluice unfreeze checkout`",
        ),
        (
            FROZEN_BY_BUDGET,
            "it lifts by itself when the budget recovers",
        ),
    ];
    for (reason, remedy) in cases {
        let rollout = with_status(|s| {
            s.phase = Some(Phase::Frozen);
            s.conditions.push(Condition::new(
                FROZEN,
                true,
                reason,
                "parity Emergency at 150 bps",
                NOW,
            ));
        });
        let holding = section(&explain(&rollout, true), "Why it holds:");
        assert!(
            holding.contains(&format!("{reason}: parity Emergency at 150 bps")),
            "{holding}"
        );
        assert!(holding.contains(remedy), "{holding}");
    }
}

#[test]
fn a_rolled_back_rollout_points_at_retry() {
    let rollout = with_status(|s| s.phase = Some(Phase::RolledBack));
    let holding = section(&explain(&rollout, true), "Why it holds:");
    assert!(
        holding.contains("revision 7f9c6d5a01 stays on the target until a new template or `kubectl sluice retry checkout`"),
        "{holding}"
    );
}

#[test]
fn an_invalid_rollout_shows_the_stalled_reason() {
    let rollout = with_status(|s| {
        s.phase = Some(Phase::Invalid);
        s.conditions.push(Condition::new(
            STALLED,
            true,
            "InvalidSpec",
            "ParityPolicy \"checkout-parity\" not found",
            NOW,
        ));
    });
    let holding = section(&explain(&rollout, true), "Why it holds:");
    assert!(
        holding.contains("InvalidSpec: ParityPolicy \"checkout-parity\" not found"),
        "{holding}"
    );
}

#[test]
fn a_settled_rollout_waits_for_nothing_and_shows_at_most_five_history_entries() {
    let rollout = with_status(|s| {
        s.phase = Some(Phase::Succeeded);
        let entry = s.history[0].clone();
        s.history = (0..8)
            .map(|i| HistoryEntry {
                revision: format!("rev{i}"),
                ..entry.clone()
            })
            .collect();
    });
    let text = explain(&rollout, true);
    assert!(
        !text.contains("Waiting for:") && !text.contains("Why it holds:"),
        "{text}"
    );
    let history = section(&text, "History");
    assert_eq!(history.lines().count(), 7, "{history}");
    assert!(history.contains("rev3") && history.contains("rev7") && !history.contains("rev2"));
}
