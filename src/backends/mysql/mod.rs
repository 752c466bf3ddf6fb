//! MySQL and MariaDB via [mysql_async], one [`Conn`] per pooled connection.
//!
//! mysql_async has a pool of its own; this backend bypasses it and opens single
//! connections with [`Conn::new`], so poolwarden alone decides how many exist and when they
//! are tested, reset and closed.
//!
//! # Reset: one `ROLLBACK`, only after the connection was used
//!
//! A checkout that never used the connection mutably (no statement could run) returns it
//! synchronously, without a round trip: [`needs_reset`](Backend::needs_reset) is false.
//! After a checkout that did use it, [`reset`](Backend::reset) sends one `ROLLBACK`, in the
//! background while the pool keeps the slot, before anyone else gets the connection.
//!
//! `ROLLBACK` rather than `COM_RESET_CONNECTION` (mysql_async's [`Conn::reset`]) by
//! default: both cost one round trip, but a full reset also discards the connection's
//! prepared statements (mysql_async's statement cache), session variables and temporary
//! tables, which borrowers of a pool usually expect to be cheap to reuse. Set the option
//! `reset=connection` for the full reset (falls back to `ROLLBACK` on servers older than
//! MySQL 5.7.3 / MariaDB 10.2.4).
//!
//! Why not skip the `ROLLBACK` when the server's last status says no transaction is open
//! ([`MysqlConnection::in_transaction`])? Because mysql_async does not let anyone see that
//! a statement failed because the connection died: after an I/O error the last status is
//! stale (it still says "no transaction"), and mysql_async has no synchronous "is closed"
//! check. The `ROLLBACK` after use doubles as the liveness check that keeps a connection
//! killed while checked out (`KILL`, a restart) from being handed out again: on a dead
//! connection it fails, and the connection is closed.
//!
//! # Broken connections
//!
//! [`probe`](Backend::probe) is `COM_PING`. A connection whose ping, rollback or reset
//! failed is closed. A connection the server closed while it sat idle is caught by the
//! pool's test on checkout (a ping, when it has been idle longer than `checkout_bypass`).
//!
//! **Cancellation.** mysql_async does not expose whether a statement future was dropped
//! mid-flight; the connection may then still owe the server's answer. Call
//! [`PooledConnection::discard`](crate::PooledConnection::discard) on a connection whose
//! statement you abandoned (a `select!`, a timeout) instead of returning it.
//!
//! # Configuration
//!
//! From `mysql://user:password@host:port/database` (or `mariadb://`). A host starting with
//! `/` is a Unix socket path. Options: `reset` (`rollback`, the default, or `connection`),
//! `wait_timeout` (session `wait_timeout` in seconds), `prefer_socket` (`true` to let
//! mysql_async switch to the server's Unix socket when it is local; default `false`).
//! `application_name` has no MySQL equivalent that mysql_async can send, and is ignored.
//!
//! **TLS** (`sslmode=require` / `verify-full`) is refused with a
//! [`Config`](BackendErrorKind::Config) error: mysql_async is built with `minimal`, without
//! a TLS feature. `prefer` (the default) connects in clear text.
//!
//! **Never `Debug`-print the inner [`Conn`]**: mysql_async's `Debug` prints its options,
//! password included. [`MysqlConnection`]'s own `Debug` shows only the connection id.
//!
//! # Examples
//!
//! ```
//! use mysql_async::prelude::*;
//! use poolwarden::backends::mysql::MysqlBackend;
//! use poolwarden::PoolHandle;
//!
//! async fn count(pool: &PoolHandle<MysqlBackend>) -> Result<u64, Box<dyn std::error::Error>> {
//!     let mut conn = pool.acquire().await?; // derefs to a mysql_async::Conn
//!     let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM orders").await?;
//!     Ok(n.unwrap_or(0)) // back to the pool after one ROLLBACK
//! }
//! ```
//!
//! Errors say what went wrong without a server (and never show the password):
//!
//! ```
//! use poolwarden::backends::mysql::MysqlBackend;
//! use poolwarden::{Backend, BackendErrorKind, ConnectionConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let backend = MysqlBackend::new();
//! let tls = ConnectionConfig::parse("mysql://app:s3cret@db/shop?sslmode=require").unwrap();
//! assert_eq!(backend.connect(&tls).await.unwrap_err().kind(), BackendErrorKind::Config);
//!
//! let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let url = format!("mysql://app:s3cret@127.0.0.1:{closed_port}/shop");
//! let err = backend.connect(&ConnectionConfig::parse(&url).unwrap()).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//! assert!(!format!("{err} {err:?}").contains("s3cret"));
//! # });
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};

use ::mysql_async::consts::StatusFlags;
use ::mysql_async::prelude::Queryable;
use ::mysql_async::{Conn, DriverError, Error as MyError, OptsBuilder};

use super::support::redact;
use crate::backends::Backend;
use crate::connection::{ConnectionConfig, Host, SslMode};
use crate::error::{BackendError, BackendErrorKind};

/// How a returned connection is cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetMode {
    /// `ROLLBACK` after use.
    Rollback,
    /// `COM_RESET_CONNECTION` after use.
    Connection,
}

