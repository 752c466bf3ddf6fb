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
//! **TLS** (`rediss://`, or `sslmode=require` / `verify-full`) is refused with a
//! [`Config`](BackendErrorKind::Config) error: redis-rs is built with `tokio-comp` only,
//! without a TLS feature (`tokio-rustls-comp`). `prefer` (the default) connects in clear
//! text, since Redis has no TLS negotiation.
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
//! let tls = ConnectionConfig::parse("rediss://:s3cret@cache:6380/0").unwrap();
//! let err = backend.connect(&tls).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Config);
//!
//! let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let url = format!("redis://:s3cret@127.0.0.1:{closed_port}/2");
//! let err = backend.connect(&ConnectionConfig::parse(&url).unwrap()).await.unwrap_err();
//! assert_eq!(err.kind(), BackendErrorKind::Connect);
//! assert!(!format!("{err} {err:?}").contains("s3cret"));
//! # });
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    Value,
};
use tokio::net::TcpStream;

use super::support::redact;
use crate::backend::{Backend, MemberStatus};
use crate::config::connection::{ConnectionConfig, Host, SslMode};
use crate::error::{BackendError, BackendErrorKind};
use crate::router::Role;

/// The Redis [`Backend`]. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct RedisBackend {
    _priv: (),
}

impl RedisBackend {
    /// A Redis backend.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a connect needs, checked and parsed from a [`ConnectionConfig`].
struct Settings {
    info: RedisConnectionInfo,
    db: i64,
    name: Option<String>,
    response_timeout: Option<Duration>,
}

fn config_error(field: &str, reason: impl fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Config, format!("`{field}` {reason}"))
}

impl Settings {
    fn from_config(cfg: &ConnectionConfig) -> Result<Self, BackendError> {
        if cfg.backend != "redis" {
            return Err(config_error(
                "connection.backend",
                format!("is `{}`, not `redis`", cfg.backend),
            ));
        }
        if matches!(cfg.tls.mode, SslMode::Require | SslMode::VerifyFull) {
            return Err(config_error(
                "connection.tls.mode",
                "asks for TLS, but redis-rs is built without a TLS feature \
                 (it needs `tokio-rustls-comp`)",
            ));
        }
        let db = match cfg.database.as_deref() {
            None | Some("") => 0,
            Some(d) => d.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                config_error(
                    "connection.database",
                    format!("`{d}` is not a database number"),
                )
            })?,
        };
        let name = match cfg.application_name.as_deref() {
            Some(n) if n.is_empty() || n.chars().any(|c| c.is_whitespace()) => {
                return Err(config_error(
                    "connection.application_name",
                    "must be non-empty and contain no spaces for CLIENT SETNAME",
                ))
            }
            other => other.map(str::to_owned),
        };
        let response_timeout =
            match cfg.options.get("response_timeout") {
                None => None,
                Some(v) => Some(humantime_serde::re::humantime::parse_duration(v).map_err(
                    |e| config_error("connection.options.response_timeout", format!("`{v}`: {e}")),
                )?)
                .filter(|d| !d.is_zero()),
            };
        let mut info = RedisConnectionInfo::default().set_db(db);
        if let Some(user) = &cfg.user {
            info = info.set_username(user);
        }
        if let Some(pw) = &cfg.password {
            info = info.set_password(pw.expose());
        }
        Ok(Self {
            info,
            db,
            name,
            response_timeout,
        })
    }
}

fn classify(e: &RedisError) -> BackendErrorKind {
    let text = e.to_string();
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || text.contains("NOAUTH")
        || text.contains("WRONGPASS")
        || text.contains("Authentication required")
    {
        BackendErrorKind::Auth
    } else if e.kind() == ErrorKind::InvalidClientConfig
        || text.contains("refused to switch database")
    {
        BackendErrorKind::Config
    } else if e.is_timeout() {
        BackendErrorKind::Timeout
    } else {
        BackendErrorKind::Connect
    }
}

