//! The command line of `kubectl sluice`, in kubectl's conventions: `-n/--namespace`,
//! `--context`, `--kubeconfig` anywhere on the line, `-A` and `-o` for `get`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sluice",
    bin_name = "kubectl sluice",
    version,
    about = "Inspect and steer Sluice CanaryRollouts",
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

/// Which cluster and namespace, as kubectl chooses them.
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// Namespace of the rollout. Default: the kubeconfig context's namespace, else "default".
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use. Default: its current context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List rollouts: phase, stage, weight, last verdict, tracking error, SLO budget left.
    Get(GetArgs),
    /// Explain a rollout: its last evaluation, parity, SLO, and what it waits for.
    Status(Target),
    /// Skip the remaining analysis and promote the canary (sets sluice.dev/promote).
    Promote(Target),
    /// Roll the canary back now (sets sluice.dev/abort).
    Abort(Target),
    /// Run a rolled-back revision again from the first stage (sets sluice.dev/retry).
    Retry(Target),
    /// Clear a freeze: the one a parity emergency left (sluice.dev/unfreeze), or let one
    /// rollout through an SLO-budget freeze (sluice.dev/override-freeze).
    Unfreeze(Target),
    /// Hold the rollout at its stage (spec.paused=true; under GitOps, change it in Git).
    Pause(Target),
    /// Let a paused rollout continue (spec.paused=false; under GitOps, change it in Git).
    Resume(Target),
    /// Show a ReleasePipeline: releases × environments (phase, soak, since when), the risk
    /// each release spent against its budgets, and why each waits.
    Pipeline(PipelineArgs),
    /// Stop the line: create a DeliveryFreeze in force until `thaw`. No rollout starts, and
    /// in-flight ones hold (or, with --rollback, roll back at once).
    Freeze(FreezeArgs),
    /// Lift the freeze `freeze` created (delete the DeliveryFreeze).
    Thaw(ThawArgs),
    /// Print a line each time the phase, stage, weight or verdict changes, until the rollout
    /// settles. Exit 0 when it succeeds (or nothing is pending), 1 when it is rolled back,
    /// frozen or invalid.
    Watch(WatchArgs),
    /// Serve a live web view of the rollouts and pipelines on localhost, with your kubeconfig
    /// and its RBAC. Read-only unless --allow-actions.
    Dashboard(DashboardArgs),
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Show every namespace, not only the current one.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Address to listen on; port 0 picks a free one. Keep it on localhost: the dashboard acts
    /// with your credentials.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub address: std::net::SocketAddr,
    /// Offer the promote, abort, retry, pause and resume buttons.
    #[arg(long)]
    pub allow_actions: bool,
}

#[derive(Debug, Args)]
pub struct Target {
    /// Name of the CanaryRollout.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Name of one CanaryRollout; all in the namespace when omitted.
    pub name: Option<String>,
    /// List rollouts in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    /// Output format: json or yaml (the objects), wide (more columns).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Why: shown on every rollout it holds, in events and notifications.
    #[arg(long)]
    pub reason: String,
    /// Freeze every namespace the operator watches (a DeliveryFreeze in the freeze namespace).
    #[arg(long)]
    pub all: bool,
    /// The kill switch: roll back every in-flight canary in scope, not only hold it.
    #[arg(long)]
    pub rollback: bool,
    /// Only rollouts with these labels, e.g. tier=critical.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Name of the DeliveryFreeze (default: sluice-freeze).
    #[arg(long)]
    pub name: Option<String>,
    /// The operator's freeze namespace, where --all freezes go (its --freeze-namespace).
    #[arg(long, default_value = crate::controller::DEFAULT_FREEZE_NAMESPACE)]
    pub freeze_namespace: String,
}

#[derive(Debug, Args)]
pub struct ThawArgs {
    /// Lift the freeze of every namespace.
    #[arg(long)]
    pub all: bool,
    /// Name of the DeliveryFreeze (default: sluice-freeze).
    #[arg(long)]
    pub name: Option<String>,
    /// The operator's freeze namespace, where --all freezes are.
    #[arg(long, default_value = crate::controller::DEFAULT_FREEZE_NAMESPACE)]
    pub freeze_namespace: String,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Name of the ReleasePipeline.
    pub name: String,
    /// Output format: json or yaml (the object as stored). Default: the matrix.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<DocumentFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocumentFormat {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
    Wide,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Name of the CanaryRollout.
    pub name: String,
    /// Give up (exit 1) when the rollout has not settled after this long, e.g. 10m. Default:
    /// wait until it settles or Ctrl-C.
    #[arg(long)]
    pub timeout: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_flags_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from([
            "kubectl-sluice",
            "--context",
            "prod",
            "get",
            "-n",
            "shop",
            "-o",
            "wide",
        ])
        .unwrap();
        assert_eq!(cli.connection.context.as_deref(), Some("prod"));
        assert_eq!(cli.connection.namespace.as_deref(), Some("shop"));
        let Command::Get(get) = cli.command else {
            panic!("get expected")
        };
        assert_eq!(get.output, Some(OutputFormat::Wide));
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let errors = [
            vec!["kubectl-sluice", "get", "checkout", "-A"],
            vec!["kubectl-sluice", "get", "-o", "table"],
            vec!["kubectl-sluice", "promote"],
            vec!["kubectl-sluice", "watch", "checkout", "--timeout", "ten"],
        ];
        for args in errors {
            let error = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
