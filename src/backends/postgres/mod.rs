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
//! let conn = pool.acquire().await?; // derefs to tokio_postgres::Client
//! let n: i64 = conn.query_one("SELECT count(*) FROM orders", &[]).await?.get(0);
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
//! | `statement_timeout` | server-side `statement_timeout`, sent as `-c statement_timeout=…` in the startup packet: milliseconds (`"5000"`) or with a unit (`"5s"`). Default: the server's. |
//! | `options` | raw libpq `options` string (`"-c search_path=app"`), combined with the above. |
//! | `reset` | `rollback` (default) or `discard_all`: see *Reset on return*. |
//! | `target_session_attrs` | `any` (default) or `read-write`: skip hosts in read-only mode. |
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
//! message; bodies are skipped, never copied) and records: the status byte of the last
//! ReadyForQuery, how many requests that end in a ReadyForQuery (`Query`, `Sync`) were
//! written and how many ReadyForQuery came back, and the backend's process id. Under TLS
//! the tap sits above the decryption.
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
//! Cost: clean connections pay nothing beyond the tap's header parsing. Measured by
//! `reset_tracking_cost` in `tests/postgres.rs` (release build, loopback, 2 cores): `SELECT 1`
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

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::support::redact;
use crate::backend::{Backend, MemberStatus};
use crate::config::connection::{ConnectionConfig, Host, SslMode, TlsConfig};
use crate::error::{BackendError, BackendErrorKind};
use crate::router::Role;
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

/// The PostgreSQL [`Backend`]. Cheap to clone; clones share the TLS configuration cache.
#[derive(Clone, Default)]
pub struct PostgresBackend {
    tls_cache: Arc<Mutex<HashMap<TlsConfig, CachedTls>>>,
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

/// What `reset=discard_all` runs on every return: `DISCARD ALL` as PostgreSQL documents it,
/// without `DEALLOCATE ALL` (see the module docs for why).
pub const DISCARD_ALL_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES";

/// The query behind [`status`](Backend::status): role, position (bytes since `0/0`) and
/// replay lag in seconds (see the module docs for how lag is measured).
pub const STATUS_SQL: &str = "SELECT r, \
    CASE WHEN r THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn, \
    CASE WHEN NOT r THEN 0 \
         WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
         ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END \
    FROM (SELECT pg_is_in_recovery() AS r) AS s";

/// The query behind [`write_position`](Backend::write_position): the insert position (bytes
/// since `0/0`), or the replay position on a server in recovery.
pub const WRITE_POSITION_SQL: &str = "SELECT CASE WHEN pg_is_in_recovery() \
    THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn";

/// What a returned connection goes through before it is reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetMode {
    /// Roll back an open transaction, if any (free when there is none). The default.
    #[default]
    Rollback,
    /// Also reset the whole session on every return, as `DISCARD ALL` does but keeping
    /// prepared statements ([`DISCARD_ALL_SQL`]; option `reset=discard_all`).
    DiscardAll,
}

/// The server's transaction status, from the last ReadyForQuery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block (`BEGIN` was run).
    InTransaction,
    /// In a failed transaction block: only `ROLLBACK` is accepted.
    Failed,
    /// Not known (no ReadyForQuery yet).
    Unknown,
}

/// A pooled PostgreSQL connection: derefs to [`tokio_postgres::Client`].
pub struct PgConnection {
    client: tokio_postgres::Client,
    session: Arc<Session>,
    reset: ResetMode,
    host: String,
    /// Tells the connection task, on drop, how long it may still run (see [`Closer`]).
    closer: Closer,
}

/// How long the connection task may outlive a dropped [`PgConnection`] when nothing is in
/// flight: enough to write `Terminate` and close the socket cleanly.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bounds the life of the connection task after its [`PgConnection`] is dropped.
///
/// tokio-postgres ends its connection task (sending `Terminate`, closing the socket) once
/// the client is gone *and every request written has been answered*. A connection dropped
/// with a request in flight on a link that no longer delivers (a blackholed or half-open
/// socket: exactly the connections a pool closes after a probe or reset timed out) would
/// keep its task, its socket and the server's backend alive forever, invisible to the
/// pool. So on drop: with nothing in flight the task gets [`CLOSE_GRACE`] to close cleanly;
/// with requests in flight (their answers have no reader any more) or a desynchronised tap
/// it is stopped at once, which closes the socket.
struct Closer {
    tx: Option<tokio::sync::oneshot::Sender<Duration>>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        if let Some(tx) = self.closer.tx.take() {
            let abandoned =
                self.session.in_flight() != 0 || self.session.desync.load(Ordering::Relaxed);
            let _ = tx.send(if abandoned {
                Duration::ZERO
            } else {
                CLOSE_GRACE
            });
        }
    }
}