async fn open(
    host: &Host,
    settings: &Settings,
    cfg: &ConnectionConfig,
) -> Result<RedisConnection, BackendError> {
    let redis_err = |e: RedisError| {
        let kind = classify(&e);
        let text = redact(&e.to_string(), cfg.password.as_ref());
        BackendError::new(kind, format!("redis at {host}: {text}")).with_source(e)
    };
    let stream = TcpStream::connect((host.host.as_str(), host.port))
        .await
        .map_err(|e| {
            BackendError::new(
                BackendErrorKind::Connect,
                format!("cannot connect to redis at {host}: {e}"),
            )
            .with_source(e)
        })?;
    let _ = stream.set_nodelay(true);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(None)
        .set_response_timeout(settings.response_timeout);
    let (conn, driver) = MultiplexedConnection::new_with_config(&settings.info, stream, config)
        .await
        .map_err(redis_err)?;
    let closed = Arc::new(AtomicBool::new(false));
    let driver = {
        let closed = Arc::clone(&closed);
        tokio::spawn(async move {
            driver.await;
            closed.store(true, Ordering::Release);
        })
    };
    let mut conn = RedisConnection {
        conn,
        driver: driver.abort_handle(),
        closed,
        db: settings.db,
        state: State::default(),
    };
    // One round trip proves the credentials (the handshake does not when no database is
    // selected) and names the connection.
    let hello = match &settings.name {
        Some(name) => {
            let mut c = ::redis::cmd("CLIENT");
            c.arg("SETNAME").arg(name);
            c
        }
        None => ::redis::cmd("PING"),
    };
    hello
        .query_async::<Value>(&mut conn)
        .await
        .map_err(redis_err)?;
    Ok(conn)
}

impl Backend for RedisBackend {
    type Connection = RedisConnection;

    async fn connect(&self, cfg: &ConnectionConfig) -> Result<RedisConnection, BackendError> {
        let settings = Settings::from_config(cfg)?;
        let mut last = None;
        for host in &cfg.hosts {
            match open(host, &settings, cfg).await {
                Ok(conn) => return Ok(conn),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| config_error("connection.hosts", "is empty")))
    }

    async fn probe(&self, conn: &mut RedisConnection) -> Result<(), BackendError> {
        let pong: String = ::redis::cmd("PING")
            .query_async(conn)
            .await
            .map_err(|e| command_error("PING", &e, conn))?;
        if pong != "PONG" {
            return Err(BackendError::new(
                BackendErrorKind::Query,
                format!("PING answered `{pong}`"),
            ));
        }
        Ok(())
    }

    fn needs_reset(&self, conn: &RedisConnection) -> bool {
        conn.needs_reset()
    }

    async fn reset(&self, conn: &mut RedisConnection) -> Result<(), BackendError> {
        conn.reset().await
    }

    fn is_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.is_broken()
    }

    /// `ROLE`: primary or replica, and the replication offset (a primary's
    /// `master_repl_offset`, a replica's processed offset). Redis reports no replay lag in
    /// time, so `lag` is `None`; read-your-writes compares offsets.
    async fn status(
        &self,
        conn: &mut RedisConnection,
    ) -> Result<Option<MemberStatus>, BackendError> {
        let reply: Value = ::redis::cmd("ROLE")
            .query_async(conn)
            .await
            .map_err(|e| command_error("ROLE", &e, conn))?;
        parse_role(&reply)
            .map(Some)
            .map_err(|why| BackendError::new(BackendErrorKind::Query, format!("ROLE: {why}")))
    }

    /// After a write on a primary, its replication offset covers the write: a replica
    /// that has processed that offset has seen it.
    async fn write_position(
        &self,
        conn: &mut RedisConnection,
    ) -> Result<Option<u64>, BackendError> {
        Ok(self.status(conn).await?.and_then(|s| s.position))
    }
}

