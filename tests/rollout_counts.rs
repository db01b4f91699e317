//! A relative check on a ratio of counters is judged on the counts behind it, which the operator
//! reads from Prometheus as `increase(...)` over the analysis interval: a canary failing ten
//! times as often as stable is rolled back by the sequential test on the counts, and the reason
//! names it.

mod rollout_fixture;
mod support;

use std::time::Duration;

use rollout_fixture::*;
use sluice::api::canary_rollout::{Phase, RolloutResult, Verdict};

const REQUESTS: &str = "sluice_test_requests_total";
const ERRORS: &str = "sluice_test_errors_total";

/// A check of the canary's error ratio against stable's: errors at most doubled.
fn counter_ratio_check() -> String {
    let selector = r#"{namespace=\"{{namespace}}\",track=\"{{track}}\"}"#;
    format!(
        "    - name: errors-vs-stable\n      query: \"sum(rate({ERRORS}{selector}[5s])) / \
         sum(rate({REQUESTS}{selector}[5s]))\"\n      maxIncrease: 1.0\n"
    )
}

#[tokio::test]
async fn a_canary_failing_more_often_than_stable_is_rolled_back_on_its_counts() {
    // Counts over 3 s hold three scrapes of 1 s; over 1 s, increase() would have too few.
    let rollout = rollout_yaml(
        GATEWAY,
        "[{weight: 50, pause: 60s}]",
        &counter_ratio_check(),
    )
    .replace("interval: 1s", "interval: 3s");
    let service = Service::start("counts", &rollout).await;
    service.set_image("registry.example/checkout:2.0.0").await;
    service.wait_canary_weight(50).await;

    // Both tracks serve 400 requests per second; the canary fails 10 % of them, stable 1 %.
    let counting = async {
        let namespace = service.ns.name();
        let mut requests = 0.0;
        let (mut canary_errors, mut stable_errors) = (0.0, 0.0);
        loop {
            requests += 100.0;
            canary_errors += 10.0;
            stable_errors += 1.0;
            for (track, errors) in [("canary", canary_errors), ("stable", stable_errors)] {
                let labels = [("namespace", namespace), ("track", track)];
                service.exporter.set(REQUESTS, &labels, requests);
                service.exporter.set(ERRORS, &labels, errors);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let rolled_back = tokio::select! {
        rollout = service.wait_phase(Phase::RolledBack, Duration::from_secs(60)) => rollout,
        never = counting => never,
    };
    let status = rolled_back.status.expect("a status");
    let last = status.history.last().expect("a history entry");
    assert_eq!(last.result, RolloutResult::RolledBack, "{last:?}");
    for part in [
        "check errors-vs-stable",
        "above 2 times stable's established (e-value",
        "(sequential binomial test on the counts)",
    ] {
        assert!(last.reason.contains(part), "{part:?} in {:?}", last.reason);
    }
    let evaluation = status.last_evaluation.expect("the deciding evaluation");
    assert_eq!(evaluation.verdict, Verdict::Fail);
    let check = &evaluation.checks[1];
    assert_eq!(check.name, "errors-vs-stable");
    assert_eq!(check.verdict, Verdict::Fail, "{check:?}");
    // The rates per request over the stage, from the counts: 10 % and 1 %.
    let (canary, stable) = (check.value.unwrap_or(0.0), check.baseline.unwrap_or(0.0));
    assert!((0.08..=0.12).contains(&canary), "{check:?}");
    assert!((0.005..=0.02).contains(&stable), "{check:?}");
    assert!(check.evaluations.unwrap_or(0) >= 1, "{check:?}");
    assert_eq!(
        check.change_interval, None,
        "counts give no interval: {check:?}"
    );
    // The absolute check on the gauge passed all along: the counts decided.
    assert_eq!(evaluation.checks[0].verdict, Verdict::Pass);
}
