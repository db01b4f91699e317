//! The `sluice` command: run the operator, print the CRDs, the local demo, and the offline tools.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sluice::controller::leader::{self, LeaseConfig};
use sluice::controller::{self, RunConfig};
use sluice::metrics::{BasicAuth, PrometheusAuth};
use sluice::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    args_override_self = true,
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
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD.
    Crd {
        /// Write crds/<name>.yaml files into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// A local demo: the operator, a fake kubelet and a traffic simulator (not real traffic) in
    /// this process, against the control plane of `hack/testenv up` (`hack/demo` does it all).
    /// It promotes a good version and rolls back a bad one, printing a live timeline.
    Demo(DemoArgs),
    /// Print a PrometheusRule (Prometheus Operator) for each SLOBudget in a file: recording rules
    /// for the burn rate over every window and the budget left, multi-window burn-rate alerts.
    PrometheusRule(PrometheusRuleArgs),
    /// Replay a rollout's decisions against recorded metrics or a Prometheus' history, on a
    /// virtual clock, with no cluster (docs/simulate.md). Exit code: 0 promoted, 1 rolled back,
    /// frozen or held to the end, 2 bad input.
    Simulate(SimulateArgs),
    /// Delivery figures per service and environment from the audit trail in PostgreSQL:
    /// deployment frequency, success rate, rollback frequency and causes, lead time, time to
    /// restore (docs/audit.md).
    Report(ReportArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The audit database, postgres://user:password@host:port/database.
    #[arg(long, env = "SLUICE_AUDIT_DATABASE_URL")]
    database_url: String,
    /// The window, e.g. 30d or 12h.
    #[arg(long, default_value = "30d")]
    since: sluice::api::Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SimulateArgs {
    #[command(subcommand)]
    command: Option<SimulateCommand>,
    /// YAML file with the CanaryRollout, and the ParityPolicy and SLOBudget it refers to
    /// (repeatable; a file may hold several documents).
    #[arg(long = "file", short = 'f')]
    files: Vec<PathBuf>,
    /// Recorded series: OpenMetrics text with timestamps, or Prometheus query_range JSON
    /// (docs/simulate-recordings.md).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// A Prometheus whose history to replay, with --start and --end.
    #[arg(long)]
    prometheus: Option<String>,
    /// Start of the replay (RFC 3339 or unix seconds); default: the recording's first sample.
    #[arg(long)]
    start: Option<String>,
    /// End of the replay; default: the recording's last sample.
    #[arg(long)]
    end: Option<String>,
    /// What if: PATH=V1,V2,... into the rollout's spec (or parity.PATH, slo.PATH); repeatable,
    /// every combination is replayed and printed on one line.
    #[arg(long = "set", value_name = "PATH=VALUES")]
    settings: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// Write the metrics.om of every example scenario under DIR/<scenario>/.
    #[command(hide = true)]
    Generate {
        #[arg(long, default_value = "examples/simulate")]
        out_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct PrometheusRuleArgs {
    /// YAML file holding one or more SLOBudgets ("-" reads stdin); other kinds are skipped.
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Namespace for {{namespace}} and the rule, when the budget's metadata names none.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
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
    /// Act only on CanaryRollouts, ParityPolicies and SLOBudgets whose labels match this
    /// selector (e.g. "sluice.dev/shard=a"): one shard of a large fleet.
    #[arg(long, short = 'l', env = "SLUICE_SELECTOR")]
    selector: Option<String>,
    #[command(flatten)]
    prometheus_auth: PrometheusAuthArgs,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax, e.g. "info" or "info,sluice=debug");
    /// RUST_LOG, when set, wins.
    #[arg(long, env = "SLUICE_LOG_LEVEL", default_value = "info,kube=warn")]
    log_level: String,
    /// Address of /metrics, /healthz and /readyz ("off" to serve none).
    #[arg(long, env = "SLUICE_METRICS_ADDR", default_value = "0.0.0.0:8080", value_parser = parse_metrics_address)]
    metrics_addr: MetricsAddress,
    /// Reconciles of one kind (rollouts, parity policies, SLO budgets) that may run at once per
    /// watched namespace (or for all namespaces).
    #[arg(long, env = "SLUICE_MAX_CONCURRENT_RECONCILES", default_value_t = controller::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// The namespace whose DeliveryFreezes may freeze every watched namespace
    /// (`spec.allNamespaces`); a freeze elsewhere freezes its own namespace only.
    #[arg(long, env = "SLUICE_FREEZE_NAMESPACE", default_value = controller::DEFAULT_FREEZE_NAMESPACE)]
    freeze_namespace: String,
    /// Write every decision to this PostgreSQL database as well as the log,
    /// postgres://user:password@host:port/database (docs/audit.md).
    #[arg(long, env = "SLUICE_AUDIT_DATABASE_URL")]
    audit_database_url: Option<String>,
    /// Delete audit records older than this from the database (hourly). Default: keep them.
    #[arg(long, env = "SLUICE_AUDIT_RETENTION")]
    audit_retention: Option<sluice::api::Duration>,
    /// POST every audit record to this URL as a CloudEvent.
    #[arg(long, env = "SLUICE_AUDIT_WEBHOOK_URL")]
    audit_webhook_url: Option<String>,
    /// Audit records each sink keeps while it is down; beyond, the oldest are dropped and
    /// counted (sluice_audit_records_total{result="dropped"}).
    #[arg(long, env = "SLUICE_AUDIT_BUFFER", default_value_t = sluice::audit::DEFAULT_BUFFER)]
    audit_buffer: usize,
    #[command(flatten)]
    leader_election: LeaderElectionArgs,
}

#[derive(clap::Args)]
struct PrometheusAuthArgs {
    /// File holding a bearer token for Prometheus (e.g. a mounted Secret); re-read per query.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_BEARER_TOKEN_FILE",
        conflicts_with = "prometheus_username"
    )]
    prometheus_bearer_token_file: Option<PathBuf>,
    /// User name for basic auth to Prometheus; the password comes from --prometheus-password-file.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_USERNAME",
        requires = "prometheus_password_file"
    )]
    prometheus_username: Option<String>,
    /// File holding the basic-auth password for Prometheus; re-read per query.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_PASSWORD_FILE",
        requires = "prometheus_username"
    )]
    prometheus_password_file: Option<PathBuf>,
    /// PEM bundle of CAs trusted for an https Prometheus, besides the system's.
    #[arg(long, env = "SLUICE_PROMETHEUS_CA_FILE")]
    prometheus_ca_file: Option<PathBuf>,
}

