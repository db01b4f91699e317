//! The I/O of each command: read the objects, hand them to the pure formatting, write patches.

use std::cell::Cell;
use std::io::Write;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::watch_object;
use kube::{Client, Config};
use serde::de::DeserializeOwned;

use super::Exit;
use super::cli::{
    Connection, DashboardArgs, DocumentFormat, FreezeArgs, GetArgs, OutputFormat, PipelineArgs,
    ThawArgs, WatchArgs,
};
use super::error::PluginError;
use super::explain::Explained;
use super::pipeline::pipeline_matrix;
use super::requests::{Request, paused_patch, paused_summary};
use super::table::{TableOptions, rollout_table};
use super::watch::{Progress, Settled, settled};
use crate::api::{CanaryRollout, DeliveryFreeze, ParityPolicy, ReleasePipeline, SLOBudget};
use crate::controller::deployment_summary::DeploymentSummary;
use crate::controller::workloads::target_revision;

/// A client for the chosen kubeconfig and context, and the namespace to work in.
pub struct Session {
    pub client: Client,
    pub namespace: String,
    /// Who runs the command, as the kubeconfig names the user: recorded with each request.
    pub actor: String,
}

impl Session {
    pub async fn connect(connection: &Connection) -> Result<Self, PluginError> {
        let options = KubeConfigOptions {
            context: connection.context.clone(),
            cluster: None,
            user: None,
        };
        let config = match &connection.kubeconfig {
            Some(path) => {
                Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
            }
            None => Config::from_kubeconfig(&options).await?,
        };
        let namespace = connection
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = crate::client::named(config, crate::client::PLUGIN_USER_AGENT)
            .map_err(|e| PluginError::Connect(Box::new(e)))?;
        let actor = kubeconfig_user(connection).unwrap_or_else(|| "unknown".to_string());
        Ok(Self {
            client,
            namespace,
            actor,
        })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn rollout(&self, name: &str) -> Result<CanaryRollout, PluginError> {
        self.api::<CanaryRollout>().get(name).await.map_err(|e| {
            PluginError::api(format!("reading rollout {name}"), name, &self.namespace, e)
        })
    }

    /// A referenced object, None when it does not exist.
    async fn referenced<K>(&self, name: Option<&str>) -> Result<Option<K>, PluginError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let Some(name) = name else { return Ok(None) };
        self.api::<K>()
            .get_opt(name)
            .await
            .map_err(|source| PluginError::Api {
                action: format!("reading {} {name}", K::kind(&K::DynamicType::default())),
                source: Box::new(source),
            })
    }
}

pub async fn get(session: &Session, args: &GetArgs) -> Result<(), PluginError> {
    let objects = fetch_rollouts(session, args).await?;
    let single = args.name.is_some();
    let text = match args.output {
        Some(OutputFormat::Json) => {
            let document = as_document(&objects, single).map_err(|e| output_error("json", e))?;
            serde_json::to_string_pretty(&document).map_err(|e| output_error("json", e))? + "\n"
        }
        Some(OutputFormat::Yaml) => {
            let document = as_document(&objects, single).map_err(|e| output_error("yaml", e))?;
            serde_saphyr::to_string(&document).map_err(|e| output_error("yaml", e))?
        }
        Some(OutputFormat::Wide) | None if objects.is_empty() => {
            match args.all_namespaces {
                true => eprintln!("No resources found"),
                false => eprintln!("No resources found in {} namespace.", session.namespace),
            }
            return Ok(());
        }
        Some(OutputFormat::Wide) | None => {
            let typed: Vec<CanaryRollout> = objects
                .iter()
                .map(|o| typed(o, "CanaryRollout"))
                .collect::<Result<_, _>>()?;
            let budgets = fetch_budgets(session, args, &typed).await?;
            let options = TableOptions {
                namespace_column: args.all_namespaces,
                wide: args.output == Some(OutputFormat::Wide),
            };
            rollout_table(&typed, &budgets, options, Timestamp::now())
        }
    };
    print_out(&text);
    Ok(())
}

pub async fn pipeline(session: &Session, args: &PipelineArgs) -> Result<(), PluginError> {
    let resource = ApiResource::erase::<ReleasePipeline>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(session.client.clone(), &session.namespace, &resource);
    let name = &args.name;
    let object = api.get(name).await.map_err(|e| {
        PluginError::api_for(
            "pipeline",
            format!("reading pipeline {name}"),
            name,
            &session.namespace,
            e,
        )
    })?;
    let text = match args.output {
        Some(DocumentFormat::Json) => {
            let document = as_document(&[object], true).map_err(|e| output_error("json", e))?;
            serde_json::to_string_pretty(&document).map_err(|e| output_error("json", e))? + "\n"
        }
        Some(DocumentFormat::Yaml) => {
            let document = as_document(&[object], true).map_err(|e| output_error("yaml", e))?;
            serde_saphyr::to_string(&document).map_err(|e| output_error("yaml", e))?
        }
        None => pipeline_matrix(&typed(&object, "ReleasePipeline")?, Timestamp::now()),
    };
    print_out(&text);
    Ok(())
}

