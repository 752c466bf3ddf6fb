//! [`RedisConnection`]: opening one, tracking every command sent through it, and resetting
//! it on return.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::errors::classify;
use super::settings::Settings;
use super::state::{InFlight, State};
use crate::backends::support::redact;
use crate::backends::tls;
use crate::connection::{ConnectionConfig, Host};
use crate::error::{BackendError, BackendErrorKind};

/// A pooled Redis connection: a redis-rs multiplexed connection that tracks in-flight
/// commands and transaction state so the pool never hands out a connection in an unknown
/// state. See the [module documentation](super).
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

    pub(super) fn needs_reset(&self) -> bool {
        self.state.multi || self.state.watching || self.state.db_changed
    }

    /// Send what it takes to leave the connection as it was opened: `DISCARD` or
    /// `UNWATCH`, then `SELECT` the configured database. Nothing when nothing is left.
    pub(super) async fn reset(&mut self) -> Result<(), BackendError> {
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

pub(super) async fn open(
    host: &Host,
    settings: &Settings,
    cfg: &ConnectionConfig,
    tls: Option<&TlsConnector>,
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
    type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;
    let (conn, driver): (MultiplexedConnection, Driver) = if let Some(connector) = tls {
        let stream = handshake(connector, host, stream).await?;
        let (conn, driver) = MultiplexedConnection::new_with_config(&settings.info, stream, config)
            .await
            .map_err(redis_err)?;
        (conn, Box::pin(driver))
    } else {
        let (conn, driver) = MultiplexedConnection::new_with_config(&settings.info, stream, config)
            .await
            .map_err(redis_err)?;
        (conn, Box::pin(driver))
    };
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

/// The TLS handshake over `stream`, the server name being the configured host (a DNS name
/// or an IP address). A certificate that fails verification is a
/// [`Config`](BackendErrorKind::Config) error, other handshake failures
/// [`Connect`](BackendErrorKind::Connect) errors.
async fn handshake(
    connector: &TlsConnector,
    host: &Host,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, BackendError> {
    let name = ServerName::try_from(host.host.clone()).map_err(|e| {
        BackendError::new(
            BackendErrorKind::Config,
            format!("TLS: `{}` is not a valid server name: {e}", host.host),
        )
    })?;
    connector.connect(name, stream).await.map_err(|e| {
        let (kind, text) = match tls::find_rustls_error(&e) {
            Some(t) => (tls::error_kind(t), tls::describe(t, &host.host)),
            None => (
                BackendErrorKind::Connect,
                format!("TLS handshake with {} failed: {e}", host.host),
            ),
        };
        BackendError::new(kind, format!("redis at {host}: {text}")).with_source(e)
    })
}

pub(super) fn command_error(what: &str, e: &RedisError, conn: &RedisConnection) -> BackendError {
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