/// Read a `ROLE` reply: `["master", offset, replicas]` or
/// `["slave", host, port, state, offset]` (offset -1 before the first sync).
fn parse_role(reply: &Value) -> Result<MemberStatus, String> {
    let Value::Array(items) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(i)) => Some(*i),
        other => text(other).and_then(|t| t.parse().ok()),
    };
    let (role, offset) = match text(items.first()).as_deref() {
        Some("master") => (Role::Primary, int(items.get(1))),
        Some("slave") => (Role::Replica, int(items.get(4))),
        other => return Err(format!("unexpected role {other:?}")),
    };
    let offset = offset.ok_or_else(|| format!("no replication offset in {reply:?}"))?;
    Ok(MemberStatus {
        role,
        lag: None,
        position: u64::try_from(offset).ok(),
    })
}

fn command_error(what: &str, e: &RedisError, conn: &RedisConnection) -> BackendError {
    let kind = if conn.is_broken() {
        BackendErrorKind::Closed
    } else {
        BackendErrorKind::Query
    };
    // Command errors echo no credentials, but `redact` costs nothing here.
    BackendError::new(
        kind,
        format!("{what} failed: {}", redact(&e.to_string(), None)),
    )
    .with_source(e.clone())
}

/// Connection state the pool must know about, updated as commands go out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct State {
    /// A command or pipeline is being sent or awaited (left set if its future was dropped).
    in_flight: bool,
    /// The connection must not be reused (see [`RedisConnection::is_broken`]).
    poisoned: bool,
    /// A `MULTI` may be open.
    multi: bool,
    /// A `WATCH` may be active.
    watching: bool,
    /// A `SELECT` was sent: the database may differ from the configured one.
    db_changed: bool,
}

/// Sets `in_flight` for as long as it lives; dropping it without [`done`](Self::done)
/// (the command future was dropped) leaves the connection marked, for good.
struct InFlight<'a>(&'a mut State);

impl<'a> InFlight<'a> {
    fn start(state: &'a mut State) -> Self {
        // Commands take `&mut self`, so none can be running: a mark left set means an
        // earlier command future was dropped mid-flight. Keep that for good.
        if state.in_flight {
            state.poisoned = true;
        }
        state.in_flight = true;
        Self(state)
    }

    fn done(self) -> &'a mut State {
        let Self(state) = self;
        // `Self` has no Drop impl: moving the reference out ends the guard.
        state.in_flight = false;
        state
    }
}

fn name_is(arg: Option<&[u8]>, name: &str) -> bool {
    arg.is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
}

impl State {
    /// Account for `cmd` having been sent; `answered` tells whether the server answered
    /// without error (for the commands that end a transaction or a watch).
    fn track(&mut self, cmd: &Cmd, answered: bool) {
        let mut args = cmd.args_iter().map(|a| match a {
            ::redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        });
        let Some(Some(name)) = args.next() else {
            return;
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("MULTI") {
            self.multi = true;
        } else if is("EXEC") || is("DISCARD") {
            if answered {
                self.multi = false;
                self.watching = false;
            }
        } else if is("WATCH") {
            if !self.multi {
                self.watching = true;
            }
        } else if is("UNWATCH") {
            if answered && !self.multi {
                self.watching = false;
            }
        } else if is("SELECT") {
            self.db_changed = true;
        } else if is("SUBSCRIBE")
            || is("PSUBSCRIBE")
            || is("SSUBSCRIBE")
            || is("MONITOR")
            || is("RESET")
            || is("HELLO")
            || is("AUTH")
            || is("QUIT")
            || is("SYNC")
            || is("PSYNC")
        {
            self.poisoned = true;
        } else if is("CLIENT") {
            let sub = args.next().flatten();
            if name_is(sub, "REPLY") || name_is(sub, "TRACKING") {
                self.poisoned = true;
            }
        }
    }

    /// After a request completed with `result`.
    fn finish<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(e) = result {
            // The connection is gone, or the command is still running on the server
            // (response timeout): either way it cannot be reused.
            if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                self.poisoned = true;
            }
        }
    }
}

