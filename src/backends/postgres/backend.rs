//! `impl Backend for PostgresBackend`: multi-host connect, probe, reset on return, and the
//! replication status of a replica-set member.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::connect::connect_host;
use super::connection::{PgConnection, Pooler, ResetMode};
use super::errors::{pg_error, Stage};
use super::options::Options;
use super::session::TransactionStatus;
use super::PostgresBackend;
use crate::backends::Role;
use crate::backends::{Backend, MemberStatus};
use crate::connection::ConnectionConfig;
use crate::error::{BackendError, BackendErrorKind};

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
        if opts.pooler == Pooler::Transaction {
            self.warn_transaction_pooler(config);
        }
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

/// What the pool-start warning of `pooler=transaction` says cannot work through the pooler.
pub const TRANSACTION_POOLER_WARNING: &str = "behind a transaction pooler (pooler=transaction) \
    each transaction may run on another server session, so these do not work: session `SET` \
    (use `SET LOCAL` inside `PgConnection::transaction()`), `LISTEN`/`NOTIFY`, session \
    advisory locks (`pg_advisory_lock`; `pg_advisory_xact_lock` works), `prepare()`d \
    statements and the client's `query`/`execute` with a `&str` (they prepare named \
    statements; `PgConnection::query`/`execute` do not), and custom types (enums, composites, \
    domains), whose lookups prepare statements. For those, use `PoolHandle::dedicated()` on a \
    direct (non-pooler) URL";

impl PostgresBackend {
    /// Log [`TRANSACTION_POOLER_WARNING`] once per config (so once per pool, at its first
    /// connect).
    fn warn_transaction_pooler(&self, config: &ConnectionConfig) {
        let id = config.to_string();
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        if first {
            tracing::warn!(pool = %id, "{TRANSACTION_POOLER_WARNING}");
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

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
