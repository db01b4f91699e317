//! The I/O shell: reconcilers that fetch, let the engine decide, apply the plan, write status.

pub struct RunConfig {
    pub namespaces: Vec<String>,
    pub prometheus_url: String,
}

pub async fn run(_config: RunConfig) -> anyhow::Result<()> {
    anyhow::bail!("the controller is not implemented yet")
}
