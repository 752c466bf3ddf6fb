//! Throwaway database servers for integration tests and benchmarks.
//!
//! Tests never touch the services already running on this machine's standard ports: every
//! server here is started from the installed binaries, on a free loopback port, in a
//! temporary directory, and torn down when its handle is dropped.
//!
//! | server | start | needs (Debian package) |
//! |---|---|---|
//! | [`PgServer`] | `initdb` (cached template) + `pg_ctl -w start` | `postgresql` |
//! | [`RedisServer`] | `redis-server --port P --bind 127.0.0.1 --save ""` | `redis-server` |
//! | [`MariaServer`] | `mariadb-install-db` (cached template) + `mariadbd` | `mariadb-server` |
//! | [`PgBouncer`] | `pgbouncer <ini>` (`pool_mode = transaction`) in front of a fresh [`PgServer`] | `pgbouncer` |
//! | [`browser::Browser`] | `chromedriver --port=P` + a headless Chromium session (WebDriver) | `chromium`, `chromium-driver` |
//!
//! ```ignore
//! mod common;
//! use common::PgServer;
//!
//! #[actix::test]
//! async fn works() {
//!     let Some(pg) = PgServer::shared() else { return }; // prints `SKIP: …` when missing
//!     let cfg = pg.config_for("works");                   // a distinct application_name
//!     // … run a pool against `cfg`, then compare `pg.backend_connections("works")`
//! }
//! ```
//!
//! **Missing binaries.** `start()` returns `None` after printing `SKIP: <reason>` to stderr
//! when a server's binaries are not installed; with `CI=true` in the environment it panics
//! instead, naming the Debian package to install. A server that is installed but fails to
//! start always panics, with the tail of its log.
//!
//! **Sharing.** `PgServer::shared()`, `RedisServer::shared()` and `MariaServer::shared()`
//! start one server per test binary on first use and hand out `&'static` references; keep
//! tests isolated by giving each its own `application_name` / client name / user / database.
//! Tests that stop or restart a server, or need special settings (TLS, a small
//! `max_connections`, a password), start their own with `start()` / `start_with()`.
//!
//! **Cleanup, even after a panic or a kill.** Each server comes with a *reaper*: a tiny `sh`
//! process, spawned before the server, that blocks reading a pipe from this process. Dropping
//! the handle stops the server and closes the pipe; if the test process dies instead
//! (a panic in a shared static that is never dropped, `SIGKILL`, Ctrl-C), the kernel closes
//! the pipe and the reaper kills the server and deletes its directory. Nothing is left
//! running.
//!
//! **Speed.** `initdb` (≈1 s) and `mariadb-install-db` (≈4 s) run once and are cached as
//! templates under `CARGO_TARGET_TMPDIR/poolwarden-harness/` (keyed by server version and
//! harness format); each server copies its template (≈0.1 s), so a fresh PostgreSQL starts
//! in about 0.3 s and a fresh MariaDB in about 0.5 s. `fsync` and friends are off.
//!
//! **Root.** PostgreSQL refuses to run as root: when the tests run as root, `initdb` and
//! `pg_ctl` run as the `postgres` OS user through `runuser`, and the server's directory is
//! owned by that user. MariaDB runs with `--user=root`; Redis does not care.
//!
//! This module is also compiled into benchmarks with
//! `#[path = "../tests/common/mod.rs"] mod common;`, so it uses no test-only attributes;
//! parts that need a driver are behind the corresponding crate feature.
#![allow(dead_code)]

pub mod browser;
pub mod fault_proxy;
pub mod load;
pub mod maria_server;
pub mod pg_faults;
#[cfg(feature = "postgres")]
pub mod pg_pool;
pub mod pg_replication;
pub mod pg_server;
pub mod pgbouncer;
pub mod process;
pub mod redis_server;
pub mod tls;

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use maria_server::{MariaOptions, MariaServer};
#[allow(unused_imports)]
pub use pg_server::{PgOptions, PgServer, PgTls};
#[allow(unused_imports)]
pub use pgbouncer::{PgBouncer, PgBouncerOptions};
#[allow(unused_imports)]
pub use redis_server::{RedisOptions, RedisServer};
#[allow(unused_imports)]
pub use tls::TestCa;

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Report a missing prerequisite: panic on CI (naming the Debian package), else print
/// `SKIP: …` to stderr and return `None`.
pub fn skip<T>(what: &str, package: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is not installed (CI=true): install the Debian package `{package}`");
    }
    eprintln!("SKIP: {what} is not installed (Debian package `{package}`); skipping");
    None
}

