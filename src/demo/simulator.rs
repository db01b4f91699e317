//! A simulated data plane: not real traffic. Once a second it reads where the HTTPRoute sends
//! checkout's requests (the stable/canary weights Sluice writes, and the share its mirror filter
//! copies to the canary) and which version serves each track, and publishes what 200 requests
//! per second split that way would have produced (copies counted on the canary):
//! `http_requests_total{namespace, app, track, pod_template_hash, code}` counters, through a
//! metrics exporter that the local Prometheus scrapes. `pod_template_hash` is that of the
//! serving Deployment's newest ReplicaSet, as kube-state-metrics or a relabelling would give it,
//! so a check can select the current canary with `{{podTemplateHash}}`. A version whose tag
//! contains "bad" fails 8 % of its requests, any other 0.2 %.
//!
//! It also publishes what each track quotes for five symbols, `demo_order_value{namespace, app,
//! track, symbol}`, and each symbol's notional, `demo_order_notional{namespace, app, symbol}`,
//! for the ParityPolicy: a version whose tag contains "drift" quotes MSFT 0.6 % (60 bps) high.
//!
//! What users got is counted apart, `checkout_user_requests_total{namespace, app, track, code}`:
//! the mirror's copies are answered to nobody, so they are not users' requests. The SLOBudget
//! reads it. During an incident (`set_incident`) the stable track fails 30 % of its requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::warn;

use super::manifests::{APP, SERVICE_PORT, httproutes};
use crate::controller::replica_set_summary::ReplicaSetSummary;
use crate::controller::workloads;
use crate::devenv::MetricsExporter;
use crate::traffic::gateway_api::{ServiceNames, canary_mirror, canary_weight};

/// Requests per second reaching checkout, both tracks together.
pub const REQUESTS_PER_SECOND: f64 = 200.0;
/// Error ratio of a version whose tag contains "bad".
pub const BAD_ERROR_RATIO: f64 = 0.08;
/// Error ratio of any other version.
pub const GOOD_ERROR_RATIO: f64 = 0.002;
/// The counter the simulator publishes.
pub const METRIC: &str = "http_requests_total";
/// The users' requests, by the track that answered them (no mirrored copies).
pub const USER_METRIC: &str = "checkout_user_requests_total";
/// Error ratio of the stable track during an incident.
pub const INCIDENT_ERROR_RATIO: f64 = 0.3;
/// A gauge at 1 while the simulator runs.
pub const UP_METRIC: &str = "sluice_demo_simulator_up";
/// What a track quotes per symbol.
pub const ORDER_METRIC: &str = "demo_order_value";
/// The notional traded per symbol: the symbols' weights in the aggregate parity.
pub const NOTIONAL_METRIC: &str = "demo_order_notional";
/// (symbol, price quoted by a version without drift, notional).
pub const SYMBOLS: [(&str, f64, f64); 5] = [
    ("AAPL", 190.0, 1.0),
    ("AMZN", 180.0, 2.0),
    ("GOOG", 170.0, 3.0),
    ("MSFT", 400.0, 4.0),
    ("NVDA", 120.0, 10.0),
];
/// The symbol a "drift" version quotes high, and by how much.
pub const DRIFT_SYMBOL: &str = "MSFT";
pub const DRIFT: f64 = 0.006;

const TICK: Duration = Duration::from_secs(1);

/// The error ratio the simulator gives the version of `image` (its tag after the last ':').
pub fn error_ratio(image: &str) -> f64 {
    let tag = image.rsplit_once(':').map_or("", |(_, tag)| tag);
    if tag.contains("bad") {
        BAD_ERROR_RATIO
    } else {
        GOOD_ERROR_RATIO
    }
}

/// What the version of `image` quotes for `symbol`, priced `price` without drift.
pub fn quote(image: &str, symbol: &str, price: f64) -> f64 {
    let tag = image.rsplit_once(':').map_or("", |(_, tag)| tag);
    if tag.contains("drift") && symbol == DRIFT_SYMBOL {
        price * (1.0 + DRIFT)
    } else {
        price
    }
}

/// The version serving one track.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub image: String,
    /// pod-template-hash of the newest ReplicaSet of the Deployment serving the track.
    pub pod_template_hash: String,
}

/// What the data plane looks like at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    /// Percent of requests the HTTPRoute sends to the canary.
    pub canary_weight: u32,
    /// Percent of the stable track's requests the HTTPRoute copies to the canary (a shadow
    /// stage); the copies' responses go nowhere.
    pub canary_mirror: u32,
    /// What serves the stable track.
    pub stable: Option<Version>,
    /// What serves the canary track: the target Deployment's template.
    pub canary: Option<Version>,
    /// Whether the target Deployment runs pods (between rollouts it is scaled to 0).
    pub canary_running: bool,
    /// An incident on the stable track (not a release's fault).
    pub incident: bool,
}

