//! The `sluice` command: run the operator, print the CRDs, and the offline tools.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sluice::controller::{self, RunConfig};
use sluice::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery gated on parity and SLO error budgets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (in-cluster config, or KUBECONFIG / ~/.kube/config).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write crds/<name>.yaml files into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (repeatable); default: all namespaces.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "SLUICE_NAMESPACE",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Prometheus used when a resource names none.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_URL",
        default_value = "http://prometheus.monitoring:9090"
    )]
    prometheus_url: String,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest brings rustls with aws-lc, kube brings ring: pick one before any TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            telemetry::init_logging(args.log_format);
            controller::run(RunConfig {
                namespaces: args.namespaces,
                prometheus_url: args.prometheus_url,
            })
            .await
        }
        Command::Crd { out_dir } => write_crds(out_dir),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_crds(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    match out_dir {
        None => print!("{}", sluice::api::crds_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (name, yaml) in sluice::api::crd_files()? {
                std::fs::write(dir.join(name), yaml)?;
            }
        }
    }
    Ok(())
}