/// The MySQL / MariaDB [`Backend`]. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct MysqlBackend {
    _priv: (),
}

impl MysqlBackend {
    /// A MySQL / MariaDB backend.
    pub fn new() -> Self {
        Self::default()
    }
}

fn config_error(field: &str, reason: impl fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Config, format!("`{field}` {reason}"))
}

struct Settings {
    reset: ResetMode,
    wait_timeout: Option<usize>,
    prefer_socket: bool,
}

impl Settings {
    fn from_config(cfg: &ConnectionConfig) -> Result<Self, BackendError> {
        if cfg.backend != "mysql" {
            return Err(config_error(
                "connection.backend",
                format!("is `{}`, not `mysql`", cfg.backend),
            ));
        }
        if matches!(cfg.tls.mode, SslMode::Require | SslMode::VerifyFull) {
            return Err(config_error(
                "connection.tls.mode",
                "asks for TLS, but mysql_async is built without a TLS feature \
                 (it needs `rustls-tls`)",
            ));
        }
        let reset = match cfg.options.get("reset").map(String::as_str) {
            None | Some("rollback") => ResetMode::Rollback,
            Some("connection") => ResetMode::Connection,
            Some(other) => {
                return Err(config_error(
                    "connection.options.reset",
                    format!("`{other}` is not one of rollback, connection"),
                ))
            }
        };
        let wait_timeout = match cfg.options.get("wait_timeout") {
            None => None,
            Some(v) => Some(v.parse::<usize>().map_err(|_| {
                config_error(
                    "connection.options.wait_timeout",
                    format!("`{v}` is not a number of seconds"),
                )
            })?),
        };
        let prefer_socket = match cfg.options.get("prefer_socket").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(config_error(
                    "connection.options.prefer_socket",
                    format!("`{other}` is not true or false"),
                ))
            }
        };
        Ok(Self {
            reset,
            wait_timeout,
            prefer_socket,
        })
    }

    fn opts(&self, cfg: &ConnectionConfig, host: &Host) -> OptsBuilder {
        let mut opts = OptsBuilder::default()
            .user(cfg.user.clone())
            .pass(cfg.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(cfg.database.clone())
            .prefer_socket(self.prefer_socket)
            .wait_timeout(self.wait_timeout);
        if host.host.starts_with('/') {
            opts = opts.socket(Some(host.host.clone()));
        } else {
            opts = opts.ip_or_hostname(host.host.clone()).tcp_port(host.port);
        }
        opts
    }
}

/// Server error codes that retrying cannot fix.
fn classify(e: &MyError) -> BackendErrorKind {
    match e {
        MyError::Server(s) => match s.code {
            // access denied (user, database, no password), plugin not supported, password
            // expired, host not allowed
            1044 | 1045 | 1698 | 1251 | 1820 | 1862 | 1130 => BackendErrorKind::Auth,
            // unknown database
            1049 => BackendErrorKind::Config,
            // too many connections (server, user, user limit): capacity, not an outage
            1040 | 1203 | 1226 => BackendErrorKind::Capacity,
            _ => BackendErrorKind::Connect,
        },
        MyError::Driver(DriverError::UnknownAuthPlugin { .. }) | MyError::Url(_) => {
            BackendErrorKind::Config
        }
        MyError::Driver(_) | MyError::Io(_) | MyError::Other(_) => BackendErrorKind::Connect,
    }
}

impl Backend for MysqlBackend {
    type Connection = MysqlConnection;

    async fn connect(&self, cfg: &ConnectionConfig) -> Result<MysqlConnection, BackendError> {
        let settings = Settings::from_config(cfg)?;
        let mut last = None;
        for host in &cfg.hosts {
            match Conn::new(settings.opts(cfg, host)).await {
                Ok(conn) => {
                    return Ok(MysqlConnection {
                        conn,
                        reset: settings.reset,
                        touched: false,
                        broken: false,
                    })
                }
                Err(e) => {
                    let kind = classify(&e);
                    let text = redact(&e.to_string(), cfg.password.as_ref());
                    let err =
                        BackendError::new(kind, format!("mysql at {host}: {text}")).with_source(e);
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| config_error("connection.hosts", "is empty")))
    }

    async fn probe(&self, conn: &mut MysqlConnection) -> Result<(), BackendError> {
        let result = conn.conn.ping().await;
        conn.check("ping", result)
    }

    fn needs_reset(&self, conn: &MysqlConnection) -> bool {
        conn.needs_reset()
    }

    async fn reset(&self, conn: &mut MysqlConnection) -> Result<(), BackendError> {
        if conn.reset == ResetMode::Connection {
            let result = conn.conn.reset().await;
            if conn.check("reset", result)? {
                conn.touched = false;
                return Ok(());
            }
        }
        let result = conn.conn.query_drop("ROLLBACK").await;
        conn.check("rollback", result)?;
        conn.touched = false;
        Ok(())
    }

    fn is_broken(&self, conn: &mut MysqlConnection) -> bool {
        conn.broken
    }
}

/// A pooled MySQL / MariaDB connection: dereferences to a mysql_async [`Conn`].
///
/// Its `Debug` shows the connection id only (the `Conn`'s would show the password).
pub struct MysqlConnection {
    conn: Conn,
    reset: ResetMode,
    /// Dereferenced mutably since the last reset: statements may have run. (mysql_async's
    /// statement API is `&mut Conn`, and its `Queryable` trait cannot be implemented
    /// outside mysql_async, so this is the finest hook there is.)
    touched: bool,
    /// A ping, rollback or reset failed fatally.
    broken: bool,
}

impl MysqlConnection {
    /// The server's connection id (`CONNECTION_ID()`, the id `KILL` takes).
    pub fn id(&self) -> u32 {
        self.conn.id()
    }

