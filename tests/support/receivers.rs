//! HTTP receivers on loopback that stand in for Slack's incoming webhooks, Telegram's Bot API and
//! a generic CloudEvents webhook. Each checks every request against the service's documented
//! format and answers as the service does: a request that breaks the format gets a 400 naming
//! what is wrong, and is kept with its answer for the test to see.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Which service the receiver plays.
#[derive(Clone, Debug)]
pub enum ReceiverKind {
    /// Slack incoming webhook (https://api.slack.com/messaging/webhooks): a JSON message with
    /// `text` and Block Kit `blocks`; answers `ok`.
    Slack,
    /// Telegram Bot API `POST /bot<token>/sendMessage` with JSON parameters; answers
    /// `{"ok": true, "result": Message}`.
    Telegram { token: String, chat_id: String },
    /// A CloudEvents 1.0 structured-mode receiver, checking `X-Sluice-Signature-256`.
    Webhook { key: String },
}

/// One request as received, the verdict on its format and the status answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub answered: u16,
    /// What broke the format, if anything.
    pub problem: Option<String>,
}

struct Shared {
    service: ReceiverKind,
    received: Mutex<Vec<Received>>,
    /// Requests still to be failed with 503 before the format is even looked at.
    fail_next: AtomicUsize,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(service: ReceiverKind) -> Receiver {
        let shared = Arc::new(Shared {
            service,
            received: Mutex::default(),
            fail_next: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, task }
    }

    /// The next `n` requests are answered 503, as a service that is down.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests the receiver accepted (well formed, answered 2xx).
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Requests refused for their format.
    pub fn malformed(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.problem.is_some())
            .collect()
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let record = |answered: StatusCode, problem: Option<String>| {
        shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Received {
                path: path.clone(),
                headers: headers.clone(),
                body: parsed.clone(),
                answered: answered.as_u16(),
                problem,
            });
    };
    let failing = shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        record(StatusCode::SERVICE_UNAVAILABLE, None);
        return (StatusCode::SERVICE_UNAVAILABLE, "down for the test".into());
    }
    let checked = match &shared.service {
        ReceiverKind::Slack => check_slack(&headers, &parsed).map(|()| "ok".to_string()),
        ReceiverKind::Telegram { token, chat_id } => {
            check_telegram(&path, token, chat_id, &headers, &parsed).map(|()| {
                json!({"ok": true, "result": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "group"}, "text": parsed["text"]}}).to_string()
            })
        }
        ReceiverKind::Webhook { key } => check_cloud_event(key, &headers, &body, &parsed).map(|()| String::new()),
    };
    match checked {
        Ok(answer) => {
            record(StatusCode::OK, None);
            (StatusCode::OK, answer)
        }
        Err(problem) => {
            record(StatusCode::BAD_REQUEST, Some(problem.clone()));
            (StatusCode::BAD_REQUEST, problem)
        }
    }
}

fn json_content(headers: &HeaderMap, expected: &str) -> Result<(), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match content_type.starts_with(expected) {
        true => Ok(()),
        false => Err(format!(
            "content-type {content_type:?}, expected {expected}"
        )),
    }
}

fn text_object(value: &Value, kind: &str, max: usize, what: &str) -> Result<(), String> {
    if value["type"] != kind {
        return Err(format!(
            "{what}: text object of type {}, expected {kind}",
            value["type"]
        ));
    }
    let text = value["text"].as_str().ok_or(format!("{what}: no text"))?;
    if text.is_empty() || text.chars().count() > max {
        return Err(format!(
            "{what}: text of {} characters (1 to {max})",
            text.chars().count()
        ));
    }
    Ok(())
}

/// Slack: `text` (the notification fallback) and `blocks`, each a header (plain_text, at most
/// 150 characters), section (text object, at most 3000) or context (at most 10 elements).
fn check_slack(headers: &HeaderMap, body: &Value) -> Result<(), String> {
    json_content(headers, "application/json")?;
    if body["text"].as_str().is_none_or(|t| t.is_empty()) {
        return Err("no text".into());
    }
    let blocks = body["blocks"].as_array().ok_or("no blocks")?;
    if blocks.is_empty() || blocks.len() > 50 {
        return Err(format!("{} blocks (1 to 50)", blocks.len()));
    }
    for (index, block) in blocks.iter().enumerate() {
        let what = format!("blocks[{index}]");
        match block["type"].as_str() {
            Some("header") => text_object(&block["text"], "plain_text", 150, &what)?,
            Some("section") => {
                let kind = block["text"]["type"].as_str().unwrap_or_default();
                if !matches!(kind, "mrkdwn" | "plain_text") {
                    return Err(format!("{what}: section text of type {kind:?}"));
                }
                text_object(&block["text"], kind, 3000, &what)?;
            }
            Some("context") => {
                let elements = block["elements"]
                    .as_array()
                    .ok_or(format!("{what}: no elements"))?;
                if elements.is_empty() || elements.len() > 10 {
                    return Err(format!("{what}: {} elements (1 to 10)", elements.len()));
                }
                for element in elements {
                    let kind = element["type"].as_str().unwrap_or_default();
                    text_object(element, kind, 3000, &what)?;
                }
            }
            other => return Err(format!("{what}: unexpected block type {other:?}")),
        }
    }
    Ok(())
}

/// Telegram: the token in the path, `chat_id` and `text` (1 to 4096 characters).
fn check_telegram(
    path: &str,
    token: &str,
    chat_id: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(), String> {
    if path != format!("/bot{token}/sendMessage") {
        return Err(format!("path {path:?} is not /bot<token>/sendMessage"));
    }
    json_content(headers, "application/json")?;
    let chat = match &body["chat_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("chat_id {other}")),
    };
    if chat != chat_id {
        return Err(format!("chat_id {chat}, expected {chat_id}"));
    }
    let text = body["text"].as_str().ok_or("no text")?;
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(format!("text of {} characters", text.chars().count()));
    }
    Ok(())
}

/// CloudEvents 1.0 structured mode: the content type, the required attributes (specversion 1.0,
/// id, source, type), an RFC 3339 time, and the body's HMAC-SHA256 under `key`.
fn check_cloud_event(
    key: &str,
    headers: &HeaderMap,
    raw: &[u8],
    body: &Value,
) -> Result<(), String> {
    json_content(headers, "application/cloudevents+json")?;
    if body["specversion"] != "1.0" {
        return Err(format!("specversion {}", body["specversion"]));
    }
    for attribute in ["id", "source", "type"] {
        if body[attribute].as_str().is_none_or(|v| v.is_empty()) {
            return Err(format!("attribute {attribute} missing"));
        }
    }
    if let Some(time) = body["time"].as_str() {
        time.parse::<jiff::Timestamp>()
            .map_err(|e| format!("time {time:?}: {e}"))?;
    }
    let signature = headers
        .get("x-sluice-signature-256")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Sluice-Signature-256")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(raw);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match signature == format!("sha256={expected}") {
        true => Ok(()),
        false => Err(format!("signature {signature} does not match the body")),
    }
}
