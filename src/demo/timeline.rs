//! The demo's live timeline on stdout: seconds since the start, then what changed — the
//! CanaryRollout's phase, stage, canary weight, verdict and check values, its status message,
//! and each new Event recorded on it; once it follows several rollouts (staging and production),
//! each line names the one it is about.

use std::collections::HashSet;
use std::fmt::Display;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, Error};
use tokio::time::Instant;

use crate::api::CanaryRollout;
use crate::api::canary_rollout::{CanaryRolloutStatus, Phase, Verdict};
use crate::dashboard::pages::event_time;

/// How often the rollout and its events are read.
pub const POLL: Duration = Duration::from_millis(250);

/// One CanaryRollout the timeline follows.
struct Track {
    /// Printed before its lines once the timeline follows more than one rollout.
    label: String,
    name: String,
    rollouts: Api<CanaryRollout>,
    last_seen: Option<CanaryRollout>,
    last_state: Option<String>,
    last_message: Option<String>,
}

/// Events recorded on one object.
struct EventSource {
    label: String,
    events: Api<Event>,
    selector: String,
}

pub struct Timeline {
    start: Instant,
    /// The first is the one [`Timeline::observe`] returns.
    tracks: Vec<Track>,
    event_sources: Vec<EventSource>,
    /// (uid, count) of the events already printed: a repeated event is printed again.
    seen_events: HashSet<(String, i32)>,
    /// Reasons of the events printed, in order.
    reasons: Vec<String>,
    last_error: Option<String>,
    /// What the demo waits for now, for the message when it gives up.
    waiting_for: String,
}

impl Timeline {
    /// A timeline of the CanaryRollout `name` in `namespace`; the clock starts now.
    pub fn new(client: &Client, namespace: &str, name: &str) -> Timeline {
        let mut timeline = Timeline {
            start: Instant::now(),
            tracks: Vec::new(),
            event_sources: Vec::new(),
            seen_events: HashSet::new(),
            reasons: Vec::new(),
            last_error: None,
            waiting_for: "the start".into(),
        };
        timeline.follow_rollout(client, namespace, name, "");
        timeline
    }

    /// Follows another CanaryRollout too, its lines and events after `[label]` (the first
    /// rollout's get one from [`Timeline::label_first`]).
    pub fn follow_rollout(&mut self, client: &Client, namespace: &str, name: &str, label: &str) {
        self.tracks.push(Track {
            label: label.to_string(),
            name: name.to_string(),
            rollouts: Api::namespaced(client.clone(), namespace),
            last_seen: None,
            last_state: None,
            last_message: None,
        });
        self.follow_events(client, namespace, "CanaryRollout", name, label);
    }

    /// Names the first rollout's lines from now on.
    pub fn label_first(&mut self, label: &str) {
        if let Some(first) = self.tracks.first_mut() {
            first.label = label.to_string();
        }
        if let Some(first) = self.event_sources.first_mut() {
            first.label = label.to_string();
        }
    }

    /// Prints the events recorded on the `kind` object `name` too.
    pub fn follow_events(
        &mut self,
        client: &Client,
        namespace: &str,
        kind: &str,
        name: &str,
        label: &str,
    ) {
        self.event_sources.push(EventSource {
            label: label.to_string(),
            events: Api::namespaced(client.clone(), namespace),
            selector: format!("involvedObject.kind={kind},involvedObject.name={name}"),
        });
    }

    /// Prints one line, stamped with the seconds since the start.
    pub fn say(&self, text: impl Display) {
        println!("[{:>6.1}s] {text}", self.start.elapsed().as_secs_f64());
    }

    /// Remembers what the demo waits for now.
    pub fn waiting_for(&mut self, what: impl Into<String>) {
        self.waiting_for = what.into();
    }

    /// Reasons of the events printed so far, oldest first.
    pub fn reasons_seen(&self) -> &[String] {
        &self.reasons
    }

    /// The rollout labelled `label` as last observed.
    pub fn last_seen(&self, label: &str) -> Option<&CanaryRollout> {
        self.tracks
            .iter()
            .find(|track| track.label == label)?
            .last_seen
            .as_ref()
    }