impl PgConnection {
    /// The client.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// The client, mutably (for [`transaction`](tokio_postgres::Client::transaction)).
    pub fn client_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }

    /// The server's transaction status as of the last completed request.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.session.status()
    }

    /// Requests written whose ReadyForQuery has not been read yet.
    pub fn requests_in_flight(&self) -> i64 {
        self.session.in_flight()
    }

    /// The server process id serving this connection (`pg_backend_pid()`), from the
    /// BackendKeyData message of the startup.
    pub fn backend_pid(&self) -> i32 {
        self.session.pid.load(Ordering::Relaxed)
    }

    /// The host (`host:port` or socket directory) this connection reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The reset mode from the connection's config.
    pub fn reset_mode(&self) -> ResetMode {
        self.reset
    }
}

impl Deref for PgConnection {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("host", &self.host)
            .field("backend_pid", &self.backend_pid())
            .field("transaction_status", &self.transaction_status())
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------

impl Backend for PostgresBackend {
    type Connection = PgConnection;

    async fn connect(&self, config: &ConnectionConfig) -> Result<PgConnection, BackendError> {
        if !matches!(config.backend.as_str(), "postgres" | "postgresql") {
            return Err(BackendError::new(
                BackendErrorKind::Config,
                format!(
                    "the postgres backend cannot open `{}` connections",
                    config.backend
                ),
            ));
        }
        let opts = Options::parse(config)?;
        let tls = self.tls_connector(&config.tls)?;
        let mut failures: Vec<BackendError> = Vec::new();
        for host in &config.hosts {
            let attempt = connect_host(config, &opts, tls.clone(), host);
            let result = match opts.connect_timeout {
                Some(limit) => match tokio::time::timeout(limit, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::new(
                        BackendErrorKind::Timeout,
                        format!("connecting to {host} timed out after {limit:?} (connect_timeout)"),
                    )),
                },
                None => attempt.await,
            };
            match result {
                Ok(conn) => return Ok(conn),
                Err(e) => failures.push(e),
            }
        }
        Err(combine(failures))
    }

    async fn probe(&self, conn: &mut PgConnection) -> Result<(), BackendError> {
        conn.client
            .batch_execute("")
            .await
            .map_err(|e| pg_error(e, Stage::Use, "probe", None))?;
        conn.session.settle();
        Ok(())
    }

    fn needs_reset(&self, conn: &PgConnection) -> bool {
        conn.reset == ResetMode::DiscardAll || !conn.session.is_clean()
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), BackendError> {
        let session = Arc::clone(&conn.session);
        if !session.is_clean() {
            // Barrier: everything written before it completes first, so the status after
            // it is exact (and a rollback tokio-postgres queued for a dropped Transaction
            // is not doubled).
            conn.client.batch_execute("").await.map_err(|e| {
                pg_error(e, Stage::Use, "reset (waiting for pending requests)", None)
            })?;
            session.settle();
        }
        let rollback = session.status() != TransactionStatus::Idle;
        let sql = match (rollback, conn.reset) {
            (false, ResetMode::Rollback) => None,
            (true, ResetMode::Rollback) => Some("ROLLBACK".to_string()),
            (false, ResetMode::DiscardAll) => Some(DISCARD_ALL_SQL.to_string()),
            (true, ResetMode::DiscardAll) => Some(format!("ROLLBACK; {DISCARD_ALL_SQL}")),
        };
        if let Some(sql) = sql {
            conn.client.batch_execute(&sql).await.map_err(|e| {
                let what = match conn.reset {
                    ResetMode::Rollback => "reset (ROLLBACK)",
                    ResetMode::DiscardAll => "reset (discarding session state)",
                };
                pg_error(e, Stage::Use, what, None)
            })?;
        }
        if session.is_clean() {
            Ok(())
        } else {
            Err(BackendError::new(
                BackendErrorKind::Other,
                format!(
                    "connection still {:?} with {} request(s) in flight after reset",
                    session.status(),
                    session.in_flight()
                ),
            ))
        }
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed() || conn.session.desync.load(Ordering::Relaxed)
    }

    async fn status(&self, conn: &mut PgConnection) -> Result<Option<MemberStatus>, BackendError> {
        let row = one_row(conn, STATUS_SQL, "reading the replication status").await?;
        let bad = |what: &str| {
            BackendError::new(
                BackendErrorKind::Query,
                format!("replication status: unexpected {what} in {row:?}"),
            )
        };
        let recovering = match row.first().and_then(Option::as_deref) {
            Some("t") => true,
            Some("f") => false,
            _ => return Err(bad("pg_is_in_recovery()")),
        };
        let position = match row.get(1).ok_or_else(|| bad("row"))? {
            Some(text) => Some(parse_lsn_bytes(text).ok_or_else(|| bad("position"))?),
            None => None,
        };
        let lag = match row.get(2).ok_or_else(|| bad("row"))? {
            Some(text) => Some(parse_seconds(text).ok_or_else(|| bad("lag"))?),
            None => None,
        };
        Ok(Some(MemberStatus {
            role: if recovering {
                Role::Replica
            } else {
                Role::Primary
            },
            lag,
            position,
        }))
    }

