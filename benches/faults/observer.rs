//! Watches every CanaryRollout and keeps each status it sees, in order, to check what happened
//! between the campaign's looks: no stage skipped or repeated, no stage left without a passing
//! judgement, none on a judgement made while Prometheus could still answer with samples from
//! before a restart (within one lookback after a start). A watch that had to list again may have missed statuses in between: the pair
//! across it is not judged, and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::{Phase, Verdict};

/// One status as the watch delivered it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    /// The watch listed again before this one: statuses may be missing just before it.
    after_gap: bool,
    phase: Option<Phase>,
    stage: Option<u32>,
    stage_started_at: Option<Timestamp>,
    candidate: Option<(String, Timestamp)>,
    last_evaluation: Option<(Timestamp, Verdict)>,
    stages: usize,
}

#[derive(Default)]
struct Log {
    /// By "namespace/name".
    rollouts: HashMap<String, Vec<Seen>>,
    relisting: bool,
}

pub struct Observer {
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the statuses seen in one namespace show.
#[derive(Default)]
pub struct Judged {
    /// Stage changes and promotions seen from one status to the next.
    pub transitions: usize,
    /// Pairs of statuses with a relist between them, not judged.
    pub across_gaps: usize,
    pub skipped_or_repeated: Vec<String>,
    pub without_passing_judgement: Vec<String>,
}

impl Observer {
    pub fn start(client: Client) -> Observer {
        let log = Arc::new(Mutex::new(Log::default()));
        let writer = log.clone();
        let task = tokio::spawn(async move {
            let rollouts: Api<CanaryRollout> = Api::all(client);
            let mut events = watcher(rollouts, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let mut log = writer.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    watcher::Event::Init => log.relisting = true,
                    watcher::Event::InitApply(rollout) => log.record(&rollout, true),
                    watcher::Event::InitDone => log.relisting = false,
                    watcher::Event::Apply(rollout) => log.record(&rollout, false),
                    watcher::Event::Delete(_) => {}
                }
            }
        });
        Observer { log, task }
    }

