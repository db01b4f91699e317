//! The dashboard's HTTP server: caches filled by watches (with the user's kubeconfig, so the
//! user's RBAC), pages and charts rendered from them, changes pushed to browsers as
//! server-sent events, and, when allowed, the rollout requests the plugin makes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::charts;
use super::history::RolloutHistory;
use super::pages;
use crate::api::CanaryRollout;
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::plugin::requests::{Request, paused_patch};

/// What the dashboard serves, and to whom it answers.
#[derive(Clone, Debug)]
pub struct Options {
    /// One namespace, or every namespace.
    pub namespace: Option<String>,
    pub address: SocketAddr,
    /// Offer the promote, abort, retry, pause and resume buttons.
    pub allow_actions: bool,
    /// Who asks, as the kubeconfig names the user: recorded with each request.
    pub actor: String,
}

struct Dashboard {
    client: Client,
    options: Options,
    rollouts: Store<CanaryRollout>,
    policies: Store<ParityPolicy>,
    pipelines: Store<ReleasePipeline>,
    histories: Mutex<HashMap<(String, String), RolloutHistory>>,
    /// Bumped at every change any watch sees.
    changes: watch::Sender<u64>,
}

type Shared = Arc<Dashboard>;

/// Serves until the process ends; `ready` is told the address once it listens.
pub async fn serve(
    client: Client,
    options: Options,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let (changes, _) = watch::channel(0u64);
    let (rollouts, rollout_writer) = reflector::store();
    let (policies, policy_writer) = reflector::store();
    let (pipelines, pipeline_writer) = reflector::store();
    let dashboard = Arc::new(Dashboard {
        client: client.clone(),
        options: options.clone(),
        rollouts,
        policies,
        pipelines,
        histories: Mutex::default(),
        changes,
    });
    let rollout_events = reflector::reflector(
        rollout_writer,
        watcher(api(&client, &options), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects();
    let watching = dashboard.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(rollout_events);
        while let Some(event) = events.next().await {
            if let Ok(rollout) = event {
                watching.observe(&rollout);
            }
        }
    });
    spawn_cache(
        dashboard.clone(),
        policy_writer,
        api::<ParityPolicy>(&client, &options),
    );
    spawn_cache(
        dashboard.clone(),
        pipeline_writer,
        api::<ReleasePipeline>(&client, &options),
    );

    let app = Router::new()
        .route("/", get(overview))
        .route("/rollouts/{namespace}/{name}", get(rollout_page))
        .route("/charts/{namespace}/{name}/{file}", get(chart))
        .route("/api/rollouts", get(rollouts_json))
        .route("/api/changes", get(changes_stream))
        .route("/api/rollouts/{namespace}/{name}/{action}", post(act))
        .with_state(dashboard);
    let listener = tokio::net::TcpListener::bind(options.address).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn api<K>(client: &Client, options: &Options) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &options.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Keeps `writer`'s store filled from a watch of `api`, announcing each change.
fn spawn_cache<K>(dashboard: Shared, writer: reflector::store::Writer<K>, api: Api<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(async move {
        let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            if event.is_ok() {
                dashboard.changes.send_modify(|v| *v += 1);
            }
        }
    });
}

impl Dashboard {
    fn observe(&self, rollout: &CanaryRollout) {
        let key = (rollout.namespace().unwrap_or_default(), rollout.name_any());
        let mut histories = self
            .histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        histories
            .entry(key)
            .or_default()
            .observe(rollout, Timestamp::now());
        drop(histories);
        self.changes.send_modify(|v| *v += 1);
    }

    fn rollout(&self, namespace: &str, name: &str) -> Option<Arc<CanaryRollout>> {
        self.rollouts
            .state()
            .into_iter()
            .find(|r| r.namespace().as_deref() == Some(namespace) && r.name_any() == name)
    }

    fn policy_of(&self, rollout: &CanaryRollout) -> Option<Arc<ParityPolicy>> {
        let reference = rollout.spec.analysis.parity_policy_ref.as_ref()?;
        self.policies
            .state()
            .into_iter()
            .find(|p| p.namespace() == rollout.namespace() && p.name_any() == reference.name)
    }

    fn charts(&self, rollout: &CanaryRollout) -> Vec<charts::Chart> {
        let key = (rollout.namespace().unwrap_or_default(), rollout.name_any());
        let histories = self
            .histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let policy = self.policy_of(rollout);
        histories
            .get(&key)
            .map(|h| h.charts(policy.as_deref()))
            .unwrap_or_else(|| RolloutHistory::default().charts(policy.as_deref()))
    }
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    fragment: Option<u8>,
}

