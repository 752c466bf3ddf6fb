//! A throwaway PgBouncer in front of a throwaway PostgreSQL ([`PgServer`]).
//!
//! `pool_mode = transaction`, a small `default_pool_size` (4 unless told), SCRAM
//! authentication against an `auth_file` holding the test role's password, that role as
//! `admin_users` (the `pgbouncer` admin console), listening on a free loopback port, its
//! Unix socket, log and pid file in a temporary directory. PgBouncer refuses to run as
//! root: as root it runs as the `postgres` OS user through `runuser` (which forks, so the
//! process is stopped through its pid file). A reaper kills it and deletes the directory
//! even if the test process dies.
//!
//! No `ignore_startup_parameters`: a startup packet with `options` is refused, as on a
//! PgBouncer 1.18 configured by default.
//!
//! Missing binary: `skip("PgBouncer", "pgbouncer")` (prints `SKIP`, fails under `CI=true`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use poolwarden::{ConnectionConfig, Secret};

use super::pg_server::{PG_ADMIN_APP, PG_USER};
use super::process::{command_as, on_free_port, pidfile_reaper_script};
use super::{find_binary, is_root, log_tail, run, server_dir, skip, wait_for, PgServer, Reaper};

/// Settings of a [`PgBouncer`].
#[derive(Clone, Debug)]
pub struct PgBouncerOptions {
    /// `default_pool_size`: server connections per database/user pair.
    pub default_pool_size: u32,
    /// `max_client_conn`.
    pub max_client_conn: u32,
    /// Extra `[pgbouncer]` settings.
    pub settings: Vec<(String, String)>,
}

impl Default for PgBouncerOptions {
    fn default() -> Self {
        PgBouncerOptions {
            default_pool_size: 4,
            max_client_conn: 1000,
            settings: Vec::new(),
        }
    }
}

/// A PgBouncer (`pool_mode = transaction`) in front of its own fresh [`PgServer`], so
/// server-side counts see only this PgBouncer's connections. Killed and deleted on drop.
pub struct PgBouncer {
    pg: PgServer,
    bin: PathBuf,
    as_user: Option<&'static str>,
    dir: PathBuf,
    port: u16,
    opts: PgBouncerOptions,
    child: Mutex<Option<Child>>,
    reaper: Option<Reaper>,
}

/// The database name clients use (mapped to `postgres` on the server).
pub const BOUNCER_DB: &str = "postgres";

impl PgBouncer {
    /// PgBouncer with the default options in front of a fresh PostgreSQL; `None` (after
    /// `SKIP: …`) when PgBouncer or PostgreSQL is not installed.
    pub fn start() -> Option<PgBouncer> {
        Self::start_with(PgBouncerOptions::default())
    }

    /// [`start`](Self::start) with `opts`.
    pub fn start_with(opts: PgBouncerOptions) -> Option<PgBouncer> {
        let Some(bin) = find_binary(&["pgbouncer"], &[PathBuf::from("/usr/sbin")]) else {
            return skip("PgBouncer", "pgbouncer");
        };
        let as_user = is_root().then_some("postgres");
        if as_user.is_some() && find_binary(&["runuser"], &[]).is_none() {
            return skip("runuser (PgBouncer refuses to run as root)", "util-linux");
        }
        let pg = PgServer::start()?;
        let dir = server_dir("pw-bouncer-");
        if let Some(user) = as_user {
            run(Command::new("chown").arg(user).arg(&dir))
                .unwrap_or_else(|e| panic!("chown the PgBouncer directory: {e}"));
        }
        let reaper = Reaper::spawn(&dir, &pidfile_reaper_script("pgbouncer.pid"));
        let mut b = PgBouncer {
            pg,
            bin,
            as_user,
            dir,
            port: 0,
            opts,
            child: Mutex::new(None),
            reaper: Some(reaper),
        };
        let result = on_free_port(|port| {
            b.port = port;
            b.write_config()?;
            b.spawn()
        });
        if let Err(e) = result {
            panic!("cannot start PgBouncer: {e}");
        }
        Some(b)
    }

