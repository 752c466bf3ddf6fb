//! PostgreSQL streaming replication between throwaway servers: a primary (a [`PgServer`])
//! and hot-standby replicas cloned from it with `pg_basebackup -R`.
//!
//! ```ignore
//! let Some(cluster) = PgCluster::start(2) else { return }; // SKIP when not installed
//! let primary = &cluster.primary;                         // a PgServer
//! let r1 = &cluster.replicas[0];                          // a PgReplica
//! r1.pause_replay().await;                                // pg_wal_replay_pause()
//! r1.stop(StopMode::Immediate);                           // pg_ctl -m immediate stop
//! r1.start_again();
//! cluster.replicas[1].promote().await;                    // pg_promote()
//! ```
//!
//! **Primary.** A [`PgServer`] started with `wal_level = replica`, `max_wal_senders`,
//! `hot_standby`, `wal_keep_size` (so a replica stopped for a while catches up without a
//! slot), and a `pg_hba.conf` allowing replication connections from `127.0.0.1` for the
//! role [`REPL_USER`] (SCRAM), created with a random password.
//!
//! **Replicas.** `pg_basebackup -R -X stream -c fast` (as the `postgres` OS user through
//! `runuser` when the tests run as root) into a temporary directory of their own, each on its
//! own free loopback port with its own Unix socket directory; `primary_conninfo` names the
//! replica (`application_name = pw_replica_<n>`, as `pg_stat_replication` shows it). They
//! have the primary's superuser and password, so [`PgNode::config_for`] and
//! [`PgNode::superuser_client`] work the same on every node. Each has a reaper like every
//! harness server: nothing is left running, even after a panic.
//!
//! **Nodes.** [`PgNode`] is implemented by [`PgServer`] and [`PgReplica`]: promotion,
//! replay pause and resume, positions, and a restart with a chosen `pg_ctl` shutdown mode
//! ([`PgNode::restart_with`], also usable on a plain `PgServer`).
//!
//! Everything listens on 127.0.0.1 only and lives in temporary directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use poolwarden::{ConnectionConfig, Secret};

#[cfg(feature = "postgres")]
use super::pg_server::count_backends;
use super::pg_server::{PG_ADMIN_APP, PG_USER, REAPER_SCRIPT};
use super::process::{command_as, on_free_port};
use super::{
    chown_to, find_binary, is_root, log_tail, random_hex, run, server_dir, skip, PgOptions,
    PgServer, Reaper,
};

/// The role replicas stream as (`REPLICATION LOGIN`, password authentication).
pub const REPL_USER: &str = "pw_repl";

/// `pg_hba.conf` lines letting the harness's admin connections (Unix socket, in a
/// directory only root and `postgres` can enter) in without a password. SCRAM costs the
/// client thousands of SHA-256 rounds, some 100 ms in an unoptimised test build, during
/// which the test's single-threaded runtime runs nothing else: with `trust` an admin query
/// in the middle of a measurement does not stall the pool being measured. Pools connect
/// over TCP, with SCRAM.
pub const LOCAL_TRUST: &str = "local all all trust\nlocal replication all trust\n";

/// `pg_ctl stop -m <mode>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect.
    Smart,
    /// Terminate sessions (`57P01`), checkpoint, exit.
    Fast,
    /// Quit at once, as in a crash; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn arg(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// The PostgreSQL programs this module needs besides the ones `PgServer` runs: the same
/// installation (`POOLWARDEN_PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`, else
/// `PATH`, where `initdb` is found).
#[derive(Clone, Debug)]
struct Tools {
    pg_ctl: PathBuf,
    pg_basebackup: PathBuf,
    psql: PathBuf,
    as_user: Option<&'static str>,
}

