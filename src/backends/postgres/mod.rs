//! PostgreSQL through [`tokio-postgres`](tokio_postgres), TLS through rustls.
//!
//! ```no_run
//! use poolwarden::backends::postgres::PostgresBackend;
//! use poolwarden::{ConnectionConfig, SupervisorConfig, SupervisorHandle};
//!
//! # actix::System::new().block_on(async {
//! let sup = SupervisorHandle::start(PostgresBackend::new(), SupervisorConfig::default())?;
//! let cfg = ConnectionConfig::parse(
//!     "postgres://app:secret@db1:5432/orders?sslmode=verify-full&sslrootcert=/etc/ca.pem\
//!      &application_name=api&statement_timeout=5s&connect_timeout=3",
//! )?;
//! let pool = sup.pool(cfg).await?;
//! let conn = pool.acquire().await?; // a PgConnection; derefs to tokio_postgres::Client
//! // One round trip on the unnamed statement, parameters typed by `PgParam`:
//! let n: i64 = conn.query_one("SELECT count(*) FROM orders WHERE customer = $1", &[&7i64]).await?.get(0);
//! # let _ = n;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! # Configuration
//!
//! From [`ConnectionConfig`]: every host (tried in order, like libpq's multi-host strings;
//! a host starting with `/` is a Unix socket directory), `database`, `user`, `password`,
//! `application_name`, and [`tls`](ConnectionConfig::tls). Backend
//! [`options`](ConnectionConfig::options) (unknown keys are rejected, so typos do not pass
//! silently):
//!
//! | option | meaning |
//! |---|---|
//! | `connect_timeout` | per host: TCP connect, TLS and authentication. Seconds (`"3"`, as libpq) or with a unit (`"500ms"`, `"2s"`, `"1min"`); `0` = none. Default: none (the pool's own `connect_timeout` still bounds the whole attempt). |
//! | `statement_timeout` | server-side `statement_timeout`, sent as `-c statement_timeout=…` in the startup packet: milliseconds (`"5000"`) or with a unit (`"5s"`). Default: the server's. Under `pooler=session`: one `SET` after connecting; under `pooler=transaction`: `SET LOCAL` at the start of each [`PgConnection::transaction`]. |
//! | `options` | raw libpq `options` string (`"-c search_path=app"`), combined with the above. Refused (a configuration error) with a `pooler`. |
//! | `pooler` | `none` (default), `transaction` or `session`: what sits in front of the server. See *Behind PgBouncer*. |
//! | `reset` | `rollback` (default) or `discard_all`: see *Reset on return*. |
//! | `target_session_attrs` | `any` (default) or `read-write`: skip hosts in read-only mode. |
//!
//! # Queries: the unnamed statement
//!
//! [`PgConnection::query`], [`query_one`](PgConnection::query_one),
//! [`query_opt`](PgConnection::query_opt) and [`execute`](PgConnection::execute) shadow the
//! [`Client`](tokio_postgres::Client) methods of the same names. Their parameters are
//! [`PgParam`]s, values that say their PostgreSQL type, so each call is tokio-postgres's
//! [`query_typed`](tokio_postgres::Client::query_typed) /
//! [`execute_typed`](tokio_postgres::Client::execute_typed): Parse, Bind, Describe, Execute
//! and Sync on the unnamed statement in one write, one round trip. The client's own
//! `query(&str, …)` first prepares a named statement in a round trip of its own, so this
//! halves the round trips of a one-off query, and leaves no named statement on the server
//! session, which is what makes it work behind a transaction pooler. It is the path in
//! every mode, with or without parameters. [`PgTransaction`] has the same methods.
//!
//! Use the client ([`PgConnection::client`], or through `Deref`) for the rest; its
//! `prepare` and its `query`/`execute` with a `&str` prepare named statements (fine on a
//! direct connection, and worth it for a statement run many times on one connection).
//!
//! # Behind PgBouncer: `pooler=transaction`
//!
//! PgBouncer before 1.21 keeps no prepared statements in `pool_mode = transaction`: each
//! transaction (or single statement) may run on another server session, so a statement
//! prepared in one round trip is missing ("prepared statement \"s0\" does not exist") or
//! another client's ("already exists") in the next. And PgBouncer 1.18 refuses a startup
//! packet carrying `options` unless `ignore_startup_parameters` lists it. With
//! `pooler=transaction`:
//!
//! - the startup packet carries user, database, `application_name` (PgBouncer tracks it)
//!   and `client_encoding`, no `options`; a raw `options` is a configuration error;
//! - `statement_timeout` is a `SET LOCAL statement_timeout = '…'` right after each
//!   [`PgConnection::transaction`]'s `BEGIN` (a second round trip, only when configured).
//!   A single statement outside a transaction gets the role's or database's setting
//!   (`ALTER ROLE app SET statement_timeout = '5s'`) or PgBouncer's `query_timeout`;
//! - the library's own requests (probe, status, write position, `target_session_attrs`,
//!   reset) are simple queries, never prepared statements, and it keeps no session state;
//!   reset is the `ROLLBACK` of an open transaction (read off the wire), plus
//!   [`DISCARD_ALL_SQL`] only with `reset=discard_all`;
//! - the first connect of a pool logs one `tracing` warning
//!   ([`TRANSACTION_POOLER_WARNING`]) listing what cannot work through the pooler: session
//!   `SET`, `LISTEN`/`NOTIFY`, session advisory locks, `prepare()`d statements (and the
//!   client's `query`/`execute` with a `&str`), custom types whose lookups prepare
//!   statements. For those, open a `PoolHandle::dedicated()` connection from a pool on a
//!   direct (non-pooler) URL.
//!
//! `pooler=session` (PgBouncer `pool_mode = session`) only moves `statement_timeout` from
//! the startup packet to a `SET` after connecting; everything else works as on a direct
//! connection. `tests/pgbouncer` runs all of this against a real PgBouncer 1.18.
//!
//! # TLS: rustls
//!
//! rustls (with the *ring* provider) rather than native-tls: it is pure Rust, so building
//! needs no OpenSSL headers and the binary has no system OpenSSL to keep in step; one TLS
//! stack behaves the same on every platform; and `tokio-postgres-rustls` supports SCRAM
//! channel binding (`tls-server-end-point`). `sslmode` keeps libpq's meanings:
//!
//! - `disable`: plaintext.
//! - `prefer` (the default): TLS if the server offers it, else plaintext.
//! - `require`: TLS or fail.
//! - `verify-full` (and `verify-ca`, which the config maps to it): TLS, the certificate
//!   chain verified against `ca_file` (or, without one, the webpki/Mozilla roots) and the host
//!   name (or IP address) checked against the certificate.
//!
//! `prefer` and `require` encrypt without authenticating the server: any certificate is
//! accepted, but the handshake signature is still verified against the certificate's key.
//! As in libpq, an explicit root certificate (`ca_file` / `sslrootcert`) upgrades them to
//! *verify-ca*: the chain must verify, the host name is not checked. A client certificate
//! and key (`client_cert` / `client_key`, PEM) are presented when configured. The rustls
//! client configuration is built once per TLS setting and rebuilt when one of its files
//! changes on disk (certificate rotation).
//!
//! # Connecting: tokio-postgres directly, not bb8-postgres
//!
//! `bb8_postgres::PostgresConnectionManager` would only call `Config::connect(tls)`. This
//! backend opens the socket itself (per host, with the per-host timeout, TCP_NODELAY and
//! keepalive) and hands it to `tokio_postgres::Config::connect_raw` through a *wire tap* (see
//! below), which `connect` does not allow. The price: `Client::cancel_token().cancel_query`
//! does not know the socket address (use `statement_timeout` or
//! `cancel_query_raw` instead).
//!
//! # Reset on return: tracking the server's transaction status
//!
//! Every ReadyForQuery message the server sends carries its transaction status: idle,
//! in a transaction block, or in a failed one (libpq's `PQtransactionStatus`, what PgBouncer
//! watches). tokio-postgres reads it and throws it away, so the connection's socket is
//! wrapped in a tap that follows the protocol's message framing (a 5-byte header per
//! message; a message that arrived whole is read where it lies, and of one split across
//! reads only the header and the first 8 bytes of the body are kept) and records: the
//! status byte of the last ReadyForQuery, how many requests that end in a ReadyForQuery
//! (`Query`, `Sync`) were written and how many ReadyForQuery came back, and the backend's
//! process id. Under TLS the tap sits above the decryption.
//!
//! On return [`needs_reset`](Backend::needs_reset) is one atomic read: nothing to do (and
//! no task spawned) when the last status was *idle* and no request is in flight. Otherwise
//! [`reset`](Backend::reset) first waits for whatever is still in flight with an empty query
//! (a barrier: a request a `Transaction` queued on drop, or a query whose future was
//! dropped, completes first and its status is known), then sends `ROLLBACK` only if the
//! server is still in a transaction. A query abandoned mid-flight that outlasts the pool's
//! `probe_timeout` gets its connection closed instead of handed out. This catches every way
//! of opening a transaction: `batch_execute("BEGIN; …")`, `simple_query("BEGIN")`,
//! `execute("BEGIN", &[])`, `START TRANSACTION` in a function, a dropped `Transaction`.
//!
//! Cost: clean connections pay nothing beyond the tap's header parsing. Counted by
//! callgrind (`POOLS="pg-floor pg-poolwarden" benches/instructions.sh`), acquire +
//! `SELECT 1` + release takes 12,688 instructions through the pool against 11,848 for a
//! tokio-postgres client in a bare semaphore-and-queue floor (1.07x; the tap, the pool's
//! checks and its bookkeeping). Measured by
//! `reset_tracking_cost` in `tests/postgres/cost.rs` (release build, loopback, 2 cores): `SELECT 1`
//! takes 93–98 µs on a bare tokio-postgres client and on a tapped connection alike (the
//! difference is within run-to-run noise), and acquire + `SELECT 1` + release through the
//! pool 95 µs; the same loop with a `ROLLBACK` on every release takes 141 µs (+48 %), and
//! each of those `ROLLBACK`s logs a "there is no transaction in progress" warning on the
//! server. A connection returned inside a transaction costs two round trips (barrier and
//! `ROLLBACK`), one when tokio-postgres already queued the rollback of a dropped
//! `Transaction`.
//!
//! Limits: the tap sees requests when tokio-postgres *writes* them; one still queued inside
//! tokio-postgres when the connection is returned (a future dropped before the connection
//! task wrote it — microseconds) is not seen by the check. `copy_in` writes a `Sync` the
//! server ignores; the tap accounts for that pattern, and any other mismatch only costs one
//! extra barrier round trip, after which the counts are re-synchronised.
//!
//! ## `DISCARD ALL` mode
//!
//! With the option `reset=discard_all` every return also resets the session the way
//! `DISCARD ALL` does, in the same round trip as the `ROLLBACK` when one is needed:
//! [`DISCARD_ALL_SQL`] — PostgreSQL's documented expansion of `DISCARD ALL` (close cursors,
//! reset the session user and every setting, `UNLISTEN *`, release advisory locks, drop
//! cached plans, temporary tables and sequence state) *minus* `DEALLOCATE ALL`. Prepared
//! statements are kept on purpose: tokio-postgres caches named statements of its own for
//! looking up custom types (enums, composites, domains) and has no API to forget them, so
//! a literal `DISCARD ALL` would make the next such lookup fail with "prepared statement
//! sN does not exist" (`Client::clear_type_cache` clears the types, not those statements).
//! Statements a borrower prepared are closed by tokio-postgres when their `Statement` is
//! dropped.
//!
//! Off by default: it costs a round trip on every return. Turn it on when borrowers change
//! session state that the next borrower must not inherit — in particular when this pool
//! sits behind a transaction-mode proxy (PgBouncer `pool_mode = transaction`), where the
//! server session behind a connection is shared with the proxy's other clients, so any
//! session state a borrower leaves behind leaks to them.
//!
//! # Health
//!
//! [`probe`](Backend::probe) is one empty simple query (one round trip, no parsing or
//! planning on the server). [`is_broken`](Backend::is_broken) is
//! `Client::is_closed()`: the connection task ended (socket closed, server terminated the
//! backend with a FATAL error), or the tap lost the message framing.
//!
//! # Replica sets: role, lag and position
//!
//! [`status`](Backend::status) is one round trip (a simple query: no prepare) of
//! [`STATUS_SQL`]: `pg_is_in_recovery()` gives the role (not in recovery → primary), the
//! position is `pg_last_wal_replay_lsn()` on a replica and `pg_current_wal_lsn()` on a
//! primary, both as bytes since `0/0` (`pg_lsn - '0/0'`, so they compare as `u64`).
//!
//! Lag is measured on the replica, without asking the primary:
//!
//! - **0 while the replica has replayed everything it received** (`pg_last_wal_receive_lsn()
//!   <= pg_last_wal_replay_lsn()`). The usual `now() - pg_last_xact_replay_timestamp()` is
//!   not used alone because it grows without bound while the primary is idle: it measures
//!   the time since the last write, not how far behind the replica is.
//! - **Otherwise the age of the last replayed commit** (`now() -
//!   pg_last_xact_replay_timestamp()`, clamped at 0 against clock skew): WAL is waiting to
//!   be replayed (replay is paused, or slower than the primary), and what the replica shows
//!   is as old as its last replayed commit. Right after the first write that ends a long idle
//!   period arrives, and until it is replayed (usually well under a millisecond), this
//!   over-estimates by the idle time; a topology probe that lands in that window skips the
//!   replica for one `topology_interval` at most.
//! - **Unknown (`None`)** when WAL is waiting but no commit was replayed since the replica
//!   started. A primary reports 0.
//!
//! What this cannot see: WAL the replica has not received. A replica cut off from its
//! primary (network partition, primary down) replays what it has and then reports 0. The
//! primary's `pg_stat_replication.replay_lag` would see it, but it needs a connection to the
//! primary per replica and is NULL when idle; the topology probe asks each member only about
//! itself.
//!
//! [`write_position`](Backend::write_position) is `pg_current_wal_insert_lsn()` (one round
//! trip), the end of the last WAL record inserted, so it covers the commit just made even
//! with `synchronous_commit = off`, where `pg_current_wal_lsn()` (the write position) can
//! still be before the commit record. A replica whose replay position reached the token has
//! replayed the commit. On a server in recovery (a write connection that reached a replica)
//! it is the replay position.
//!
//! # Errors
//!
//! SQLSTATE `28P01` / `28000` (wrong password, unknown role, `pg_hba.conf` rejection) and
//! `42501` → [`Auth`](BackendErrorKind::Auth) (not retried); `3D000` (no such database), a
//! certificate that fails verification, a server without TLS under `require`, a bad TLS file
//! and a missing password → [`Config`](BackendErrorKind::Config) (not retried); refused,
//! reset or unreachable sockets, `53300` (too many connections), `57P03` (starting up) →
//! [`Connect`](BackendErrorKind::Connect); a closed connection or `57P01` (terminated) while
//! in use → [`Closed`](BackendErrorKind::Closed); `57014` (statement timeout) and the
//! per-host connect timeout → [`Timeout`](BackendErrorKind::Timeout); other query errors →
//! [`Query`](BackendErrorKind::Query). Messages name the host and user but never the
//! password (tokio-postgres does not print it; every message is scrubbed of it anyway).

