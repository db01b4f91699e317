//! Kubernetes clients that name themselves: every request carries the User-Agent
//! `sluice/<version>` (the plugin adds `(kubectl-sluice)`), so an apiserver audit log tells
//! Sluice's requests from everyone else's.

use http::{HeaderValue, header::USER_AGENT};
use kube::{Client, Config};

/// The operator's User-Agent.
pub const OPERATOR_USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));
/// The kubectl plugin's User-Agent.
pub const PLUGIN_USER_AGENT: &str =
    concat!("sluice/", env!("CARGO_PKG_VERSION"), " (kubectl-sluice)");

/// A client for `config` whose requests carry `user_agent`.
pub fn named(mut config: Config, user_agent: &'static str) -> Result<Client, kube::Error> {
    config.headers.retain(|(name, _)| name != USER_AGENT);
    config
        .headers
        .push((USER_AGENT, HeaderValue::from_static(user_agent)));
    Client::try_from(config)
}

/// The operator's client, configured as `kubectl` would be (in-cluster or KUBECONFIG).
pub async fn operator() -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    named(config, OPERATOR_USER_AGENT)
}