impl Tools {
    fn find() -> Option<Tools> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("POOLWARDEN_PG_BIN") {
            dirs.push(d.into());
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            dirs.extend(versions.into_iter().map(|(_, p)| p));
        }
        let bin = find_binary(&["initdb"], &dirs)?.parent()?.to_path_buf();
        let next_to = |name: &str| Some(bin.join(name)).filter(|p| p.is_file());
        Some(Tools {
            pg_ctl: next_to("pg_ctl")?,
            pg_basebackup: next_to("pg_basebackup")?,
            psql: next_to("psql")?,
            as_user: is_root().then_some("postgres"),
        })
    }

    fn cmd(&self, program: &Path) -> Command {
        command_as(self.as_user, program)
    }

    fn pg_ctl(&self, data: &Path) -> Command {
        let mut c = self.cmd(&self.pg_ctl);
        c.arg("-D").arg(data);
        c
    }

    fn stop(&self, data: &Path, mode: StopMode) -> Result<(), String> {
        run(self
            .pg_ctl(data)
            .args(["-m", mode.arg(), "-w", "-t", "60", "stop"]))
        .map(drop)
    }

    fn start(&self, data: &Path, log: &Path) -> Result<(), String> {
        run(self
            .pg_ctl(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "start"]))
        .map(drop)
        .map_err(|e| format!("{e}\n--- server log ---\n{}", log_tail(log, 20)))
    }
}

fn tools() -> Option<Tools> {
    match Tools::find() {
        Some(t) => Some(t),
        None => skip(
            "PostgreSQL (pg_ctl, pg_basebackup, psql next to initdb)",
            "postgresql",
        ),
    }
}

/// What every harness PostgreSQL node offers, primary ([`PgServer`]) or [`PgReplica`].
#[allow(async_fn_in_trait)]
pub trait PgNode: Sync {
    /// The TCP port (on 127.0.0.1).
    fn port(&self) -> u16;
    /// The directory holding `data/`, the log and the Unix socket.
    fn dir(&self) -> &Path;
    /// The superuser's password (the same on every node of a cluster).
    fn password(&self) -> &str;

    /// The data directory.
    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The server log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default()
    }

    /// The superuser's connection config over TCP, with `application_name = app`.
    fn config_for(&self, app: &str) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("postgres", "127.0.0.1", self.port());
        c.database = Some("postgres".into());
        c.user = Some(PG_USER.into());
        c.password = Some(Secret::new(self.password().to_string()));
        c.application_name = Some(app.into());
        c
    }

    /// Stop with `mode`, stay down for `down_for`, start again on the same port; returns
    /// when the server accepts connections again. Blocking (run it in `spawn_blocking`).
    ///
    /// On a [`PgServer`] this runs `pg_ctl` itself and leaves the server running, as the
    /// handle believes it is; [`PgServer::stop`] and friends keep working afterwards.
    fn restart_with(&self, mode: StopMode, down_for: Duration) {
        let tools = Tools::find().expect("PostgreSQL is installed (the server runs)");
        let data = self.data_dir();
        tools
            .stop(&data, mode)
            .unwrap_or_else(|e| panic!("pg_ctl -m {} stop: {e}", mode.arg()));
        std::thread::sleep(down_for);
        tools
            .start(&data, &self.dir().join("postgres.log"))
            .unwrap_or_else(|e| panic!("restart on port {}: {e}", self.port()));
    }

    /// A superuser connection over the Unix socket (`application_name =
    /// pw_harness_admin`, never counted), its connection task on the current runtime.
    #[cfg(feature = "postgres")]
    async fn superuser_client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(self.dir())
            .port(self.port())
            .user(PG_USER)
            .password(self.password())
            .dbname("postgres")
            .application_name(PG_ADMIN_APP)
            .connect_timeout(Duration::from_secs(10))
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("admin connection to port {}: {e}", self.port()));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// Backends whose `application_name` is `app`.
    #[cfg(feature = "postgres")]
    async fn backend_connections(&self, app: &str) -> i64 {
        count_backends(&self.superuser_client().await, app).await
    }

    /// Poll [`backend_connections`](Self::backend_connections) until it equals `expected`
    /// or `timeout` passes; returns the last count seen.
    #[cfg(feature = "postgres")]
    async fn wait_backend_connections(&self, app: &str, expected: i64, timeout: Duration) -> i64 {
        let admin = self.superuser_client().await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = count_backends(&admin, app).await;
            if n == expected || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `pg_is_in_recovery()`.
    #[cfg(feature = "postgres")]
    async fn in_recovery(&self) -> bool {
        self.superuser_client()
            .await
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("pg_is_in_recovery()")
            .get(0)
    }

    /// `pg_promote()`, waiting (up to 60 s) until the node takes writes.
    #[cfg(feature = "postgres")]
    async fn promote(&self) {
        let done: bool = self
            .superuser_client()
            .await
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .expect("pg_promote()")
            .get(0);
        assert!(done, "pg_promote() did not finish on port {}", self.port());
    }

    /// `pg_wal_replay_pause()`: replay stops at the next record; WAL is still received.
    #[cfg(feature = "postgres")]
    async fn pause_replay(&self) {
        self.superuser_client()
            .await
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pg_wal_replay_pause()");
    }

    /// `pg_wal_replay_resume()`.
    #[cfg(feature = "postgres")]
    async fn resume_replay(&self) {
        self.superuser_client()
            .await
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("pg_wal_replay_resume()");
    }

    /// Replay position (in recovery) or insert position (a primary), as bytes since `0/0`.
    #[cfg(feature = "postgres")]
    async fn position(&self) -> u64 {
        let text: String = self
            .superuser_client()
            .await
            .query_one(
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_insert_lsn() END)::text",
                &[],
            )
            .await
            .expect("read the WAL position")
            .get(0);
        lsn_bytes(&text)
    }
}

