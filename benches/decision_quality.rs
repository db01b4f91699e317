//! How well the judge decides: every history of the labelled corpus (`simulate::corpus`, good
//! and bad release families, several seeds each) is rolled out through `engine::plan` under the
//! example policy below, with traffic following the weights the engine sets. Prints, per family,
//! how often the release was rolled back, at which weight, and how long the decision took.
//!
//! `cargo bench --bench decision_quality` (seeds per family: `SLUICE_CORPUS_SEEDS`, default 200).
//! Targets: at least 99 % of bad releases rolled back, at most 1 % of good ones, most bad ones
//! at 5 % weight or less.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use sluice::api::canary_rollout::{CanaryRolloutSpec, CanaryRolloutStatus, Phase};
use sluice::engine::analysis::{AnalysisInput, wants_stable_value};
use sluice::engine::count_test::{Counts, TrackCounts};
use sluice::engine::{Snapshot, Workload, evaluation_due, plan};
use sluice::simulate::corpus::{Family, History, Label, TrackWindow};

/// The policy the docs give users to copy (docs/judge.md): a high absolute bound on the error
/// ratio for sharp failures, the same ratio and the p99 latency relative to stable, on windows
/// of one interval.
const POLICY: &str = r#"
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
stages:
- {weight: 1, pause: 5m, maxDuration: 30m}
- {weight: 5, pause: 5m, maxDuration: 30m}
- {weight: 25, pause: 5m, maxDuration: 30m}
- {weight: 50, pause: 5m, maxDuration: 30m}
analysis:
  interval: 30s
  failureLimit: 2
  onMaxDuration: Promote
  checks:
  - name: error-rate
    query: 'sum(rate(errors{track="{{track}}"}[{{interval}}])) / sum(rate(requests{track="{{track}}"}[{{interval}}]))'
    max: 0.05
  - name: error-rate-vs-stable
    query: 'sum(rate(errors{track="{{track}}"}[{{interval}}])) / sum(rate(requests{track="{{track}}"}[{{interval}}]))'
    maxIncrease: 1.0
  - name: p99-latency
    query: 'histogram_quantile(0.99, sum by (le) (rate(latency_bucket{track="{{track}}"}[{{interval}}])))'
    maxIncrease: 0.15
"#;

const STEP_SECONDS: i64 = 10;
/// A history still undecided after this long counts as neither.
const GIVE_UP_MINUTES: f64 = 6.0 * 60.0;

struct Outcome {
    rolled_back: bool,
    /// The rollback's reason, as the history entry gives it.
    reason: Option<String>,
    decided: bool,
    /// Canary weight when the decision was taken.
    weight: u32,
    minutes: f64,
}

/// Errors and requests of both tracks' windows.
fn counts(canary: &TrackWindow, stable: &TrackWindow) -> Counts {
    let track = |window: &TrackWindow| TrackCounts {
        events: window.error_ratio.unwrap_or(0.0) * window.requests,
        requests: window.requests,
    };
    Counts {
        canary: track(canary),
        stable: track(stable),
    }
}

