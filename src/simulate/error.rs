//! Why a simulation could not start: every variant is bad input (exit code 2).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not valid YAML: {reason}")]
    Yaml { path: PathBuf, reason: String },
    #[error(
        "{path}: kind {kind:?} cannot be simulated; expected CanaryRollout, ParityPolicy or SLOBudget"
    )]
    UnknownKind { path: PathBuf, kind: String },
    #[error("no CanaryRollout in the files given with -f")]
    NoRollout,
    #[error("more than one CanaryRollout in the files given with -f ({0}); simulate one at a time")]
    SeveralRollouts(String),
    #[error("{kind} {name}: {reason}")]
    Document {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("the CanaryRollout refers to {kind} {name:?}, which is not in the files given with -f")]
    MissingReference { kind: &'static str, name: String },
    #[error("{kind} {name:?} is not referenced by the CanaryRollout (spec.analysis.{field})")]
    Unreferenced {
        kind: &'static str,
        name: String,
        field: &'static str,
    },
    #[error("invalid spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    #[error("--set {setting}: {reason}")]
    Setting { setting: String, reason: String },
    #[error("{0}")]
    Arguments(String),
    #[error("recorded metrics: {0}")]
    Recording(String),
    #[error("Prometheus: {0}")]
    Prometheus(String),
}
