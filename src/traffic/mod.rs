//! Routers: `gateway_api` (HTTPRoute weights) and `replicas` (no router: the canary's share of
//! ready pods approximates the weight).
//!
//! This module decides how a canary weight is expressed on the cluster; it does not decide the
//! weight (the engine does) nor scale anything itself (the controller applies the counts
//! [`replica_split`] computes).

pub mod gateway_api;

pub use gateway_api::{ServiceNames, TrafficError};

use crate::api::canary_rollout::TrafficRouting;

/// The router a rollout's `spec.trafficRouting` selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// Weights on the backendRefs of these HTTPRoutes, in the rollout's namespace.
    GatewayApi { routes: Vec<String> },
    /// No router: the user's Service selects the pods of both tracks.
    Replicas,
}

impl RouterKind {
    /// The router, or the message an invalid spec reports when none or both are set.
    pub fn from_spec(routing: &TrafficRouting) -> Result<RouterKind, String> {
        match (&routing.gateway_api, &routing.replicas) {
            (Some(gateway_api), None) => Ok(RouterKind::GatewayApi {
                routes: gateway_api.http_routes.clone(),
            }),
            (None, Some(_)) => Ok(RouterKind::Replicas),
            _ => Err("spec.trafficRouting must set exactly one of gatewayAPI or replicas".into()),
        }
    }
}

/// Replica counts `(stable, canary)` that give the canary about `canary_weight` percent of the
/// pods behind the user's Service, which selects both tracks: the share is
/// `canary / (stable + canary)`.
///
/// Weight 0 is `(N, 0)` and weight 100 (or more) is `(0, N)`. In between, stable stays at `N`
/// and the canary gets `round(N·w / (100 − w))` pods, clamped to `1..=N`:
/// - at least one pod, so a small weight on a small Deployment still gets a canary, whose share
///   (`1 / (N + 1)`) is then larger than the weight;
/// - at most `N`, so the canary never outnumbers stable before the final step: above 50 % the
///   share stops at one half until weight 100 moves everything.
///
/// `N ≤ 0` is treated as 1, so a rollout of a Deployment scaled to zero still runs one pod per
/// track.
pub fn replica_split(stable_replicas: i32, canary_weight: u32) -> (i32, i32) {
    let n = stable_replicas.max(1);
    match canary_weight.min(100) {
        0 => (n, 0),
        100 => (0, n),
        weight => {
            let (n64, w) = (i64::from(n), i64::from(weight));
            let rounded = (2 * n64 * w + (100 - w)) / (2 * (100 - w));
            let canary = i32::try_from(rounded.clamp(1, n64)).unwrap_or(n);
            (n, canary)
        }
    }
}

/// The canary's share of the ready pods (0–1), None when no pod of either track is ready.
/// Negative counts are read as 0.
pub fn effective_share(stable_ready: i32, canary_ready: i32) -> Option<f64> {
    let (stable, canary) = (
        f64::from(stable_ready.max(0)),
        f64::from(canary_ready.max(0)),
    );
    let total = stable + canary;
    (total > 0.0).then(|| canary / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::{GatewayApiRouting, ReplicasRouting};

    #[test]
    fn replica_split_by_weight() {
        let cases = [
            // (stable replicas, weight, expected (stable, canary), why)
            (4, 0, (4, 0), "weight 0: no canary"),
            (4, 100, (0, 4), "weight 100: everything on the canary"),
            (2, 150, (0, 2), "above 100 is 100"),
            (4, 1, (4, 1), "at least one canary pod"),
            (100, 1, (100, 1), "1.01 rounds to 1"),
            (100, 5, (100, 5), "5.26 rounds to 5"),
            (100, 25, (100, 33), "33.3 rounds to 33: 33/133 = 24.8 %"),
            (10, 25, (10, 3), "3.33 rounds to 3"),
            (6, 20, (6, 2), "1.5 rounds up to 2"),
            (10, 50, (10, 10), "half and half"),
            (10, 75, (10, 10), "the canary never outnumbers stable"),
            (0, 25, (1, 1), "no stable replicas counts as one"),
            (-3, 100, (0, 1), "negative counts as one"),
            (-1, 0, (1, 0), "negative counts as one at weight 0"),
        ];
        for (stable, weight, expected, why) in cases {
            assert_eq!(replica_split(stable, weight), expected, "{why}");
        }
    }

    #[test]
    fn replica_split_invariants() {
        for n in 1..=60 {
            for weight in 1..=99 {
                let (stable, canary) = replica_split(n, weight);
                assert_eq!(stable, n, "stable stays at N (n={n}, w={weight})");
                assert!(
                    (1..=n).contains(&canary),
                    "canary in 1..=N (n={n}, w={weight})"
                );
                let ideal = f64::from(n) * f64::from(weight) / f64::from(100 - weight);
                if (1.0..=f64::from(n)).contains(&ideal) {
                    assert!(
                        (f64::from(canary) - ideal).abs() <= 0.5,
                        "rounded (n={n}, w={weight})"
                    );
                }
            }
        }
    }

    #[test]
    fn effective_share_of_ready_pods() {
        let cases = [
            (0, 0, None),
            (-1, 0, None),
            (3, 1, Some(0.25)),
            (2, 0, Some(0.0)),
            (0, 2, Some(1.0)),
            (-5, 2, Some(1.0)),
        ];
        for (stable, canary, expected) in cases {
            assert_eq!(
                effective_share(stable, canary),
                expected,
                "({stable}, {canary})"
            );
        }
    }

    #[test]
    fn router_kind_from_spec() {
        let gateway_api = Some(GatewayApiRouting {
            http_routes: vec!["checkout".into()],
        });
        let replicas = Some(ReplicasRouting {});
        let error = "spec.trafficRouting must set exactly one of gatewayAPI or replicas";
        let cases = [
            (
                TrafficRouting {
                    gateway_api: gateway_api.clone(),
                    replicas: None,
                },
                Ok(RouterKind::GatewayApi {
                    routes: vec!["checkout".into()],
                }),
            ),
            (
                TrafficRouting {
                    gateway_api: None,
                    replicas: replicas.clone(),
                },
                Ok(RouterKind::Replicas),
            ),
            (TrafficRouting::default(), Err(error.to_string())),
            (
                TrafficRouting {
                    gateway_api,
                    replicas,
                },
                Err(error.to_string()),
            ),
        ];
        for (routing, expected) in cases {
            assert_eq!(RouterKind::from_spec(&routing), expected, "{routing:?}");
        }
    }
}
