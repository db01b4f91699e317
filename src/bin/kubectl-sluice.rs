//! `kubectl sluice`: inspect and steer Sluice CanaryRollouts (see docs/plugin.md). Copy this
//! binary onto PATH and kubectl finds it.

use std::process::ExitCode;

use clap::Parser;
use sluice::plugin::error::describe;
use sluice::plugin::{Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // kube's TLS needs one rustls CryptoProvider installed before the first connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}
