use super::*;
use crate::api::duration::Duration;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn spec(yaml: &str) -> DeliveryFreezeSpec {
    serde_saphyr::from_str(yaml).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FRIDAY_EVENINGS: &str = "
action: Hold
reason: weekend
windows:
- schedule: '0 18 * * FRI'
  duration: 62h
  timeZone: Europe/London
";

#[test]
fn a_freeze_without_windows_is_in_force_until_deleted() {
    let state = window_state(&spec("action: Rollback\n"), at("2026-12-03T10:00:00Z"));
    assert_eq!(
        state,
        WindowState {
            active: true,
            until: None,
            next: None
        }
    );
}

#[test]
fn a_weekly_window_opens_and_closes_in_its_time_zone() {
    let weekend = spec(FRIDAY_EVENINGS);
    // Friday 4 December 2026, 17:59 in London (GMT in winter).
    let before = window_state(&weekend, at("2026-12-04T17:59:00Z"));
    assert!(!before.active);
    assert_eq!(before.next, Some(at("2026-12-04T18:00:00Z")));
    let during = window_state(&weekend, at("2026-12-05T12:00:00Z"));
    assert!(during.active);
    assert_eq!(during.until, Some(at("2026-12-07T08:00:00Z")));
    let after = window_state(&weekend, at("2026-12-07T08:00:00Z"));
    assert!(!after.active);
    assert_eq!(after.next, Some(at("2026-12-11T18:00:00Z")));
}

#[test]
fn summer_time_moves_the_window_in_utc() {
    let weekend = spec(FRIDAY_EVENINGS);
    // Friday 3 July 2026 at 18:00 in London is 17:00 UTC (BST).
    assert!(window_state(&weekend, at("2026-07-03T17:00:00Z")).active);
    assert!(!window_state(&weekend, at("2026-07-03T16:59:59Z")).active);
}

#[test]
fn overlapping_windows_close_with_the_last() {
    let both = spec(
        "
windows:
- {schedule: '0 10 * * *', duration: 2h}
- {schedule: '0 11 * * *', duration: 3h}
",
    );
    let state = window_state(&both, at("2026-12-03T11:30:00Z"));
    assert_eq!(state.until, Some(at("2026-12-03T14:00:00Z")));
}

#[test]
fn malformed_windows_and_selectors_name_the_field() {
    let bad = spec(
        "
selector:
  matchExpressions: [{key: tier, operator: Sometimes, values: [a]}]
windows:
- {schedule: 'every friday', duration: 1h}
- {schedule: '0 18 * * *', duration: 1h, timeZone: Mars/Olympus}
",
    );
    let problems = problems(
        FreezeRef {
            namespace: "team",
            name: "bad",
            spec: &bad,
        },
        "sluice-system",
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("spec.selector"), "{problems:?}");
    assert!(
        problems[1].starts_with("spec.windows[0]") && problems[1].contains("every friday"),
        "{problems:?}"
    );
    assert!(
        problems[2].starts_with("spec.windows[1]") && problems[2].contains("Mars/Olympus"),
        "{problems:?}"
    );
}

#[test]
fn a_fleet_freeze_outside_the_freeze_namespace_is_refused_and_selects_its_own_namespace_only() {
    let fleet = spec("allNamespaces: true\n");
    let outside = FreezeRef {
        namespace: "team",
        name: "all",
        spec: &fleet,
    };
    assert_eq!(problems(outside, "sluice-system").len(), 1);
    assert!(!selects(outside, "other", &labels(&[]), "sluice-system"));
    let inside = FreezeRef {
        namespace: "sluice-system",
        ..outside
    };
    assert!(problems(inside, "sluice-system").is_empty());
    assert!(selects(inside, "other", &labels(&[]), "sluice-system"));
}

#[test]
fn the_selector_picks_rollouts_by_label() {
    let critical = spec("selector: {matchLabels: {tier: critical}}\n");
    let freeze = FreezeRef {
        namespace: "team",
        name: "critical",
        spec: &critical,
    };
    assert!(selects(
        freeze,
        "team",
        &labels(&[("tier", "critical")]),
        "sluice-system"
    ));
    assert!(!selects(
        freeze,
        "team",
        &labels(&[("tier", "batch")]),
        "sluice-system"
    ));
    assert!(!selects(
        freeze,
        "elsewhere",
        &labels(&[("tier", "critical")]),
        "sluice-system"
    ));
}

#[test]
fn a_rollback_freeze_wins_over_a_hold_and_invalid_freezes_do_nothing() {
    let hold = spec("action: Hold\nreason: quarter end\n");
    let rollback = spec("action: Rollback\nreason: incident 4711\n");
    let broken = spec("action: Rollback\nwindows: [{schedule: nonsense, duration: 1h}]\n");
    let freezes = [
        FreezeRef {
            namespace: "team",
            name: "a-hold",
            spec: &hold,
        },
        FreezeRef {
            namespace: "team",
            name: "b-kill",
            spec: &rollback,
        },
        FreezeRef {
            namespace: "team",
            name: "c-broken",
            spec: &broken,
        },
    ];
    let now = at("2026-12-03T10:00:00Z");
    let found = in_force(freezes, "team", &labels(&[]), "sluice-system", now).unwrap();
    assert_eq!(found.action, FreezeAction::Rollback);
    assert_eq!(
        found.reason,
        "DeliveryFreeze team/b-kill (Rollback): incident 4711"
    );
    let only_broken = in_force([freezes[2]], "team", &labels(&[]), "sluice-system", now);
    assert_eq!(only_broken, None);
}

#[test]
fn the_reason_says_until_when() {
    let mut window = spec("reason: release train\n");
    window.windows.push(FreezeWindow {
        schedule: "0 9 * * *".to_string(),
        duration: Duration::from_secs(3600),
        time_zone: None,
    });
    let found = in_force(
        [FreezeRef {
            namespace: "team",
            name: "train",
            spec: &window,
        }],
        "team",
        &labels(&[]),
        "sluice-system",
        at("2026-12-03T09:30:00Z"),
    )
    .unwrap();
    assert_eq!(
        found.reason,
        "DeliveryFreeze team/train (Hold) until 2026-12-03T10:00:00Z: release train"
    );
}
