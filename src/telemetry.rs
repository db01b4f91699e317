//! Logging set-up: text for people, JSON for log pipelines; level from --log-level or RUST_LOG.
//! Lines written during a reconcile carry its span: controller, namespace and object name.

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init_logging(format: LogFormat) {
    init_logging_with_default(format, "info,kube=warn");
}

/// Like [`init_logging`], with another filter when RUST_LOG is not set.
pub fn init_logging_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // The innermost span names the object being reconciled (namespace, object); the list of
        // outer spans would only repeat kube-runtime's own.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
