//! Gateway API router: the canary weight lives on the `backendRefs` of the rollout's HTTPRoutes.
//!
//! The transforms are pure functions on the HTTPRoute as JSON, so that every field Sluice does
//! not own (matches, filters, other backends, fields of newer Gateway API versions) survives a
//! round trip untouched. A backendRef to the user's Service becomes the pair
//! `<service>-stable` / `<service>-canary`; hand-back turns the pair into the user's Service
//! again. Only `spec.rules` is written, with a JSON merge patch guarded by the resourceVersion
//! that was read, so a concurrent edit (GitOps, a user) is re-read instead of overwritten.
//!
//! A backendRef points at a Service when its `kind` is absent or `Service`, its `group` is
//! absent or empty, and its `namespace` is absent or the route's own.
//!
//! A shadow stage adds a rule-level `RequestMirror` filter to `<service>-canary` in each rule
//! that holds the pair, with `percent` below 100 (absent at 100, which every version of the
//! filter understands). Sluice owns only the mirror filters aimed at `<service>-canary`; any
//! other filter of the rule is left alone. A percent below 100 is first written as a dry run:
//! an HTTPRoute CRD older than Gateway API v1.2 would silently prune `percent` and mirror every
//! request, so that is refused instead.

use futures::future::join_all;
use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Map, Value, json};

/// Field manager recorded on the routes Sluice patches.
const FIELD_MANAGER: &str = "sluice";
/// How many times a patch is re-read and retried after the route changed under it.
const CONFLICT_RETRIES: u32 = 3;
/// Largest backendRef weight the Gateway API accepts.
const MAX_WEIGHT: u64 = 1_000_000;

/// The user's Service and the two Services Sluice owns beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNames {
    pub user: String,
    pub stable: String,
    pub canary: String,
    pub port: i32,
}

impl ServiceNames {
    /// `<name>`, `<name>-stable` and `<name>-canary`, all on `port`.
    pub fn for_service(name: &str, port: i32) -> Self {
        Self {
            user: name.to_string(),
            stable: format!("{name}-stable"),
            canary: format!("{name}-canary"),
            port,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// Also what a cluster without the HTTPRoute CRD answers.
    #[error("HTTPRoute {route} not found")]
    RouteNotFound { route: String },
    #[error(
        "HTTPRoute {route} has no rule whose backendRefs point at Service {service} \
         or at both {service}-stable and {service}-canary"
    )]
    NoMatchingBackend { route: String, service: String },
    #[error(
        "HTTPRoute {route}: the installed HTTPRoute CRD drops requestMirror.percent (it predates \
         Gateway API v1.2), so mirroring {percent}% would mirror every request; use mirror: 100 \
         or install a newer Gateway API"
    )]
    MirrorPercentUnsupported { route: String, percent: u32 },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl TrafficError {
    /// A static label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::RouteNotFound { .. } => "route_not_found",
            Self::NoMatchingBackend { .. } => "no_matching_backend",
            Self::MirrorPercentUnsupported { .. } => "mirror_percent_unsupported",
            Self::Kube(_) => "kube",
        }
    }

    /// True when retrying cannot help until the spec or the route changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::RouteNotFound { .. }
                | Self::NoMatchingBackend { .. }
                | Self::MirrorPercentUnsupported { .. }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    User,
    Stable,
    Canary,
}

/// What the routes should say: the canary's weight, and the percent of requests copied to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteTraffic {
    /// Percent of requests the canary serves (capped at 100).
    pub weight: u32,
    /// Percent of the rule's requests copied to the canary (0: no mirror filter).
    pub mirror: u32,
}

/// [`with_traffic`] without a mirror.
pub fn with_weights(
    route: &Value,
    names: &ServiceNames,
    canary_weight: u32,
) -> Result<Option<Value>, TrafficError> {
    with_traffic(
        route,
        names,
        RouteTraffic {
            weight: canary_weight,
            mirror: 0,
        },
    )
}

