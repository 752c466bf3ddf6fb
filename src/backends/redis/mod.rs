//! Redis via [redis-rs](redis): one multiplexed connection per pooled connection,
//! wrapped in a [`RedisConnection`] that keeps the pool honest about what redis-rs cannot
//! tell it.
//!
//! # Why not bb8-redis
//!
//! `bb8_redis::RedisConnectionManager` works unchanged through the
//! [bb8 adapter](super::bb8) (the adapter tests run it against a real server), but its
//! connections cannot be pooled safely by anyone: redis-rs is not cancellation safe at the
//! protocol level. Dropping a command future (a timeout, a `select!`) does not cancel the
//! command: a `BLPOP` stays blocked on the server, a `MULTI` stays open, and the next
//! borrower's commands queue behind them or become part of someone else's transaction.
//! The manager's `has_broken` always answers false and it has no reset step. So this
//! backend opens the connections itself and hands out a [`RedisConnection`] that
//!
//! - marks itself **in flight** for the duration of every command and pipeline: a future
//!   dropped mid-command leaves the mark, and [`is_broken`](Backend::is_broken) sees the
//!   connection as broken, so it is closed, never reused;
//! - tracks **`MULTI` / `WATCH` / `SELECT`** as commands go out, so
//!   [`needs_reset`](Backend::needs_reset) is false (release stays synchronous, no round
//!   trip) unless a transaction, a watch or another database was left behind, and
//!   [`reset`](Backend::reset) sends only what is needed: `DISCARD` (which also unwatches)
//!   or `UNWATCH`, and `SELECT` back to the configured database;
//! - is broken after commands that change the connection for good (`SUBSCRIBE` and
//!   friends, `MONITOR`, `RESET`, `HELLO`, `AUTH`, `QUIT`, `CLIENT REPLY`,
//!   `CLIENT TRACKING`), after an I/O error or a response timeout, and as soon as the
//!   server closes the socket (`CLIENT KILL`, a restart): poolwarden runs the connection's
//!   driver task itself and notices when it ends, without a round trip.
//!
//! # Configuration
//!
//! From `redis://[user][:password]@host:port/db`: `database` is the database number
//! (default 0), `user` and `password` authenticate (`AUTH`, ACL user if given),
//! `application_name` is set with `CLIENT SETNAME` (no spaces). Options:
//! `response_timeout` (e.g. `"2s"`: a command not answered in time fails and breaks its
//! connection; default none, so blocking commands work). Several hosts are tried in order.
//!
//! **TLS** with rustls (ring), the same client configuration as the
//! PostgreSQL backend's: this backend does the handshake itself (with
//! `tokio-rustls`) and hands the encrypted stream to redis-rs, which therefore needs no TLS
//! feature of its own. `rediss://` means `verify-full`: the chain is verified against
//! `ca_file` (`sslrootcert`), or without one the webpki (Mozilla) roots, and the host name or
//! IP address is checked against the certificate. `sslmode=require` encrypts without
//! authenticating the server (any certificate, the handshake signature still checked), or,
//! with a CA file, verifies the chain but not the name. A client certificate and key
//! (`sslcert` / `sslkey`, PEM) are presented when configured (Redis `tls-auth-clients`).
//! `prefer` (the default for `redis://`) and `disable` connect in clear text: Redis has no
//! TLS negotiation. The configuration is built once per TLS setting and rebuilt when a file
//! changes on disk. A server certificate that fails verification is a
//! [`Config`](BackendErrorKind::Config) error (not retried, not counted against the
//! endpoint); a handshake that fails otherwise is a [`Connect`](BackendErrorKind::Connect)
//! error.
//!
//! Every connect ends with one round trip (`PING`, or `CLIENT SETNAME`), so a wrong or
//! missing password fails the connect with an [`Auth`](BackendErrorKind::Auth) error
//! (not retried) instead of failing the first command.
//!
//! # Examples
//!
//! Use a pooled connection with [`redis::AsyncCommands`]:
//!
//! ```
//! use poolwarden::backends::redis::RedisBackend;
//! use poolwarden::PoolHandle;
//! use redis::AsyncCommands;
//!
//! async fn visit(pool: &PoolHandle<RedisBackend>, page: &str) -> Result<i64, Box<dyn std::error::Error>> {
//!     let mut conn = pool.acquire().await?;
//!     let hits: i64 = conn.incr(format!("hits:{page}"), 1).await?;
//!     Ok(hits) // `conn` goes back to the pool here, without a round trip
//! }
//! ```
//!
//! Errors say what went wrong without a server (and never show the password):
//!
//! ```
//! use poolwarden::backends::redis::RedisBackend;
//! use poolwarden::{Backend, BackendErrorKind, ConnectionConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let backend = RedisBackend::new();
//! let ca = ConnectionConfig::parse("rediss://:s3cret@cache:6380/0?sslrootcert=/no/such/ca.pem").unwrap();
//! let err = backend.connect(&ca).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Config);
//!
//! let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let url = format!("redis://:s3cret@127.0.0.1:{closed_port}/2");
//! let err = backend.connect(&ConnectionConfig::parse(&url).unwrap()).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//! assert!(!format!("{err} {err:?}").contains("s3cret"));
//! # });
//! ```

mod backend;
mod connection;
mod errors;
mod settings;
mod state;

use tokio_rustls::TlsConnector;

use super::tls::TlsCache;
#[cfg(doc)]
use crate::backends::Backend;
#[cfg(doc)]
use crate::error::BackendErrorKind;

pub use connection::RedisConnection;

/// The Redis [`Backend`]. See the [module documentation](self). Cheap to clone; clones
/// share the TLS configuration cache.
#[derive(Debug, Clone, Default)]
pub struct RedisBackend {
    tls_cache: TlsCache<TlsConnector>,
}

impl RedisBackend {
    /// A Redis backend.
    pub fn new() -> Self {
        Self::default()
    }
}
