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

use super::budget_history::BudgetHistory;
use super::charts;
use super::history::RolloutHistory;
use super::pages::{self, EventLine};
use crate::api::parity_policy::ParityPolicy;
use crate::api::release_pipeline::ReleasePipeline;
use crate::api::{CanaryRollout, SLOBudget};
use crate::plugin::requests::{Request, paused_patch};
use k8s_openapi::api::core::v1::Event as KubeEvent;

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
    budgets: Store<SLOBudget>,
    /// Events recorded on CanaryRollouts.
    events: Store<KubeEvent>,
    histories: Mutex<HashMap<(String, String), RolloutHistory>>,
    budget_histories: Mutex<HashMap<(String, String), BudgetHistory>>,
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
    let (budgets, budget_writer) = reflector::store();
    let (events, event_writer) = reflector::store();
    let dashboard = Arc::new(Dashboard {
        client: client.clone(),
        options: options.clone(),
        rollouts,
        policies,
        pipelines,
        budgets,
        events,
        histories: Mutex::default(),
        budget_histories: Mutex::default(),
        changes,
    });
    spawn_cache(
        dashboard.clone(),
        rollout_writer,
        api::<CanaryRollout>(&client, &options),
        watcher::Config::default(),
        Dashboard::observe,
    );
    spawn_cache(
        dashboard.clone(),
        budget_writer,
        api::<SLOBudget>(&client, &options),
        watcher::Config::default(),
        Dashboard::observe_budget,
    );
    spawn_cache(
        dashboard.clone(),
        policy_writer,
        api::<ParityPolicy>(&client, &options),
        watcher::Config::default(),
        |_, _| {},
    );
    spawn_cache(
        dashboard.clone(),
        event_writer,
        api::<KubeEvent>(&client, &options),
        watcher::Config::default().fields("involvedObject.kind=CanaryRollout"),
        |_, _| {},
    );
    spawn_cache(
        dashboard.clone(),
        pipeline_writer,
        api::<ReleasePipeline>(&client, &options),
        watcher::Config::default(),
        |_, _| {},
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

/// Keeps `writer`'s store filled from a watch of `api`, hands each object that changed to
/// `observe`, and announces the change.
fn spawn_cache<K>(
    dashboard: Shared,
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    observe: fn(&Dashboard, &K),
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(async move {
        let events = reflector::reflector(writer, watcher(api, config))
            .default_backoff()
            .touched_objects();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            if let Ok(object) = event {
                observe(&dashboard, &object);
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
    }

    fn observe_budget(&self, budget: &SLOBudget) {
        let key = (budget.namespace().unwrap_or_default(), budget.name_any());
        self.budget_histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .observe(budget);
    }

    /// The events recorded on `rollout`.
    fn events_of(&self, rollout: &CanaryRollout) -> Vec<EventLine> {
        let namespace = rollout.namespace();
        let name = rollout.name_any();
        self.events
            .state()
            .into_iter()
            .filter(|e| {
                e.involved_object.namespace == namespace
                    && e.involved_object.name.as_deref() == Some(name.as_str())
            })
            .map(|e| EventLine::of(&e))
            .collect()
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
        let empty = RolloutHistory::default();
        let history = histories.get(&key).unwrap_or(&empty);
        let (mut charts, start) = (
            history.charts(policy.as_deref(), Timestamp::now()),
            history.start(),
        );
        drop(histories);
        let budget = rollout
            .spec
            .analysis
            .slo_budget_ref
            .as_ref()
            .and_then(|reference| {
                self.budgets.state().into_iter().find(|b| {
                    b.namespace() == rollout.namespace() && b.name_any() == reference.name
                })
            });
        if let (Some(budget), Some(start)) = (budget, start) {
            let key = (budget.namespace().unwrap_or_default(), budget.name_any());
            let budget_histories = self
                .budget_histories
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(seen) = budget_histories.get(&key) {
                charts.extend(seen.charts(&budget, start));
            }
        }
        charts
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
    let events = dashboard.events_of(&rollout);
    let live = pages::rollout(&rollout, &charts, &events, version);
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