fn run(spec: &CanaryRolloutSpec, family: Family, seed: u64) -> Outcome {
    let mut history = History::new(family, seed);
    let annotations = BTreeMap::new();
    let mut status = CanaryRolloutStatus::default();
    let mut target = Workload {
        revision: "rev1".into(),
        replicas: 4,
        ready_replicas: 4,
        available: true,
    };
    let mut stable: Option<Workload> = None;
    let mut now = Timestamp::from_second(1_767_225_600).expect("a valid time");
    let mut started: Option<Timestamp> = None;
    let window = spec.analysis.interval.as_std().as_secs_f64();
    loop {
        let minutes = started.map_or(0.0, |s| now.duration_since(s).as_secs_f64() / 60.0);
        if minutes > GIVE_UP_MINUTES {
            let weight = status.canary_weight.unwrap_or(0);
            return Outcome {
                rolled_back: false,
                reason: None,
                decided: false,
                weight,
                minutes,
            };
        }
        let weight = status.canary_weight.unwrap_or(0);
        let due = started.is_some() && evaluation_due(spec, &status, now);
        let input = due.then(|| {
            let [canary, stable_track] = history.window(minutes, weight, window);
            let canary_error = Ok(canary.error_ratio);
            let error_check = &spec.analysis.checks[0];
            AnalysisInput {
                samples: None,
                baselines: vec![
                    wants_stable_value(&spec.analysis, error_check, &canary_error)
                        .then_some(Ok(stable_track.error_ratio)),
                    Some(Ok(stable_track.error_ratio)),
                    Some(Ok(stable_track.p99_seconds)),
                ],
                checks: vec![canary_error.clone(), canary_error, Ok(canary.p99_seconds)],
                gates: vec![],
                prometheus_start: None,
                // The relative error check is a ratio of counters: the counts behind it.
                counts: vec![None, Some(Ok(counts(&canary, &stable_track))), None],
            }
        });
        let problems: Vec<String> = Vec::new();
        let snapshot = Snapshot {
            spec,
            status: &status,
            generation: Some(1),
            annotations: &annotations,
            target: Some(&target),
            stable: stable.as_ref(),
            problems: &problems,
            analysis: input.as_ref(),
            freeze: None,
            delivery_freeze: None,
            pipeline: None,
            revoke_stable: None,
            keep_templates: false,
            now,
        };
        let planned = plan(&snapshot);
        status = planned.status;
        if let Some(change) = &planned.stable {
            let revision = match (&stable, change.copy_target_template) {
                (Some(existing), false) => existing.revision.clone(),
                _ => target.revision.clone(),
            };
            stable = Some(Workload {
                revision,
                replicas: change.replicas,
                ready_replicas: change.replicas,
                available: true,
            });
        }
        if let Some(replicas) = planned.target_replicas {
            target.replicas = replicas;
            target.ready_replicas = replicas;
        }
        match status.phase {
            Some(Phase::Idle) if started.is_none() => {
                target.revision = "rev2".into();
                started = Some(now);
            }
            Some(Phase::RolledBack) => {
                return Outcome {
                    rolled_back: true,
                    reason: status.history.last().map(|h| h.reason.clone()),
                    decided: true,
                    weight,
                    minutes,
                };
            }
            Some(Phase::Succeeded) => {
                return Outcome {
                    rolled_back: false,
                    reason: None,
                    decided: true,
                    weight,
                    minutes,
                };
            }
            _ => {}
        }
        now = now
            .checked_add(SignedDuration::from_secs(STEP_SECONDS))
            .expect("time moves on");
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn main() {
    let spec: CanaryRolloutSpec = serde_saphyr::from_str(POLICY).expect("the policy parses");
    let seeds: u64 = std::env::var("SLUICE_CORPUS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let started = std::time::Instant::now();
    println!(
        "decision quality: {seeds} histories per family, policy in benches/decision_quality.rs\n"
    );
    println!(
        "{:<20} {:>5} {:>12} {:>10} {:>10} {:>12} {:>14} {:>12}",
        "family",
        "label",
        "rolled back",
        "promoted",
        "undecided",
        "weight p50",
        "caught <= 5 %",
        "decided p50"
    );
    let mut totals: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut false_rollbacks = Vec::new();
    for family in Family::ALL {
        let outcomes: Vec<Outcome> = (1..=seeds).map(|seed| run(&spec, family, seed)).collect();
        let n = outcomes.len() as f64;
        if family.label() == Label::Good {
            false_rollbacks.extend(
                outcomes
                    .iter()
                    .zip(1..)
                    .filter_map(|(o, seed)| Some((family, seed, o.reason.clone()?))),
            );
        }
        let rolled_back = outcomes.iter().filter(|o| o.rolled_back).count();
        let promoted = outcomes
            .iter()
            .filter(|o| o.decided && !o.rolled_back)
            .count();
        let undecided = outcomes.iter().filter(|o| !o.decided).count();
        let mut weights: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.rolled_back)
            .map(|o| f64::from(o.weight))
            .collect();
        let early = outcomes
            .iter()
            .filter(|o| o.rolled_back && o.weight <= 5)
            .count();
        let mut minutes: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.decided)
            .map(|o| o.minutes)
            .collect();
        let label = match family.label() {
            Label::Good => "good",
            Label::Bad => "bad",
        };
        let entry = totals.entry(label).or_default();
        entry.0 += outcomes.len() as u64;
        entry.1 += rolled_back as u64;
        let percent = |count: usize| format!("{:.1} %", count as f64 / n * 100.0);
        println!(
            "{:<20} {:>5} {:>12} {:>10} {:>10} {:>12} {:>14} {:>12}",
            family.name(),
            label,
            percent(rolled_back),
            percent(promoted),
            percent(undecided),
            median(&mut weights).map_or("-".into(), |w| format!("{w:.0} %")),
            match rolled_back {
                0 => "-".to_string(),
                _ => format!("{:.1} %", early as f64 / rolled_back as f64 * 100.0),
            },
            median(&mut minutes).map_or("-".into(), |m| format!("{m:.1} min")),
        );
    }
    println!();
    for (family, seed, reason) in &false_rollbacks {
        println!("false rollback, {} seed {seed}: {reason}", family.name());
    }
    for (label, (count, rolled_back)) in totals {
        println!(
            "{label} releases: {rolled_back} of {count} rolled back ({:.2} %)",
            rolled_back as f64 / count as f64 * 100.0
        );
    }
    println!("replayed in {:.1} s", started.elapsed().as_secs_f64());
}