/// The new `spec.rules` with the canary at `traffic.weight` percent (capped at 100), stable at
/// the rest, and the canary's mirror filter as `traffic.mirror` says, or None when the route
/// already says so.
///
/// In each rule, a backendRef to the user's Service becomes the stable/canary pair in its place
/// (a copy of it, so filters, kind, group and namespace carry over), and a pair already there
/// gets its weights. A lone stable or canary ref (a rule pinned to one track) is left alone:
/// weighting it would only ever matter at weight 0, where it would black-hole the rule.
pub fn with_traffic(
    route: &Value,
    names: &ServiceNames,
    traffic: RouteTraffic,
) -> Result<Option<Value>, TrafficError> {
    let canary = u64::from(traffic.weight.min(100));
    let namespace = route_namespace(route);
    let no_match = || TrafficError::NoMatchingBackend {
        route: route_name(route),
        service: names.user.clone(),
    };
    let rules = rules_of(route).ok_or_else(no_match)?;
    let mut matched = false;
    let new_rules: Vec<Value> = rules
        .iter()
        .map(|rule| match weighted_rule(rule, names, namespace, canary) {
            Some(weighted) => {
                matched = true;
                with_mirror(&weighted, names, namespace, traffic.mirror)
            }
            None => rule.clone(),
        })
        .collect();
    if !matched {
        return Err(no_match());
    }
    Ok((new_rules != *rules).then_some(Value::Array(new_rules)))
}

/// The rule with its backendRefs weighted, or None when it routes neither to the user's
/// Service nor to the pair.
fn weighted_rule(
    rule: &Value,
    names: &ServiceNames,
    namespace: Option<&str>,
    canary: u64,
) -> Option<Value> {
    let refs = backend_refs(rule)?;
    let tracks: Vec<Option<Track>> = refs.iter().map(|r| track_of(r, names, namespace)).collect();
    let has_pair = tracks.contains(&Some(Track::Stable)) && tracks.contains(&Some(Track::Canary));
    if !has_pair && !tracks.contains(&Some(Track::User)) {
        return None;
    }
    let mut weighted = Vec::with_capacity(refs.len() + 1);
    for (backend, track) in refs.iter().zip(tracks) {
        match track {
            Some(Track::User) => {
                weighted.push(pointed_at(backend, &names.stable, names.port, 100 - canary));
                weighted.push(pointed_at(backend, &names.canary, names.port, canary));
            }
            Some(Track::Stable) if has_pair => weighted.push(with_weight(backend, 100 - canary)),
            Some(Track::Canary) if has_pair => weighted.push(with_weight(backend, canary)),
            _ => weighted.push(backend.clone()),
        }
    }
    Some(with_backend_refs(rule, weighted))
}

/// The new `spec.rules` with every stable/canary ref pointing at the user's Service again, or
/// None when there is none.
///
/// Adjacent partners that differ only in name and weight (as [`with_weights`] writes them)
/// become one ref weighted with their sum, or 100 when the sum is 0, so the proportions to any
/// other backend of the rule stay as they were; any other stable or canary ref is replaced on
/// its own. Lone refs are handed back too: the Services they name go away with the rollout.
pub fn handed_back(route: &Value, names: &ServiceNames) -> Option<Value> {
    let namespace = route_namespace(route);
    let rules = rules_of(route)?;
    let new_rules: Vec<Value> = rules
        .iter()
        .map(|rule| handed_back_rule(rule, names, namespace).unwrap_or_else(|| rule.clone()))
        .collect();
    (new_rules != *rules).then_some(Value::Array(new_rules))
}

fn handed_back_rule(rule: &Value, names: &ServiceNames, namespace: Option<&str>) -> Option<Value> {
    let refs = backend_refs(rule)?;
    let mut restored = Vec::with_capacity(refs.len());
    let mut i = 0;
    while i < refs.len() {
        let backend = &refs[i];
        let partner_track = match track_of(backend, names, namespace) {
            Some(Track::Stable) => Track::Canary,
            Some(Track::Canary) => Track::Stable,
            _ => {
                restored.push(backend.clone());
                i += 1;
                continue;
            }
        };
        let partner = refs.get(i + 1).filter(|next| {
            track_of(next, names, namespace) == Some(partner_track)
                && same_but_target(backend, next)
        });
        let sum = weight_of(backend) + partner.map_or(0, weight_of);
        let weight = if sum > 0 { sum.min(MAX_WEIGHT) } else { 100 };
        restored.push(pointed_at(backend, &names.user, names.port, weight));
        i += if partner.is_some() { 2 } else { 1 };
    }
    Some(with_mirror(
        &with_backend_refs(rule, restored),
        names,
        namespace,
        0,
    ))
}

