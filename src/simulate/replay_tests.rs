use std::sync::Arc;

use super::*;
use crate::metrics::FakeMetrics;
use crate::simulate::inputs::RawDocuments;

const ERRORS: &str = "sum(rate(errors_total[1m]))";
const SAMPLES: &str = "sum(increase(requests_total[30s]))";

fn documents() -> Documents {
    let rollout = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "checkout"},
            "service": {"name": "checkout", "port": 80},
            "trafficRouting": {"gatewayAPI": {"httpRoutes": ["checkout"]}},
            "stages": [{"weight": 10, "pause": "1m", "minSamples": 100}, {"weight": 100, "pause": "1m"}],
            "analysis": {
                "interval": "30s",
                "failureLimit": 2,
                "sampleCountQuery": SAMPLES,
                "checks": [{"name": "error-rate", "query": ERRORS, "max": 0.01}]
            }
        }
    });
    let raw = RawDocuments::from_documents(vec![("CanaryRollout".into(), rollout)]).unwrap();
    raw.typed().unwrap()
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

fn metrics(error_rate: Option<f64>, samples: f64) -> Arc<FakeMetrics> {
    let fake = FakeMetrics::new();
    fake.set_value(ERRORS, error_rate);
    fake.set_value(SAMPLES, Some(samples));
    Arc::new(fake)
}

fn reasons(replay: &Replay) -> Vec<&'static str> {
    replay
        .steps
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.reason))
        .collect()
}

#[tokio::test]
async fn a_healthy_canary_passes_every_stage_and_is_promoted() {
    let replay = replay(&documents(), metrics(Some(0.001), 60.0), at(0), at(3600)).await;
    assert_eq!(replay.outcome.result, Ending::Promoted);
    assert_eq!(
        reasons(&replay),
        [
            "RolloutStarted",
            "StageStarted",
            "StageAdvanced",
            "PromotionStarted",
            "Promoted"
        ]
    );
    // The canary is up 2 s after the start; each stage lasts its 1 m pause, and the first
    // passing evaluation after it moves on; promotion takes one more reconcile.
    let advanced = replay
        .steps
        .iter()
        .find(|s| s.events.iter().any(|e| e.reason == "StageAdvanced"))
        .unwrap();
    assert_eq!(advanced.time, at(62));
    assert_eq!((advanced.stage, advanced.weight), (Some(0), Some(10)));
    assert_eq!(
        advanced.decision,
        "stage 1 (100%) started after stage 0 (10%) passed"
    );
    assert_eq!(replay.outcome.at, at(124));
    assert_eq!(replay.outcome.after, Duration::from_secs(124));
    assert_eq!(replay.evaluations, 4);
    let first = replay.steps[2].evaluation.as_ref().unwrap();
    assert_eq!(first.checks[0].value, Some(0.001));
}

#[tokio::test]
async fn a_failing_check_rolls_back_after_failure_limit_evaluations() {
    let replay = replay(&documents(), metrics(Some(0.2), 60.0), at(0), at(3600)).await;
    let outcome = &replay.outcome;
    assert_eq!(outcome.result, Ending::RolledBack);
    assert_eq!((outcome.stage, outcome.weight), (Some(0), Some(10)));
    assert_eq!(outcome.at, at(62), "two evaluations, 30 s apart");
    assert!(
        outcome.reason.contains("2 failed evaluations in a row"),
        "{}",
        outcome.reason
    );
    assert_eq!(
        reasons(&replay),
        [
            "RolloutStarted",
            "StageStarted",
            "AnalysisFailed",
            "AnalysisFailed",
            "RolledBack"
        ]
    );
}

#[tokio::test]
async fn too_few_samples_hold_the_stage_to_the_end_of_the_recording() {
    let replay = replay(&documents(), metrics(Some(0.001), 1.0), at(0), at(600)).await;
    let outcome = &replay.outcome;
    assert_eq!(outcome.result, Ending::HeldToEnd);
    assert_eq!(outcome.at, at(600));
    assert_eq!(outcome.stage, Some(0));
    assert!(outcome.reason.contains("samples"), "{}", outcome.reason);
    // An evaluation every 30 s from the stage's start, 2 s in, to the end.
    assert_eq!(replay.evaluations, 19);
}

#[tokio::test]
async fn the_same_inputs_give_the_same_replay() {
    let documents = documents();
    let run = || replay(&documents, metrics(None, 60.0), at(0), at(900));
    let (first, second) = (run().await, run().await);
    assert_eq!(first, second);
    assert_eq!(first.outcome.result, Ending::HeldToEnd, "no data holds");
}

