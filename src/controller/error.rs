//! Reconcile errors, each with a static category for metrics and logs.

use crate::traffic::TrafficError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("traffic routing: {0}")]
    Traffic(#[from] TrafficError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("serialisation: {0}")]
    Serde(#[from] serde_json::Error),
    #[error("object has no namespace")]
    MissingNamespace,
    /// A spec problem found after validation passed (should not happen; reported, not retried fast).
    #[error("invalid spec: {0}")]
    Invalid(String),
    /// Hand-back waits for the target to become available; retried shortly.
    #[error("hand-back waits: {0}")]
    HandBackPending(String),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Traffic(e) => e.category(),
            Error::Finalizer(_) => "finalizer",
            Error::Serde(_) => "serde",
            Error::MissingNamespace => "missing_namespace",
            Error::HandBackPending(_) => "hand_back_pending",
            Error::Invalid(_) => "invalid_spec",
        }
    }
}
