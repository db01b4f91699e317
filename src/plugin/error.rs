//! What can go wrong in `kubectl sluice`, each with the sentence the user sees.

/// Errors of the plugin; every one exits with code 1 (usage errors are clap's, code 2).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("rollout {name} not found in namespace {namespace}")]
    NotFound { name: String, namespace: String },
    #[error("rollout {name} in namespace {namespace} is not frozen (phase {phase})")]
    NotFrozen {
        name: String,
        namespace: String,
        phase: String,
    },
    #[error("rollout {name} was deleted while watching it")]
    Deleted { name: String },
    #[error("rollout {name} did not settle within {timeout} (phase {phase})")]
    Timeout {
        name: String,
        timeout: String,
        phase: String,
    },
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] Box<kube::config::KubeconfigError>),
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] Box<kube::Error>),
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("object {name} is not a valid {kind}: {source}")]
    Malformed {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::core::dynamic::ParseDynamicObjectError,
    },
    #[error("printing as {format}: {message}")]
    Output {
        format: &'static str,
        message: String,
    },
}

impl PluginError {
    /// Wraps an API error, naming a missing rollout plainly.
    pub fn api(
        action: impl Into<String>,
        name: &str,
        namespace: &str,
        source: kube::Error,
    ) -> Self {
        match &source {
            kube::Error::Api(status) if status.is_not_found() => PluginError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
            },
            _ => PluginError::Api {
                action: action.into(),
                source: Box::new(source),
            },
        }
    }
}

impl From<kube::config::KubeconfigError> for PluginError {
    fn from(error: kube::config::KubeconfigError) -> Self {
        PluginError::Kubeconfig(Box::new(error))
    }
}