impl Routing {
    /// The error ratio of a track's version now.
    fn error_ratio(&self, track: &str, version: &Version) -> f64 {
        match (track, self.incident) {
            ("stable", true) => INCIDENT_ERROR_RATIO,
            _ => error_ratio(&version.image),
        }
    }
}

/// (track, code)
pub type UserKey = (&'static str, &'static str);

/// The users' request counters by track: stable's share and the canary's weight, no copies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserCounters(BTreeMap<UserKey, f64>);

impl UserCounters {
    pub fn advance(&mut self, routing: &Routing, seconds: f64) {
        let canary_share = f64::from(routing.canary_weight.min(100)) / 100.0;
        for (track, share, version) in [
            ("stable", 1.0 - canary_share, &routing.stable),
            ("canary", canary_share, &routing.canary),
        ] {
            let requests = REQUESTS_PER_SECOND * share * seconds;
            let errors = version
                .as_ref()
                .map_or(0.0, |v| requests * routing.error_ratio(track, v));
            *self.0.entry((track, "200")).or_default() += requests - errors;
            *self.0.entry((track, "500")).or_default() += errors;
        }
    }
}

/// (track, pod_template_hash, code)
pub type SeriesKey = (&'static str, String, &'static str);

/// The request counters of the versions serving now, as they grow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters(BTreeMap<SeriesKey, f64>);

impl Counters {
    /// Adds the requests of `seconds` of traffic routed as `routing`. A version's series exist
    /// from its first tick (a rate over a version without traffic is 0, not missing); the
    /// series of versions that no longer serve are dropped and returned.
    pub fn advance(&mut self, routing: &Routing, seconds: f64) -> Vec<SeriesKey> {
        let canary_share = f64::from(routing.canary_weight.min(100)) / 100.0;
        let stable_share = 1.0 - canary_share;
        let copied = stable_share * f64::from(routing.canary_mirror.min(100)) / 100.0;
        let tracks = [
            ("stable", stable_share, &routing.stable),
            ("canary", canary_share + copied, &routing.canary),
        ];
        let serving = |key: &SeriesKey| {
            tracks.iter().any(|(track, _, version)| {
                *track == key.0
                    && version
                        .as_ref()
                        .is_some_and(|v| v.pod_template_hash == key.1)
            })
        };
        let gone: Vec<SeriesKey> = self.0.keys().filter(|key| !serving(key)).cloned().collect();
        for key in &gone {
            self.0.remove(key);
        }
        for (track, share, version) in tracks {
            let Some(version) = version else { continue };
            let requests = REQUESTS_PER_SECOND * share * seconds;
            let errors = requests * routing.error_ratio(track, version);
            let hash = &version.pod_template_hash;
            *self.0.entry((track, hash.clone(), "200")).or_default() += requests - errors;
            *self.0.entry((track, hash.clone(), "500")).or_default() += errors;
        }
        gone
    }

    #[cfg(test)]
    fn get(&self, track: &'static str, hash: &str, code: &'static str) -> Option<f64> {
        self.0.get(&(track, hash.to_string(), code)).copied()
    }
}

fn labels<'a>(namespace: &'a str, key: &'a SeriesKey) -> [(&'a str, &'a str); 5] {
    [
        ("namespace", namespace),
        ("app", APP),
        ("track", key.0),
        ("pod_template_hash", &key.1),
        ("code", key.2),
    ]
}

/// The running simulator; stops and unregisters from Prometheus when dropped.
pub struct TrafficSimulator {
    exporter: Arc<MetricsExporter>,
    incident: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl TrafficSimulator {
    /// Registers an exporter in `sd_dir` and starts publishing checkout's traffic in
    /// `namespace`.
    pub async fn start(
        client: Client,
        namespace: &str,
        sd_dir: &Path,
    ) -> Result<TrafficSimulator, std::io::Error> {
        let id = format!("sluice-demo-{namespace}-{}", std::process::id());
        let exporter = Arc::new(MetricsExporter::start(sd_dir, &id).await?);
        exporter.set(UP_METRIC, &[("namespace", namespace)], 1.0);
        let incident = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            client,
            namespace.to_string(),
            exporter.clone(),
            incident.clone(),
        ));
        Ok(TrafficSimulator {
            exporter,
            incident,
            task,
        })
    }

    /// Starts or ends an incident: the stable track fails [`INCIDENT_ERROR_RATIO`] of its
    /// requests meanwhile.
    pub fn set_incident(&self, on: bool) {
        self.incident.store(on, Ordering::Relaxed);
    }

    /// A PromQL selector for the gauge that says the simulator runs (1).
    pub fn up_selector(&self) -> String {
        self.exporter.selector(UP_METRIC, &[])
    }
}