    fn write_config(&self) -> Result<(), String> {
        let d = self.dir.display();
        let mut conf = format!(
            "[databases]\n\
             {BOUNCER_DB} = host=127.0.0.1 port={pg_port} dbname=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir = {d}\n\
             auth_type = scram-sha-256\n\
             auth_file = {d}/userlist.txt\n\
             admin_users = {PG_USER}\n\
             pool_mode = transaction\n\
             default_pool_size = {size}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = {max_client}\n\
             server_login_retry = 1\n\
             logfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n",
            pg_port = self.pg.port(),
            port = self.port,
            size = self.opts.default_pool_size,
            max_client = self.opts.max_client_conn,
        );
        for (k, v) in &self.opts.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        let userlist = format!("\"{PG_USER}\" \"{}\"\n", self.pg.password());
        for (name, text) in [("pgbouncer.ini", conf), ("userlist.txt", userlist)] {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            if let Some(user) = self.as_user {
                run(Command::new("chown").arg(user).arg(&path))?;
            }
        }
        run(Command::new("chmod")
            .arg("600")
            .arg(self.dir.join("userlist.txt")))?;
        Ok(())
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("pgbouncer.pid")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    /// Spawn PgBouncer and wait until it accepts TCP connections.
    fn spawn(&self) -> Result<(), String> {
        let mut cmd = command_as(self.as_user, &self.bin);
        cmd.arg(self.dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("spawn pgbouncer: {e}"))?;
        let port = self.port;
        let answer = wait_for(Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(format!("pgbouncer exited ({status})")));
            }
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && self.pidfile().is_file();
            up.then_some(Ok(()))
        });
        match answer {
            Some(Ok(())) => {
                *self.child.lock().unwrap() = Some(child);
                Ok(())
            }
            other => {
                self.kill_by_pidfile("KILL");
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{}\n--- pgbouncer log ---\n{}",
                    other
                        .and_then(|r| r.err())
                        .unwrap_or_else(|| "pgbouncer not ready within 20 s".into()),
                    log_tail(&self.log_path(), 30)
                ))
            }
        }
    }

    fn kill_by_pidfile(&self, signal: &str) -> bool {
        let Some(pid) = std::fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return false;
        };
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stop PgBouncer now (SIGTERM: immediate shutdown, every client and server connection
    /// closed) and wait until it exited. No-op when stopped. Blocking.
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        if !self.kill_by_pidfile("TERM") {
            let _ = child.kill();
        }
        let exited = wait_for(Duration::from_secs(20), || {
            child.try_wait().ok().flatten().map(|_| ())
        });
        if exited.is_none() {
            self.kill_by_pidfile("KILL");
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(self.pidfile());
    }

    /// Start again on the same port after [`stop`](Self::stop); returns when it accepts
    /// connections. Blocking.
    pub fn start_again(&self) {
        if self.child.lock().unwrap().is_some() {
            return;
        }
        if let Err(e) = self.spawn() {
            panic!("cannot restart PgBouncer on port {}: {e}", self.port);
        }
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again). Blocking.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The PostgreSQL server behind it.
    pub fn pg(&self) -> &PgServer {
        &self.pg
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `default_pool_size`.
    pub fn pool_size(&self) -> u32 {
        self.opts.default_pool_size
    }

    /// The directory holding the config, the log, the pid file and the socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `postgres://pw_test:<password>@127.0.0.1:<port>/postgres?sslmode=disable` (PgBouncer
    /// has no TLS configured here).
    pub fn url(&self) -> String {
        format!(
            "postgres://{PG_USER}:{}@127.0.0.1:{}/{BOUNCER_DB}?sslmode=disable",
            self.pg.password(),
            self.port
        )
    }

    /// The connection config of [`url`](Self::url).
    pub fn config(&self) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("postgres", "127.0.0.1", self.port);
        c.database = Some(BOUNCER_DB.into());
        c.user = Some(PG_USER.into());
        c.password = Some(Secret::new(self.pg.password().to_string()));
        c.tls.mode = poolwarden::SslMode::Disable;
        c
    }
}

#[cfg(feature = "postgres")]
impl PgBouncer {
    /// Run `cmd` on the admin console (database `pgbouncer`, simple protocol) and answer
    /// its rows as column → value maps.
    pub async fn admin(&self, cmd: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(PG_USER)
            .password(self.pg.password())
            .dbname("pgbouncer")
            .application_name(PG_ADMIN_APP)
            .connect_timeout(Duration::from_secs(5))
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("admin console on port {}: {e}", self.port))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let messages = client
            .simple_query(cmd)
            .await
            .map_err(|e| format!("admin `{cmd}`: {e}"))?;
        drop(client);
        let _ = task.await;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    r.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("").to_string()))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// `PAUSE`: wait for running transactions, then hold every new one until `RESUME`.
    pub async fn pause(&self) {
        self.admin("PAUSE").await.expect("PAUSE");
    }

    /// `RESUME`.
    pub async fn resume(&self) {
        self.admin("RESUME").await.expect("RESUME");
    }

    /// Client connections to the application database (`SHOW CLIENTS`, the admin
    /// console's own excluded).
    pub async fn clients(&self) -> Result<usize, String> {
        Ok(self
            .admin("SHOW CLIENTS")
            .await?
            .iter()
            .filter(|r| r.get("database").map(String::as_str) == Some(BOUNCER_DB))
            .count())
    }

    /// PgBouncer's server connections (`SHOW SERVERS`: active, idle, used, tested, login).
    pub async fn servers(&self) -> Result<usize, String> {
        Ok(self.admin("SHOW SERVERS").await?.len())
    }

    /// Client backends on the PostgreSQL server other than the harness's admin
    /// connections: PgBouncer's server connections (the server is this PgBouncer's own).
    pub async fn server_connections(&self) -> i64 {
        Self::server_connections_on(&self.pg.superuser_client().await).await
    }

    /// [`server_connections`](Self::server_connections) through an admin connection
    /// to PostgreSQL ([`PgServer::superuser_client`]) kept for repeated samples.
    pub async fn server_connections_on(admin: &tokio_postgres::Client) -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                   AND application_name IS DISTINCT FROM $1",
                &[&PG_ADMIN_APP],
            )
            .await
            .expect("count pg_stat_activity")
            .get(0)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.kill_by_pidfile("KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
        // Closing the reaper's pipe deletes the directory.
        drop(self.reaper.take());
    }
}