/// The rule with Sluice's mirror filter (to `<service>-canary`) copying `percent` of its
/// requests, or without one at 0. Other filters keep their places.
fn with_mirror(rule: &Value, names: &ServiceNames, namespace: Option<&str>, percent: u32) -> Value {
    let existing = rule.get("filters").and_then(Value::as_array);
    let ours: Vec<&Value> = existing
        .into_iter()
        .flatten()
        .filter(|filter| is_canary_mirror(filter, names, namespace))
        .collect();
    // A filter that already says so stays as stored: the apiserver may have filled in defaults
    // (the backendRef's kind and group) that a fresh copy lacks.
    if percent > 0 && ours.len() == 1 && mirror_percent(ours[0]) == percent {
        return rule.clone();
    }
    let mut filters: Vec<Value> = existing
        .into_iter()
        .flatten()
        .filter(|filter| !is_canary_mirror(filter, names, namespace))
        .cloned()
        .collect();
    if percent > 0 {
        let mut mirror = json!({ "backendRef": { "name": names.canary, "port": names.port } });
        if percent < 100 {
            mirror["percent"] = percent.into();
        }
        filters.push(json!({ "type": "RequestMirror", "requestMirror": mirror }));
    }
    let mut rule = rule.clone();
    if let Some(fields) = rule.as_object_mut() {
        // An empty list is kept only where the user wrote one.
        if filters.is_empty() && existing.is_none_or(|list| !list.is_empty()) {
            fields.remove("filters");
        } else {
            fields.insert("filters".into(), Value::Array(filters));
        }
    }
    rule
}

/// Whether a rule filter is a RequestMirror to `<service>-canary`: the one Sluice owns.
fn is_canary_mirror(filter: &Value, names: &ServiceNames, namespace: Option<&str>) -> bool {
    filter.get("type").and_then(Value::as_str) == Some("RequestMirror")
        && filter
            .pointer("/requestMirror/backendRef")
            .is_some_and(|backend| track_of(backend, names, namespace) == Some(Track::Canary))
}

/// The percent of requests the route's first mirror filter to `<service>-canary` copies
/// (100 when it sets no percent), or None when it has none. A `fraction` is read as the
/// percent it gives, rounded.
pub fn canary_mirror(route: &Value, names: &ServiceNames) -> Option<u32> {
    let namespace = route_namespace(route);
    rules_of(route)?
        .iter()
        .flat_map(|rule| rule.get("filters").and_then(Value::as_array))
        .flatten()
        .find(|filter| is_canary_mirror(filter, names, namespace))
        .map(mirror_percent)
}

/// The percent of requests a RequestMirror filter copies: its `percent`, its `fraction`
/// rounded, or 100 when it sets neither.
fn mirror_percent(filter: &Value) -> u32 {
    let mirror = &filter["requestMirror"];
    if let Some(percent) = mirror.get("percent").and_then(Value::as_u64) {
        return u32::try_from(percent.min(100)).unwrap_or(100);
    }
    let fraction = |key: &str| mirror.pointer(&format!("/fraction/{key}"))?.as_u64();
    match (
        fraction("numerator"),
        fraction("denominator").unwrap_or(100),
    ) {
        (Some(numerator), denominator) if denominator > 0 => {
            let percent = (200 * numerator + denominator) / (2 * denominator);
            u32::try_from(percent.min(100)).unwrap_or(100)
        }
        _ => 100,
    }
}

/// The canary's percent of the pair's weight in the first rule holding the pair, or None when
/// no rule does. Equal to the weight [`with_weights`] wrote; a hand-edited pair is read as the
/// share it actually gives the canary.
pub fn canary_weight(route: &Value, names: &ServiceNames) -> Option<u32> {
    let namespace = route_namespace(route);
    rules_of(route)?.iter().find_map(|rule| {
        let (mut stable, mut canary) = (None::<u64>, None::<u64>);
        for backend in backend_refs(rule)? {
            match track_of(backend, names, namespace) {
                Some(Track::Stable) => *stable.get_or_insert(0) += weight_of(backend),
                Some(Track::Canary) => *canary.get_or_insert(0) += weight_of(backend),
                _ => {}
            }
        }
        let (stable, canary) = (stable?, canary?);
        let total = stable + canary;
        let percent = if total == 0 {
            0
        } else {
            (200 * canary + total) / (2 * total)
        };
        u32::try_from(percent).ok()
    })
}

fn rules_of(route: &Value) -> Option<&Vec<Value>> {
    route.get("spec")?.get("rules")?.as_array()
}

fn backend_refs(rule: &Value) -> Option<&Vec<Value>> {
    rule.get("backendRefs")?.as_array()
}

fn with_backend_refs(rule: &Value, refs: Vec<Value>) -> Value {
    let mut rule = rule.clone();
    if let Some(fields) = rule.as_object_mut() {
        fields.insert("backendRefs".into(), Value::Array(refs));
    }
    rule
}

