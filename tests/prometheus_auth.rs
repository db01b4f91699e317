//! A Prometheus behind TLS from a private CA and basic auth (its own `--web.config.file`): the
//! operator reaches it with `--prometheus-ca-file`, `--prometheus-username` and
//! `--prometheus-password-file`, and is refused without them.

mod rollout_fixture;
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rollout_fixture::*;
use sluice::api::canary_rollout::Phase;
use sluice::metrics::{BasicAuth, MetricsSource, PrometheusAuth, PrometheusSource, QueryError};
use support::{Operator, TestEnv, free_port, scratch_dir, unique_suffix};
use tokio::process::{Child, Command};

const PASSWORD: &str = "sluice-secret";
/// bcrypt of PASSWORD at cost 4 (Prometheus checks it on every request; cost 4 keeps that cheap).
const PASSWORD_HASH: &str = "$2b$04$8iAs7pYqmCjkcL2Z5Q/qsOz1uEhr1NSyQWwsiCrfyq98j4n2QPwGu";

/// A Prometheus on https://127.0.0.1:<port> with a certificate from a CA of its own, scraping
/// the shared file_sd folder; killed on drop.
struct SecuredPrometheus {
    dir: PathBuf,
    port: u16,
    _child: Child,
}

impl SecuredPrometheus {
    async fn start(env: &TestEnv) -> SecuredPrometheus {
        let dir = scratch_dir().join(format!("prometheus-tls-{}", unique_suffix()));
        std::fs::create_dir_all(dir.join("data")).expect("scratch dir");
        make_certificates(&dir);
        std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).expect("password file");
        std::fs::write(
            dir.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server.key\n\
                 basic_auth_users:\n  sluice: \"{PASSWORD_HASH}\"\n",
                dir.display()
            ),
        )
        .expect("web.yml");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: sluice-test-exporters\n  \
                 file_sd_configs:\n  - files: [\"{}/*.json\"]\n    refresh_interval: 1s\n",
                env.sd_dir.display()
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}/prometheus.yml", dir.display()))
            .arg(format!("--web.config.file={}/web.yml", dir.display()))
            .arg(format!("--storage.tsdb.path={}/data", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--query.lookback-delta={}", support::LOOKBACK))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = SecuredPrometheus {
            dir,
            port,
            _child: child,
        };
        let source = prometheus.source(prometheus.auth());
        let deadline = Instant::now() + Duration::from_secs(30);
        while source.query_value("vector(1)", None).await != Ok(Some(1.0)) {
            assert!(
                Instant::now() < deadline,
                "the TLS Prometheus did not answer; see {}/prometheus.log",
                prometheus.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn auth(&self) -> PrometheusAuth {
        PrometheusAuth {
            basic: Some(BasicAuth {
                username: "sluice".into(),
                password_file: self.file("password"),
            }),
            ca_file: Some(self.file("ca.pem")),
            ..PrometheusAuth::default()
        }
    }

    fn source(&self, auth: PrometheusAuth) -> PrometheusSource {
        PrometheusSource::with_auth(&self.url(), Duration::from_secs(5), &auth).expect("source")
    }
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sluice test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("san.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
}

#[tokio::test]
async fn queries_need_the_ca_and_the_credentials() {
    let env = TestEnv::get().await;
    let prometheus = SecuredPrometheus::start(&env).await;
    let with_all = prometheus.source(prometheus.auth());
    assert_eq!(with_all.query_value("vector(2)", None).await, Ok(Some(2.0)));
    // The status endpoints behind the start time take the same credentials.
    let start = with_all.start().await.expect("runtimeinfo and flags");
    let start = start.expect("a Prometheus says when it started");
    assert_eq!(start.lookback, Duration::from_secs(10), "{start:?}");

    let without_ca = prometheus.source(PrometheusAuth {
        ca_file: None,
        ..prometheus.auth()
    });
    let refused = without_ca.query_value("vector(2)", None).await;
    assert!(
        matches!(&refused, Err(QueryError::Unreachable { reason, .. } | QueryError::Other(reason)) if reason.to_lowercase().contains("certificate")),
        "{refused:?}"
    );
    assert!(without_ca.start().await.is_err());

    std::fs::write(prometheus.file("wrong"), "guess").expect("write");
    let wrong_password = prometheus.source(PrometheusAuth {
        basic: Some(BasicAuth {
            username: "sluice".into(),
            password_file: prometheus.file("wrong"),
        }),
        ..prometheus.auth()
    });
    let refused = wrong_password.query_value("vector(2)", None).await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = wrong_password.start().await;
    assert!(
        matches!(&refused, Err(QueryError::Other(reason)) if reason.contains("HTTP 401")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_operator_promotes_with_analysis_from_a_secured_prometheus() {
    let env = TestEnv::get().await;
    let prometheus = SecuredPrometheus::start(&env).await;
    let rollout = rollout_yaml(GATEWAY, QUICK_STAGES, "");
    let mut service = Service::deploy_without_operator("prom-auth", &rollout).await;
    let password = prometheus.file("password");
    let ca = prometheus.file("ca.pem");
    service.operator = Some(Operator::start_with_prometheus(
        &service.env,
        service.ns.name(),
        &prometheus.url(),
        &[
            "--prometheus-username",
            "sluice",
            "--prometheus-password-file",
            password.to_str().expect("utf-8 path"),
            "--prometheus-ca-file",
            ca.to_str().expect("utf-8 path"),
        ],
    ));
    service
        .wait_phase(Phase::Idle, Duration::from_secs(60))
        .await;
    service.set_image("registry.example/checkout:2.0.0").await;
    let promoted = service
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let evaluation = promoted
        .status
        .and_then(|s| s.last_evaluation)
        .expect("an evaluation");
    assert_eq!(evaluation.checks[0].value, Some(0.001), "{evaluation:?}");
}