    async fn write_position(&self, conn: &mut PgConnection) -> Result<Option<u64>, BackendError> {
        let row = one_row(conn, WRITE_POSITION_SQL, "reading the write position").await?;
        match row.first() {
            Some(Some(text)) => parse_lsn_bytes(text).map(Some).ok_or_else(|| {
                BackendError::new(
                    BackendErrorKind::Query,
                    format!("write position: unexpected value `{text}`"),
                )
            }),
            _ => Ok(None),
        }
    }
}

/// Run `sql` as a simple query (one round trip) and answer the text of its one row.
async fn one_row(
    conn: &mut PgConnection,
    sql: &str,
    what: &str,
) -> Result<Vec<Option<String>>, BackendError> {
    let messages = conn
        .client
        .simple_query(sql)
        .await
        .map_err(|e| pg_error(e, Stage::Use, what, None))?;
    // A completed simple query is a barrier: nothing written before it is in flight.
    conn.session.settle();
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .ok_or_else(|| BackendError::new(BackendErrorKind::Query, format!("{what}: no row")))
}

/// A `pg_lsn - '0/0'` numeric (`"23456"`, possibly with a zero fraction), or a `pg_lsn` in
/// its `X/Y` hex form, as bytes since `0/0`.
fn parse_lsn_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some((hi, lo)) = text.split_once('/') {
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return None;
        }
        return Some((hi << 32) | lo);
    }
    let whole = match text.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => text,
    };
    whole.parse().ok()
}

/// A non-negative number of seconds (`"0"`, `"1.234567"`), as a duration.
fn parse_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

/// One error for all hosts tried: the only one, or a summary whose kind is the first
/// non-retryable kind seen (else the last kind).
fn combine(mut failures: Vec<BackendError>) -> BackendError {
    if failures.len() == 1 {
        return failures.pop().expect("one");
    }
    if failures.is_empty() {
        return BackendError::new(BackendErrorKind::Config, "no host to connect to");
    }
    let kind = failures
        .iter()
        .find(|e| !e.is_retryable())
        .or(failures.last())
        .map(BackendError::kind)
        .unwrap_or(BackendErrorKind::Connect);
    let text: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
    BackendError::new(
        kind,
        format!("no host accepted the connection: {}", text.join("; ")),
    )
}

async fn connect_host(
    config: &ConnectionConfig,
    opts: &Options,
    tls: Option<MakeRustlsConnect>,
    host: &Host,
) -> Result<PgConnection, BackendError> {
    let unix = host.host.starts_with('/');
    let where_ = if unix {
        format!("{}/.s.PGSQL.{}", host.host, host.port)
    } else {
        host.to_string()
    };
    let password = config.password.as_ref();

    let mut pg = tokio_postgres::Config::new();
    if let Some(user) = &config.user {
        pg.user(user);
    }
    if let Some(pw) = password {
        pg.password(pw.expose());
    }
    if let Some(db) = &config.database {
        pg.dbname(db);
    }
    if let Some(app) = &config.application_name {
        pg.application_name(app);
    }
    if let Some(o) = &opts.server_options {
        pg.options(o);
    }
    let mode = if unix {
        SslMode::Disable
    } else {
        config.tls.mode
    };
    pg.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });

    let socket = if unix {
        UnixStream::connect(&where_)
            .await
            .map(Socket::Unix)
            .map_err(|e| io_error(e, &where_))?
    } else {
        Socket::Tcp(tcp_connect(host).await?)
    };

    let session = Arc::new(Session::new());
    let tap = Tap::new(socket, Arc::clone(&session), mode != SslMode::Disable);
    let tls = match (mode, tls) {
        (SslMode::Disable, _) | (_, None) => None,
        (_, Some(mut make)) => Some(
            <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::make_tls_connect(
                &mut make, &host.host,
            )
            .map_err(|e| {
                BackendError::new(
                    BackendErrorKind::Config,
                    format!("`{}` is not a valid TLS server name: {e}", host.host),
                )
            })?,
        ),
    };
    let connector = TapTls {
        inner: tls,
        session: Arc::clone(&session),
    };
    let user = config.user.as_deref().unwrap_or("<default>");
    let (client, connection) = pg.connect_raw(tap, connector).await.map_err(|e| {
        pg_error(
            e,
            Stage::Connect,
            &format!("connecting to {where_} as {user}"),
            password,
        )
    })?;
    let label = where_.clone();
    let (closer, closing) = tokio::sync::oneshot::channel::<Duration>();
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            ended = &mut connection => Some(ended),
            grace = closing => {
                // The PgConnection was dropped: finish within the grace it allows.
                let grace = grace.unwrap_or(Duration::ZERO);
                tokio::time::timeout(grace, &mut connection).await.ok()
            }
        };
        match ended {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::debug!(host = %label, error = %e, "postgres connection ended with an error")
            }
            None => {
                tracing::debug!(host = %label, "postgres connection dropped with requests unanswered; socket closed")
            }
        }
    });

    let conn = PgConnection {
        client,
        session,
        reset: opts.reset,
        host: where_,
        closer: Closer { tx: Some(closer) },
    };
    if opts.read_write {
        let rows = conn
            .client
            .simple_query("SHOW transaction_read_only")
            .await
            .map_err(|e| pg_error(e, Stage::Connect, "checking target_session_attrs", None))?;
        let read_only = rows.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0) == Some("on"),
            _ => false,
        });
        if read_only {
            return Err(BackendError::new(
                BackendErrorKind::Connect,
                format!(
                    "{} is read-only (target_session_attrs=read-write)",
                    conn.host
                ),
            ));
        }
    }
    Ok(conn)
}