/// The rollouts as stored (untyped, so `-o json|yaml` print every field as the apiserver has it).
async fn fetch_rollouts(
    session: &Session,
    args: &GetArgs,
) -> Result<Vec<DynamicObject>, PluginError> {
    let resource = ApiResource::erase::<CanaryRollout>(&());
    let rollouts: Api<DynamicObject> = if args.all_namespaces {
        Api::all_with(session.client.clone(), &resource)
    } else {
        Api::namespaced_with(session.client.clone(), &session.namespace, &resource)
    };
    match &args.name {
        Some(name) => Ok(vec![rollouts.get(name).await.map_err(|e| {
            PluginError::api(
                format!("reading rollout {name}"),
                name,
                &session.namespace,
                e,
            )
        })?]),
        None => Ok(rollouts
            .list(&ListParams::default())
            .await
            .map_err(|source| PluginError::Api {
                action: "listing rollouts".to_string(),
                source: Box::new(source),
            })?
            .items),
    }
}

/// The SLOBudgets beside the rollouts, when one of them refers to a budget.
async fn fetch_budgets(
    session: &Session,
    args: &GetArgs,
    rollouts: &[CanaryRollout],
) -> Result<Vec<SLOBudget>, PluginError> {
    if rollouts
        .iter()
        .all(|r| r.spec.analysis.slo_budget_ref.is_none())
    {
        return Ok(vec![]);
    }
    let api: Api<SLOBudget> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        session.api()
    };
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(|source| PluginError::Api {
            action: "listing SLO budgets".to_string(),
            source: Box::new(source),
        })?
        .items)
}

/// One object as it is, or several as a kubectl `List`; without managedFields, as kubectl
/// prints them.
fn as_document(
    objects: &[DynamicObject],
    single: bool,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut objects = objects.to_vec();
    for object in &mut objects {
        object.metadata.managed_fields = None;
    }
    match (single, objects.as_slice()) {
        (true, [object]) => serde_json::to_value(object),
        _ => Ok(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": serde_json::to_value(&objects)?,
        })),
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn typed<K: kube::Resource + DeserializeOwned>(
    object: &DynamicObject,
    kind: &'static str,
) -> Result<K, PluginError> {
    object
        .clone()
        .try_parse()
        .map_err(|source| PluginError::Malformed {
            kind,
            name: object.metadata.name.clone().unwrap_or_default(),
            source,
        })
}

fn output_error(format: &'static str, error: impl std::fmt::Display) -> PluginError {
    PluginError::Output {
        format,
        message: error.to_string(),
    }
}

pub async fn status(session: &Session, name: &str) -> Result<(), PluginError> {
    let rollout = session.rollout(name).await?;
    let analysis = &rollout.spec.analysis;
    let parity_policy: Option<ParityPolicy> = session
        .referenced(analysis.parity_policy_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    let slo_budget: Option<SLOBudget> = session
        .referenced(analysis.slo_budget_ref.as_ref().map(|r| r.name.as_str()))
        .await?;
    let explained = Explained {
        rollout: &rollout,
        parity_policy: parity_policy.as_ref(),
        slo_budget: slo_budget.as_ref(),
        now: Timestamp::now(),
    };
    print_out(&explained.render());
    Ok(())
}

/// The user of the kubeconfig context in use, "user@context".
fn kubeconfig_user(connection: &Connection) -> Option<String> {
    let kubeconfig = match &connection.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let context_name = connection
        .context
        .clone()
        .or(kubeconfig.current_context.clone())?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)?;
    let user = context.context.as_ref()?.user.clone()?;
    Some(format!("{user}@{context_name}"))
}

pub async fn request(session: &Session, name: &str, request: Request) -> Result<(), PluginError> {
    let rollout = session.rollout(name).await?;
    let mut planned = request.patch(&rollout, Timestamp::now())?;
    planned.patch["metadata"]["annotations"][crate::engine::requests::REQUESTED_BY] =
        serde_json::Value::String(session.actor.clone());
    patch_rollout(session, name, &planned.patch, planned.annotation).await?;
    if let Some(warning) = &planned.warning {
        eprintln!("warning: {warning}");
    }
    print_out(&format!("{}\n", planned.summary));
    Ok(())
}

pub async fn set_paused(session: &Session, name: &str, paused: bool) -> Result<(), PluginError> {
    patch_rollout(session, name, &paused_patch(paused), "spec.paused").await?;
    print_out(&format!("{}\n", paused_summary(name, paused)));
    Ok(())
}

async fn patch_rollout(
    session: &Session,
    name: &str,
    patch: &serde_json::Value,
    what: &str,
) -> Result<(), PluginError> {
    session
        .api::<CanaryRollout>()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| {
            PluginError::api(
                format!("setting {what} on rollout {name}"),
                name,
                &session.namespace,
                e,
            )
        })?;
    Ok(())
}