impl PrometheusAuthArgs {
    fn into_auth(self) -> PrometheusAuth {
        PrometheusAuth {
            bearer_token_file: self.prometheus_bearer_token_file,
            basic: self
                .prometheus_username
                .zip(self.prometheus_password_file)
                .map(|(username, password_file)| BasicAuth {
                    username,
                    password_file,
                }),
            ca_file: self.prometheus_ca_file,
        }
    }
}

#[derive(clap::Args)]
struct LeaderElectionArgs {
    /// Act only while holding a coordination.k8s.io Lease: run several replicas, one acts.
    #[arg(long, env = "SLUICE_LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the Lease; give each shard its own.
    #[arg(long, env = "SLUICE_LEASE_NAME", default_value = "sluice")]
    lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else "default").
    #[arg(long, env = "SLUICE_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a standby waits on a lease that is not renewed before taking over.
    #[arg(long, env = "SLUICE_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    lease_duration: sluice::api::Duration,
}

impl LeaderElectionArgs {
    fn into_lease(self) -> Option<LeaseConfig> {
        self.leader_elect.then(|| LeaseConfig {
            name: self.lease_name,
            namespace: self
                .lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            identity: leader::default_identity(),
            duration: self.lease_duration.as_std(),
        })
    }
}

/// A lease shorter than 2 s leaves the holder under a second to renew it.
fn parse_lease_duration(text: &str) -> Result<sluice::api::Duration, String> {
    let duration: sluice::api::Duration = text.parse().map_err(|e| format!("{e}"))?;
    if duration.as_std() < std::time::Duration::from_secs(2) {
        return Err(format!("{text} is too short: a lease lasts at least 2s"));
    }
    Ok(duration)
}

#[derive(Clone, Copy)]
struct MetricsAddress(Option<std::net::SocketAddr>);