#[tokio::test]
async fn a_budget_spent_before_the_start_freezes_the_rollout_before_it_starts() {
    let mut documents = documents();
    let budget = serde_json::json!({
        "kind": "SLOBudget",
        "metadata": {"name": "checkout-slo", "namespace": "shop"},
        "spec": {
            "window": "30d",
            "objectives": [{
                "name": "availability", "target": 99.5,
                "good": "sum(rate(ok_total{track=~\"{{track}}\"}[{{window}}]))",
                "total": "sum(rate(all_total{track=~\"{{track}}\"}[{{window}}]))"
            }]
        }
    });
    documents.slo = Some(serde_json::from_value(budget).unwrap());
    let fake = metrics(Some(0.001), 60.0);
    // The whole service served 90 % of its requests well over every window: the budget is gone.
    for window in ["30d", "3d", "1d", "6h", "2h", "1h", "30m", "5m"] {
        fake.set_value(
            format!("sum(rate(ok_total{{track=~\".*\"}}[{window}]))"),
            Some(0.9),
        );
        fake.set_value(
            format!("sum(rate(all_total{{track=~\".*\"}}[{window}]))"),
            Some(1.0),
        );
    }
    let replay = replay(&documents, fake, at(0), at(600)).await;
    let outcome = &replay.outcome;
    assert_eq!(outcome.result, Ending::Frozen);
    assert_eq!((outcome.at, replay.evaluations), (at(0), 0));
    assert!(
        outcome
            .reason
            .contains("SLOBudget checkout-slo: objective availability has"),
        "{}",
        outcome.reason
    );
    assert_eq!(reasons(&replay), ["Frozen"]);
}

/// The rollout of [`documents`] with a shadow stage in front.
fn shadow_documents() -> Documents {
    let mut documents = documents();
    let stages = serde_json::json!([{"mirror": 100, "pause": "1m"}, {"weight": 10, "pause": "1m"}, {"weight": 100, "pause": "1m"}]);
    documents.rollout.spec.stages = serde_json::from_value(stages).unwrap();
    documents
}

#[tokio::test]
async fn a_shadow_stage_is_replayed_and_named_in_the_report() {
    let replay = replay(
        &shadow_documents(),
        metrics(Some(0.001), 60.0),
        at(0),
        at(3600),
    )
    .await;
    assert_eq!(replay.outcome.result, Ending::Promoted);
    let advanced = replay
        .steps
        .iter()
        .find(|s| s.events.iter().any(|e| e.reason == "StageAdvanced"))
        .unwrap();
    assert_eq!(
        (advanced.stage, advanced.weight, advanced.mirror),
        (Some(0), Some(0), Some(100))
    );
    assert_eq!(
        advanced.decision,
        "stage 1 (10%) started after stage 0 (shadow 100%) passed"
    );
    let failing = replay_of_failure(&shadow_documents()).await;
    assert_eq!(
        (
            failing.outcome.result,
            failing.outcome.weight,
            failing.outcome.mirror
        ),
        (Ending::RolledBack, Some(0), Some(100))
    );
    let text = crate::simulate::report::text(&failing);
    assert!(text.contains("at stage 0 (shadow 100%)"), "{text}");
}

async fn replay_of_failure(documents: &Documents) -> Replay {
    replay(documents, metrics(Some(0.2), 60.0), at(0), at(3600)).await
}

/// A rollout judged by a ParityPolicy per symbol, over five symbols of which MSFT's canary is
/// 60 bps above its stable.
fn grouped_parity() -> (Documents, Arc<FakeMetrics>) {
    let rollout = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "checkout"},
            "service": {"name": "checkout", "port": 80},
            "trafficRouting": {"gatewayAPI": {"httpRoutes": ["checkout"]}},
            "stages": [{"weight": 5, "pause": "10m"}, {"weight": 100, "pause": "1m"}],
            "analysis": {"interval": "30s", "parityPolicyRef": {"name": "parity"}}
        }
    });
    let policy = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ParityPolicy",
        "metadata": {"name": "parity", "namespace": "shop"},
        "spec": {
            "query": "sum by (symbol) (px{track=\"{{track}}\"})",
            "window": "10m", "step": "30s", "minSamples": 10,
            "groups": {"by": ["symbol"]}
        }
    });
    let raw = RawDocuments::from_documents(vec![
        ("CanaryRollout".into(), rollout),
        ("ParityPolicy".into(), policy),
    ])
    .unwrap();
    let fake = FakeMetrics::new();
    for track in ["canary", "stable"] {
        let series = ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA"]
            .into_iter()
            .map(|symbol| {
                let offset = if track == "canary" && symbol == "MSFT" {
                    1.006
                } else {
                    1.0
                };
                crate::metrics::LabelledSeries {
                    labels: [("symbol".to_string(), symbol.to_string())].into(),
                    points: (0..20)
                        .map(|t| (1_700_000_000.0 + 30.0 * t as f64, 100.0 * offset))
                        .collect(),
                }
            })
            .collect();
        fake.set_range_series(format!("sum by (symbol) (px{{track=\"{track}\"}})"), series);
    }
    (raw.typed().unwrap(), Arc::new(fake))
}

#[tokio::test]
async fn a_grouped_recording_is_replayed_and_the_breaching_group_named() {
    let (documents, metrics) = grouped_parity();
    let replay = replay(&documents, metrics, at(0), at(3600)).await;
    assert_eq!(replay.outcome.result, Ending::RolledBack);
    assert!(
        replay.outcome.reason.starts_with("parity Critical: group symbol=MSFT rms 60.0 bps >= critical 50 bps (5 groups, 1 breaching; aggregate rms 12.0 bps)"),
        "{}",
        replay.outcome.reason
    );
    let text = crate::simulate::report::text(&replay);
    assert!(text.contains("group symbol=MSFT"), "{text}");
    assert!(
        text.contains("worst groups: symbol=MSFT Critical rms 60.0 bps, "),
        "{text}"
    );
}
