//! A PostgreSQL server of the test's own (Debian's `postgresql`): `initdb` into a scratch folder
//! and `pg_ctl start` on a loopback port, as the `postgres` user (PostgreSQL refuses to run as
//! root). Stopped and removed on drop; it can be stopped and started in between, as an outage.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use super::{free_port, unique_suffix};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const USER: &str = "postgres";

pub struct PostgresInstance {
    pub port: u16,
    dir: PathBuf,
}

async fn run(program: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("runuser");
    command
        .args(["-u", USER, "--", &format!("{BIN}/{program}")])
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null());
    command
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program} (hack/testenv install): {e}"))
}

impl PostgresInstance {
    pub async fn start() -> PostgresInstance {
        // Under /tmp, which the postgres user can reach (the build folder may be under /root).
        let dir = std::env::temp_dir().join(format!("sluice-postgres-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("postgres folder");
        let chown = Command::new("chown")
            .args([&format!("{USER}:{USER}"), &dir.display().to_string()])
            .status()
            .await
            .expect("chown");
        assert!(chown.success(), "chown {}", dir.display());
        let data = dir.join("data").display().to_string();
        let init = run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "sluice",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .await;
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let instance = PostgresInstance {
            port: free_port(),
            dir,
        };
        instance.start_server().await;
        instance
    }

    /// postgres://sluice@127.0.0.1:<port>/postgres
    pub fn url(&self) -> String {
        format!("postgres://sluice@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn start_server(&self) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let started = run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )
        .await;
        assert!(
            started.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&started.stdout),
            std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (`-m immediate`), as a crash would.
    pub async fn stop_server(&self) {
        let data = self.dir.join("data").display().to_string();
        let stopped = run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]).await;
        assert!(
            stopped.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }

    /// A client of the test's own.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test's PostgreSQL: {e}"));
        tokio::spawn(connection);
        client
    }
}

impl Drop for PostgresInstance {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                USER,
                "--",
                &format!("{BIN}/pg_ctl"),
                "-D",
                &data,
                "-m",
                "immediate",
                "stop",
            ])
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
