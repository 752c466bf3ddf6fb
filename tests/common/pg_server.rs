//! A throwaway PostgreSQL server. See the module docs of `common` for the lifecycle.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use poolwarden::{ConnectionConfig, Secret};

#[cfg(feature = "postgres")]
use super::pg_replication::PgNode;
use super::process::{command_as, on_free_port, start_from_template};
use super::{
    chown_to, copy_tree, find_binary, is_root, log_tail, random_hex, run, server_dir, skip, Reaper,
};

/// The superuser every harness server has (its password is [`PgServer::password`]).
pub const PG_USER: &str = "pw_test";
/// The `application_name` of the harness's own admin connections.
pub const PG_ADMIN_APP: &str = "pw_harness_admin";

/// TLS files for the server, as PEM text.
#[derive(Clone, Debug, Default)]
pub struct PgTls {
    /// Server certificate chain.
    pub cert_pem: String,
    /// Server private key.
    pub key_pem: String,
    /// CA that client certificates must chain to (`ssl_ca_file`), if any.
    pub client_ca_pem: Option<String>,
}

/// Settings of a [`PgServer`] beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// Enable TLS (`ssl = on`) with these files.
    pub tls: Option<PgTls>,
    /// `max_connections` (default 100).
    pub max_connections: Option<u32>,
    /// Replace `pg_hba.conf` with this text. Keep a `local` line for the harness's admin
    /// connection, which goes through the Unix socket.
    pub hba: Option<String>,
    /// Extra `postgresql.conf` settings, e.g. `("log_connections", "on")`.
    pub settings: Vec<(String, String)>,
}

#[derive(Clone)]
struct PgBin {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    /// Run as this OS user (`runuser -u`), when the tests run as root.
    as_user: Option<&'static str>,
    version: String,
}

impl PgBin {
    fn find() -> Option<PgBin> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("POOLWARDEN_PG_BIN") {
            dirs.push(d.into());
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect();
            versions.sort_by_key(|p| {
                std::cmp::Reverse(
                    p.parent()
                        .and_then(|v| v.file_name())
                        .and_then(|v| v.to_str())
                        .and_then(|v| v.parse::<u32>().ok())
                        .unwrap_or(0),
                )
            });
            dirs.extend(versions);
        }
        let initdb = find_binary(&["initdb"], &dirs)?;
        // Prefer the pg_ctl next to initdb (same major version).
        let pg_ctl = initdb
            .parent()
            .map(|d| d.join("pg_ctl"))
            .filter(|p| p.is_file())
            .or_else(|| find_binary(&["pg_ctl"], &dirs))?;
        let as_user = is_root().then_some("postgres");
        let mut bin = PgBin {
            initdb,
            pg_ctl,
            as_user,
            version: String::new(),
        };
        bin.version = run(bin.cmd(&bin.initdb.clone()).arg("--version")).ok()?;
        Some(bin)
    }

    fn cmd(&self, program: &Path) -> Command {
        command_as(self.as_user, program)
    }

    fn pg_ctl(&self) -> Command {
        self.cmd(&self.pg_ctl)
    }
}

fn os_user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// Kill the postmaster (immediate shutdown), wait for it, delete the directory.
pub(crate) const REAPER_SCRIPT: &str = r#"
if [ -f "$D/data/postmaster.pid" ]; then
  pid=$(head -n 1 "$D/data/postmaster.pid")
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$D"
"#;

/// A PostgreSQL server on `127.0.0.1:<free port>`, with password (SCRAM) authentication for
/// the superuser [`PG_USER`]. Stopped (immediate mode) and deleted on drop.
pub struct PgServer {
    bin: PgBin,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    password: String,
    running: Mutex<bool>,
    reaper: Mutex<Option<Reaper>>,
}

impl PgServer {
    /// Start a fresh server with default settings, or `None` (after `SKIP: …`) when
    /// PostgreSQL is not installed.
    pub fn start() -> Option<PgServer> {
        Self::start_with(PgOptions::default())
    }