mod backend;
mod connect;
mod connection;
mod errors;
mod options;
mod params;
mod session;
mod tap;
mod tls;
mod transaction;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio_postgres_rustls::MakeRustlsConnect;

#[cfg(doc)]
use crate::backends::Backend;
#[cfg(doc)]
use crate::connection::ConnectionConfig;
#[cfg(doc)]
use crate::error::BackendErrorKind;

use super::tls::TlsCache;
pub use backend::{DISCARD_ALL_SQL, STATUS_SQL, TRANSACTION_POOLER_WARNING, WRITE_POSITION_SQL};
pub use connection::{PgConnection, Pooler, ResetMode};
pub use params::{ErasedPgParam, PgParam};
pub use session::TransactionStatus;
pub use transaction::PgTransaction;

/// The PostgreSQL [`Backend`]. Cheap to clone; clones share the TLS configuration cache.
#[derive(Clone, Default)]
pub struct PostgresBackend {
    tls_cache: TlsCache<MakeRustlsConnect>,
    /// Configs (redacted) whose pooler warning was logged: once per pool, at its first
    /// connect.
    warned: Arc<Mutex<HashSet<String>>>,
}

impl PostgresBackend {
    /// A backend with an empty TLS cache.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend").finish_non_exhaustive()
    }
}
