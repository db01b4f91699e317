//! Tools for a local environment without a kubelet: a fake kubelet and a metrics exporter
//! scraped through Prometheus file_sd; used by the demo and the tests; never by the operator
//! itself.
//!
//! Everything here runs against a real apiserver and a real Prometheus (`hack/testenv`), and
//! only stands in for what such a machine lacks: nodes that run pods, and applications that
//! serve metrics.

pub mod crds;
pub mod exporter;
pub mod kubelet;

pub use exporter::MetricsExporter;
pub use kubelet::{FAKE_NODE, FakeKubelet};

/// A minimal Gateway API HTTPRoute CRD (not the upstream file): enough schema for Sluice to read
/// and write backendRef weights on Kubernetes 1.20.
pub const HTTPROUTE_CRD: &str = include_str!("httproute-crd.yaml");
