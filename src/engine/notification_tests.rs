use super::*;

fn event(kind: &str, reason: &str, warning: bool) -> OutgoingEvent {
    OutgoingEvent {
        kind: kind.into(),
        namespace: "shop".into(),
        name: "checkout".into(),
        reason: reason.into(),
        warning,
        note: "something happened".into(),
        time: "2026-12-03T10:00:00Z".parse().unwrap(),
    }
}

fn spec(yaml: &str) -> NotificationSpec {
    serde_saphyr::from_str(yaml).unwrap()
}

const SLACK: &str = "sinks: [{name: ops, slack: {webhookUrl: {name: slack, key: url}}}]\n";

#[test]
fn an_empty_subscription_takes_everything_and_filters_narrow_it() {
    let all = spec(SLACK);
    assert!(subscribed(
        &all.subscribe,
        &event("SLOBudget", "BudgetFrozen", true)
    ));
    let narrow = spec(&format!(
        "{SLACK}subscribe: {{kinds: [CanaryRollout], reasons: [RolledBack], warningsOnly: true}}\n"
    ));
    assert!(subscribed(
        &narrow.subscribe,
        &event("CanaryRollout", "RolledBack", true)
    ));
    assert!(!subscribed(
        &narrow.subscribe,
        &event("CanaryRollout", "Promoted", false)
    ));
    assert!(!subscribed(
        &narrow.subscribe,
        &event("ReleasePipeline", "RolledBack", true)
    ));
    assert!(!subscribed(
        &narrow.subscribe,
        &event("CanaryRollout", "RolledBack", false)
    ));
}

#[test]
fn problems_name_the_sink_field() {
    let bad = spec(
        "
sinks:
- {name: a}
- {name: a, webhook: {url: 'ftp://example.com/x'}}
- {name: b, telegram: {botToken: {name: t, key: token}, chatId: '1', apiUrl: 'not a url'}}
",
    );
    let problems = problems(&bad);
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].starts_with("spec.sinks[0]: exactly one"));
    assert!(problems[1].starts_with("spec.sinks[1].name"));
    assert!(problems[2].starts_with("spec.sinks[1].webhook.url"));
    assert!(problems[3].starts_with("spec.sinks[2].telegram.apiUrl"));
}

#[test]
fn a_failing_sink_gets_one_event_and_one_on_recovery() {
    let spec = spec(SLACK);
    let now = "2026-12-03T10:00:00Z".parse().unwrap();
    let failing = SinkFigures {
        name: "ops".into(),
        failed_attempts: 3,
        pending: 1,
        last_error: Some("HTTP 500 from the sink".into()),
        ..Default::default()
    };
    let first = plan(
        &spec,
        Some(1),
        vec![failing.clone()],
        &NotificationStatus::default(),
        now,
    );
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].reason, "DeliveryFailing");
    let ready = first.status.conditions.iter().find(|c| c.type_ == READY);
    assert!(ready.is_some_and(|c| !c.is_true() && c.message.contains("HTTP 500")));
    let again = plan(&spec, Some(1), vec![failing], &first.status, now);
    assert!(again.events.is_empty());
    let recovered = SinkFigures {
        name: "ops".into(),
        delivered: 1,
        failed_attempts: 3,
        ..Default::default()
    };
    let back = plan(&spec, Some(1), vec![recovered], &again.status, now);
    assert_eq!(back.events[0].reason, "DeliveryRecovered");
    assert!(
        back.status
            .conditions
            .iter()
            .any(|c| c.type_ == READY && c.is_true())
    );
}
