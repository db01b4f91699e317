//! A ParityPolicy over a published order value per track, for rollouts judged on parity.

use std::time::Duration;

use sluice::api::canary_rollout::Phase;
use sluice::api::parity_policy::{ParityPolicy, ParityPolicyStatus};

use super::{GATEWAY, Service, rollout_yaml};

pub const ORDER_VALUE: &str = "sluice_test_order_value";

pub const PARITY_POLICY: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: ParityPolicy
metadata: {name: checkout-parity}
spec:
  query: 'max(sluice_test_order_value{namespace="{{namespace}}",track="{{track}}"})'
  window: 8s
  step: 1s
  minSamples: 4
  consecutiveBreaches: 2
"#;

/// A service whose rollout references the ParityPolicy `checkout-parity` (Invalid until it
/// exists, then Idle), with the order values of both tracks published and scraped.
pub async fn with_parity(prefix: &str, stages: &str, stable: f64, canary: f64) -> Service {
    with_parity_policy(prefix, stages, PARITY_POLICY, stable, canary).await
}

/// [`with_parity`] with `policy` (named `checkout-parity`) in place of [`PARITY_POLICY`].
pub async fn with_parity_policy(
    prefix: &str,
    stages: &str,
    policy: &str,
    stable: f64,
    canary: f64,
) -> Service {
    let extra = "    parityPolicyRef: {name: checkout-parity}\n";
    let service = Service::deploy(prefix, &rollout_yaml(GATEWAY, stages, extra)).await;
    service
        .wait_phase(Phase::Invalid, Duration::from_secs(30))
        .await;
    service.ns.apply_yaml(policy).await;
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    publish_order_values(&service, stable, canary);
    service.wait_track_scraped(ORDER_VALUE, "canary").await;
    service
}

/// Publishes the order value of each track.
pub fn publish_order_values(service: &Service, stable: f64, canary: f64) {
    for (track, value) in [("stable", stable), ("canary", canary)] {
        service.exporter.set(
            ORDER_VALUE,
            &[("namespace", service.ns.name()), ("track", track)],
            value,
        );
    }
}

/// The status of the ParityPolicy `checkout-parity`, as the apiserver has it now.
pub async fn policy_status(service: &Service) -> Result<ParityPolicyStatus, String> {
    let policy = service
        .ns
        .api::<ParityPolicy>()
        .get("checkout-parity")
        .await
        .map_err(|e| e.to_string())?;
    Ok(policy.status.unwrap_or_default())
}
