//! A throwaway MariaDB server. Admin SQL goes through the `mariadb` command-line client over
//! the server's Unix socket as `root` (so the harness needs no MySQL driver, and admin
//! connections never count as the test user's).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use poolwarden::{ConnectionConfig, Secret};

use super::process::{
    on_free_port, pidfile_reaper_script, start_from_template, terminate, Process, ProcessSpec,
};
use super::tls::TlsFiles;
use super::{
    copy_tree, find_binary, is_root, log_tail, random_hex, run, server_dir, skip, wait_for, Reaper,
};

/// `mariadbd` as the harness runs it.
const MARIADBD: ProcessSpec = ProcessSpec {
    name: "mariadbd",
    pidfile: "mariadb.pid",
    log: "error.log",
    log_lines: 30,
    within: Duration::from_secs(60),
};

/// The user every harness server has, with all privileges (password:
/// [`MariaServer::password`]). Its default database is [`MARIA_DB`].
pub const MARIA_USER: &str = "pw_test";
/// A database created for [`MARIA_USER`].
pub const MARIA_DB: &str = "pw_test";

/// Settings of a [`MariaServer`] beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct MariaOptions {
    /// `--max-connections` (default 151).
    pub max_connections: Option<u32>,
    /// Extra `mariadbd` arguments, e.g. `["--wait-timeout=5"]`.
    pub args: Vec<String>,
    /// TLS with these server certificate, key and CA files (`--ssl-cert`, `--ssl-key`,
    /// `--ssl-ca`). Add `--require-secure-transport` to `args` to refuse clear text over
    /// TCP (the harness's admin connections use the Unix socket, which stays allowed).
    pub tls: Option<TlsFiles>,
}

#[derive(Clone)]
struct MariaBin {
    server: PathBuf,
    install: PathBuf,
    client: PathBuf,
    version: String,
}

impl MariaBin {
    fn find() -> Option<MariaBin> {
        let dirs = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
        let server = find_binary(&["mariadbd", "mysqld"], &dirs)?;
        let install = find_binary(&["mariadb-install-db", "mysql_install_db"], &dirs)?;
        let client = find_binary(&["mariadb", "mysql"], &dirs)?;
        let version = run(Command::new(&server).arg("--version")).ok()?;
        Some(MariaBin {
            server,
            install,
            client,
            version,
        })
    }

    /// Options shared by the template bootstrap and every server (InnoDB file sizes must
    /// match the template's).
    fn common_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "--no-defaults",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--skip-innodb-use-native-aio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if is_root() {
            a.push("--user=root".into());
        }
        a
    }
}

/// A MariaDB server on `127.0.0.1:<free port>` with the user [`MARIA_USER`] (password
/// authentication). Stopped and deleted on drop.
pub struct MariaServer {
    bin: MariaBin,
    password: String,
    opts: MariaOptions,
    process: Process,
}

impl MariaServer {
    /// Start a fresh server, or `None` (after `SKIP: …`) when MariaDB is not installed.
    pub fn start() -> Option<MariaServer> {
        Self::start_with(MariaOptions::default())
    }