    /// Judges every pair of successive statuses of the rollouts in `namespace`; `untrusted`
    /// are the spans [start, start + lookback) of Prometheus' starts.
    pub fn judge(&self, namespace: &str, untrusted: &[(Timestamp, Timestamp)]) -> Judged {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let prefix = format!("{namespace}/");
        let mut judged = Judged::default();
        for (key, seen) in log.rollouts.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            for pair in seen.windows(2) {
                judge_pair(key, &pair[0], &pair[1], untrusted, &mut judged);
            }
        }
        judged
    }

    /// Forgets the rollouts of `namespace` (its scenario is over).
    pub fn forget(&self, namespace: &str) {
        let prefix = format!("{namespace}/");
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.rollouts.retain(|k, _| !k.starts_with(&prefix));
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Log {
    fn record(&mut self, rollout: &CanaryRollout, listed: bool) {
        let Some(status) = rollout.status.as_ref() else {
            return;
        };
        let key = format!(
            "{}/{}",
            rollout.namespace().unwrap_or_default(),
            rollout.name_any()
        );
        let seen = Seen {
            after_gap: listed || self.relisting,
            phase: status.phase,
            stage: status.stage,
            stage_started_at: status.stage_started_at,
            candidate: status
                .canary_revision
                .clone()
                .zip(status.rollout_started_at),
            last_evaluation: status.last_evaluation.as_ref().map(|e| (e.time, e.verdict)),
            stages: rollout.spec.stages.len(),
        };
        let history = self.rollouts.entry(key).or_default();
        let unchanged = history.last().is_some_and(|last| {
            Seen {
                after_gap: seen.after_gap,
                ..last.clone()
            } == seen
        });
        if !unchanged {
            history.push(seen);
        }
    }
}

fn judge_pair(
    key: &str,
    before: &Seen,
    after: &Seen,
    untrusted: &[(Timestamp, Timestamp)],
    judged: &mut Judged,
) {
    let same_candidate = before.candidate.is_some() && before.candidate == after.candidate;
    let moving = before.phase == Some(Phase::Progressing)
        && matches!(
            after.phase,
            Some(Phase::Progressing | Phase::Paused | Phase::Promoting)
        );
    if !same_candidate || !moving {
        return;
    }
    let (Some(from), Some(to)) = (before.stage, after.stage) else {
        return;
    };
    let promoted = after.phase == Some(Phase::Promoting);
    let advanced = to == from + 1 || promoted;
    // A promotion sets stageStartedAt to its own start.
    let restarted = to == from
        && !promoted
        && before.stage_started_at.is_some()
        && after.stage_started_at.is_some()
        && before.stage_started_at != after.stage_started_at;
    if !(advanced || restarted || to != from) {
        return;
    }
    judged.transitions += 1;
    if after.after_gap {
        judged.across_gaps += 1;
        return;
    }
    if to < from || to > from + 1 || restarted {
        judged.skipped_or_repeated.push(format!(
            "{key}: stage {from} (started {:?}) followed by stage {to} (started {:?})",
            before.stage_started_at, after.stage_started_at
        ));
    }
    if promoted && (from as usize) + 1 != before.stages {
        judged.skipped_or_repeated.push(format!(
            "{key}: promotion from stage {from} of {}",
            before.stages
        ));
    }
    if advanced {
        let passed = match (after.last_evaluation, before.stage_started_at) {
            (Some((time, Verdict::Pass)), Some(started)) => {
                time > started
                    && !untrusted
                        .iter()
                        .any(|&(from, to)| from <= time && time < to)
            }
            _ => false,
        };
        if !passed {
            judged.without_passing_judgement.push(format!(
                "{key}: left stage {from} (started {:?}) with the last evaluation {:?}",
                before.stage_started_at, after.last_evaluation
            ));
        }
    }
}

/// Checks the judgement itself on statuses made up for it, before the campaign relies on it:
/// a skipped stage, a restarted stage, a stage left on a failing evaluation and a promotion
/// from the first of three stages must each be caught, and a clean run must pass.
pub fn check_the_judge() {
    let at = |second: i64| Timestamp::from_second(1_800_000_000 + second).expect("a time");
    let seen = |phase: Phase, stage: u32, started: i64, evaluated: Option<(i64, Verdict)>| Seen {
        after_gap: false,
        phase: Some(phase),
        stage: Some(stage),
        stage_started_at: Some(at(started)),
        candidate: Some(("abc".to_string(), at(0))),
        last_evaluation: evaluated.map(|(second, verdict)| (at(second), verdict)),
        stages: 3,
    };
    // Prometheus started at 20 with a lookback of 5.
    let untrusted = [(at(20), at(25))];
    let judge = |statuses: &[Seen]| {
        let mut judged = Judged::default();
        for pair in statuses.windows(2) {
            judge_pair("test/rollout", &pair[0], &pair[1], &untrusted, &mut judged);
        }
        judged
    };
    use Phase::{Progressing, Promoting};
    use Verdict::{Fail, Pass};
    let clean = judge(&[
        seen(Progressing, 0, 1, None),
        seen(Progressing, 0, 1, Some((2, Pass))),
        seen(Progressing, 1, 3, Some((3, Pass))),
        seen(Progressing, 2, 6, Some((5, Pass))),
        seen(Progressing, 2, 6, Some((7, Pass))),
        seen(Promoting, 2, 9, Some((7, Pass))),
    ]);
    assert!(
        clean.skipped_or_repeated.is_empty() && clean.without_passing_judgement.is_empty(),
        "a clean rollout judged wrong: {:?} {:?}",
        clean.skipped_or_repeated,
        clean.without_passing_judgement
    );
    assert_eq!(clean.transitions, 3);
    let skipped = judge(&[
        seen(Progressing, 0, 1, None),
        seen(Progressing, 2, 4, Some((3, Pass))),
    ]);
    assert_eq!(
        skipped.skipped_or_repeated.len(),
        1,
        "a skipped stage missed"
    );
    let restarted = judge(&[seen(Progressing, 1, 1, None), seen(Progressing, 1, 4, None)]);
    assert_eq!(
        restarted.skipped_or_repeated.len(),
        1,
        "a restarted stage missed"
    );
    let failing = judge(&[
        seen(Progressing, 0, 1, None),
        seen(Progressing, 1, 4, Some((3, Fail))),
    ]);
    assert_eq!(
        failing.without_passing_judgement.len(),
        1,
        "a stage left on a failure missed"
    );
    let stale = judge(&[
        seen(Progressing, 0, 5, None),
        seen(Progressing, 1, 6, Some((4, Pass))),
    ]);
    assert_eq!(
        stale.without_passing_judgement.len(),
        1,
        "a pass from before the stage missed"
    );
    let restarted_prometheus = judge(&[
        seen(Progressing, 0, 10, None),
        seen(Progressing, 1, 23, Some((22, Pass))),
        seen(Progressing, 2, 26, Some((25, Pass))),
    ]);
    assert_eq!(
        restarted_prometheus.without_passing_judgement.len(),
        1,
        "a pass within a lookback after Prometheus started missed"
    );
    let early = judge(&[
        seen(Progressing, 0, 1, None),
        seen(Promoting, 0, 4, Some((3, Pass))),
    ]);
    assert_eq!(
        early.skipped_or_repeated.len(),
        1,
        "a promotion from stage 0 of 3 missed"
    );
    let mut gap = seen(Progressing, 2, 4, Some((3, Pass)));
    gap.after_gap = true;
    let across = judge(&[seen(Progressing, 0, 1, None), gap]);
    assert!(across.skipped_or_repeated.is_empty() && across.across_gaps == 1);
}
