//! A fake kubelet for one namespace: the control plane has no kubelet, so pods would stay
//! Pending and Deployments would never report availability.
//!
//! It binds unscheduled pods to the fake Node, reports them Running and Ready (or Running and
//! not Ready for Deployments marked unready, like a version whose readiness probe fails), and
//! finishes the deletion of terminating pods. It never panics on what it reads from the cluster:
//! it logs and carries on. [`register_node`] creates the Ready Node the pods are bound to.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, ContainerState, ContainerStateRunning, ContainerStatus, Node, NodeAddress,
    NodeCondition, NodeStatus, ObjectReference, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Error};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// Name of the Node the fake kubelet binds pods to.
pub const FAKE_NODE: &str = "sluice-fake-node";

/// Handle on the fake kubelet task; the task stops when the handle is dropped.
pub struct FakeKubelet {
    unready: Arc<Mutex<HashSet<String>>>,
    changed: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl FakeKubelet {
    /// Starts tending the pods of `namespace`.
    pub fn start(client: Client, namespace: &str) -> FakeKubelet {
        let unready = Arc::new(Mutex::new(HashSet::new()));
        let (changed, changes) = watch::channel(());
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let task = tokio::spawn(tend_pods(pods, unready.clone(), changes));
        FakeKubelet {
            unready,
            changed,
            task,
        }
    }

    /// Pods of this Deployment run but never become Ready (also those already running).
    pub fn keep_unready(&self, deployment: &str) {
        self.unready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(deployment.to_string());
        self.changed.send_replace(());
    }

    /// Pods of this Deployment become Ready again, existing ones included.
    pub fn make_ready(&self, deployment: &str) {
        self.unready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(deployment);
        self.changed.send_replace(());
    }
}

/// Creates the fake Node (tolerating a concurrent creator) and marks it Ready, with room for a
/// thousand pods. Nothing runs the node lifecycle controller, so the condition stays as written.
pub async fn register_node(client: &Client) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(FAKE_NODE.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), FAKE_NODE.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(Error::Api(status)) if status.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    let now = Time(jiff::Timestamp::now());
    let resources: std::collections::BTreeMap<String, Quantity> =
        [("cpu", "64"), ("memory", "256Gi"), ("pods", "1000")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect();
    let status = NodeStatus {
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("fake kubelet of the sluice development environment".into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
        }]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: FAKE_NODE.into(),
            },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        ..Default::default()
    };
    let patch = json!({ "status": status });
    // Several processes (test binaries, the demo) may write the same Node at once.
    let mut attempt = 0;
    loop {
        match nodes
            .patch_status(FAKE_NODE, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(Error::Api(status)) if status.is_conflict() && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tend_pods(
    pods: Api<Pod>,
    unready: Arc<Mutex<HashSet<String>>>,
    mut changes: watch::Receiver<()>,
) {
    let mut events = watcher(pods.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    // A write the apiserver refused (it restarts, etcd is down) is tried again, as a kubelet's
    // sync loop would: every pod is looked at again a second later, until all writes went through.
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let done = tokio::select! {
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    tend(&pods, &pod, &unready).await
                }
                Some(Ok(_)) => true,
                Some(Err(e)) => {
                    warn!("fake kubelet: watch error (retrying): {e}");
                    true
                }
                None => return,
            },
            Ok(()) = changes.changed() => tend_all(&pods, &unready).await,
            () = retry => {
                retry_at = None;
                tend_all(&pods, &unready).await
            }
        };
        if !done && retry_at.is_none() {
            retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
        }
    }
}

/// How long after a refused write every pod is looked at again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Tends every pod of the namespace; false when a write or the list failed.
async fn tend_all(pods: &Api<Pod>, unready: &Mutex<HashSet<String>>) -> bool {
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            let mut done = true;
            for pod in &list.items {
                done &= tend(pods, pod, unready).await;
            }
            done
        }
        Err(e) => {
            warn!("fake kubelet: listing pods: {e}");
            false
        }
    }
}

/// Moves one pod one step towards what a kubelet would make of it; false when the apiserver
/// refused the write (to be tried again).
async fn tend(pods: &Api<Pod>, pod: &Pod, unready: &Mutex<HashSet<String>>) -> bool {
    let Some(name) = pod.metadata.name.as_deref() else {
        return true;
    };
    let node_name = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
    if pod.metadata.deletion_timestamp.is_some() {
        finish_deletion(pods, pod, name).await
    } else if node_name.is_none() {
        bind(pods, name).await
    } else {
        let ready = match deployment_of(pod) {
            Some(deployment) => !unready
                .lock()
                .map(|set| set.contains(&deployment))
                .unwrap_or(false),
            None => true,
        };
        reports(pod, ready) || report_running(pods, pod, name, ready).await
    }
}

async fn finish_deletion(pods: &Api<Pod>, pod: &Pod, name: &str) -> bool {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => true,
        Err(Error::Api(status)) if status.is_not_found() || status.is_conflict() => true,
        Err(e) => {
            warn!("fake kubelet: deleting pod {name}: {e}");
            false
        }
    }
}

async fn bind(pods: &Api<Pod>, name: &str) -> bool {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(FAKE_NODE.into()),
            ..Default::default()
        },
    };
    let result: Result<serde_json::Value, _> = pods
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await;
    match result {
        Ok(_) => true,
        // Already bound (a stale event) or already gone.
        Err(Error::Api(status)) if status.is_conflict() || status.is_not_found() => true,
        Err(e) => {
            warn!("fake kubelet: binding pod {name}: {e}");
            false
        }
    }
}

/// Whether the pod already shows Running with the wanted readiness.
fn reports(pod: &Pod, ready: bool) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let wanted = if ready { "True" } else { "False" };
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.is_some()
        && status.conditions.as_ref().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == wanted)
        })
}

async fn report_running(pods: &Api<Pod>, pod: &Pod, name: &str, ready: bool) -> bool {
    let now = Time(jiff::Timestamp::now());
    let ip = pod_ip(pod);
    let condition = |type_: &str, status: bool| PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    };
    let containers = pod
        .spec
        .as_ref()
        .map(|spec| spec.containers.as_slice())
        .unwrap_or_default();
    let status = PodStatus {
        phase: Some("Running".into()),
        host_ip: Some("127.0.0.1".into()),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or(Some(now.clone())),
        conditions: Some(vec![
            condition("Initialized", true),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", true),
        ]),
        container_statuses: Some(
            containers
                .iter()
                .map(|container| ContainerStatus {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    image_id: String::new(),
                    ready,
                    started: Some(true),
                    restart_count: 0,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(now.clone()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let patch = json!({ "status": status });
    match pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        Err(Error::Api(status)) if status.is_not_found() => true,
        Err(e) => {
            warn!("fake kubelet: reporting pod {name} running: {e}");
            false
        }
    }
}

/// The Deployment a pod belongs to: its ReplicaSet owner's name minus `-<pod-template-hash>`.
fn deployment_of(pod: &Pod) -> Option<String> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "ReplicaSet")?;
    let hash = pod.metadata.labels.as_ref()?.get("pod-template-hash")?;
    owner
        .name
        .strip_suffix(&format!("-{hash}"))
        .map(str::to_string)
}

/// A stable address in 10.244.0.0/16 derived from the pod's uid.
fn pod_ip(pod: &Pod) -> String {
    let mut hasher = DefaultHasher::new();
    pod.metadata.uid.hash(&mut hasher);
    pod.metadata.name.hash(&mut hasher);
    let h = hasher.finish();
    format!("10.244.{}.{}", (h >> 8) % 256, 1 + h % 254)
}