fn parse_metrics_address(text: &str) -> Result<MetricsAddress, String> {
    match text {
        "off" => Ok(MetricsAddress(None)),
        _ => text
            .parse()
            .map(|address| MetricsAddress(Some(address)))
            .map_err(|e| format!("{text:?} is neither host:port nor \"off\": {e}")),
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Namespace of the demo's objects; created when missing.
    #[arg(long, short = 'n', default_value = "demo")]
    namespace: String,
    /// The Prometheus that scrapes --prom-sd-dir; also the operator's default.
    #[arg(long, env = "SLUICE_PROMETHEUS_URL")]
    prometheus_url: String,
    /// Folder of that Prometheus' file_sd targets (`*.json`); the traffic simulator registers there.
    #[arg(long, env = "SLUICE_PROM_SD_DIR")]
    prom_sd_dir: PathBuf,
    /// Exit right after the story instead of running until Ctrl-C (for tests and CI).
    #[arg(long)]
    exit_when_done: bool,
    /// Exit with an error when the story is not over within this time.
    #[arg(long, default_value = "5m")]
    timeout: sluice::api::Duration,
    /// Where the demo's dashboard listens (localhost; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8470")]
    dashboard_address: std::net::SocketAddr,
}

/// One malloc arena, and freed memory handed back to the system every 5 s. glibc gives threads
/// that allocate at the same time arenas of their own (up to 8 per core), and memory freed in
/// one stays resident there; within an arena, freed pages below the top of the heap stay
/// resident too until `malloc_trim` returns them. The operator's caches churn through objects
/// on every watch event: at 1000 rollouts trimming lowered its resident size from 53.0 to 49.5
/// MiB at rest and its peak from 69.3 to 61.6 MiB (docs/fleet.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread of ours
    // allocates concurrently.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let trimmer = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                // SAFETY: malloc_trim takes the allocator's locks itself; it frees nothing in use.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
    if let Err(error) = trimmer {
        eprintln!("not returning freed memory to the system: {error}");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> std::process::ExitCode {
    tune_malloc();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run_cli()),
        Err(error) => {
            eprintln!("error: no async runtime: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run_cli() -> std::process::ExitCode {
    // reqwest brings rustls with aws-lc, kube brings ring: pick one before any TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => return simulate(args).await,
        Command::Run(args) => {
            telemetry::init_logging_with_default(args.log_format, &args.log_level);
            controller::run(RunConfig {
                namespaces: args.namespaces,
                selector: args.selector,
                prometheus_url: args.prometheus_url,
                prometheus_auth: args.prometheus_auth.into_auth(),
                metrics_address: args.metrics_addr.0,
                lease: args.leader_election.into_lease(),
                concurrency: args.max_concurrent_reconciles,
                freeze_namespace: args.freeze_namespace,
                audit: sluice::audit::AuditConfig {
                    postgres_url: args.audit_database_url,
                    retention: args.audit_retention.map(|d| d.as_std()),
                    webhook_url: args.audit_webhook_url,
                    buffer: args.audit_buffer,
                },
            })
            .await
        }
        Command::Crd { out_dir } => write_crds(out_dir),
        Command::PrometheusRule(args) => print_prometheus_rules(&args),
        Command::Report(args) => print_report(&args).await,
        Command::Demo(args) => {
            // The timeline tells what happens; logs only when something is wrong.
            telemetry::init_logging_with_default(
                LogFormat::Text,
                "warn,sluice::controller=error,kube=error",
            );
            sluice::demo::run(sluice::demo::DemoConfig {
                namespace: args.namespace,
                prometheus_url: args.prometheus_url,
                sd_dir: args.prom_sd_dir,
                exit_when_done: args.exit_when_done,
                timeout: args.timeout.as_std(),
                dashboard_address: args.dashboard_address,
            })
            .await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn simulate(args: SimulateArgs) -> std::process::ExitCode {
    use sluice::simulate::run::{self, EXIT_BAD_INPUT, Format, Request};
    if let Some(SimulateCommand::Generate { out_dir }) = args.command {
        return match sluice::simulate::generate::write_all(&out_dir) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("sluice simulate generate: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let request = Request {
        files: args.files,
        metrics: args.metrics,
        prometheus: args.prometheus,
        start: args.start,
        end: args.end,
        settings: args.settings,
        format: match args.output {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
        },
    };
    match run::simulate(&request).await {
        Ok(response) => {
            print!("{}", response.output);
            std::process::ExitCode::from(response.exit_code)
        }
        Err(error) => {
            eprintln!("sluice simulate: {error}");
            std::process::ExitCode::from(EXIT_BAD_INPUT)
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

async fn print_report(args: &ReportArgs) -> anyhow::Result<()> {
    let figures = sluice::audit::report::read(&args.database_url, args.since.as_std())
        .await
        .map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        print!(
            "{}",
            sluice::audit::report::render(&figures, &args.since.to_string())
        );
    }
    Ok(())
}

fn print_prometheus_rules(args: &PrometheusRuleArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.file.display()))?
    };
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)?;
    let mut printed = 0;
    for document in documents.into_iter().filter(|d| d["kind"] == "SLOBudget") {
        let budget: sluice::api::SLOBudget = serde_json::from_value(document)?;
        let namespace = budget
            .metadata
            .namespace
            .clone()
            .or_else(|| args.namespace.clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "SLOBudget {} names no namespace: pass --namespace",
                    budget.metadata.name.clone().unwrap_or_default()
                )
            })?;
        let rule = sluice::engine::prometheus_rule::prometheus_rule(&budget, &namespace)
            .map_err(anyhow::Error::msg)?;
        print!("---\n{}", serde_saphyr::to_string(&rule)?);
        printed += 1;
    }
    if printed == 0 {
        anyhow::bail!("no SLOBudget in {}", args.file.display());
    }
    Ok(())
}