/// A `pg_lsn` (`X/Y`) as bytes since `0/0`.
pub fn lsn_bytes(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("an X/Y pg_lsn");
    let hex = |s: &str| u64::from_str_radix(s, 16).expect("hex");
    (hex(hi) << 32) | hex(lo)
}

impl PgNode for PgServer {
    fn port(&self) -> u16 {
        PgServer::port(self)
    }
    fn dir(&self) -> &Path {
        PgServer::dir(self)
    }
    fn password(&self) -> &str {
        PgServer::password(self)
    }
}

/// A hot standby streaming from a primary. Stopped (immediate) and deleted on drop.
pub struct PgReplica {
    tools: Tools,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    password: String,
    name: String,
    running: Mutex<bool>,
    reaper: Mutex<Option<Reaper>>,
}

impl PgNode for PgReplica {
    fn port(&self) -> u16 {
        self.port
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn password(&self) -> &str {
        &self.password
    }
}

impl PgReplica {
    /// `pw_replica_<n>`: its `application_name` on the primary (`pg_stat_replication`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the replica runs (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        *self.running.lock().unwrap()
    }

    /// `pg_ctl -m <mode> stop`. No-op when already stopped. Blocking.
    pub fn stop(&self, mode: StopMode) {
        let mut running = self.running.lock().unwrap();
        if *running {
            self.tools
                .stop(&self.data, mode)
                .unwrap_or_else(|e| panic!("stop replica {}: {e}", self.name));
            *running = false;
        }
    }

    /// Start again on the same port after [`stop`](Self::stop); returns when it accepts
    /// (read-only) connections. Blocking.
    pub fn start_again(&self) {
        let mut running = self.running.lock().unwrap();
        if !*running {
            self.tools
                .start(&self.data, &self.dir.join("postgres.log"))
                .unwrap_or_else(|e| panic!("start replica {}: {e}", self.name));
            *running = true;
        }
    }
}

