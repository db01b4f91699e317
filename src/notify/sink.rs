//! One sink's buffer and the task that empties it: deduplication on the way in, a rate limit and
//! retries with backoff on the way out. Whatever a sink does, the reconcile that recorded the
//! event has long returned: only this task waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::StatusCode;

use super::Shared;
use super::payload;
use crate::api::notification::{Sink, SinkStatus};
use crate::engine::notification::OutgoingEvent;

/// Messages a sink's buffer holds; beyond, the oldest is dropped and counted.
pub const BUFFER: usize = 1000;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Which sink: namespace, Notification, sink name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SinkKey {
    pub namespace: String,
    pub notification: String,
    pub sink: String,
}

/// The sink as last configured, with its Notification's limits.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub sink: Sink,
    pub per_minute: u32,
    pub deduplicate_for: Duration,
}

struct Message {
    event: OutgoingEvent,
    /// The CloudEvent id: the same for every attempt.
    id: String,
    attempts: u32,
}

struct State {
    config: SinkConfig,
    buffer: VecDeque<Message>,
    /// Identities sent recently, oldest first.
    recent: VecDeque<(String, Instant)>,
    figures: SinkStatus,
    next_send: Instant,
}

pub struct SinkQueue {
    key: SinkKey,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

/// What the sink made of one attempt.
enum Outcome {
    Delivered,
    /// Try again later: the sink or the network failed, or a credential is missing.
    Retry(String),
    /// The sink refused this message for good.
    Rejected(String),
}

impl SinkQueue {
    pub fn new(key: SinkKey, config: SinkConfig) -> Arc<Self> {
        let figures = SinkStatus {
            name: key.sink.clone(),
            ..Default::default()
        };
        Arc::new(Self {
            key,
            state: Mutex::new(State {
                config,
                buffer: VecDeque::new(),
                recent: VecDeque::new(),
                figures,
                next_send: Instant::now(),
            }),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Buffers `event` unless it was sent within the deduplication window; never waits.
    pub fn offer(&self, shared: &Shared, config: SinkConfig, event: OutgoingEvent, id: String) {
        let mut state = self.lock();
        state.config = config;
        let now = Instant::now();
        let window = state.config.deduplicate_for;
        while state
            .recent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) >= window)
        {
            state.recent.pop_front();
        }
        let identity = event.identity();
        if state.recent.iter().any(|(seen, _)| *seen == identity) {
            shared.metrics.count(&self.key, "duplicate");
            return;
        }
        state.recent.push_back((identity, now));
        if state.buffer.len() >= BUFFER {
            state.buffer.pop_front();
            state.figures.dropped += 1;
            shared.metrics.count(&self.key, "dropped");
        }
        state.buffer.push_back(Message {
            event,
            id,
            attempts: 0,
        });
        shared.metrics.pending(&self.key, state.buffer.len());
        drop(state);
        self.wake.notify_one();
    }

    pub fn figures(&self) -> SinkStatus {
        let state = self.lock();
        SinkStatus {
            pending: state.buffer.len() as u64,
            ..state.figures.clone()
        }
    }

    /// Sends the buffer's messages in order, one at a time, forever.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>) {
        loop {
            let wake = self.wake.notified();
            let next = {
                let state = self.lock();
                state.buffer.front().map(|m| {
                    (
                        m.event.clone(),
                        m.id.clone(),
                        state.config.clone(),
                        state.next_send,
                    )
                })
            };
            let Some((event, id, config, not_before)) = next else {
                wake.await;
                continue;
            };
            tokio::time::sleep_until(not_before.into()).await;
            let outcome = deliver(&shared, &self.key, &config, &event, &id).await;
            let retry_in = self.settle(&shared, outcome, &id, config.per_minute);
            if let Some(wait) = retry_in {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Counts the attempt on message `id`; returns how long to wait before retrying it.
    fn settle(
        &self,
        shared: &Shared,
        outcome: Outcome,
        id: &str,
        per_minute: u32,
    ) -> Option<Duration> {
        let mut state = self.lock();
        // A full buffer may have dropped the message while it was being sent: only it leaves.
        let sent_is_first = state.buffer.front().is_some_and(|m| m.id == id);
        let spacing = Duration::from_secs(60) / per_minute.max(1);
        state.next_send = Instant::now() + spacing;
        let retry_in = match outcome {
            Outcome::Delivered => {
                if sent_is_first {
                    state.buffer.pop_front();
                }
                state.figures.delivered += 1;
                state.figures.last_delivered_at = Some(Timestamp::now());
                state.figures.last_error = None;
                shared.metrics.count(&self.key, "delivered");
                None
            }
            Outcome::Rejected(error) => {
                if sent_is_first {
                    state.buffer.pop_front();
                }
                state.figures.rejected += 1;
                state.figures.last_error = Some(error);
                shared.metrics.count(&self.key, "rejected");
                None
            }
            Outcome::Retry(error) => {
                state.figures.failed_attempts += 1;
                state.figures.last_error = Some(error);
                shared.metrics.count(&self.key, "failed_attempt");
                let message = state.buffer.front_mut().filter(|_| sent_is_first)?;
                message.attempts += 1;
                let doubled = FIRST_RETRY.saturating_mul(1 << message.attempts.min(10));
                Some(doubled.min(LAST_RETRY))
            }
        };
        shared.metrics.pending(&self.key, state.buffer.len());
        retry_in
    }
}

async fn deliver(
    shared: &Shared,
    key: &SinkKey,
    config: &SinkConfig,
    event: &OutgoingEvent,
    id: &str,
) -> Outcome {
    let namespace = &key.namespace;
    let sink = &config.sink;
    let request = if let Some(webhook) = &sink.webhook {
        let body = payload::cloud_event(event, id).to_string();
        let mut request = shared
            .http
            .post(&webhook.url)
            .header("content-type", "application/cloudevents+json");
        if let Some(reference) = &webhook.signing_key {
            match shared.credentials.get(namespace, reference).await {
                Ok(signing_key) => {
                    let signature = payload::signature(signing_key.as_bytes(), body.as_bytes());
                    request = request.header(payload::SIGNATURE_HEADER, signature);
                }
                Err(error) => return Outcome::Retry(error),
            }
        }
        request.body(body)
    } else if let Some(slack) = &sink.slack {
        match shared.credentials.get(namespace, &slack.webhook_url).await {
            Ok(url) => shared.http.post(url).json(&payload::slack_message(event)),
            Err(error) => return Outcome::Retry(error),
        }
    } else if let Some(telegram) = &sink.telegram {
        match shared.credentials.get(namespace, &telegram.bot_token).await {
            Ok(token) => {
                let base = telegram.api_url.trim_end_matches('/');
                shared
                    .http
                    .post(format!("{base}/bot{token}/sendMessage"))
                    .json(&payload::telegram_message(event, &telegram.chat_id))
            }
            Err(error) => return Outcome::Retry(error),
        }
    } else {
        return Outcome::Rejected("the sink has no webhook, slack or telegram".to_string());
    };
    let response = match request.timeout(SEND_TIMEOUT).send().await {
        Ok(response) => response,
        // Without the URL: a Telegram URL carries the bot token.
        Err(error) => return Outcome::Retry(format!("sending: {}", error.without_url())),
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let said: String = body.chars().take(200).collect();
    if status.is_success() {
        // The Bot API answers 200 with {"ok": false} on some errors.
        if sink.telegram.is_some()
            && serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|v| v["ok"] == serde_json::Value::Bool(false))
        {
            return Outcome::Rejected(format!("Telegram answered not ok: {said}"));
        }
        return Outcome::Delivered;
    }
    let error = format!("HTTP {} from the sink: {said}", status.as_u16());
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Outcome::Retry(error),
        s if s.is_server_error() => Outcome::Retry(error),
        _ => Outcome::Rejected(error),
    }
}