    /// The server shared by every test of this binary, started on first use.
    pub fn shared() -> Option<&'static MariaServer> {
        static SHARED: OnceLock<Option<MariaServer>> = OnceLock::new();
        SHARED.get_or_init(MariaServer::start).as_ref()
    }

    /// Start a fresh server with `opts`.
    pub fn start_with(opts: MariaOptions) -> Option<MariaServer> {
        let Some(bin) = MariaBin::find() else {
            return skip(
                "MariaDB (mariadbd, mariadb-install-db, mariadb)",
                "mariadb-server",
            );
        };
        let server = start_from_template(
            "maria",
            &bin.version,
            None,
            |staging| build_template(&bin, staging),
            |template| Self::from_template(&bin, template, &opts),
        );
        Some(server.unwrap_or_else(|e| panic!("cannot start MariaDB: {e}")))
    }

    fn from_template(
        bin: &MariaBin,
        template: &Path,
        opts: &MariaOptions,
    ) -> Result<MariaServer, String> {
        let process = Process::new("pw-maria-", MARIADBD);
        copy_tree(&template.join("data"), &process.dir().join("data"))
            .map_err(|e| format!("copy template: {e}"))?;
        let password = std::fs::read_to_string(template.join("password"))
            .map_err(|e| format!("read the template password: {e}"))?;
        let mut server = MariaServer {
            bin: bin.clone(),
            password,
            opts: opts.clone(),
            process,
        };
        on_free_port(|port| {
            server.process.set_port(port);
            server.spawn()
        })?;
        Ok(server)
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("mysql.sock")
    }

    fn spawn(&self) -> Result<(), String> {
        let p = &self.process;
        let mut cmd = Command::new(&self.bin.server);
        cmd.args(self.bin.common_args())
            .arg(format!("--datadir={}", p.dir().join("data").display()))
            .arg(format!("--port={}", p.port()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", p.pidfile().display()))
            .arg(format!("--log-error={}", p.log_path().display()));
        if let Some(n) = self.opts.max_connections {
            cmd.arg(format!("--max-connections={n}"));
        }
        if let Some(tls) = &self.opts.tls {
            cmd.arg(format!("--ssl-cert={}", tls.cert_file.display()))
                .arg(format!("--ssl-key={}", tls.key_file.display()))
                .arg(format!("--ssl-ca={}", tls.ca_file.display()));
        }
        cmd.args(&self.opts.args);
        let port = p.port();
        p.spawn(&mut cmd, || greeting(port).then_some(Ok(())))
    }

    /// Stop the server (SIGTERM, then SIGKILL after 30 s). No-op when stopped.
    pub fn stop(&self) {
        self.process.terminate();
    }

    /// Kill the server at once (SIGKILL), as in a crash. No-op when stopped.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Start again on the same port after [`stop`](Self::stop) / [`kill`](Self::kill).
    pub fn start_again(&self) {
        self.process.start_again("MariaDB", || self.spawn());
    }

    /// Stop and start again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// [`MARIA_USER`]'s password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The server's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// `mysql://pw_test:<password>@127.0.0.1:<port>/pw_test`.
    pub fn url(&self) -> String {
        format!(
            "mysql://{MARIA_USER}:{}@127.0.0.1:{}/{MARIA_DB}",
            self.password,
            self.port()
        )
    }

    /// [`MARIA_USER`]'s connection config.
    pub fn config(&self) -> ConnectionConfig {
        let mut c = ConnectionConfig::new("mysql", "127.0.0.1", self.port());
        c.database = Some(MARIA_DB.into());
        c.user = Some(MARIA_USER.into());
        c.password = Some(Secret::new(self.password.clone()));
        c
    }

    /// Run SQL as `root` over the Unix socket; returns the tab-separated output without
    /// column names.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        run(Command::new(&self.bin.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "-e", sql]))
    }

    /// Create a user (all privileges, any host) with `password`; for tests that count
    /// connections per user.
    pub fn create_user(&self, user: &str, password: &str) {
        self.sql(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%';"
        ))
        .unwrap_or_else(|e| panic!("create user {user}: {e}"));
    }

    /// A unique user name starting with `prefix` (at most 32 characters).
    pub fn unique_user(prefix: &str) -> String {
        let mut u = format!("{prefix}_{}", &random_hex()[..8]);
        u.truncate(32);
        u
    }

    /// Connections of `user` in the process list (the admin connection is `root`).
    pub fn processlist_count(&self, user: &str) -> usize {
        self.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))
        .unwrap_or_else(|e| panic!("processlist: {e}"))
        .trim()
        .parse()
        .expect("a count")
    }
}

/// Whether a MySQL-protocol server greets on `port` (any first packet counts).
fn greeting(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut header = [0u8; 5];
    s.read_exact(&mut header).is_ok()
}

/// `mariadb-install-db` into `staging/data`, then start it once (socket only) to create
/// [`MARIA_USER`] with a random password (kept in `staging/password`) and [`MARIA_DB`].
fn build_template(bin: &MariaBin, staging: &Path) -> Result<(), String> {
    let data = staging.join("data");
    run(Command::new(&bin.install)
        .args(bin.common_args())
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]))?;
    // A short socket path (sun_path is limited to 108 bytes).
    let sockdir = server_dir("pw-maria-boot-");
    let reaper = Reaper::spawn(&sockdir, &pidfile_reaper_script("boot.pid"));
    let socket = sockdir.join("boot.sock");
    let child = Command::new(&bin.server)
        .args(bin.common_args())
        .arg(format!("--datadir={}", data.display()))
        .arg("--skip-networking")
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", sockdir.join("boot.pid").display()))
        .arg(format!(
            "--log-error={}",
            sockdir.join("boot.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn mariadbd: {e}"))?;
    let client = |sql: &str| {
        run(Command::new(&bin.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql]))
    };
    let up = wait_for(Duration::from_secs(60), || client("SELECT 1").ok());
    let password = format!("pw-{}", random_hex());
    let result = match up {
        None => Err(format!(
            "bootstrap server did not come up:\n{}",
            log_tail(&sockdir.join("boot.log"), 30)
        )),
        Some(_) => client(&format!(
            "CREATE USER '{MARIA_USER}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{MARIA_USER}'@'%' WITH GRANT OPTION; \
             CREATE DATABASE {MARIA_DB};"
        ))
        .map(drop),
    };
    terminate(child, &sockdir.join("boot.pid"));
    drop(reaper); // deletes sockdir
    result?;
    std::fs::write(staging.join("password"), password).map_err(|e| e.to_string())
}
