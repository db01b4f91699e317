//! One namespace per test, with kubectl and typed-API shortcuts scoped to it.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, Error, Resource};
use tokio::io::AsyncWriteExt;

use super::{TestEnv, eventually, unique_suffix};

/// A namespace created for one test. Deleted on drop, unless the test failed: then it is kept
/// and its name printed, so the objects can be inspected.
pub struct TestNamespace {
    name: String,
    client: Client,
    kubeconfig: PathBuf,
}

/// An Event in the namespace, reduced to what tests assert on.
#[derive(Clone, Debug, PartialEq)]
pub struct TestEvent {
    /// CamelCase reason, e.g. `ScalingReplicaSet`.
    pub reason: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The human-readable message (`note` in events.k8s.io/v1).
    pub message: String,
    /// Kind of the object the event is about (`regarding` in events.k8s.io/v1).
    pub object_kind: String,
    /// Name of the object the event is about.
    pub object_name: String,
}

impl TestEnv {
    /// Creates a namespace named `<prefix>-<unique suffix>` and waits until pods can be created
    /// in it (its `default` ServiceAccount has its token).
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let name = loop {
            let name = namespace_name(prefix);
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some([("sluice.dev/test".to_string(), "true".to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match namespaces.create(&PostParams::default(), &namespace).await {
                Ok(_) => break name,
                Err(Error::Api(status)) if status.is_already_exists() => continue,
                Err(e) => panic!("creating namespace {name}: {e}"),
            }
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &name);
        let what = format!("the default ServiceAccount of {name} with its token");
        eventually(Duration::from_secs(30), &what, async || {
            let account = accounts.get_opt("default").await.ok()??;
            account
                .secrets
                .is_some_and(|secrets| !secrets.is_empty())
                .then_some(())
        })
        .await;
        TestNamespace {
            name,
            client: self.client.clone(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A typed API for namespaced objects of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Runs `kubectl -n <namespace> <args>` against the test environment.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None).await
    }

    /// Like [`Self::kubectl`], feeding `input` on stdin.
    pub async fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["--namespace", &self.name])
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input.as_bytes())
                .await
                .expect("write kubectl stdin");
        }
        child.wait_with_output().await.expect("wait for kubectl")
    }

    /// `kubectl apply -f -` of `yaml` into this namespace; panics with kubectl's stderr when it
    /// fails. Returns kubectl's stdout.
    pub async fn apply_yaml(&self, yaml: &str) -> String {
        let output = self
            .kubectl_with_input(&["apply", "-f", "-"], Some(yaml))
            .await;
        if !output.status.success() {
            panic!(
                "kubectl apply failed in {}: {}\n--- input ---\n{yaml}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Events in this namespace. The apiserver serves core/v1 and events.k8s.io/v1 Events from
    /// the same storage, so this list includes events written through either API.
    pub async fn events(&self) -> Vec<TestEvent> {
        let events: Api<Event> = self.api();
        let list = events
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing events: {e}"));
        list.items
            .into_iter()
            .map(|event| TestEvent {
                reason: event.reason.unwrap_or_default(),
                type_: event.type_.unwrap_or_default(),
                message: event.message.unwrap_or_default(),
                object_kind: event.involved_object.kind.unwrap_or_default(),
                object_name: event.involved_object.name.unwrap_or_default(),
            })
            .collect()
    }

    /// The Deployment `name` in this namespace; panics when it cannot be read.
    pub async fn deployment(&self, name: &str) -> Deployment {
        self.api::<Deployment>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading Deployment {}/{name}: {e}", self.name))
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: namespace {} kept for inspection", self.name);
            return;
        }
        // No kubelet finishes the deletion of bound pods, so force them out once the namespace
        // is terminating (no new pods can be created in it then).
        let kubectl = |args: &[&str]| {
            let _ = std::process::Command::new("kubectl")
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        kubectl(&[
            "delete",
            "pods",
            "--all",
            "--namespace",
            &self.name,
            "--force",
            "--grace-period=0",
        ]);
    }
}

/// `<prefix>-<suffix>` as a valid DNS label (lowercase alphanumerics and '-', at most 63).
fn namespace_name(prefix: &str) -> String {
    let suffix = unique_suffix();
    let cleaned: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let room = 63 - suffix.len() - 1;
    let prefix = cleaned.trim_matches('-');
    let prefix = prefix[..prefix.len().min(room)].trim_end_matches('-');
    let prefix = if prefix.is_empty() { "test" } else { prefix };
    format!("{prefix}-{suffix}")
}
