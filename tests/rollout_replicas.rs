//! CanaryRollout end to end with the replicas router (no HTTPRoute weights): the canary's share
//! of the pods behind the user's Service stands for the weight.

mod rollout_fixture;
mod support;

use std::time::{Duration, Instant};

use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult};

/// What the fixture's route looks like before any rollout touched it.
fn untouched_route() -> Vec<(String, i64)> {
    vec![("checkout".to_string(), 100)]
}

#[tokio::test]
async fn replicas_router_scales_the_canary_with_the_weight_and_never_touches_the_route() {
    let stages = "[{weight: 1, pause: 3s}, {weight: 50, pause: 3s}, {weight: 100, pause: 3s}]";
    let service = Service::start("replicas", &rollout_yaml(REPLICAS, stages, "")).await;
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(service.replicas("checkout-stable").await, 3);
    assert_eq!(service.backends().await, untouched_route());
    assert_eq!(service.status().await.canary_weight, Some(0));

    service.set_image("registry.example/checkout:2.0.0").await;
    // Every distinct (target, stable) replica pair and canary weight in status, in order.
    let mut replicas: Vec<(i32, i32)> = vec![(0, 3)];
    let mut weights: Vec<u32> = vec![0];
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let pair = (
            service.replicas("checkout").await,
            service.replicas("checkout-stable").await,
        );
        if replicas.last() != Some(&pair) {
            replicas.push(pair);
        }
        let status = service.status().await;
        if let Some(weight) = status.canary_weight
            && weights.last() != Some(&weight)
        {
            weights.push(weight);
        }
        assert_eq!(
            service.backends().await,
            untouched_route(),
            "the replicas router never writes the route"
        );
        if status.phase == Some(Phase::Succeeded) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The pair read in the last round may predate the promotion that ended the loop.
    let last = (
        service.replicas("checkout").await,
        service.replicas("checkout-stable").await,
    );
    if replicas.last() != Some(&last) {
        replicas.push(last);
    }
    let log = service.operator_log();
    assert_eq!(weights, vec![0, 1, 50, 100, 0], "operator log: {log}");
    // 3 stable replicas: 1 canary pod at 1% and at 50% as many as stable; at 100% the canary
    // runs them all while stable takes the new template; promoted, the target goes back to 0.
    let target: Vec<i32> = dedup(replicas.iter().map(|(t, _)| *t));
    let stable: Vec<i32> = dedup(replicas.iter().map(|(_, s)| *s));
    assert_eq!(
        target,
        vec![0, 1, 3, 0],
        "{replicas:?}; operator log: {log}"
    );
    assert_eq!(stable, vec![3, 0, 3], "{replicas:?}; operator log: {log}");

    let status = service.status().await;
    assert_eq!(status.phase, Some(Phase::Succeeded), "{status:?}");
    assert_eq!(
        status.history.last().map(|h| h.result),
        Some(RolloutResult::Promoted)
    );
    assert_eq!(
        service.image("checkout-stable").await,
        "registry.example/checkout:2.0.0"
    );
    assert_eq!(service.replicas("checkout").await, 0);
    assert_eq!(service.replicas("checkout-stable").await, 3);
    assert_eq!(service.backends().await, untouched_route());
}

fn dedup(values: impl Iterator<Item = i32>) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    for value in values {
        if out.last() != Some(&value) {
            out.push(value);
        }
    }
    out
}
