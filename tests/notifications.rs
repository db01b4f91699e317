//! Notifications on a real cluster: a rollback reaches Slack, Telegram and a signed CloudEvents
//! webhook once each, in their formats; a sink that fails is retried without slowing the
//! rollout, and a missing Secret or an unreachable sink is named in the status and an event.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use rollout_fixture::*;
use sluice::api::Notification;
use sluice::api::canary_rollout::Phase;
use sluice::api::notification::NotificationStatus;
use support::receivers::{Receiver, ReceiverKind};
use support::{TestNamespace, eventually};

const V2: &str = "registry.example/checkout:2.0.0";
const TOKEN: &str = "123456:test-bot-token";
const CHAT: &str = "-1001234567890";
const SIGNING_KEY: &str = "a signing key for the test";

async fn secret(ns: &TestNamespace, name: &str, key: &str, value: &str) {
    ns.apply_yaml(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{{key}: \"{value}\"}}\n"
    ))
    .await;
}

async fn notification_status(ns: &TestNamespace, name: &str) -> NotificationStatus {
    ns.api::<Notification>()
        .get(name)
        .await
        .expect("read Notification")
        .status
        .unwrap_or_default()
}

/// Waits until `receiver` accepted `count` requests; then checks no more arrive for 3 s.
async fn exactly(
    receiver: &Receiver,
    count: usize,
    what: &str,
) -> Vec<support::receivers::Received> {
    eventually(Duration::from_secs(30), what, async || {
        let accepted = receiver.accepted();
        if accepted.len() >= count {
            Ok(())
        } else {
            Err(receiver.received())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), count, "{what}: {accepted:#?}");
    assert!(
        receiver.malformed().is_empty(),
        "{what}: {:#?}",
        receiver.malformed()
    );
    accepted
}

#[tokio::test]
async fn a_rollback_sends_one_slack_one_telegram_and_one_signed_webhook_message() {
    let service = Service::start("notify", &rollout_yaml(GATEWAY, LONG_STAGES, "")).await;
    let slack = Receiver::start(ReceiverKind::Slack).await;
    let telegram = Receiver::start(ReceiverKind::Telegram {
        token: TOKEN.into(),
        chat_id: CHAT.into(),
    })
    .await;
    let webhook = Receiver::start(ReceiverKind::Webhook {
        key: SIGNING_KEY.into(),
    })
    .await;
    let ns = &service.ns;
    secret(
        ns,
        "slack",
        "url",
        &format!("{}/services/T0/B0/x", slack.url),
    )
    .await;
    secret(ns, "telegram", "token", TOKEN).await;
    secret(ns, "hooks", "key", SIGNING_KEY).await;
    ns.apply_yaml(&format!(
        "apiVersion: sluice.dev/v1alpha1
kind: Notification
metadata: {{name: rollbacks}}
spec:
  subscribe: {{kinds: [CanaryRollout], reasons: [RolledBack]}}
  sinks:
  - {{name: ops-slack, slack: {{webhookUrl: {{name: slack, key: url}}}}}}
  - name: ops-telegram
    telegram: {{botToken: {{name: telegram, key: token}}, chatId: '{CHAT}', apiUrl: '{}'}}
  - {{name: audit-hook, webhook: {{url: '{}/events', signingKey: {{name: hooks, key: key}}}}}}
",
        telegram.url, webhook.url
    ))
    .await;
    eventually(
        Duration::from_secs(20),
        "the Notification ready",
        async || {
            let status = notification_status(ns, "rollbacks").await;
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.is_true())
        },
    )
    .await;

    service.set_canary_error_ratio(0.5);
    service.set_image(V2).await;
    let rolled_back = service
        .wait_phase(Phase::RolledBack, Duration::from_secs(40))
        .await;
    let reason = rolled_back
        .status
        .expect("status")
        .history
        .last()
        .expect("history")
        .reason
        .clone();
    let name = ns.name();

    let slack_messages = exactly(&slack, 1, "one Slack message").await;
    let message = &slack_messages[0].body;
    assert_eq!(slack_messages[0].path, "/services/T0/B0/x");
    let text = message["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("RolledBack") && text.contains(&format!("{name}/checkout")),
        "{text}"
    );
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        format!("RolledBack {name}/checkout")
    );
    let section = message["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(section.contains("error-rate"), "{section}");

    let telegram_messages = exactly(&telegram, 1, "one Telegram message").await;
    let text = telegram_messages[0].body["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!(
            "Warning RolledBack on CanaryRollout {name}/checkout\n"
        )),
        "{text}"
    );
    assert!(text.contains("error-rate"), "{text}");

    let events = exactly(&webhook, 1, "one webhook message").await;
    let event = &events[0].body;
    assert_eq!(events[0].path, "/events");
    assert_eq!(event["type"], "dev.sluice.canaryrollout.RolledBack");
    assert_eq!(
        event["source"],
        format!("/apis/sluice.dev/v1alpha1/namespaces/{name}/canaryrollouts/checkout")
    );
    assert_eq!(event["data"]["type"], "Warning");
    let data_message = event["data"]["message"].as_str().unwrap_or_default();
    assert!(
        data_message.contains(&reason)
            || reason.contains(data_message)
            || data_message.contains("error-rate"),
        "{data_message} / {reason}"
    );

    let status = eventually(Duration::from_secs(20), "the sinks counted", async || {
        let status = notification_status(ns, "rollbacks").await;
        if status.sinks.iter().all(|s| s.delivered == 1) {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await;
    assert!(
        status
            .sinks
            .iter()
            .all(|s| s.failed_attempts == 0 && s.pending == 0)
    );
    let metrics = service.operator_metrics().await;
    let delivered = format!(
        "sluice_notification_messages_total{{namespace=\"{name}\",notification=\"rollbacks\",sink=\"ops-slack\",result=\"delivered\"}} 1"
    );
    assert!(
        metrics.contains(&delivered),
        "{delivered} not in\n{metrics}"
    );
}

#[tokio::test]
async fn a_failing_sink_is_retried_without_slowing_the_rollout_and_bad_sinks_are_named() {
    let service = Service::start("notify-retry", &rollout_yaml(GATEWAY, QUICK_STAGES, "")).await;
    let webhook = Receiver::start(ReceiverKind::Webhook {
        key: SIGNING_KEY.into(),
    })
    .await;
    webhook.fail_next(3);
    let ns = &service.ns;
    secret(ns, "hooks", "key", SIGNING_KEY).await;
    // A Telegram sink whose Secret does not exist, and a webhook nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    ns.apply_yaml(&format!(
        "apiVersion: sluice.dev/v1alpha1
kind: Notification
metadata: {{name: everything}}
spec:
  subscribe: {{kinds: [CanaryRollout]}}
  sinks:
  - {{name: flaky, webhook: {{url: '{}/events', signingKey: {{name: hooks, key: key}}}}}}
  - {{name: no-secret, telegram: {{botToken: {{name: missing, key: token}}, chatId: '1'}}}}
  - {{name: nobody, webhook: {{url: 'http://127.0.0.1:{closed_port}/events'}}}}
",
        webhook.url
    ))
    .await;

    let started = Instant::now();
    service.release(V2).await;
    let took = started.elapsed();
    // Four 3 s stages: the rollout takes what it takes without sinks (12 s and reconciles).
    assert!(took < Duration::from_secs(30), "the rollout took {took:?}");
    let promoted_notes = service.notes("Promoted").await;
    assert_eq!(promoted_notes.len(), 1);

    // The flaky sink gets every event, in order, after its three failures.
    let status = eventually(
        Duration::from_secs(60),
        "the flaky sink caught up",
        async || {
            let status = notification_status(ns, "everything").await;
            let flaky = status
                .sinks
                .iter()
                .find(|s| s.name == "flaky")
                .cloned()
                .unwrap_or_default();
            if flaky.pending == 0 && flaky.delivered > 0 && flaky.failed_attempts >= 3 {
                Ok(status)
            } else {
                Err(status)
            }
        },
    )
    .await;
    let accepted = webhook.accepted();
    assert!(webhook.malformed().is_empty(), "{:#?}", webhook.malformed());
    let reasons: Vec<String> = accepted
        .iter()
        .map(|r| {
            r.body["data"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        reasons.first().map(String::as_str),
        Some("RolloutStarted"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("Promoted"),
        "{reasons:?}"
    );
    let flaky = status
        .sinks
        .iter()
        .find(|s| s.name == "flaky")
        .expect("flaky");
    assert_eq!(flaky.delivered as usize, accepted.len());
    assert_eq!(webhook.received().len(), accepted.len() + 3);
    let ids: std::collections::HashSet<&str> = accepted
        .iter()
        .filter_map(|r| r.body["id"].as_str())
        .collect();
    assert_eq!(ids.len(), accepted.len(), "a CloudEvent id per message");

    let missing = status
        .sinks
        .iter()
        .find(|s| s.name == "no-secret")
        .expect("no-secret");
    assert_eq!(missing.delivered, 0);
    let error = missing.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("Secret {}/missing not found", ns.name())),
        "{error}"
    );
    let nobody = status
        .sinks
        .iter()
        .find(|s| s.name == "nobody")
        .expect("nobody");
    assert!(
        nobody
            .last_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("sending:"),
        "{nobody:?}"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(
        !ready.is_true() && ready.reason == "DeliveryFailing",
        "{ready:?}"
    );
    assert!(
        ready.message.contains("no-secret") && ready.message.contains("nobody"),
        "{ready:?}"
    );
    let failing: Vec<String> = ns
        .events()
        .await
        .into_iter()
        .filter(|e| e.object_kind == "Notification" && e.reason == "DeliveryFailing")
        .map(|e| e.message)
        .collect();
    assert!(
        failing.iter().any(|m| m.contains("sink no-secret")),
        "{failing:?}"
    );
}
