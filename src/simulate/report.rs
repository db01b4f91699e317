//! A replay as text for people and as JSON for machines.
//!
//! The text is a timeline: one block per evaluation (time since the start, stage, weight,
//! verdict, each check's value and verdict, the parity level and tracking error, the SLO state,
//! the engine's decision) and one line per other event, then the outcome. Times are offsets
//! from the replay's start, which the header gives, so the text is the same on every machine.

use std::fmt::Write as _;
use std::time::Duration;

use super::replay::{Ending, Outcome, Replay, Step};
use crate::api::canary_rollout::{CheckResult, Evaluation};
use crate::engine::analysis::format_value;

/// The replay as pretty JSON.
pub fn json(replay: &Replay) -> String {
    serde_json::to_string_pretty(replay).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The replay as a readable timeline.
pub fn text(replay: &Replay) -> String {
    let plural = if replay.evaluations == 1 { "" } else { "s" };
    let mut out = format!(
        "Replay of CanaryRollout {} from {} to {} ({} evaluation{plural})\n\n",
        replay.rollout, replay.start, replay.end, replay.evaluations
    );
    for step in &replay.steps {
        out.push_str(&step_text(step, replay));
    }
    out.push('\n');
    out.push_str(&outcome_text(&replay.outcome, replay));
    out.push('\n');
    out
}

/// `+hh:mm:ss` from the replay's start.
pub fn offset(replay: &Replay, at: jiff::Timestamp) -> String {
    let d = at.duration_since(replay.start).as_secs().max(0);
    format!("+{:02}:{:02}:{:02}", d / 3600, d / 60 % 60, d % 60)
}

fn position(step: &Step) -> String {
    match (step.stage, step.weight) {
        (Some(stage), Some(_)) => stage_text(stage, step.weight, step.mirror),
        (Some(stage), None) => format!("stage {stage}"),
        _ => "no stage".to_string(),
    }
}

/// "stage 1 (5%)", or "stage 0 (shadow 100%)" while the canary gets a copy of the requests.
fn stage_text(stage: u32, weight: Option<u32>, mirror: Option<u32>) -> String {
    match (mirror, weight) {
        (Some(mirror), _) => format!("stage {stage} (shadow {mirror}%)"),
        (None, Some(weight)) => format!("stage {stage} ({weight}%)"),
        (None, None) => format!("stage {stage}"),
    }
}

fn step_text(step: &Step, replay: &Replay) -> String {
    let time = offset(replay, step.time);
    let mut out = String::new();
    match &step.evaluation {
        Some(evaluation) => {
            let _ = writeln!(
                out,
                "{time}  {}  evaluation {:?}",
                position(step),
                evaluation.verdict
            );
            for line in evaluation_lines(evaluation) {
                let _ = writeln!(out, "    {line}");
            }
            let _ = writeln!(out, "    decision: {}", step.decision);
            for event in &step.events {
                let _ = writeln!(out, "    event {}: {}", event.reason, event.note);
            }
        }
        None => {
            for event in &step.events {
                let _ = writeln!(out, "{time}  {}: {}", event.reason, event.note);
            }
        }
    }
    out
}

/// The figures of one evaluation, a line each.
pub fn evaluation_lines(evaluation: &Evaluation) -> Vec<String> {
    let mut lines: Vec<String> = evaluation.checks.iter().map(check_line).collect();
    if let Some(samples) = evaluation.samples {
        lines.push(format!("samples {}", format_value(samples)));
    }
    if let Some(parity) = &evaluation.parity {
        let figure = parity
            .tracking_error_bps
            .map_or("no figure".to_string(), |v| format!("{v:.1} bps"));
        lines.push(format!(
            "parity {}: tracking error {figure} over {} samples, {} breaches in a row",
            parity.level, parity.samples, parity.consecutive_breaches
        ));
        if !parity.worst_groups.is_empty() {
            let groups: Vec<String> = parity
                .worst_groups
                .iter()
                .map(|g| {
                    let rms = g
                        .rms_difference_bps
                        .map_or("no figure".to_string(), |v| format!("rms {v:.1} bps"));
                    format!("{} {} {rms}", g.group, g.level)
                })
                .collect();
            lines.push(format!("worst groups: {}", groups.join(", ")));
        }
    }
    if let Some(slo) = &evaluation.slo {
        let left = slo
            .budget_remaining
            .map_or("unknown".to_string(), |r| format!("{:.1} %", r * 100.0));
        lines.push(format!("slo {}: budget left {left}", slo.level));
    }
    if let Some(message) = &evaluation.message {
        lines.push(format!("why: {message}"));
    }
    lines
}

fn check_line(check: &CheckResult) -> String {
    let value = check
        .value
        .map_or_else(|| "no value".to_string(), format_value);
    let bounds: Vec<String> = [("min", check.min), ("max", check.max)]
        .into_iter()
        .filter_map(|(name, bound)| bound.map(|b| format!("{name} {}", format_value(b))))
        .collect();
    let bounds = match bounds.is_empty() {
        true => String::new(),
        false => format!(" ({})", bounds.join(", ")),
    };
    let mut line = format!(
        "check {} = {value}{bounds}: {:?}",
        check.name, check.verdict
    );
    if let (Some(baseline), Some(change)) = (check.baseline, check.change) {
        let _ = write!(
            line,
            " (stable {}, change {:+.1} %",
            format_value(baseline),
            change * 100.0
        );
        if let Some([lower, upper]) = check.change_interval {
            let _ = write!(
                line,
                ", interval {:+.1} % to {:+.1} %",
                lower * 100.0,
                upper * 100.0
            );
        }
        if let Some(evaluations) = check.evaluations {
            let _ = write!(line, ", {evaluations} evaluations");
        }
        line.push(')');
    }
    if let Some(message) = &check.message {
        let _ = write!(line, " ({message})");
    }
    line
}

/// Whole seconds as "25m4s", the way durations are written in specs.
pub fn duration_text(d: Duration) -> String {
    crate::api::Duration::from(Duration::from_secs(d.as_secs())).to_string()
}

/// One word or two for a result, as the what-if table shows it.
pub fn result_text(result: Ending) -> &'static str {
    match result {
        Ending::Promoted => "promoted",
        Ending::RolledBack => "rolled back",
        Ending::Frozen => "frozen",
        Ending::HeldToEnd => "held to the end",
    }
}

