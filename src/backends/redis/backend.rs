//! `impl Backend for RedisBackend`, and reading a member's role and replication offset
//! from `ROLE`.

use std::sync::Arc;

use ::redis::Value;
use tokio_rustls::TlsConnector;

use super::connection::{command_error, open, RedisConnection};
use super::errors::config_error;
use super::settings::Settings;
use super::RedisBackend;
use crate::backends::Role;
use crate::backends::{Backend, MemberStatus};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};

impl Backend for RedisBackend {
    type Connection = RedisConnection;

    async fn connect(&self, cfg: &ConnectionConfig) -> Result<RedisConnection, BackendError> {
        let settings = Settings::from_config(cfg)?;
        // Before any socket: an unusable TLS file is a configuration error.
        let tls = match settings.tls {
            true => Some(
                self.tls_cache
                    .get(&cfg.tls, |c| TlsConnector::from(Arc::new(c)))?,
            ),
            false => None,
        };
        let mut last = None;
        for host in &cfg.hosts {
            match open(host, &settings, cfg, tls.as_ref()).await {
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

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