    /// The server shared by every test of this binary, started on first use.
    pub fn shared() -> Option<&'static PgServer> {
        static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();
        SHARED.get_or_init(PgServer::start).as_ref()
    }

    /// Start a fresh server with `opts`.
    pub fn start_with(opts: PgOptions) -> Option<PgServer> {
        let Some(bin) = PgBin::find() else {
            return skip("PostgreSQL (initdb, pg_ctl)", "postgresql");
        };
        if let Some(user) = bin.as_user {
            if !os_user_exists(user) || find_binary(&["runuser"], &[]).is_none() {
                return skip(
                    "a `postgres` OS user and `runuser` (PostgreSQL refuses to run as root)",
                    "postgresql",
                );
            }
        }
        let server = start_from_template(
            "pg",
            &bin.version,
            bin.as_user,
            |staging| build_template(&bin, staging),
            |template| Self::from_template(&bin, template, &opts),
        );
        Some(server.unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}")))
    }

    fn from_template(bin: &PgBin, template: &Path, opts: &PgOptions) -> Result<PgServer, String> {
        let dir = server_dir("pw-pg-");
        if let Some(user) = bin.as_user {
            run(Command::new("chown").arg(user).arg(&dir))?;
        }
        let reaper = Reaper::spawn(&dir, REAPER_SCRIPT);
        let data = dir.join("data");
        copy_tree(&template.join("data"), &data).map_err(|e| format!("copy template: {e}"))?;
        let password = std::fs::read_to_string(template.join("password"))
            .map_err(|e| format!("read the template password: {e}"))?;

        if let Some(tls) = &opts.tls {
            std::fs::write(data.join("server.crt"), &tls.cert_pem).map_err(|e| e.to_string())?;
            std::fs::write(data.join("server.key"), &tls.key_pem).map_err(|e| e.to_string())?;
            if let Some(ca) = &tls.client_ca_pem {
                std::fs::write(data.join("client_ca.crt"), ca).map_err(|e| e.to_string())?;
            }
            run(Command::new("chmod")
                .arg("600")
                .arg(data.join("server.key")))?;
        }
        if let Some(hba) = &opts.hba {
            std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        }
        if let Some(user) = bin.as_user {
            chown_to(user, &data)?;
        }

        let mut server = PgServer {
            bin: bin.clone(),
            dir,
            data,
            port: 0,
            password,
            running: Mutex::new(false),
            reaper: Mutex::new(Some(reaper)),
        };
        on_free_port(|port| {
            server.port = port;
            server.write_settings(opts)?;
            server.pg_ctl_start()
        })?;
        Ok(server)
    }

    fn write_settings(&self, opts: &PgOptions) -> Result<(), String> {
        let mut conf = vec![
            ("listen_addresses".to_string(), "'127.0.0.1'".to_string()),
            ("port".into(), self.port.to_string()),
            (
                "unix_socket_directories".into(),
                format!("'{}'", self.dir.display()),
            ),
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("shared_buffers".into(), "16MB".into()),
            ("max_wal_size".into(), "64MB".into()),
            ("logging_collector".into(), "off".into()),
            (
                "max_connections".into(),
                opts.max_connections.unwrap_or(100).to_string(),
            ),
        ];
        if opts.tls.is_some() {
            conf.push(("ssl".into(), "on".into()));
            conf.push(("ssl_cert_file".into(), "'server.crt'".into()));
            conf.push(("ssl_key_file".into(), "'server.key'".into()));
            if opts.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()) {
                conf.push(("ssl_ca_file".into(), "'client_ca.crt'".into()));
            }
        }
        for (k, v) in &opts.settings {
            conf.push((k.clone(), v.clone()));
        }
        let text: String = conf.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        // postgresql.auto.conf is read last and owned by us (nobody runs ALTER SYSTEM here).
        let path = self.data.join("postgresql.auto.conf");
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        if let Some(user) = self.bin.as_user {
            chown_to(user, &path)?;
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let result = run(self
            .bin
            .pg_ctl()
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "start"]));
        match result {
            Ok(_) => {
                *self.running.lock().unwrap() = true;
                Ok(())
            }
            Err(e) => Err(format!(
                "{e}\n--- server log ---\n{}",
                log_tail(&self.log_path(), 20)
            )),
        }
    }

    /// Stop the server now (`pg_ctl -m immediate stop`): every connection is cut at once,
    /// as in a crash. No-op when already stopped.
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap();
        if !*running {
            return;
        }
        let result = run(self.bin.pg_ctl().arg("-D").arg(&self.data).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
            "stop",
        ]));
        if let Err(e) = result {
            panic!("pg_ctl stop failed: {e}");
        }
        *running = false;
    }

    /// Stop the server now with `pg_ctl -m <mode> stop` (`Fast` terminates every session
    /// with `57P01` and checkpoints; `Immediate` is [`stop`](Self::stop)). Returns when the
    /// server is down. No-op when already stopped.
    pub fn stop_with(&self, mode: super::pg_replication::StopMode) {
        use super::pg_replication::StopMode;
        let mut running = self.running.lock().unwrap();
        if !*running {
            return;
        }
        let mode = match mode {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let result = run(self
            .bin
            .pg_ctl()
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]));
        if let Err(e) = result {
            panic!("pg_ctl -m {mode} stop failed: {e}");
        }
        *running = false;
    }

    /// Start the server again on the same port after [`stop`](Self::stop). Returns when it
    /// accepts connections.
    pub fn start_again(&self) {
        if *self.running.lock().unwrap() {
            return;
        }
        if let Err(e) = self.pg_ctl_start() {
            panic!("cannot restart PostgreSQL on port {}: {e}", self.port);
        }
    }

    /// Stop (immediate) and start again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Whether the server is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        *self.running.lock().unwrap()
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory holding the data directory, the log and the Unix socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `postgres://pw_test:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{PG_USER}:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The superuser's connection config (TLS mode left at the default, `prefer`).
    pub fn config(&self) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("postgres", "127.0.0.1", self.port);
        c.database = Some("postgres".into());
        c.user = Some(PG_USER.into());
        c.password = Some(Secret::new(self.password.clone()));
        c
    }

    /// [`config`](Self::config) with `application_name = app`, so server-side counts of this
    /// test's connections ([`backend_connections`](Self::backend_connections)) exclude
    /// everyone else's.
    pub fn config_for(&self, app: &str) -> ConnectionConfig {
        let mut c = self.config();
        c.application_name = Some(app.into());
        c
    }

    /// A unique application name starting with `prefix`.
    pub fn unique_app(prefix: &str) -> String {
        format!("{prefix}-{}", &random_hex()[..8])
    }
}

#[cfg(feature = "postgres")]
impl PgServer {
    /// An admin connection (superuser, over the Unix socket, `application_name =
    /// pw_harness_admin`) whose connection task runs on the current tokio runtime.
    pub async fn superuser_client(&self) -> tokio_postgres::Client {
        PgNode::superuser_client(self).await
    }

    /// Server backends whose `application_name` is `app` (the admin connection has its own
    /// name, so it is never counted).
    pub async fn backend_connections(&self, app: &str) -> i64 {
        PgNode::backend_connections(self, app).await
    }

    /// Poll [`backend_connections`](Self::backend_connections) until it equals `expected`
    /// or `timeout` passes; returns the last count seen.
    pub async fn wait_backend_connections(
        &self,
        app: &str,
        expected: i64,
        timeout: std::time::Duration,
    ) -> i64 {
        PgNode::wait_backend_connections(self, app, expected, timeout).await
    }

    /// Process ids of the backends of `app`.
    pub async fn backend_pids(&self, app: &str) -> Vec<i32> {
        let admin = self.superuser_client().await;
        admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
                &[&app],
            )
            .await
            .expect("query pg_stat_activity")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// `pg_terminate_backend` every backend of `app`; returns how many were signalled.
    pub async fn terminate_backends(&self, app: &str) -> usize {
        let admin = self.superuser_client().await;
        admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("pg_terminate_backend")
            .len()
    }
}