/// A pooled Redis connection: a redis-rs multiplexed connection that tracks in-flight
/// commands and transaction state so the pool never hands out a connection in an unknown
/// state. See the [module documentation](self).
///
/// Use it with [`redis::AsyncCommands`] or
/// `redis::cmd(…).query_async(&mut *conn)` (it implements
/// [`ConnectionLike`]). It cannot be cloned: clones would
/// escape the tracking.
pub struct RedisConnection {
    conn: MultiplexedConnection,
    /// The task running the connection's I/O; aborted on drop, so the socket closes even
    /// while a blocking command is outstanding.
    driver: tokio::task::AbortHandle,
    /// Set when the driver task ends: the server closed the connection or I/O failed.
    closed: Arc<AtomicBool>,
    /// The configured database number.
    db: i64,
    state: State,
}

impl RedisConnection {
    /// Whether the connection must not be used again: a command future was dropped before
    /// its answer arrived, a command changed the connection for good, I/O failed, or the
    /// server closed the connection.
    pub fn is_broken(&self) -> bool {
        self.state.in_flight || self.state.poisoned || self.closed.load(Ordering::Acquire)
    }

    /// Whether a `MULTI` may be open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.state.multi
    }

    /// Whether a `WATCH` may be active on this connection.
    pub fn is_watching(&self) -> bool {
        self.state.watching
    }

    /// The database number this connection was opened on.
    pub fn database(&self) -> i64 {
        self.db
    }

    fn needs_reset(&self) -> bool {
        self.state.multi || self.state.watching || self.state.db_changed
    }

    /// Send what it takes to leave the connection as it was opened: `DISCARD` or
    /// `UNWATCH`, then `SELECT` the configured database. Nothing when nothing is left.
    async fn reset(&mut self) -> Result<(), BackendError> {
        if self.state.multi {
            match ::redis::cmd("DISCARD").query_async::<()>(&mut *self).await {
                Ok(()) => {}
                // Nothing was open after all (EXEC failed, or MULTI was refused).
                Err(e) if e.to_string().contains("without MULTI") => {
                    self.state.multi = false;
                    if self.state.watching {
                        ::redis::cmd("UNWATCH")
                            .query_async::<()>(&mut *self)
                            .await
                            .map_err(|e| command_error("UNWATCH", &e, self))?;
                    }
                }
                Err(e) => return Err(command_error("DISCARD", &e, self)),
            }
        } else if self.state.watching {
            ::redis::cmd("UNWATCH")
                .query_async::<()>(&mut *self)
                .await
                .map_err(|e| command_error("UNWATCH", &e, self))?;
        }
        self.state.multi = false;
        self.state.watching = false;
        if self.state.db_changed {
            ::redis::cmd("SELECT")
                .arg(self.db)
                .query_async::<()>(&mut *self)
                .await
                .map_err(|e| command_error("SELECT", &e, self))?;
            self.state.db_changed = false;
        }
        Ok(())
    }
}