fn route_name(route: &Value) -> String {
    route
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string()
}

fn route_namespace(route: &Value) -> Option<&str> {
    route.pointer("/metadata/namespace").and_then(Value::as_str)
}

/// Which of the three Services a backendRef points at, if any.
fn track_of(backend: &Value, names: &ServiceNames, namespace: Option<&str>) -> Option<Track> {
    let fields = backend.as_object()?;
    let field = |key: &str| fields.get(key).filter(|v| !v.is_null());
    let is_service = field("kind").is_none_or(|kind| kind == "Service")
        && field("group").is_none_or(|group| group == "")
        && field("namespace").is_none_or(|ns| namespace.is_some_and(|own| ns == own));
    if !is_service {
        return None;
    }
    match field("name")?.as_str()? {
        name if name == names.user => Some(Track::User),
        name if name == names.stable => Some(Track::Stable),
        name if name == names.canary => Some(Track::Canary),
        _ => None,
    }
}

/// A backendRef's weight; absent means 1, as in the Gateway API.
fn weight_of(backend: &Value) -> u64 {
    match backend.get("weight") {
        None | Some(Value::Null) => 1,
        Some(weight) => weight.as_u64().unwrap_or(0),
    }
}

fn with_weight(backend: &Value, weight: u64) -> Value {
    let mut backend = backend.clone();
    if let Some(fields) = backend.as_object_mut() {
        fields.insert("weight".into(), weight.into());
    }
    backend
}

/// A copy of `backend` (filters, kind, group, namespace) aimed at another Service.
fn pointed_at(backend: &Value, name: &str, port: i32, weight: u64) -> Value {
    let mut fields = backend.as_object().cloned().unwrap_or_default();
    fields.insert("name".into(), name.into());
    fields.insert("port".into(), port.into());
    fields.insert("weight".into(), weight.into());
    Value::Object(fields)
}

/// Whether two backendRefs differ at most in name and weight.
fn same_but_target(a: &Value, b: &Value) -> bool {
    let rest = |backend: &Value| -> Option<Map<String, Value>> {
        let mut fields = backend.as_object()?.clone();
        fields.remove("name");
        fields.remove("weight");
        Some(fields)
    };
    rest(a).is_some() && rest(a) == rest(b)
}

/// The HTTPRoute kind (standard channel, `gateway.networking.k8s.io/v1`).
pub fn http_route_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    ApiResource::from_gvk_with_plural(&gvk, "httproutes")
}

fn http_routes(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &http_route_resource())
}

/// What the operator's cache says of a route.
#[derive(Clone, Debug)]
pub enum CachedRoute {
    /// The cache is synced: the route as it holds it, or None when there is no such route.
    Known(Option<Arc<DynamicObject>>),
    /// The cache cannot tell (not synced, or the HTTPRoute CRD is missing): ask the apiserver.
    Unknown,
}

/// Looks a route up by name in the operator's cache.
pub type RouteLookup<'a> = &'a (dyn Fn(&str) -> CachedRoute + Sync);

/// Sets the canary weight and mirror on every route. Every route is attempted even when one
/// fails, so a rollback still drains the canary from the routes that can be written; the first
/// error (in the order of `routes`) is returned. A route the cache shows with the right weights
/// costs no request; a mirror below 100 % costs a dry run first.
pub async fn set_traffic(
    client: &kube::Client,
    namespace: &str,
    routes: &[String],
    cached: RouteLookup<'_>,
    names: &ServiceNames,
    traffic: RouteTraffic,
) -> Result<(), TrafficError> {
    let api = &http_routes(client, namespace);
    let partial_mirror = (1..100).contains(&traffic.mirror);
    let results = join_all(routes.iter().map(|route| async move {
        let kept = |stored: &Value| match canary_mirror(stored, names) {
            Some(percent) if percent == traffic.mirror => Ok(()),
            _ => Err(TrafficError::MirrorPercentUnsupported {
                route: route.clone(),
                percent: traffic.mirror,
            }),
        };
        let dry_run_check: Option<&StoredCheck<'_>> = partial_mirror.then_some(&kept);
        match rewrite_rules(
            api,
            route,
            cached(route),
            |current| with_traffic(current, names, traffic),
            dry_run_check,
        )
        .await?
        {
            Rewrite::Missing => Err(TrafficError::RouteNotFound {
                route: route.clone(),
            }),
            Rewrite::Unchanged => Ok(()),
            Rewrite::Patched => {
                tracing::debug!(route = %route, ?traffic, "HTTPRoute traffic set");
                Ok(())
            }
        }
    }))
    .await;
    results.into_iter().collect()
}

