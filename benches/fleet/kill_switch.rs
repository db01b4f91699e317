//! The kill switch over the fleet: every rollout in flight on long stages, then one
//! DeliveryFreeze with `action: Rollback` over the namespace; how long until each canary is
//! rolled back, from the freeze's creation to the rollback the rollout's history records.

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use sluice::api::DeliveryFreeze;
use sluice::api::canary_rollout::Phase;

use crate::services::Fleet;

const KILL_IMAGE: &str = "registry.example/app:3.0.0";
/// How often the harness looks while the switch is pulled.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Seconds from the freeze to each rollback, sorted; None when the fleet never got in flight.
pub struct KillSwitch {
    pub pulled_at: Timestamp,
    pub done_at: Timestamp,
    pub all_rolled_back: bool,
    pub seconds: Vec<f64>,
}

pub async fn pull(
    client: &Client,
    fleet: &Fleet,
    namespace: &str,
    timeout: Duration,
) -> Option<KillSwitch> {
    let long = json!([{"weight": 50, "pause": "30m"}, {"weight": 100, "pause": "30m"}]);
    fleet
        .set_stages(long)
        .await
        .unwrap_or_else(|e| panic!("lengthening the stages: {e}"));
    fleet
        .change_image(KILL_IMAGE)
        .await
        .unwrap_or_else(|e| panic!("changing the image: {e}"));
    let in_flight = fleet
        .wait_rollouts(timeout, "in flight", |rollout| {
            let status = rollout.status.as_ref();
            status.and_then(|s| s.phase) == Some(Phase::Progressing)
                && status.is_some_and(|s| s.stage_started_at.is_some())
        })
        .await;
    if !in_flight.complete(fleet.size) {
        println!(
            "\nkill switch skipped: {}/{} rollouts got in flight ({})",
            in_flight.reached, fleet.size, in_flight.stragglers
        );
        return None;
    }
    println!(
        "\nkill switch: all {} rollouts in flight after {:.1} s",
        fleet.size,
        in_flight.elapsed.as_secs_f64()
    );
    let freeze: DeliveryFreeze = serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DeliveryFreeze",
        "metadata": {"name": "kill-switch"},
        "spec": {"action": "Rollback", "reason": "fleet bench"},
    }))
    .expect("a DeliveryFreeze");
    let freezes: Api<DeliveryFreeze> = Api::namespaced(client.clone(), namespace);
    let pulled_at = Timestamp::now();
    freezes
        .create(&PostParams::default(), &freeze)
        .await
        .unwrap_or_else(|e| panic!("creating the DeliveryFreeze: {e}"));
    let rolled_back = |rollout: &sluice::api::CanaryRollout| {
        rollout.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::RolledBack)
                && s.history
                    .last()
                    .is_some_and(|h| h.reason.contains("kill-switch"))
        })
    };
    let progress = fleet
        .wait_rollouts_every(LOOK_EVERY, timeout, "rolled back", rolled_back)
        .await;
    let done_at = Timestamp::now();
    let rollouts = fleet
        .rollouts()
        .await
        .unwrap_or_else(|e| panic!("listing the rollouts: {e}"));
    let mut seconds: Vec<f64> = rollouts
        .iter()
        .filter(|r| rolled_back(r))
        .filter_map(|r| r.status.as_ref()?.history.last())
        .map(|h| h.finished_at.duration_since(pulled_at).as_secs_f64())
        .collect();
    seconds.sort_by(f64::total_cmp);
    Some(KillSwitch {
        pulled_at,
        done_at,
        all_rolled_back: progress.complete(fleet.size),
        seconds,
    })
}

impl KillSwitch {
    pub fn print(&self, size: usize) {
        let at = |q: f64| {
            let index = ((self.seconds.len() as f64 - 1.0) * q).round() as usize;
            self.seconds.get(index).copied().unwrap_or(f64::NAN)
        };
        println!(
            "kill switch: {}/{size} canaries rolled back{}; from the freeze's creation to each rollback: p50 {:.2} s, p95 {:.2} s, last {:.2} s",
            self.seconds.len(),
            if self.all_rolled_back {
                ""
            } else {
                " (gave up on the rest)"
            },
            at(0.5),
            at(0.95),
            at(1.0),
        );
    }
}