impl Drop for TrafficSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    client: Client,
    namespace: String,
    exporter: Arc<MetricsExporter>,
    incident: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut counters = Counters::default();
    let mut users = UserCounters::default();
    let mut routing = Routing::default();
    let mut last = Instant::now();
    loop {
        ticks.tick().await;
        match observe(&client, &namespace).await {
            Ok(seen) => routing = seen,
            // Keep serving as last seen: a real data plane does not stop when the API blinks.
            Err(e) => warn!("traffic simulator: reading the HTTPRoute and Deployments: {e}"),
        }
        routing.incident = incident.load(Ordering::Relaxed);
        let now = Instant::now();
        let seconds = (now - last).as_secs_f64();
        let gone = counters.advance(&routing, seconds);
        users.advance(&routing, seconds);
        last = now;
        for ((track, code), value) in &users.0 {
            let labels = [
                ("namespace", namespace.as_str()),
                ("app", APP),
                ("track", track),
                ("code", code),
            ];
            exporter.set(USER_METRIC, &labels, *value);
        }
        for key in &gone {
            exporter.remove(METRIC, &labels(&namespace, key));
        }
        for (key, value) in &counters.0 {
            exporter.set(METRIC, &labels(&namespace, key), *value);
        }
        publish_quotes(&exporter, &namespace, &routing);
    }
}

/// Each track's quotes, and the symbols' notionals. The canary quotes only while its pods run,
/// as a real one would: a new canary's quotes never follow on from the last one's.
fn publish_quotes(exporter: &MetricsExporter, namespace: &str, routing: &Routing) {
    let canary = routing.canary.as_ref().filter(|_| routing.canary_running);
    for (symbol, price, notional) in SYMBOLS {
        let symbol_labels = [("namespace", namespace), ("app", APP), ("symbol", symbol)];
        exporter.set(NOTIONAL_METRIC, &symbol_labels, notional);
        for (track, version) in [("stable", routing.stable.as_ref()), ("canary", canary)] {
            let labels = [
                ("namespace", namespace),
                ("app", APP),
                ("track", track),
                ("symbol", symbol),
            ];
            match version {
                Some(version) => {
                    exporter.set(ORDER_METRIC, &labels, quote(&version.image, symbol, price))
                }
                None => exporter.remove(ORDER_METRIC, &labels),
            }
        }
    }
}

/// Reads the route's canary weight and the version behind each track. Before Sluice adopts
/// checkout, the route points at the user's Service and its pods serve everything, as the
/// stable track.
async fn observe(client: &Client, namespace: &str) -> anyhow::Result<Routing> {
    let names = ServiceNames::for_service(APP, SERVICE_PORT);
    let route = httproutes(client, namespace).get_opt(APP).await?;
    let route = route.and_then(|route| serde_json::to_value(route).ok());
    let canary_weight = route
        .as_ref()
        .and_then(|route| canary_weight(route, &names))
        .unwrap_or(0);
    let canary_mirror = route
        .as_ref()
        .and_then(|route| canary_mirror(route, &names))
        .unwrap_or(0);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let target = deployments.get_opt(APP).await?;
    let canary_running = target
        .as_ref()
        .and_then(|t| t.spec.as_ref()?.replicas)
        .is_some_and(|replicas| replicas > 0);
    let canary = match target {
        Some(target) => version_of(client, namespace, &target).await?,
        None => None,
    };
    let stable = match deployments.get_opt(&workloads::stable_name(APP)).await? {
        Some(stable) => version_of(client, namespace, &stable).await?,
        None => canary.clone(),
    };
    Ok(Routing {
        canary_weight,
        canary_mirror,
        canary_running,
        incident: false,
        stable,
        canary,
    })
}

/// The image and newest ReplicaSet of `deployment`; None until that ReplicaSet exists.
async fn version_of(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
) -> anyhow::Result<Option<Version>> {
    let image = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.image.clone());
    let hash = newest_pod_template_hash(client, namespace, deployment).await?;
    Ok(image.zip(hash).map(|(image, pod_template_hash)| Version {
        image,
        pod_template_hash,
    }))
}