impl Drop for RedisConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let guard = InFlight::start(&mut self.state);
            let result = self.conn.send_packed_command(cmd).await;
            let state = guard.done();
            state.track(cmd, result.is_ok());
            state.finish(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let guard = InFlight::start(&mut self.state);
            let result = self
                .conn
                .send_packed_commands(pipeline, offset, count)
                .await;
            let state = guard.done();
            // An atomic pipeline brings its own MULTI / EXEC: nothing is left open.
            if !pipeline.is_transaction() {
                for cmd in pipeline.cmd_iter() {
                    state.track(cmd, result.is_ok());
                }
            }
            state.finish(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("db", &self.db)
            .field("broken", &self.is_broken())
            .field("in_transaction", &self.state.multi)
            .field("watching", &self.state.watching)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn role_replies_are_read() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let primary = Value::Array(vec![
            bulk("master"),
            Value::Int(3129659),
            Value::Array(vec![Value::Array(vec![
                bulk("127.0.0.1"),
                bulk("9001"),
                bulk("3129242"),
            ])]),
        ]);
        assert_eq!(
            parse_role(&primary).unwrap(),
            MemberStatus {
                role: Role::Primary,
                lag: None,
                position: Some(3129659)
            }
        );
        let replica = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(9000),
            bulk("connected"),
            Value::Int(3167038),
        ]);
        let status = parse_role(&replica).unwrap();
        assert_eq!(
            (status.role, status.position),
            (Role::Replica, Some(3167038))
        );
        // Before its first sync a replica's offset is -1: no position yet.
        let syncing = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(9000),
            bulk("connect"),
            Value::Int(-1),
        ]);
        assert_eq!(parse_role(&syncing).unwrap().position, None);
        for bad in [
            Value::Nil,
            Value::Array(vec![bulk("sentinel"), Value::Array(vec![])]),
            Value::Array(vec![bulk("master")]),
        ] {
            assert!(parse_role(&bad).is_err(), "{bad:?}");
        }
    }

    fn tracked(cmds: &[&[&str]]) -> State {
        let mut s = State::default();
        for c in cmds {
            let mut cmd = ::redis::cmd(c[0]);
            for a in &c[1..] {
                cmd.arg(*a);
            }
            s.track(&cmd, true);
        }
        s
    }

    #[test]
    fn transaction_state_is_tracked() {
        let s = tracked(&[&["multi"], &["SET", "k", "v"]]);
        assert!(s.multi && !s.watching && !s.poisoned);
        let s = tracked(&[&["WATCH", "k"], &["MULTI"], &["EXEC"]]);
        assert_eq!(s, State::default());
        let s = tracked(&[&["WATCH", "k"]]);
        assert!(s.watching && !s.multi);
        let s = tracked(&[&["WATCH", "k"], &["unwatch"]]);
        assert_eq!(s, State::default());
        let s = tracked(&[&["MULTI"], &["UNWATCH"]]);
        assert!(s.multi, "UNWATCH inside MULTI is only queued");
        let s = tracked(&[&["SELECT", "3"]]);
        assert!(s.db_changed);
        for poison in [
            &["SUBSCRIBE", "ch"][..],
            &["monitor"],
            &["CLIENT", "REPLY", "OFF"],
            &["client", "tracking", "on"],
            &["HELLO", "3"],
        ] {
            assert!(tracked(&[poison]).poisoned, "{poison:?}");
        }
        assert!(!tracked(&[&["CLIENT", "ID"], &["GET", "MULTI"]]).poisoned);
        assert!(!tracked(&[&["GET", "MULTI"]]).multi);

        // A failed EXEC does not prove the transaction is over.
        let mut s = tracked(&[&["MULTI"]]);
        s.track(&::redis::cmd("EXEC"), false);
        assert!(s.multi);
    }

    #[test]
    fn settings_check_the_config() {
        let s = Settings::from_config(
            &ConnectionConfig::parse(
                "redis://app:pw@h:1/4?application_name=api&response_timeout=250ms",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(s.db, 4);
        assert_eq!(s.info.username(), Some("app"));
        assert_eq!(s.info.password(), Some("pw"));
        assert_eq!(s.name.as_deref(), Some("api"));
        assert_eq!(s.response_timeout, Some(Duration::from_millis(250)));

        for (url, field) in [
            ("redis://h/x", "connection.database"),
            ("redis://h/-1", "connection.database"),
            ("rediss://h/0", "connection.tls.mode"),
            ("redis://h/0?sslmode=require", "connection.tls.mode"),
            (
                "redis://h/0?application_name=a%20b",
                "connection.application_name",
            ),
            (
                "redis://h/0?response_timeout=soon",
                "connection.options.response_timeout",
            ),
            ("mysql://h/0", "connection.backend"),
        ] {
            let mut cfg = ConnectionConfig::parse(url).unwrap();
            cfg.password = Some(Secret::new("hunter2"));
            let err = match Settings::from_config(&cfg) {
                Err(e) => e,
                Ok(_) => panic!("{url} was accepted"),
            };
            assert_eq!(err.kind(), BackendErrorKind::Config, "{url}");
            assert!(err.to_string().contains(field), "{url}: {err}");
            assert!(!format!("{err:?}").contains("hunter2"));
        }
    }

    #[test]
    fn errors_are_classified() {
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(classify(&auth), BackendErrorKind::Auth);
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), BackendErrorKind::Connect);
        let cfg = RedisError::from((ErrorKind::InvalidClientConfig, "bad"));
        assert_eq!(classify(&cfg), BackendErrorKind::Config);
    }
}