    /// What the demo waits for and the last state seen, for a message when it gives up.
    pub fn situation(&self) -> String {
        let seen: Vec<String> = self
            .tracks
            .iter()
            .map(|track| {
                let state = track.last_state.as_deref().unwrap_or("no status yet");
                let state = prefixed(&track.label, state);
                match &track.last_message {
                    Some(message) => format!("{state} ({message})"),
                    None => state,
                }
            })
            .collect();
        format!(
            "waiting for {}; last seen: {}",
            self.waiting_for,
            seen.join("; ")
        )
    }

    /// Reads the rollouts and their events and prints what changed. Returns the first rollout,
    /// or None when it cannot be read now (the error is printed once, and the caller tries
    /// again).
    pub async fn observe(&mut self) -> Option<CanaryRollout> {
        match self.read().await {
            Ok((rollouts, events)) => {
                self.last_error = None;
                self.print_events(events);
                for (index, rollout) in rollouts.into_iter().enumerate() {
                    if let Some(rollout) = &rollout {
                        self.print_status(index, rollout);
                    }
                    self.tracks[index].last_seen = rollout;
                }
                self.tracks[0].last_seen.clone()
            }
            Err(e) => {
                let error = e.to_string();
                if self.last_error.as_ref() != Some(&error) {
                    self.say(format!("  (cannot read the CanaryRollouts now: {error})"));
                    self.last_error = Some(error);
                }
                None
            }
        }
    }

    /// Each track's rollout, and the events with the label of their source.
    async fn read(&self) -> Result<(Vec<Option<CanaryRollout>>, Vec<(String, Event)>), Error> {
        let mut rollouts = Vec::new();
        for track in &self.tracks {
            rollouts.push(track.rollouts.get_opt(&track.name).await?);
        }
        let mut events = Vec::new();
        for source in &self.event_sources {
            let listed = source
                .events
                .list(&ListParams::default().fields(&source.selector))
                .await?;
            events.extend(
                listed
                    .items
                    .into_iter()
                    .map(|event| (source.label.clone(), event)),
            );
        }
        Ok((rollouts, events))
    }

    fn print_events(&mut self, mut events: Vec<(String, Event)>) {
        events.sort_by_key(|(_, event)| event_time(event));
        for (label, event) in events {
            // kube's Recorder turns a repeated reason into a series on the first Event, which
            // keeps the first message: a repeat is shown with its count only.
            let count = event
                .series
                .as_ref()
                .and_then(|series| series.count)
                .or(event.count)
                .unwrap_or(1);
            let key = (event.metadata.uid.clone().unwrap_or_default(), count);
            if !self.seen_events.insert(key) {
                continue;
            }
            let kind = match event.type_.as_deref() {
                Some("Warning") => "warning",
                _ => "event  ",
            };
            let reason = event.reason.as_deref().unwrap_or("-");
            let line = if count > 1 {
                format!("{kind} {reason} (x{count})")
            } else {
                let message = event.message.as_deref().unwrap_or("");
                format!("{kind} {reason}: {message}")
            };
            self.say(format!("  {}", prefixed(&label, &line)));
            self.reasons.push(reason.to_string());
        }
    }

    fn print_status(&mut self, index: usize, rollout: &CanaryRollout) {
        let Some(status) = &rollout.status else {
            return;
        };
        let state = state_line(status, rollout.spec.stages.len());
        let label = self.tracks[index].label.clone();
        if self.tracks[index].last_state.as_ref() != Some(&state) {
            self.say(prefixed(&label, &state));
            self.tracks[index].last_state = Some(state);
        }
        if let Some(message) = &status.message
            && self.tracks[index].last_message.as_ref() != Some(message)
        {
            self.say(format!(
                "  {}",
                prefixed(&label, &format!("status: {message}"))
            ));
            self.tracks[index].last_message = Some(message.clone());
        }
    }
}