    /// Whether the server said a transaction is open after the last successful statement:
    /// `None` after a statement failed with a server error. Informational only: a statement
    /// that failed because the connection died leaves the previous answer in place.
    pub fn in_transaction(&self) -> Option<bool> {
        self.conn.last_ok_packet().map(|ok| {
            ok.status_flags()
                .contains(StatusFlags::SERVER_STATUS_IN_TRANS)
        })
    }

    /// The mysql_async connection, taken out of the pool's wrapper.
    pub fn into_inner(self) -> Conn {
        self.conn
    }

    /// Whether this checkout used the connection mutably (a statement may have run) and
    /// it was not reset since.
    pub fn was_used(&self) -> bool {
        self.touched
    }

    /// Whether one of the backend's own operations (ping, rollback, reset) failed fatally.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn needs_reset(&self) -> bool {
        // Both modes reset after use only: see the module documentation.
        self.touched
    }

    /// Record a fatal failure of one of the backend's own operations.
    fn check<T>(&mut self, what: &str, result: Result<T, MyError>) -> Result<T, BackendError> {
        result.map_err(|e| {
            let kind = if e.is_fatal() {
                self.broken = true;
                BackendErrorKind::Closed
            } else {
                BackendErrorKind::Query
            };
            BackendError::new(
                kind,
                format!("{what} failed: {}", redact(&e.to_string(), None)),
            )
            .with_source(e)
        })
    }
}

impl Deref for MysqlConnection {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for MysqlConnection {
    fn deref_mut(&mut self) -> &mut Conn {
        self.touched = true;
        &mut self.conn
    }
}

impl fmt::Debug for MysqlConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConnection")
            .field("id", &self.conn.id())
            .field("in_transaction", &self.in_transaction())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn settings_check_the_config() {
        let cfg = ConnectionConfig::parse(
            "mariadb://app:pw@h:3307/shop?reset=connection&wait_timeout=60&prefer_socket=true",
        )
        .unwrap();
        let s = Settings::from_config(&cfg).unwrap();
        assert_eq!(s.reset, ResetMode::Connection);
        assert_eq!(s.wait_timeout, Some(60));
        assert!(s.prefer_socket);
        let opts = mysql_async::Opts::from(s.opts(&cfg, &cfg.hosts[0]));
        assert_eq!(opts.user(), Some("app"));
        assert_eq!(opts.pass(), Some("pw"));
        assert_eq!(opts.db_name(), Some("shop"));
        assert_eq!((opts.ip_or_hostname(), opts.tcp_port()), ("h", 3307));

        let mut sock = ConnectionConfig::parse("mysql://root@localhost/x").unwrap();
        sock.hosts[0].host = "/run/mysqld/mysqld.sock".into();
        let s = Settings::from_config(&sock).unwrap();
        assert_eq!(s.reset, ResetMode::Rollback);
        let opts = mysql_async::Opts::from(s.opts(&sock, &sock.hosts[0]));
        assert_eq!(opts.socket(), Some("/run/mysqld/mysqld.sock"));

        for (url, field) in [
            ("mysql://h/x?sslmode=require", "connection.tls.mode"),
            ("mysql://h/x?reset=sometimes", "connection.options.reset"),
            (
                "mysql://h/x?wait_timeout=1m",
                "connection.options.wait_timeout",
            ),
            (
                "mysql://h/x?prefer_socket=yes",
                "connection.options.prefer_socket",
            ),
            ("redis://h/0", "connection.backend"),
        ] {
            let mut cfg = ConnectionConfig::parse(url).unwrap();
            cfg.password = Some(Secret::new("hunter2"));
            let err = match Settings::from_config(&cfg) {
                Err(e) => e,
                Ok(_) => panic!("{url} was accepted"),
            };
            assert_eq!(err.kind(), BackendErrorKind::Config, "{url}");
            assert!(err.to_string().contains(field), "{url}: {err}");
        }
    }

    #[test]
    fn server_errors_are_classified() {
        let server = |code| {
            MyError::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "28000".into(),
            })
        };
        assert_eq!(classify(&server(1045)), BackendErrorKind::Auth);
        assert_eq!(classify(&server(1049)), BackendErrorKind::Config);
        assert_eq!(classify(&server(1040)), BackendErrorKind::Capacity);
        assert_eq!(
            classify(&MyError::Driver(DriverError::ConnectionClosed)),
            BackendErrorKind::Connect
        );
    }
}