/// Whether this process runs as root (uid 0), read from `/proc/self` without libc.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The first of `names` found in `dirs` and then on `PATH`.
pub fn find_binary(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for name in names {
        for dir in dirs.iter().chain(path_dirs.iter()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A free TCP port on 127.0.0.1 (bound, read, released). Callers retry on the rare race.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A random-enough hex string (no `rand` needed): hashes time, pid and a counter.
pub fn random_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// Run `cmd`, returning stdout, or an error with its status, stdout and stderr.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The last `n` lines of a log file, for panic messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Poll `f` every few milliseconds until it returns `Some`, or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Poll an async condition until it returns `Some`, or `timeout` passes (tokio time).
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(2);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// `chown user: path` (used when running as root for servers that run as another user).
pub fn chown_to(user: &str, path: &Path) -> Result<(), String> {
    run(Command::new("chown").arg("-R").arg(user).arg(path)).map(drop)
}

/// A temporary directory for one server, kept on disk (the reaper deletes it).
pub fn server_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
        .keep()
}

/// The watchdog of one server: a `sh` child that waits for its stdin to close, then runs
/// `script` (kill the server, delete its directory). Its stdin is a pipe held only by this
/// process (std opens pipes close-on-exec, so no other child inherits it): it closes when the
/// `Reaper` is dropped or when this process dies for any reason.
pub struct Reaper {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Reaper {
    /// Spawn the watchdog. `script` runs with `$D` set to `dir`. It ignores SIGINT/SIGTERM/
    /// SIGHUP so that a Ctrl-C aimed at the test run does not kill it before it cleans up.
    pub fn spawn(dir: &Path, script: &str) -> Reaper {
        let full = format!("trap '' INT TERM HUP; read _ignored; {script}");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(full)
            .env("D", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the reaper shell");
        let stdin = child.stdin.take();
        Reaper { child, stdin }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.wait();
    }
}

/// Bump when the layout of a cached template changes.
const TEMPLATE_FORMAT: u32 = 1;

/// A directory holding a server template built once by `build` and reused across test
/// binaries and runs: `<CARGO_TARGET_TMPDIR or /tmp>/poolwarden-harness/<kind>-<hash>`.
/// `build` fills a staging directory (owned by `owner` when given); it is renamed into place
/// atomically, so concurrent builders never see a half-built template.
pub fn cached_template(
    kind: &str,
    version: &str,
    owner: Option<&str>,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let root = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("poolwarden-harness");
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(version.trim().as_bytes());
    h.write_u32(TEMPLATE_FORMAT);
    let dir = root.join(format!("{kind}-{:016x}", h.finish()));
    if dir.join("READY").is_file() {
        return Ok(dir);
    }
    let staging = root.join(format!(".build-{kind}-{}", random_hex()));
    std::fs::create_dir(&staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    let built = (|| {
        if let Some(user) = owner {
            chown_to(user, &staging)?;
        }
        build(&staging)?;
        std::fs::write(staging.join("READY"), version).map_err(|e| format!("write READY: {e}"))?;
        Ok::<_, String>(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if std::fs::rename(&staging, &dir).is_err() {
        // Someone else won the race (or a broken leftover is in the way).
        let _ = std::fs::remove_dir_all(&staging);
        if !dir.join("READY").is_file() {
            return Err(format!("template {} is unusable", dir.display()));
        }
    }
    Ok(dir)
}

/// Forget a cached template that turned out to be broken, so the next start rebuilds it.
pub fn discard_template(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("READY"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `cp -a src dst` (keeps ownership when running as root).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    run(Command::new("cp").arg("-a").arg(src).arg(dst)).map(drop)
}

/// A breaker that never opens, for tests about timeouts and retries rather than the
/// breaker (tests/breaker.rs covers it).
pub fn unbreakable() -> poolwarden::BreakerConfig {
    poolwarden::BreakerConfig {
        failure_threshold: u32::MAX,
        ..poolwarden::BreakerConfig::default()
    }
}

/// Acquire from a pool whose every connect fails: the acquire must end in a
/// `Timeout { phase: Connect }` carrying a last error of `kind`, after at least `min` and
/// before `max`, having retried (at least two connect errors) and holding nothing.
pub async fn assert_connect_timeout<B: poolwarden::Backend>(
    pool: &poolwarden::PoolHandle<B>,
    kind: poolwarden::BackendErrorKind,
    min: Duration,
    max: Duration,
) {
    let t = tokio::time::Instant::now();
    let Err(err) = pool.acquire().await else {
        panic!("every connect fails, yet the acquire succeeded");
    };
    let took = t.elapsed();
    match &err {
        poolwarden::Error::Timeout {
            phase: poolwarden::Phase::Connect,
            last_error: Some(last),
            ..
        } => assert_eq!(last.kind(), kind, "{last}"),
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(took >= min && took < max, "took {took:?}");
    let s = pool.stats();
    assert!(s.connect_errors >= 2, "retried with backoff: {s:?}");
    assert_eq!(s.live, 0, "{s:?}");
}
