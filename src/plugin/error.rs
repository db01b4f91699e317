//! What can go wrong in `kubectl sluice`, each with the sentence the user sees.

/// Errors of the plugin; every one exits with code 1 (usage errors are clap's, code 2).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
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
    #[error("{0}")]
    Usage(String),
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
        Self::api_for("rollout", action, name, namespace, source)
    }

    /// Like [`PluginError::api`] for an object of another kind ("pipeline").
    pub fn api_for(
        kind: &'static str,
        action: impl Into<String>,
        name: &str,
        namespace: &str,
        source: kube::Error,
    ) -> Self {
        match &source {
            kube::Error::Api(status) if status.is_not_found() => PluginError::NotFound {
                kind,
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

/// The error with its causes, each once: kube's errors name only their own layer ("client
/// error (Connect)"), the cause says what happened ("Connection refused").
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Layer(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let error = PluginError::Output {
            format: "json",
            message: "x".into(),
        };
        assert_eq!(describe(&error), "printing as json: x");
        let layered = Layer(refused);
        assert_eq!(
            describe(&layered),
            "client error (Connect): Connection refused"
        );
    }
}