/// Points every route back at the user's Service; routes that no longer exist are skipped.
pub async fn hand_back(
    client: &kube::Client,
    namespace: &str,
    routes: &[String],
    cached: RouteLookup<'_>,
    names: &ServiceNames,
) -> Result<(), TrafficError> {
    let api = &http_routes(client, namespace);
    let results = join_all(routes.iter().map(|route| async move {
        match rewrite_rules(
            api,
            route,
            cached(route),
            |current| Ok(handed_back(current, names)),
            None,
        )
        .await?
        {
            Rewrite::Missing => {
                tracing::debug!(route = %route, "HTTPRoute gone, nothing to hand back")
            }
            Rewrite::Unchanged => {}
            Rewrite::Patched => tracing::debug!(route = %route, "HTTPRoute handed back"),
        }
        Ok(())
    }))
    .await;
    results.into_iter().collect()
}

/// Checks that every route exists and routes to the user's Service or to the pair.
pub async fn check_routes(
    client: &kube::Client,
    namespace: &str,
    routes: &[String],
    cached: RouteLookup<'_>,
    names: &ServiceNames,
) -> Result<(), TrafficError> {
    let api = &http_routes(client, namespace);
    let results = join_all(routes.iter().map(|route| async move {
        let object = match cached(route) {
            CachedRoute::Known(object) => object,
            CachedRoute::Unknown => api.get_opt(route).await?.map(Arc::new),
        }
        .ok_or_else(|| TrafficError::RouteNotFound {
            route: route.clone(),
        })?;
        let current = serde_json::to_value(object.as_ref()).map_err(kube::Error::SerdeError)?;
        with_weights(&current, names, 0).map(drop)
    }))
    .await;
    results.into_iter().collect()
}

enum Rewrite {
    Missing,
    Unchanged,
    Patched,
}

/// Judges the route as the apiserver would store it (a dry run's answer).
type StoredCheck<'a> = dyn Fn(&Value) -> Result<(), TrafficError> + Sync + 'a;

/// Computes the route's new rules from the cached copy (or a read where the cache cannot tell)
/// and patches them in, guarded by the resourceVersion they were computed from; on a conflict
/// it starts over from a fresh read. With `dry_run_check`, the patch is first sent as a dry run
/// and written only if the check accepts what would be stored.
async fn rewrite_rules(
    api: &Api<DynamicObject>,
    route: &str,
    cached: CachedRoute,
    new_rules: impl Fn(&Value) -> Result<Option<Value>, TrafficError>,
    dry_run_check: Option<&StoredCheck<'_>>,
) -> Result<Rewrite, TrafficError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let mut conflicts = 0;
    let mut cached = Some(cached);
    loop {
        let object = match cached.take() {
            Some(CachedRoute::Known(object)) => object,
            Some(CachedRoute::Unknown) | None => api.get_opt(route).await?.map(Arc::new),
        };
        let Some(object) = object else {
            return Ok(Rewrite::Missing);
        };
        let current = serde_json::to_value(object.as_ref()).map_err(kube::Error::SerdeError)?;
        let Some(rules) = new_rules(&current)? else {
            return Ok(Rewrite::Unchanged);
        };
        let mut patch = json!({ "spec": { "rules": rules } });
        if let Some(version) = &object.metadata.resource_version {
            patch["metadata"] = json!({ "resourceVersion": version });
        }
        let dry_run = match dry_run_check {
            Some(check) => {
                let dry_params = PatchParams {
                    dry_run: true,
                    ..params.clone()
                };
                match api.patch(route, &dry_params, &Patch::Merge(&patch)).await {
                    Ok(stored) => {
                        let stored =
                            serde_json::to_value(&stored).map_err(kube::Error::SerdeError)?;
                        check(&stored)?;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            None => Ok(()),
        };
        let written = match dry_run {
            Ok(()) => api.patch(route, &params, &Patch::Merge(&patch)).await,
            Err(error) => Err(error),
        };
        match written {
            Ok(_) => return Ok(Rewrite::Patched),
            Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(Rewrite::Missing),
            Err(kube::Error::Api(status))
                if status.is_conflict() && conflicts < CONFLICT_RETRIES =>
            {
                conflicts += 1;
                tracing::debug!(route, conflicts, "HTTPRoute changed since read, retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests;
