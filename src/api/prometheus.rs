//! Where a resource's queries go, shared by the three kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where Prometheus answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRef {
    /// Base URL, e.g. http://prometheus.monitoring:9090.
    #[schemars(length(min = 1), regex(pattern = r"^https?://"))]
    pub address: String,
}
