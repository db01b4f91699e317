//! Objects for the plugin's unit tests: a rollout at stage 2 of 4 with two checks, parity and an
//! SLO budget, and the ParityPolicy and SLOBudget it refers to, seen at [`NOW`].

use jiff::Timestamp;

use crate::api::{CanaryRollout, ParityPolicy, SLOBudget};

/// 2026-11-18T11:06:40Z.
pub const NOW: Timestamp = Timestamp::constant(1_795_000_000, 0);

const ROLLOUT: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: CanaryRollout
metadata: {name: checkout, namespace: shop, creationTimestamp: "2026-11-16T10:06:40Z"}
spec:
  targetRef: {name: checkout}
  service: {name: checkout, port: 80}
  trafficRouting: {gatewayAPI: {httpRoutes: [checkout]}}
  stages:
  - {weight: 1, pause: 1m}
  - {weight: 5, pause: 2m, minSamples: 1000}
  - {weight: 25, pause: 5m}
  - {weight: 100, pause: 5m}
  analysis:
    interval: 30s
    failureLimit: 2
    checks:
    - {name: error-rate, query: 'x', max: 0.01}
    - {name: p99-latency, query: 'y', maxIncrease: 0.1}
    parityPolicyRef: {name: checkout-parity}
    sloBudgetRef: {name: checkout-slo}
status:
  phase: Progressing
  stage: 1
  canaryWeight: 5
  canaryRevision: 7f9c6d5a01
  stableRevision: 6d8f7c9b02
  rolloutStartedAt: "2026-11-18T11:03:30Z"
  stageStartedAt: "2026-11-18T11:05:28Z"
  stageSamples: 640
  failedEvaluations: 0
  message: "stage 1 (5%): waiting for the pause (42s left)"
  lastEvaluation:
    time: "2026-11-18T11:06:32Z"
    verdict: Pass
    samples: 320
    message: all checks passed
    checks:
    - {name: error-rate, value: 0.002, max: 0.01, verdict: Pass}
    - {name: p99-latency, value: 0.21, baseline: 0.2, change: 0.05, changeInterval: [0.01, 0.09], evaluations: 12, verdict: Pass}
    parity: {trackingErrorBps: 12.4, meanDifferenceBps: 3.1, samples: 24, level: Pass, consecutiveBreaches: 0}
    slo: {budgetRemaining: 0.82, level: Meeting}
  conditions:
  - {type: Ready, status: "False", reason: Progressing, message: rollout in progress, lastTransitionTime: "2026-11-18T11:03:30Z"}
  - {type: Reconciling, status: "True", reason: Progressing, message: "stage 1 (5%)", lastTransitionTime: "2026-11-18T11:03:30Z"}
  history:
  - {revision: 5e1a2b3c4d, result: Promoted, startedAt: "2026-11-17T09:00:00Z", finishedAt: "2026-11-17T09:30:00Z", reason: all stages passed}
"#;

const PARITY_POLICY: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: ParityPolicy
metadata: {name: checkout-parity, namespace: shop}
spec:
  query: 'q{track="{{track}}"}'
status:
  lastEvaluation:
    time: "2026-11-18T11:06:20Z"
    trackingErrorBps: 11.9
    meanDifferenceBps: 3.1
    rmsDifferenceBps: 12.4
    samples: 24
    level: Pass
    components:
    - {name: fees, differenceBps: 2.0, share: 0.65}
    - {name: slippage, differenceBps: 0.8, share: 0.26}
    residualBps: 0.3
"#;

const SLO_BUDGET: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: SLOBudget
metadata: {name: checkout-slo, namespace: shop}
spec:
  objectives:
  - {name: availability, target: 99.5, good: g, total: t}
status:
  objectives:
  - {name: availability, sli: 0.99855, budgetRemaining: 0.71, burnRates: {"1h": 0.4, "5m": 0.3}, state: Meeting}
  - {name: latency, sli: 0.9993, budgetRemaining: 0.93, state: Meeting}
"#;

pub fn rollout() -> CanaryRollout {
    serde_saphyr::from_str(ROLLOUT).expect("the rollout fixture parses")
}

pub fn parity_policy() -> ParityPolicy {
    serde_saphyr::from_str(PARITY_POLICY).expect("the parity fixture parses")
}

pub fn budget() -> SLOBudget {
    serde_saphyr::from_str(SLO_BUDGET).expect("the budget fixture parses")
}
