//! What the cluster needs before the demo's objects: the namespace (with the token pods need),
//! the CRDs, and the fake Node. Everything is idempotent, except that a namespace already
//! holding the demo's CanaryRollout is refused (its story has been told), and so is a cluster
//! with real Nodes: the scheduler would put real pods on the fake Node.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, Error};
use tokio::time::Instant;

use super::manifests::{APP, FIELD_MANAGER};
use crate::api::CanaryRollout;
use crate::devenv::{crds, kubelet};

/// How long the namespace's default ServiceAccount may take to get its token.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn prepare(client: &Client, namespace: &str) -> anyhow::Result<()> {
    refuse_real_nodes(client).await?;
    create_namespace(client, namespace)
        .await
        .with_context(|| format!("creating namespace {namespace}"))?;
    let rollouts: Api<CanaryRollout> = Api::namespaced(client.clone(), namespace);
    crds::install(client, FIELD_MANAGER)
        .await
        .context("installing the CRDs")?;
    if rollouts.get_opt(APP).await?.is_some() {
        bail!(
            "namespace {namespace} already holds the CanaryRollout {APP} of an earlier demo: \
             run the demo in another namespace (--namespace) or on a fresh environment (hack/demo)"
        );
    }
    kubelet::register_node(client)
        .await
        .context("registering the fake Node")?;
    wait_for_token(client, namespace).await
}

async fn refuse_real_nodes(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .context("listing Nodes (is the local environment up? hack/testenv up)")?;
    let real: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|node| node.metadata.name)
        .filter(|name| name != kubelet::FAKE_NODE)
        .collect();
    if !real.is_empty() {
        bail!(
            "this cluster has Nodes ({}): the demo registers a fake Node and fakes pod readiness, \
             so it only runs on a control plane without kubelets (hack/testenv, hack/demo)",
            real.join(", ")
        );
    }
    Ok(())
}

async fn create_namespace(client: &Client, name: &str) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Kubernetes 1.20 admits pods only once the namespace's default ServiceAccount has its token
/// Secret; without the wait the first ReplicaSet would back off for a while.
async fn wait_for_token(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + ACCOUNT_TIMEOUT;
    loop {
        let account = accounts.get_opt("default").await?;
        if account.is_some_and(|a| a.secrets.is_some_and(|s| !s.is_empty())) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the default ServiceAccount of {namespace} has no token after {ACCOUNT_TIMEOUT:?}: \
                 is kube-controller-manager running?"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