fn respond(title: &str, fixed: &str, live: String, query: &PageQuery) -> Html<String> {
    match query.fragment {
        Some(_) => Html(live),
        None => Html(pages::page(title, fixed, &live)),
    }
}

fn sorted<K: Resource<DynamicType = ()> + ResourceExt>(mut objects: Vec<Arc<K>>) -> Vec<Arc<K>> {
    objects.sort_by_key(|o| (o.namespace(), o.name_any()));
    objects
}

async fn overview(State(dashboard): State<Shared>, Query(query): Query<PageQuery>) -> Html<String> {
    let rollouts = sorted(dashboard.rollouts.state());
    let pipelines = sorted(dashboard.pipelines.state());
    let rollouts: Vec<&CanaryRollout> = rollouts.iter().map(|r| r.as_ref()).collect();
    let pipelines: Vec<&ReleasePipeline> = pipelines.iter().map(|p| p.as_ref()).collect();
    let scope = dashboard
        .options
        .namespace
        .as_deref()
        .unwrap_or("all namespaces");
    respond(
        &format!("Sluice: {scope}"),
        "",
        pages::overview(&rollouts, &pipelines),
        &query,
    )
}

async fn rollout_page(
    State(dashboard): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(rollout) = dashboard.rollout(&namespace, &name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no CanaryRollout {namespace}/{name}"),
        )
            .into_response();
    };
    let charts: Vec<String> = dashboard
        .charts(&rollout)
        .into_iter()
        .map(|c| c.title)
        .collect();
    let version = *dashboard.changes.borrow();
    let live = pages::rollout(&rollout, &charts, version);
    let actions = pages::actions(&rollout, dashboard.options.allow_actions);
    respond(&format!("{namespace}/{name}"), &actions, live, &query).into_response()
}

async fn chart(
    State(dashboard): State<Shared>,
    Path((namespace, name, file)): Path<(String, String, String)>,
) -> Response {
    let index = file
        .strip_suffix(".svg")
        .and_then(|i| i.parse::<usize>().ok());
    let rollout = dashboard.rollout(&namespace, &name);
    let chart = rollout
        .zip(index)
        .and_then(|(rollout, index)| dashboard.charts(&rollout).into_iter().nth(index));
    match chart {
        Some(chart) => (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            charts::svg(&chart),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn rollouts_json(State(dashboard): State<Shared>) -> axum::Json<Vec<CanaryRollout>> {
    let rollouts = sorted(dashboard.rollouts.state());
    axum::Json(rollouts.iter().map(|r| r.as_ref().clone()).collect())
}

async fn changes_stream(
    State(dashboard): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = dashboard.changes.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        let version = *receiver.borrow_and_update();
        let event = Event::default()
            .id(version.to_string())
            .data(version.to_string());
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn act(
    State(dashboard): State<Shared>,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> Response {
    if !dashboard.options.allow_actions {
        return (
            StatusCode::FORBIDDEN,
            "read-only dashboard: start it with --allow-actions",
        )
            .into_response();
    }
    let Some(rollout) = dashboard.rollout(&namespace, &name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no CanaryRollout {namespace}/{name}"),
        )
            .into_response();
    };
    let patch = match action.as_str() {
        "promote" | "abort" | "retry" => {
            let request = match action.as_str() {
                "promote" => Request::Promote,
                "abort" => Request::Abort,
                _ => Request::Retry,
            };
            match request.patch(&rollout, Timestamp::now()) {
                Ok(mut planned) => {
                    planned.patch["metadata"]["annotations"]
                        [crate::engine::requests::REQUESTED_BY] = serde_json::Value::String(
                        format!("{} (dashboard)", dashboard.options.actor),
                    );
                    planned.patch
                }
                Err(error) => return (StatusCode::CONFLICT, error.to_string()).into_response(),
            }
        }
        "pause" => paused_patch(true),
        "resume" => paused_patch(false),
        _ => return (StatusCode::NOT_FOUND, format!("no action {action}")).into_response(),
    };
    let api: Api<CanaryRollout> = Api::namespaced(dashboard.client.clone(), &namespace);
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Redirect::to(&format!("/rollouts/{namespace}/{name}")).into_response(),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("{action} on {namespace}/{name}: {error}"),
        )
            .into_response(),
    }
}