async fn tcp_connect(host: &Host) -> Result<TcpStream, BackendError> {
    let where_ = host.to_string();
    let addrs = tokio::net::lookup_host((host.host.as_str(), host.port))
        .await
        .map_err(|e| io_error(e, &where_))?;
    let mut last: Option<io::Error> = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let attempt = async {
            let socket = socket?;
            socket.set_keepalive(true)?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, io::Error>(stream)
        };
        match attempt.await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(io_error(
        last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found")),
        &where_,
    ))
}

fn io_error(e: io::Error, where_: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Connect,
        format!("cannot connect to {where_}: {e}"),
    )
    .with_source(e)
}

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Options {
    connect_timeout: Option<Duration>,
    server_options: Option<String>,
    reset: ResetMode,
    read_write: bool,
}

const KNOWN_OPTIONS: &str =
    "connect_timeout, statement_timeout, options, reset, target_session_attrs";

impl Options {
    fn parse(config: &ConnectionConfig) -> Result<Options, BackendError> {
        let bad = |key: &str, why: String| {
            BackendError::new(BackendErrorKind::Config, format!("option `{key}` {why}"))
        };
        let mut o = Options::default();
        let mut server: Vec<String> = Vec::new();
        for (key, value) in &config.options {
            let value = value.trim();
            match key.as_str() {
                "connect_timeout" => {
                    let d = parse_duration(value, Duration::from_secs(1)).ok_or_else(|| {
                        bad(
                            key,
                            format!("`{value}` is not a duration (e.g. `5`, `500ms`, `2s`)"),
                        )
                    })?;
                    o.connect_timeout = (!d.is_zero()).then_some(d);
                }
                "statement_timeout" => {
                    if parse_duration(value, Duration::from_millis(1)).is_none() {
                        return Err(bad(
                            key,
                            format!("`{value}` is not a duration (e.g. `5000`, `5s`, `1min`)"),
                        ));
                    }
                    server.push(format!("-c statement_timeout={value}"));
                }
                "options" => server.push(value.to_string()),
                "reset" => {
                    o.reset = match value {
                        "rollback" => ResetMode::Rollback,
                        "discard_all" | "discard-all" => ResetMode::DiscardAll,
                        _ => {
                            return Err(bad(
                                key,
                                format!("`{value}` is not one of rollback, discard_all"),
                            ))
                        }
                    }
                }
                "target_session_attrs" => {
                    o.read_write = match value {
                        "any" => false,
                        "read-write" => true,
                        _ => {
                            return Err(bad(
                                key,
                                format!("`{value}` is not one of any, read-write"),
                            ))
                        }
                    }
                }
                _ => {
                    return Err(bad(
                        key,
                        format!("is not known to the postgres backend (known: {KNOWN_OPTIONS})"),
                    ))
                }
            }
        }
        if !server.is_empty() {
            o.server_options = Some(server.join(" "));
        }
        Ok(o)
    }
}

/// `"5"` (in `unit`s), `"500ms"`, `"2s"`, `"1min"`, `"1h"`, `"1d"`, `"100us"`.
fn parse_duration(s: &str, unit: Duration) -> Option<Duration> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let per = match &s[digits..] {
        "" => unit,
        "us" => Duration::from_micros(1),
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        _ => return None,
    };
    per.checked_mul(u32::try_from(n).ok()?)
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct CachedTls {
    stamp: Vec<Option<(SystemTime, u64)>>,
    connector: MakeRustlsConnect,
}

fn file_stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path?).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl PostgresBackend {
    /// The rustls connector for `tls` (None for `disable`), cached until a file changes.
    fn tls_connector(&self, tls: &TlsConfig) -> Result<Option<MakeRustlsConnect>, BackendError> {
        if tls.mode == SslMode::Disable {
            return Ok(None);
        }
        let stamp = vec![
            file_stamp(tls.ca_file.as_deref()),
            file_stamp(tls.client_cert.as_deref()),
            file_stamp(tls.client_key.as_deref()),
        ];
        if let Some(c) = self.tls_cache.lock().get(tls) {
            if c.stamp == stamp {
                return Ok(Some(c.connector.clone()));
            }
        }
        let connector = MakeRustlsConnect::new(client_config(tls)?);
        self.tls_cache.lock().insert(
            tls.clone(),
            CachedTls {
                stamp,
                connector: connector.clone(),
            },
        );
        Ok(Some(connector))
    }
}

fn tls_config_error(what: impl fmt::Display) -> BackendError {
    BackendError::new(
        BackendErrorKind::Config,
        format!("TLS configuration: {what}"),
    )
}

fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, BackendError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?;
    let roots = || -> Result<Arc<rustls::RootCertStore>, BackendError> {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        tls_config_error(format!("bad CA certificate in {}: {e}", path.display()))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(Arc::new(roots))
    };
    let webpki = |roots| {
        WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(tls_config_error)
    };
    let builder = match (tls.mode, &tls.ca_file) {
        (SslMode::VerifyFull, _) => builder.with_webpki_verifier(webpki(roots()?)?),
        // libpq: an explicit root certificate makes prefer/require verify the chain.
        (_, Some(_)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(roots()?)?))),
        (_, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone()))),
    };
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| tls_config_error(format!("client certificate/key: {e}"))),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    let pem = std::fs::read(path)
        .map_err(|e| tls_config_error(format!("cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_config_error(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_config_error(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, BackendError> {
    let pem = std::fs::read(path)
        .map_err(|e| tls_config_error(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| tls_config_error(format!("bad PEM in {}: {e}", path.display())))?
        .ok_or_else(|| tls_config_error(format!("no private key in {}", path.display())))
}

/// `sslmode=prefer/require` without a root certificate: any certificate is accepted (no
/// authentication of the server, as in libpq), but handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// *verify-ca*: the chain must verify against the roots; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::TlsConnect;
type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<Tap<Socket>>>::Stream;

/// Hands tokio-postgres a TLS stream with a tap above the decryption.
struct TapTls {
    inner: Option<RustlsConnect>,
    session: Arc<Session>,
}

impl TlsConnect<Tap<Socket>> for TapTls {
    type Stream = Tap<RustlsStream>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: Tap<Socket>) -> Self::Future {
        Box::pin(async move {
            let inner = self.inner.ok_or("TLS is not configured")?;
            let tls = inner.connect(stream).await?;
            Ok(Tap::over_tls(tls, self.session))
        })
    }
}

// ---------------------------------------------------------------------------------------
// The socket and the wire tap
// ---------------------------------------------------------------------------------------

/// A TCP or Unix-domain socket.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

const STATUS_IDLE: u8 = b'I';
const STATUS_IN_TRANSACTION: u8 = b'T';
const STATUS_FAILED: u8 = b'E';

/// What the tap learned about one connection. Written only by the connection task (which
/// does all reads and writes), read by the pool.
#[derive(Debug)]
struct Session {
    /// Requests written that the server answers with exactly one ReadyForQuery (`Query`,
    /// `Sync`), plus one for the startup.
    sent: AtomicU64,
    /// ReadyForQuery messages read.
    ready: AtomicU64,
    /// Added to `sent - ready` once a barrier proved nothing is in flight.
    correction: AtomicI64,
    /// Status byte of the last ReadyForQuery; 0 before the first.
    status: AtomicU8,
    /// Backend process id, from BackendKeyData.
    pid: AtomicI32,
    /// The tap lost the message framing: the connection must not be reused.
    desync: AtomicBool,
}

impl Session {
    fn new() -> Self {
        Session {
            sent: AtomicU64::new(1),
            ready: AtomicU64::new(0),
            correction: AtomicI64::new(0),
            status: AtomicU8::new(0),
            pid: AtomicI32::new(0),
            desync: AtomicBool::new(false),
        }
    }

    /// Requests written and not answered with a ReadyForQuery yet. Reads `ready` first, so
    /// a race with the connection task can only over-count (which costs a barrier).
    fn in_flight(&self) -> i64 {
        let ready = self.ready.load(Ordering::Acquire) as i64;
        let sent = self.sent.load(Ordering::Acquire) as i64;
        sent + self.correction.load(Ordering::Acquire) - ready
    }

    fn status(&self) -> TransactionStatus {
        match self.status.load(Ordering::Acquire) {
            STATUS_IDLE => TransactionStatus::Idle,
            STATUS_IN_TRANSACTION => TransactionStatus::InTransaction,
            STATUS_FAILED => TransactionStatus::Failed,
            _ => TransactionStatus::Unknown,
        }
    }

    /// Idle, nothing in flight: nothing to reset.
    fn is_clean(&self) -> bool {
        self.in_flight() == 0 && self.status.load(Ordering::Acquire) == STATUS_IDLE
    }

    /// After a barrier completed: nothing written before it is still in flight.
    fn settle(&self) {
        let ready = self.ready.load(Ordering::Acquire) as i64;
        let sent = self.sent.load(Ordering::Acquire) as i64;
        self.correction.store(ready - sent, Ordering::Release);
    }
}

/// Follows the framing of PostgreSQL protocol messages in one direction: a 1-byte tag
/// and a 4-byte big-endian length counting itself, then the body (skipped, except its first
/// bytes). The first messages of a connection (SSLRequest, StartupMessage) have no tag.
#[derive(Default)]
struct Framer {
    /// Untagged messages still expected.
    untagged: u8,
    header: [u8; 5],
    have: usize,
    in_body: bool,
    tag: u8,
    left: usize,
    capture: [u8; 8],
    captured: usize,
}

enum Frame {
    Start(u8),
    End(u8),
}

impl Framer {
    /// Feed bytes in stream order; `on` sees each message's start and end (with the first
    /// bytes of its body). `Err` on an impossible length.
    fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(Frame, &[u8])) -> Result<(), ()> {
        loop {
            if !self.in_body {
                if data.is_empty() {
                    return Ok(());
                }
                let need = if self.untagged > 0 { 4 } else { 5 };
                let take = (need - self.have).min(data.len());
                self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < need {
                    return Ok(());
                }
                let (tag, len) = if self.untagged > 0 {
                    self.untagged -= 1;
                    (0, &self.header[..4])
                } else {
                    (self.header[0], &self.header[1..5])
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                if len < 4 {
                    return Err(());
                }
                self.tag = tag;
                self.left = len as usize - 4;
                self.have = 0;
                self.captured = 0;
                self.in_body = true;
                on(Frame::Start(tag), &[]);
            }
            if self.left > 0 {
                if data.is_empty() {
                    return Ok(());
                }
                let take = self.left.min(data.len());
                let keep = (self.capture.len() - self.captured).min(take);
                self.capture[self.captured..self.captured + keep].copy_from_slice(&data[..keep]);
                self.captured += keep;
                self.left -= take;
                data = &data[take..];
            }
            if self.left == 0 {
                self.in_body = false;
                on(Frame::End(self.tag), &self.capture[..self.captured]);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LastExecute {
    Simple,
    Extended,
}

/// A stream that watches the PostgreSQL messages passing through it (see the module docs)
/// and updates a [`Session`]. Bytes pass unchanged.
struct Tap<S> {
    inner: S,
    session: Arc<Session>,
    rx: Framer,
    tx: Framer,
    /// The next byte read answers an SSLRequest.
    ssl_answer_pending: bool,
    /// Stop watching: the stream is encrypted from here (a tap above TLS takes over) or the
    /// framing was lost.
    passthrough: bool,
    last_execute: LastExecute,
    /// `Sync`s written since the last `Execute` (ignored by the server in copy-in mode).
    syncs_since_execute: u64,
}

impl<S> Tap<S> {
    /// On the raw socket: the first message written is an SSLRequest when `ssl_request`,
    /// else the StartupMessage.
    fn new(inner: S, session: Arc<Session>, ssl_request: bool) -> Self {
        Tap {
            inner,
            session,
            rx: Framer::default(),
            tx: Framer {
                untagged: 1,
                ..Framer::default()
            },
            ssl_answer_pending: ssl_request,
            passthrough: false,
            last_execute: LastExecute::Simple,
            syncs_since_execute: 0,
        }
    }

    /// Above TLS: the first message written is the StartupMessage.
    fn over_tls(inner: S, session: Arc<Session>) -> Self {
        Self::new(inner, session, false)
    }

    fn lost_framing(&mut self) {
        self.passthrough = true;
        self.session.desync.store(true, Ordering::Release);
    }

    fn observe_read(&mut self, mut data: &[u8]) {
        if self.passthrough || data.is_empty() {
            return;
        }
        if self.ssl_answer_pending {
            self.ssl_answer_pending = false;
            if data[0] == b'S' {
                // TLS from here: the tap over the TLS stream watches the plaintext.
                self.passthrough = true;
                return;
            }
            // 'N': the StartupMessage follows in plaintext.
            self.tx.untagged = 1;
            data = &data[1..];
        }
        let session = &self.session;
        let ok = self.rx.feed(data, |frame, body| match frame {
            Frame::End(b'Z') if !body.is_empty() => {
                session.status.store(body[0], Ordering::Release);
                session.ready.fetch_add(1, Ordering::AcqRel);
            }
            Frame::End(b'K') if body.len() >= 4 => {
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                session.pid.store(pid, Ordering::Relaxed);
            }
            _ => {}
        });
        if ok.is_err() {
            self.lost_framing();
        }
    }

    fn observe_write(&mut self, data: &[u8]) {
        if self.passthrough || data.is_empty() {
            return;
        }
        let session = &self.session;
        let last_execute = &mut self.last_execute;
        let syncs = &mut self.syncs_since_execute;
        let ok = self.tx.feed(data, |frame, _| match frame {
            Frame::Start(b'Q') => {
                session.sent.fetch_add(1, Ordering::AcqRel);
                *last_execute = LastExecute::Simple;
            }
            Frame::Start(b'E') => {
                *last_execute = LastExecute::Extended;
                *syncs = 0;
            }
            Frame::Start(b'S') => {
                session.sent.fetch_add(1, Ordering::AcqRel);
                if *last_execute == LastExecute::Extended {
                    *syncs += 1;
                }
            }
            // CopyDone / CopyFail: a Sync written after the Execute that started an
            // extended-protocol COPY FROM STDIN was ignored by the server.
            Frame::Start(b'c' | b'f') => {
                if *last_execute == LastExecute::Extended && *syncs > 0 {
                    session.sent.fetch_sub(*syncs, Ordering::AcqRel);
                }
                *syncs = 0;
            }
            _ => {}
        });
        if ok.is_err() {
            self.lost_framing();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.observe_read(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.observe_write(&buf[..n]);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tap<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Opening the connection.
    Connect,
    /// Using an open connection (probe, reset).
    Use,
}

/// A [`BackendError`] for a tokio-postgres error: classified, described with its whole
/// source chain, scrubbed of the password.
fn pg_error(
    e: tokio_postgres::Error,
    stage: Stage,
    what: &str,
    password: Option<&Secret>,
) -> BackendError {
    let kind = classify(&e, stage);
    let message = redact(&format!("{what}: {}", describe(&e)), password);
    BackendError::new(kind, message).with_source(e)
}

fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// Every error in the source chain, looking inside `io::Error`s too (their `source()`
/// skips the wrapped error).
fn chain<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    out
}

fn classify(e: &tokio_postgres::Error, stage: Stage) -> BackendErrorKind {
    use BackendErrorKind as K;
    let lost = if stage == Stage::Connect {
        K::Connect
    } else {
        K::Closed
    };
    if let Some(code) = e.code() {
        return match code {
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *c == SqlState::INSUFFICIENT_PRIVILEGE && stage == Stage::Connect =>
            {
                K::Auth
            }
            c if *c == SqlState::INVALID_CATALOG_NAME && stage == Stage::Connect => K::Config,
            c if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW => {
                K::Connect
            }
            c if *c == SqlState::QUERY_CANCELED => K::Timeout,
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || c.code().starts_with("08") =>
            {
                lost
            }
            _ if stage == Stage::Connect => K::Connect,
            _ => K::Query,
        };
    }
    if e.is_closed() {
        return lost;
    }
    for cause in chain(e) {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType => K::Config,
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::CertificateRequired
                    | rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::CertificateRevoked
                    | rustls::AlertDescription::CertificateExpired
                    | rustls::AlertDescription::AccessDenied,
                ) => K::Auth,
                _ => K::Connect,
            };
        }
    }
    let text = describe(e);
    if text.contains("server does not support TLS") || text.starts_with("invalid configuration") {
        K::Config
    } else if text.starts_with("authentication error") {
        K::Auth
    } else if text.starts_with("timeout waiting for server") {
        K::Timeout
    } else if chain(e).iter().any(|c| c.is::<io::Error>()) {
        lost
    } else if stage == Stage::Connect {
        K::Connect
    } else {
        K::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(f: &mut Framer, chunks: &[&[u8]]) -> Vec<(char, Vec<u8>)> {
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, |frame, body| {
                if let Frame::End(t) = frame {
                    out.push((t as char, body.to_vec()));
                }
            })
            .unwrap();
        }
        out
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn framer_follows_messages_split_anywhere() {
        let mut stream = Vec::new();
        stream.extend(msg(b'C', b"SELECT 1\0"));
        stream.extend(msg(b'Z', b"T"));
        stream.extend(msg(b'K', &[0, 0, 0, 42, 1, 2, 3, 4]));
        stream.extend(msg(b'I', b""));
        for split in 0..stream.len() {
            let mut f = Framer::default();
            let got = feed_all(&mut f, &[&stream[..split], &stream[split..]]);
            let tags: String = got.iter().map(|(t, _)| *t).collect();
            assert_eq!(tags, "CZKI", "split at {split}");
            assert_eq!(got[1].1, b"T");
            assert_eq!(&got[2].1[..4], &[0, 0, 0, 42]);
        }
        // Byte by byte.
        let mut f = Framer::default();
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed_all(&mut f, &chunks).len(), 4);
    }

    #[test]
    fn framer_handles_untagged_startup_and_rejects_bad_lengths() {
        let mut f = Framer {
            untagged: 1,
            ..Framer::default()
        };
        let mut stream = 8i32.to_be_bytes().to_vec();
        stream.extend_from_slice(&80877103i32.to_be_bytes());
        stream.extend(msg(b'Q', b"BEGIN\0"));
        let got = feed_all(&mut f, &[&stream]);
        assert_eq!(
            got.iter().map(|(t, _)| *t as u32).collect::<Vec<_>>(),
            [0, 'Q' as u32]
        );
        let mut f = Framer::default();
        assert!(f.feed(&[b'Z', 0, 0, 0, 1], |_, _| {}).is_err());
    }

    fn tap() -> Tap<tokio::io::Empty> {
        let mut t = Tap::new(tokio::io::empty(), Arc::new(Session::new()), false);
        // Past the startup: StartupMessage written, ReadyForQuery read.
        t.tx.untagged = 0;
        t.observe_read(&msg(b'Z', b"I"));
        t
    }

    #[test]
    fn session_tracks_status_and_requests_in_flight() {
        let mut t = tap();
        assert!(t.session.is_clean());
        t.observe_write(&msg(b'Q', b"BEGIN\0"));
        assert_eq!(t.session.in_flight(), 1);
        assert!(!t.session.is_clean());
        t.observe_read(&[msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat());
        assert_eq!(t.session.in_flight(), 0);
        assert_eq!(t.session.status(), TransactionStatus::InTransaction);
        // Extended protocol: Parse/Bind/Execute/Sync, one ReadyForQuery.
        let batch = [
            msg(b'P', b"\0COMMIT\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        t.observe_write(&batch);
        assert_eq!(t.session.in_flight(), 1);
        t.observe_read(&[msg(b'2', b""), msg(b'C', b"COMMIT\0"), msg(b'Z', b"I")].concat());
        assert!(t.session.is_clean());
    }

    #[test]
    fn extended_copy_in_sync_is_not_counted() {
        let mut t = tap();
        // copy_in: Bind, Execute, Sync (ignored in copy-in mode), data, CopyDone, Sync.
        t.observe_write(
            &[
                msg(b'B', b"\0\0\0\0\0\0\0\0"),
                msg(b'E', b"\0\0\0\0\0"),
                msg(b'S', b""),
            ]
            .concat(),
        );
        t.observe_read(&[msg(b'2', b""), msg(b'G', b"\0\0\0")].concat());
        t.observe_write(&[msg(b'd', b"1\n"), msg(b'c', b""), msg(b'S', b"")].concat());
        assert_eq!(t.session.in_flight(), 1);
        t.observe_read(&[msg(b'C', b"COPY 1\0"), msg(b'Z', b"I")].concat());
        assert!(t.session.is_clean());
    }

    #[test]
    fn ssl_answer_switches_to_passthrough_or_plaintext_startup() {
        let session = Arc::new(Session::new());
        let mut t = Tap::new(tokio::io::empty(), Arc::clone(&session), true);
        let mut ssl_request = 8i32.to_be_bytes().to_vec();
        ssl_request.extend_from_slice(&80877103i32.to_be_bytes());
        t.observe_write(&ssl_request);
        t.observe_read(b"S");
        assert!(t.passthrough);
        t.observe_read(b"\x16\x03\x03garbage that is TLS");
        assert!(!session.desync.load(Ordering::Relaxed));

        let mut t = Tap::new(tokio::io::empty(), Arc::new(Session::new()), true);
        t.observe_write(&ssl_request);
        t.observe_read(b"N");
        let mut startup = 9i32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196608i32.to_be_bytes());
        startup.push(0);
        t.observe_write(&startup);
        t.observe_read(
            &[
                msg(b'R', &[0, 0, 0, 0]),
                msg(b'K', &[0, 0, 1, 0, 9, 9, 9, 9]),
                msg(b'Z', b"I"),
            ]
            .concat(),
        );
        assert!(t.session.is_clean());
        assert_eq!(t.session.pid.load(Ordering::Relaxed), 256);
    }

    #[test]
    fn lsn_positions_and_lag_seconds_parse() {
        assert_eq!(parse_lsn_bytes("0"), Some(0));
        assert_eq!(parse_lsn_bytes("50331648"), Some(50_331_648));
        assert_eq!(parse_lsn_bytes("50331648.000"), Some(50_331_648));
        assert_eq!(parse_lsn_bytes("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_lsn_bytes("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn_bytes("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn_bytes("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        for bad in [
            "",
            "-1",
            "1.5",
            "x/1",
            "1/100000000",
            "18446744073709551616",
        ] {
            assert_eq!(parse_lsn_bytes(bad), None, "{bad}");
        }
        assert_eq!(parse_seconds("0"), Some(Duration::ZERO));
        assert_eq!(parse_seconds("1.250000"), Some(Duration::from_millis(1250)));
        assert_eq!(parse_seconds("-0.5"), None);
        assert_eq!(parse_seconds("NaN"), None);
        assert_eq!(parse_seconds("soon"), None);
    }

    #[test]
    fn options_are_parsed_and_unknown_ones_rejected() {
        let cfg = ConnectionConfig::parse(
            "postgres://u@h/db?connect_timeout=3&statement_timeout=5s&reset=discard_all&options=-c%20search_path%3Dapp",
        )
        .unwrap();
        let o = Options::parse(&cfg).unwrap();
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(o.reset, ResetMode::DiscardAll);
        assert_eq!(
            o.server_options.as_deref(),
            Some("-c search_path=app -c statement_timeout=5s")
        );
        for bad in [
            "connect_timeout=soon",
            "statement_timeout=5 s;drop",
            "reset=sometimes",
            "statment_timeout=5s",
            "target_session_attrs=primary",
        ] {
            let cfg = ConnectionConfig::parse(&format!("postgres://u@h/db?{bad}")).unwrap();
            let e = Options::parse(&cfg).unwrap_err();
            assert_eq!(e.kind(), BackendErrorKind::Config, "{bad}: {e}");
        }
        assert_eq!(
            parse_duration("500ms", Duration::from_secs(1)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("0", Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_duration("1min", Duration::from_secs(1)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_duration("ms", Duration::from_secs(1)), None);
    }
}
