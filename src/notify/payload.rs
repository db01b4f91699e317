//! The bodies each sink is sent, in the service's documented format, and the webhook
//! signature. Pure.
//!
//! - Webhook: a CloudEvent 1.0 in structured mode (`application/cloudevents+json`).
//! - Slack: an incoming-webhook message, `text` (the fallback) and Block Kit `blocks`.
//! - Telegram: the Bot API's `sendMessage` parameters, plain text.

use ring::hmac;
use serde_json::{Value, json};

use crate::engine::notification::OutgoingEvent;

/// The header of the webhook signature.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature-256";
/// Slack: a header's text is at most 150 characters, a section's 3000.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_SECTION_MAX: usize = 3000;
/// Telegram: a message is at most 4096 characters.
const TELEGRAM_TEXT_MAX: usize = 4096;

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

/// One line saying what happened: "Warning RolledBack on CanaryRollout shop/checkout".
pub fn headline(event: &OutgoingEvent) -> String {
    format!(
        "{} {} on {} {}/{}",
        if event.warning { "Warning" } else { "Normal" },
        event.reason,
        event.kind,
        event.namespace,
        event.name
    )
}

/// A CloudEvent 1.0 (structured mode). `id` is unique per event and sink, stable across retries,
/// so a receiver can drop a retried duplicate.
pub fn cloud_event(event: &OutgoingEvent, id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/apis/sluice.dev/v1alpha1/namespaces/{}/{}/{}", event.namespace, plural(&event.kind), event.name),
        "type": format!("dev.sluice.{}.{}", event.kind.to_lowercase(), event.reason),
        "subject": event.name,
        "time": event.time.to_string(),
        "datacontenttype": "application/json",
        "data": {
            "kind": event.kind,
            "namespace": event.namespace,
            "name": event.name,
            "reason": event.reason,
            "type": if event.warning { "Warning" } else { "Normal" },
            "message": event.note,
        },
    })
}

/// A Slack incoming-webhook message: the fallback text and three blocks (header, the message,
/// a context line with the object and time).
pub fn slack_message(event: &OutgoingEvent) -> Value {
    let icon = if event.warning {
        ":warning:"
    } else {
        ":information_source:"
    };
    json!({
        "text": clip(&format!("{}: {}", headline(event), event.note), SLACK_SECTION_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&format!("{} {}/{}", event.reason, event.namespace, event.name), SLACK_HEADER_MAX), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(&format!("{icon} {}", event.note), SLACK_SECTION_MAX)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("{} `{}/{}` · {}", event.kind, event.namespace, event.name, event.time)}]},
        ],
    })
}

/// The Bot API's `sendMessage` parameters: plain text (no parse mode, so nothing needs escaping).
pub fn telegram_message(event: &OutgoingEvent, chat_id: &str) -> Value {
    let text = format!("{}\n{}\n{}", headline(event), event.note, event.time);
    json!({
        "chat_id": chat_id,
        "text": clip(&text, TELEGRAM_TEXT_MAX),
        "disable_web_page_preview": true,
    })
}

/// `sha256=<hex of HMAC-SHA256(key, body)>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> OutgoingEvent {
        OutgoingEvent {
            kind: "CanaryRollout".into(),
            namespace: "shop".into(),
            name: "checkout".into(),
            reason: "RolledBack".into(),
            warning: true,
            note: "error-rate 0.12 above 0.01".into(),
            time: "2026-12-03T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_cloud_event_has_the_required_attributes() {
        let body = cloud_event(&event(), "abc");
        for attribute in ["specversion", "id", "source", "type"] {
            assert!(body[attribute].is_string(), "{attribute}");
        }
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["type"], "dev.sluice.canaryrollout.RolledBack");
        assert_eq!(
            body["source"],
            "/apis/sluice.dev/v1alpha1/namespaces/shop/canaryrollouts/checkout"
        );
        assert_eq!(body["data"]["message"], "error-rate 0.12 above 0.01");
    }

    #[test]
    fn slack_and_telegram_stay_within_their_limits() {
        let mut long = event();
        long.note = "x".repeat(10_000);
        let slack = slack_message(&long);
        let section = slack["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(section.chars().count(), SLACK_SECTION_MAX);
        let telegram = telegram_message(&long, "-100");
        assert_eq!(
            telegram["text"].as_str().unwrap().chars().count(),
            TELEGRAM_TEXT_MAX
        );
        assert_eq!(telegram["chat_id"], "-100");
    }

    /// RFC 4231, test case 2.
    #[test]
    fn the_signature_is_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