/// One line per variant: its settings, the outcome, where, when, and how long it took.
pub fn what_if_text(replays: &[(String, Replay)]) -> String {
    let Some((_, first)) = replays.first() else {
        return String::new();
    };
    let mut out = format!(
        "What if: {} variants of CanaryRollout {} from {} to {}\n\n",
        replays.len(),
        first.rollout,
        first.start,
        first.end
    );
    let width = replays
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, replay) in replays {
        let outcome = &replay.outcome;
        let position = match (outcome.stage, outcome.weight) {
            (Some(stage), Some(_)) => stage_text(stage, outcome.weight, outcome.mirror),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{label:<width$}  {:<15}  {position:<14}  at {}  after {}",
            result_text(outcome.result),
            offset(replay, outcome.at),
            duration_text(outcome.after)
        );
    }
    out
}

#[derive(serde::Serialize)]
struct Variant<'a> {
    settings: &'a str,
    outcome: &'a Outcome,
}

/// The variants and their outcomes as pretty JSON.
pub fn what_if_json(replays: &[(String, Replay)]) -> String {
    let variants: Vec<Variant> = replays
        .iter()
        .map(|(settings, replay)| Variant {
            settings,
            outcome: &replay.outcome,
        })
        .collect();
    serde_json::to_string_pretty(&variants).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn outcome_text(outcome: &Outcome, replay: &Replay) -> String {
    let at = format!("{} ({})", outcome.at, offset(replay, outcome.at));
    let after = duration_text(outcome.after);
    let position = match (outcome.stage, outcome.weight) {
        (Some(stage), Some(_)) => stage_text(stage, outcome.weight, outcome.mirror),
        _ => "the start".to_string(),
    };
    match outcome.result {
        Ending::Promoted => format!("outcome: promoted at {at}, {after} after the rollout started"),
        Ending::RolledBack => format!(
            "outcome: rolled back at {at} at {position}, {after} after the rollout started, because {}",
            outcome.reason
        ),
        Ending::Frozen => format!(
            "outcome: frozen at {at} at {position}, {after} after the rollout started, because {}",
            outcome.reason
        ),
        Ending::HeldToEnd => format!(
            "outcome: held to the end of the recording at {at} at {position}, {after} after the rollout started: {}",
            outcome.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::api::canary_rollout::{ParityVerdict, Phase, SloVerdict, Verdict};
    use crate::api::parity_policy::ParityLevel;
    use crate::api::slo_budget::ObjectiveState;
    use crate::simulate::replay::StepEvent;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + second).unwrap()
    }

    fn replay() -> Replay {
        let evaluation = Evaluation {
            time: at(3692),
            verdict: Verdict::Fail,
            samples: Some(61.0),
            checks: vec![CheckResult {
                name: "error-rate".into(),
                value: Some(0.052),
                min: None,
                max: Some(0.01),
                baseline: None,
                change: None,
                change_interval: None,
                evaluations: None,
                verdict: Verdict::Fail,
                message: None,
            }],
            parity: Some(ParityVerdict {
                tracking_error_bps: Some(12.44),
                mean_difference_bps: Some(3.0),
                samples: 7,
                level: ParityLevel::Pass,
                consecutive_breaches: 0,
                worst_groups: Vec::new(),
            }),
            slo: Some(SloVerdict {
                budget_remaining: Some(0.8234),
                level: ObjectiveState::Meeting,
            }),
            message: Some("check error-rate = 0.052 > max 0.01".into()),
        };
        let rolled_back =
            "revision candidate rolled back at stage 0 (1%): check error-rate = 0.052 > max 0.01";
        Replay {
            rollout: "checkout".into(),
            start: at(0),
            end: at(7200),
            evaluations: 1,
            steps: vec![
                Step {
                    time: at(2),
                    phase: Some(Phase::Progressing),
                    stage: Some(0),
                    weight: Some(1),
                    mirror: None,
                    evaluation: None,
                    events: vec![StepEvent {
                        reason: "StageStarted",
                        note: "canary available; stage 0 (1%) started".into(),
                    }],
                    decision: "canary available; stage 0 (1%) started".into(),
                },
                Step {
                    time: at(3692),
                    phase: Some(Phase::RolledBack),
                    stage: Some(0),
                    weight: Some(1),
                    mirror: None,
                    evaluation: Some(evaluation),
                    events: vec![StepEvent {
                        reason: "RolledBack",
                        note: rolled_back.into(),
                    }],
                    decision: rolled_back.into(),
                },
            ],
            outcome: Outcome {
                result: Ending::RolledBack,
                at: at(3692),
                after: Duration::from_secs(3692),
                stage: Some(0),
                weight: Some(1),
                mirror: None,
                reason: "check error-rate = 0.052 > max 0.01".into(),
            },
        }
    }

    #[test]
    fn the_timeline_shows_each_evaluations_figures_and_the_outcome() {
        let expected = "\
Replay of CanaryRollout checkout from 2026-01-01T00:00:00Z to 2026-01-01T02:00:00Z (1 evaluation)

+00:00:02  StageStarted: canary available; stage 0 (1%) started
+01:01:32  stage 0 (1%)  evaluation Fail
    check error-rate = 0.052 (max 0.01): Fail
    samples 61
    parity Pass: tracking error 12.4 bps over 7 samples, 0 breaches in a row
    slo Meeting: budget left 82.3 %
    why: check error-rate = 0.052 > max 0.01
    decision: revision candidate rolled back at stage 0 (1%): check error-rate = 0.052 > max 0.01
    event RolledBack: revision candidate rolled back at stage 0 (1%): check error-rate = 0.052 > max 0.01

outcome: rolled back at 2026-01-01T01:01:32Z (+01:01:32) at stage 0 (1%), 1h1m32s after the rollout started, because check error-rate = 0.052 > max 0.01
";
        assert_eq!(text(&replay()), expected);
    }

    #[test]
    fn a_relative_check_shows_its_evidence_and_interval() {
        let check = CheckResult {
            name: "p99-latency".into(),
            value: Some(0.23),
            min: None,
            max: None,
            baseline: Some(0.2),
            change: Some(0.15),
            change_interval: Some([0.121, 0.179]),
            evaluations: Some(6),
            verdict: Verdict::Fail,
            message: None,
        };
        assert_eq!(
            check_line(&check),
            "check p99-latency = 0.23: Fail (stable 0.2, change +15.0 %, interval +12.1 % to \
             +17.9 %, 6 evaluations)"
        );
    }

    #[test]
    fn what_if_prints_a_line_per_variant() {
        let mut promoted = replay();
        promoted.outcome.result = Ending::Promoted;
        promoted.outcome.stage = Some(3);
        promoted.outcome.weight = Some(100);
        let rows = [
            ("analysis.failureLimit=1".to_string(), replay()),
            ("analysis.failureLimit=10".to_string(), promoted),
        ];
        let expected = "\
What if: 2 variants of CanaryRollout checkout from 2026-01-01T00:00:00Z to 2026-01-01T02:00:00Z

analysis.failureLimit=1   rolled back      stage 0 (1%)    at +01:01:32  after 1h1m32s
analysis.failureLimit=10  promoted         stage 3 (100%)  at +01:01:32  after 1h1m32s
";
        assert_eq!(what_if_text(&rows), expected);
        let json: serde_json::Value = serde_json::from_str(&what_if_json(&rows)).unwrap();
        assert_eq!(json[1]["settings"], "analysis.failureLimit=10");
        assert_eq!(json[1]["outcome"]["result"], "Promoted");
    }

    #[test]
    fn json_carries_the_outcome_for_machines() {
        let value: serde_json::Value = serde_json::from_str(&json(&replay())).unwrap();
        assert_eq!(value["outcome"]["result"], "RolledBack");
        assert_eq!(value["outcome"]["after"], "1h1m32s");
        assert_eq!(value["steps"][1]["evaluation"]["checks"][0]["value"], 0.052);
    }
}