impl Drop for PgReplica {
    fn drop(&mut self) {
        if *self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = self.tools.stop(&self.data, StopMode::Immediate);
        }
        drop(self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// A primary and its replicas. Replicas are dropped (stopped) before the primary.
pub struct PgCluster {
    /// Hot standbys of `primary`, in creation order.
    pub replicas: Vec<PgReplica>,
    /// The server taking writes at start.
    pub primary: PgServer,
    repl_password: String,
}

impl PgCluster {
    /// A primary and `replicas` replicas, or `None` (after `SKIP: …`) when PostgreSQL is
    /// not installed.
    pub fn start(replicas: usize) -> Option<PgCluster> {
        Self::start_with(PgOptions::default(), replicas)
    }

    /// [`start`](Self::start) with extra primary settings (`opts.hba` is replaced by the
    /// replication-enabled one). Replicas inherit the primary's settings.
    pub fn start_with(mut opts: PgOptions, replicas: usize) -> Option<PgCluster> {
        let tools = tools()?;
        opts.hba = Some(format!(
            "{LOCAL_TRUST}\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host replication {REPL_USER} 127.0.0.1/32 scram-sha-256\n"
        ));
        let mut settings = vec![
            ("wal_level", "replica"),
            ("max_wal_senders", "10"),
            ("hot_standby", "on"),
            ("wal_keep_size", "'256MB'"),
            ("wal_receiver_status_interval", "'1s'"),
            // Commits reach the replicas at once, not at the WAL writer's next round
            // (`PgServer` turns it off; with fsync off it costs little).
            ("synchronous_commit", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>();
        settings.append(&mut opts.settings);
        opts.settings = settings;
        let primary = PgServer::start_with(opts)?;
        let repl_password = format!("repl-{}", random_hex());
        let mut cluster = PgCluster {
            replicas: Vec::new(),
            primary,
            repl_password,
        };
        cluster
            .psql(
                &tools,
                &format!(
                    "CREATE ROLE {REPL_USER} WITH REPLICATION LOGIN PASSWORD '{}'",
                    cluster.repl_password
                ),
            )
            .unwrap_or_else(|e| panic!("create the replication role: {e}"));
        for n in 1..=replicas {
            let replica = cluster
                .clone_replica(&tools, n)
                .unwrap_or_else(|e| panic!("cannot start replica {n}: {e}"));
            cluster.replicas.push(replica);
        }
        Some(cluster)
    }

    /// Run `sql` on the primary with `psql` (as the superuser, over its Unix socket).
    fn psql(&self, tools: &Tools, sql: &str) -> Result<String, String> {
        let conninfo = format!(
            "host={} port={} user={PG_USER} password={} dbname=postgres application_name={PG_ADMIN_APP}",
            self.primary.dir().display(),
            self.primary.port(),
            self.primary.password()
        );
        run(tools
            .cmd(&tools.psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo)
            .args(["-c", sql]))
    }

    /// `primary_conninfo` for a replica named `name` streaming from `port`.
    fn conninfo(&self, port: u16, name: &str) -> String {
        format!(
            "host=127.0.0.1 port={port} user={REPL_USER} password={} application_name={name}",
            self.repl_password
        )
    }

    fn clone_replica(&self, tools: &Tools, n: usize) -> Result<PgReplica, String> {
        let name = format!("pw_replica_{n}");
        let dir = server_dir("pw-pgr-");
        if let Some(user) = tools.as_user {
            run(Command::new("chown").arg(user).arg(&dir))?;
        }
        let reaper = Reaper::spawn(&dir, REAPER_SCRIPT);
        let data = dir.join("data");
        run(tools
            .cmd(&tools.pg_basebackup)
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(self.conninfo(self.primary.port(), &name)))
        .map_err(|e| format!("pg_basebackup: {e}"))?;
        let mut replica = PgReplica {
            tools: tools.clone(),
            dir,
            data,
            port: 0,
            password: self.primary.password().to_string(),
            name,
            running: Mutex::new(false),
            reaper: Mutex::new(Some(reaper)),
        };
        on_free_port(|port| {
            replica.port = port;
            self.write_replica_settings(&replica)?;
            tools.start(&replica.data, &replica.dir.join("postgres.log"))
        })?;
        *replica.running.lock().unwrap() = true;
        Ok(replica)
    }

    /// The primary's `postgresql.auto.conf` (copied by `pg_basebackup`) with this replica's
    /// port, socket directory and `primary_conninfo`.
    fn write_replica_settings(&self, r: &PgReplica) -> Result<(), String> {
        let path = r.data.join("postgresql.auto.conf");
        let old = std::fs::read_to_string(&path).map_err(|e| format!("read {path:?}: {e}"))?;
        let ours = ["port", "unix_socket_directories", "primary_conninfo"];
        let mut text: String = old
            .lines()
            .filter(|l| {
                let key = l.split('=').next().unwrap_or("").trim();
                !ours.contains(&key)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!(
            "port = {}\nunix_socket_directories = '{}'\nprimary_conninfo = '{}'\n",
            r.port,
            r.dir.display(),
            self.conninfo(self.primary.port(), &r.name)
        ));
        std::fs::write(&path, text).map_err(|e| format!("write {path:?}: {e}"))?;
        if let Some(user) = r.tools.as_user {
            chown_to(user, &path)?;
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl PgCluster {
    /// Wait until every running replica replayed what the primary had inserted when
    /// called. Answers whether they did within `timeout`.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let target = self.primary.position().await;
        let deadline = tokio::time::Instant::now() + timeout;
        for r in self.replicas.iter().filter(|r| r.is_running()) {
            while r.position().await < target {
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        true
    }
}