/// `line`, after `[label] ` when there is a label.
fn prefixed(label: &str, line: &str) -> String {
    if label.is_empty() {
        line.to_string()
    } else {
        format!("[{label}] {line}")
    }
}

/// `Progressing  stage 2/4  canary   5%  verdict Pass    error-rate 0.0020 (max 0.02)`.
pub fn state_line(status: &CanaryRolloutStatus, stages: usize) -> String {
    let phase = status
        .phase
        .map_or_else(|| "-".to_string(), |phase| format!("{phase:?}"));
    let in_flight = matches!(
        status.phase,
        Some(Phase::Progressing | Phase::Paused | Phase::RolledBack)
    );
    let stage = match status.stage {
        Some(index) if in_flight => format!("{}/{stages}", index + 1),
        _ => "-".into(),
    };
    let weight = status.canary_weight.unwrap_or(0);
    let mut line = match status.canary_mirror {
        Some(mirror) => format!("{phase:<12} stage {stage:<4} shadow {mirror:>3}%"),
        None => format!("{phase:<12} stage {stage:<4} canary {weight:>3}%"),
    };
    // The last evaluation stays in the status after a rollout; show it only for the current one.
    let current = |time: &jiff::Timestamp| {
        status
            .rollout_started_at
            .is_some_and(|start| *time >= start)
    };
    let evaluation = status
        .last_evaluation
        .as_ref()
        .filter(|evaluation| in_flight && current(&evaluation.time));
    if let Some(evaluation) = evaluation {
        let verdict = match evaluation.verdict {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
            Verdict::NoData => "NoData",
        };
        line.push_str(&format!("  verdict {verdict:<6}"));
        for check in &evaluation.checks {
            let value = check
                .value
                .map_or_else(|| "no data".to_string(), |v| format!("{v:.4}"));
            let bound = match (check.min, check.max) {
                (Some(min), Some(max)) => format!(" (min {min}, max {max})"),
                (None, Some(max)) => format!(" (max {max})"),
                (Some(min), None) => format!(" (min {min})"),
                (None, None) => String::new(),
            };
            line.push_str(&format!("  {} {value}{bound}", check.name));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_line_shows_phase_stage_weight_verdict_and_check_values() {
        let status = CanaryRolloutStatus {
            phase: Some(Phase::Progressing),
            stage: Some(1),
            canary_weight: Some(5),
            rollout_started_at: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            last_evaluation: Some(
                serde_json::from_value(serde_json::json!({
                    "time": "2026-01-01T00:00:10Z",
                    "verdict": "Fail",
                    "checks": [{"name": "error-rate", "value": 0.08, "max": 0.02, "verdict": "Fail"}]
                }))
                .unwrap(),
            ),
            ..Default::default()
        };
        assert_eq!(
            state_line(&status, 4),
            "Progressing  stage 2/4  canary   5%  verdict Fail    error-rate 0.0800 (max 0.02)"
        );
    }

    #[test]
    fn an_evaluation_of_an_earlier_rollout_is_left_out() {
        let status = CanaryRolloutStatus {
            phase: Some(Phase::Progressing),
            stage: Some(0),
            canary_weight: Some(0),
            rollout_started_at: Some("2026-01-01T00:01:00Z".parse().unwrap()),
            last_evaluation: Some(
                serde_json::from_value(serde_json::json!({
                    "time": "2026-01-01T00:00:10Z",
                    "verdict": "Pass",
                    "checks": [{"name": "error-rate", "value": 0.002, "max": 0.02, "verdict": "Pass"}]
                }))
                .unwrap(),
            ),
            ..Default::default()
        };
        assert_eq!(
            state_line(&status, 4),
            "Progressing  stage 1/4  canary   0%"
        );
    }

    #[test]
    fn at_rest_the_state_line_leaves_out_stage_and_evaluation() {
        let status = CanaryRolloutStatus {
            phase: Some(Phase::Succeeded),
            stage: Some(3),
            canary_weight: Some(0),
            ..Default::default()
        };
        assert_eq!(
            state_line(&status, 4),
            "Succeeded    stage -    canary   0%"
        );
    }
}