/// Rows of `pg_stat_activity` with `application_name = app`.
#[cfg(feature = "postgres")]
pub async fn count_backends(admin: &tokio_postgres::Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("count pg_stat_activity")
        .get(0)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if *self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = run(self.bin.pg_ctl().arg("-D").arg(&self.data).args([
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "stop",
            ]));
        }
        // Closing the reaper's pipe deletes the directory (and kills a server that
        // `pg_ctl stop` could not).
        drop(self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// `initdb` into `staging/data` with a random superuser password in `staging/password`.
fn build_template(bin: &PgBin, staging: &Path) -> Result<(), String> {
    let password = format!("pw-{}", random_hex());
    let pwfile = staging.join("pwfile");
    std::fs::write(&pwfile, &password).map_err(|e| format!("write pwfile: {e}"))?;
    std::fs::write(staging.join("password"), &password).map_err(|e| e.to_string())?;
    if let Some(user) = bin.as_user {
        chown_to(user, staging)?;
    }
    run(bin
        .cmd(&bin.initdb)
        .arg("-D")
        .arg(staging.join("data"))
        .args([
            "-U",
            PG_USER,
            "--auth=scram-sha-256",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.display())))?;
    std::fs::remove_file(&pwfile).map_err(|e| e.to_string())?;
    Ok(())
}
