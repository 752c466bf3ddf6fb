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
//! **TLS** through mysql_async's rustls support, with the ring provider (as the other
//! backends). mysql_async builds the rustls configuration itself, from the same files:
//!
//! - `disable`, and `prefer` (the default): clear text. mysql_async cannot fall back to
//!   clear text when a server offers no TLS, so `prefer` does not try TLS at all; ask for
//!   `require` or `verify-full` to encrypt.
//! - `require`: TLS or fail, without authenticating the server (any certificate is
//!   accepted, the handshake signature is still checked). With a CA file (`sslrootcert`,
//!   or `ssl_ca`) the chain must verify against it; mysql_async is meant to skip the host
//!   name check then, but with rustls 0.23.2x+ it still checks it (its check matches an
//!   error text rustls no longer produces), so this is as strict as `verify-full`.
//! - `verify-full` (also `verify-ca`): TLS, the chain verified against the CA file (or,
//!   without one, the webpki roots) and the host name or IP address checked.
//!
//! A client certificate and key (`sslcert` / `sslkey`) are presented when configured;
//! mysql_async reads only **RSA keys in PKCS#1 PEM** (`BEGIN RSA PRIVATE KEY`), so another
//! kind of key is a [`Config`](BackendErrorKind::Config) error. Files are read before each
//! connect (a missing or bad file is a `Config` error), so rotated certificates are picked
//! up. A Unix socket connection is never encrypted (mysql_async does not secure sockets).
//! mysql_async asks rustls for the process-wide default provider: if the application also
//! enables rustls's `aws-lc-rs`, install one with `CryptoProvider::install_default`.
//!
//! A server certificate that fails verification, a server that offers no TLS, and a MySQL
//! server with `require_secure_transport` refusing clear text (3159) are
//! [`Config`](BackendErrorKind::Config) errors (not retried, not counted against the
//! endpoint); MariaDB refuses that clear text with "Access denied" (1045), an
//! [`Auth`](BackendErrorKind::Auth) error, as it does a wrong password. A handshake that
//! fails otherwise is a [`Connect`](BackendErrorKind::Connect) error.
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
//! let tls = ConnectionConfig::parse("mysql://app:s3cret@db/shop?sslmode=verify-full&sslrootcert=/no/ca.pem").unwrap();
//! assert_eq!(backend.connect(&tls).await.unwrap_err().kind(), BackendErrorKind::Config);
//!
//! let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let url = format!("mysql://app:s3cret@127.0.0.1:{closed_port}/shop");
//! let err = backend.connect(&ConnectionConfig::parse(&url).unwrap()).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//! assert!(!format!("{err} {err:?}").contains("s3cret"));
//! # });
//! ```

mod backend;
mod connection;
mod errors;
mod options;
mod tls;

#[cfg(doc)]
use crate::backends::Backend;
#[cfg(doc)]
use crate::error::BackendErrorKind;
#[cfg(doc)]
use ::mysql_async::Conn;

pub use connection::MysqlConnection;

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