pub async fn freeze(session: &Session, args: &FreezeArgs) -> Result<(), PluginError> {
    let planned = super::freeze::planned(args, &session.namespace).map_err(PluginError::Usage)?;
    let api: Api<DeliveryFreeze> = Api::namespaced(session.client.clone(), &planned.namespace);
    api.patch(
        &planned.name,
        &PatchParams::apply("kubectl-sluice").force(),
        &Patch::Apply(&planned.manifest),
    )
    .await
    .map_err(|e| {
        PluginError::api_for(
            "DeliveryFreeze",
            format!("applying DeliveryFreeze {}", planned.name),
            &planned.name,
            &planned.namespace,
            e,
        )
    })?;
    print_out(&format!("{}\n", super::freeze::summary(&planned, args)));
    Ok(())
}

pub async fn thaw(session: &Session, args: &ThawArgs) -> Result<(), PluginError> {
    let namespace = match args.all {
        true => args.freeze_namespace.as_str(),
        false => session.namespace.as_str(),
    };
    let name = args.name.as_deref().unwrap_or(super::freeze::DEFAULT_NAME);
    let api: Api<DeliveryFreeze> = Api::namespaced(session.client.clone(), namespace);
    api.delete(name, &Default::default()).await.map_err(|e| {
        PluginError::api_for(
            "DeliveryFreeze",
            format!("deleting DeliveryFreeze {name}"),
            name,
            namespace,
            e,
        )
    })?;
    print_out(&format!(
        "DeliveryFreeze {namespace}/{name} deleted: rollouts it held continue\n"
    ));
    Ok(())
}

pub async fn watch(session: &Session, args: &WatchArgs) -> Result<Exit, PluginError> {
    let name = args.name.as_str();
    let rollout = session.rollout(name).await?;
    let target: Option<DeploymentSummary> = session
        .referenced(Some(&rollout.spec.target_ref.name))
        .await?;
    let revision = target.as_ref().map(target_revision);
    let last_phase = Cell::new(rollout.status.as_ref().and_then(|s| s.phase));

    let follow = async {
        let mut updates = watch_object(session.api::<CanaryRollout>(), name)
            .default_backoff()
            .boxed();
        let mut shown: Option<Progress> = None;
        loop {
            let rollout = match updates.next().await {
                Some(Ok(Some(rollout))) => rollout,
                Some(Ok(None)) | None => {
                    return Err(PluginError::Deleted {
                        name: name.to_string(),
                    });
                }
                // The watcher lists again after an error (an expired resourceVersion, a dropped
                // connection), with backoff: say so and keep following.
                Some(Err(error)) => {
                    eprintln!("warning: watching rollout {name}: {error}; retrying");
                    continue;
                }
            };
            let progress = Progress::of(&rollout);
            let message = rollout.status.as_ref().and_then(|s| s.message.clone());
            last_phase.set(progress.phase);
            if shown.as_ref() != Some(&progress) {
                print_out(&format!(
                    "{}\n",
                    progress.line(Timestamp::now(), message.as_deref())
                ));
                shown = Some(progress);
            }
            if let Some(outcome) = settled(&rollout, revision.as_deref()) {
                print_out(&format!(
                    "rollout {name} settled: {}\n",
                    outcome_word(outcome)
                ));
                return Ok(if outcome.success() {
                    Exit::Success
                } else {
                    Exit::Failure
                });
            }
        }
    };
    let bounded = async {
        match args.timeout {
            Some(timeout) => tokio::time::timeout(timeout.as_std(), follow)
                .await
                .unwrap_or_else(|_| {
                    Err(PluginError::Timeout {
                        name: name.to_string(),
                        timeout: timeout.to_string(),
                        phase: super::requests::phase_name(last_phase.get()),
                    })
                }),
            None => follow.await,
        }
    };
    tokio::select! {
        result = bounded => result,
        _ = tokio::signal::ctrl_c() => Ok(Exit::Interrupted),
    }
}

fn outcome_word(outcome: Settled) -> String {
    match outcome {
        Settled::Succeeded => "Succeeded".to_string(),
        Settled::NothingPending => "Idle, nothing to roll out".to_string(),
        Settled::Stopped(phase) => format!("{phase:?}"),
    }
}

pub async fn dashboard(session: &Session, args: &DashboardArgs) -> Result<(), PluginError> {
    let options = crate::dashboard::server::Options {
        namespace: (!args.all_namespaces).then(|| session.namespace.clone()),
        address: args.address,
        allow_actions: args.allow_actions,
        actor: session.actor.clone(),
    };
    let mode = if args.allow_actions {
        "with the promote, abort, retry, pause and resume buttons"
    } else {
        "read-only"
    };
    let serving = crate::dashboard::server::serve(session.client.clone(), options, |address| {
        print_out(&format!(
            "dashboard ({mode}): http://{address}/ (Ctrl-C to stop)\n"
        ));
    });
    tokio::select! {
        served = serving => served.map_err(|e| PluginError::Usage(format!("dashboard: {e}"))),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