/// The pod-template-hash of the Deployment's newest ReplicaSet. The simulator plays the data
/// plane, so it lists what a data plane would see.
async fn newest_pod_template_hash(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
) -> anyhow::Result<Option<String>> {
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let sets: Api<ReplicaSetSummary> = Api::namespaced(client.clone(), namespace);
    let list = sets.list(&ListParams::default().labels(&selector)).await?;
    Ok(workloads::newest_replica_set(deployment, list.items)
        .and_then(|set| set.metadata.labels?.get("pod-template-hash").cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(tag: &str, hash: &str) -> Option<Version> {
        Some(Version {
            image: format!("registry.example/checkout:{tag}"),
            pod_template_hash: hash.into(),
        })
    }

    fn routing(weight: u32, canary_tag: &str, canary_hash: &str) -> Routing {
        Routing {
            canary_weight: weight,
            canary_mirror: 0,
            canary_running: true,
            incident: false,
            stable: version("1.0.0", "s1"),
            canary: version(canary_tag, canary_hash),
        }
    }

    #[test]
    fn versions_with_drift_in_the_tag_quote_msft_60_bps_high() {
        let drift = "registry.example/checkout:4.0.0-drift";
        let bps = (quote(drift, "MSFT", 400.0) - 400.0) / 400.0 * 10_000.0;
        assert!((bps - 60.0).abs() < 1e-9, "{bps}");
        assert_eq!(quote(drift, "AAPL", 190.0), 190.0);
        assert_eq!(
            quote("registry.example/checkout:2.0.0", "MSFT", 400.0),
            400.0
        );
    }

    #[test]
    fn versions_with_bad_in_the_tag_fail_eight_percent() {
        assert_eq!(error_ratio("registry.example/checkout:3.0.0-bad"), 0.08);
        assert_eq!(error_ratio("registry.example/checkout:2.0.0"), 0.002);
        assert_eq!(error_ratio("localhost:5000/bad/checkout:1.0.0"), 0.002);
    }

    #[test]
    fn traffic_is_split_by_the_canary_weight() {
        let mut counters = Counters::default();
        counters.advance(&routing(25, "2.0.0", "c2"), 2.0);
        let total = |track, hash| {
            counters.get(track, hash, "200").unwrap() + counters.get(track, hash, "500").unwrap()
        };
        assert!((total("canary", "c2") - 100.0).abs() < 1e-9);
        assert!((total("stable", "s1") - 300.0).abs() < 1e-9);
    }

    #[test]
    fn a_mirror_copies_stables_requests_to_the_canary() {
        let mut counters = Counters::default();
        let shadow = Routing {
            canary_mirror: 100,
            ..routing(0, "3.0.0-bad", "c3")
        };
        counters.advance(&shadow, 2.0);
        let total = |track, hash| {
            counters.get(track, hash, "200").unwrap() + counters.get(track, hash, "500").unwrap()
        };
        assert!(
            (total("stable", "s1") - 400.0).abs() < 1e-9,
            "stable serves all"
        );
        assert!(
            (total("canary", "c3") - 400.0).abs() < 1e-9,
            "the canary gets a copy of each"
        );
        assert!((counters.get("canary", "c3", "500").unwrap() - 32.0).abs() < 1e-9);
    }

    #[test]
    fn users_see_no_copies_and_an_incident_fails_stable() {
        let mut users = UserCounters::default();
        let shadow = Routing {
            canary_mirror: 100,
            incident: true,
            ..routing(0, "2.0.0", "c2")
        };
        users.advance(&shadow, 1.0);
        assert_eq!(users.0[&("canary", "200")], 0.0, "copies answer nobody");
        assert!(
            (users.0[&("stable", "500")] - 60.0).abs() < 1e-9,
            "30 % of 200"
        );
    }

    #[test]
    fn the_canary_error_share_follows_its_version() {
        let mut counters = Counters::default();
        counters.advance(&routing(5, "3.0.0-bad", "c3"), 1.0);
        let errors = counters.get("canary", "c3", "500").unwrap();
        let all = errors + counters.get("canary", "c3", "200").unwrap();
        assert!((errors / all - 0.08).abs() < 1e-9);
    }

    #[test]
    fn a_version_without_traffic_still_has_its_series() {
        let mut counters = Counters::default();
        counters.advance(&routing(0, "2.0.0", "c2"), 1.0);
        assert_eq!(counters.get("canary", "c2", "200"), Some(0.0));
        assert_eq!(counters.get("canary", "c2", "500"), Some(0.0));
    }

    #[test]
    fn a_new_canary_starts_its_own_series_and_the_old_ones_go() {
        let mut counters = Counters::default();
        counters.advance(&routing(100, "2.0.0", "c2"), 10.0);
        let gone = counters.advance(&routing(1, "3.0.0-bad", "c3"), 1.0);
        assert_eq!(
            gone,
            [
                ("canary", "c2".to_string(), "200"),
                ("canary", "c2".to_string(), "500")
            ]
        );
        let requests = counters.get("canary", "c3", "200").unwrap()
            + counters.get("canary", "c3", "500").unwrap();
        assert!((requests - 2.0).abs() < 1e-9, "{requests}");
    }
}
